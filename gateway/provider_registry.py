"""Builds the configured providers and answers which ones serve a channel."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from gateway.settings import Settings
from providers.base import ErrorKind, Provider
from providers.sandbox import SandboxProvider, SimulatedError


def _twilio(name: str, section: dict[str, Any], settings: Settings) -> Provider:
    from providers.twilio import TwilioProvider, TwilioSettings

    section.setdefault("public_base_url", settings.base_url)
    return TwilioProvider(_settings(TwilioSettings, name, section), name=name)


def _aliyun(name: str, section: dict[str, Any], settings: Settings) -> Provider:
    from providers.aliyun import AliyunSettings, AliyunSmsProvider

    return AliyunSmsProvider(_settings(AliyunSettings, name, section), name=name)


def _smtp(name: str, section: dict[str, Any], settings: Settings) -> Provider:
    from providers.smtp import SmtpProvider, SmtpSettings

    return SmtpProvider(_settings(SmtpSettings, name, section), name=name)


def _fcm(name: str, section: dict[str, Any], settings: Settings) -> Provider:
    from providers.fcm import FcmProvider, FcmSettings

    account = section.pop("service_account_file", None) or section.pop("service_account_json", None)
    if account is None:
        raise ValueError(f"providers.{name}.service_account_file: is required (the service-account key JSON)")
    return FcmProvider(FcmSettings.from_service_account(account, **section), name=name)


def _webhook(name: str, section: dict[str, Any], settings: Settings) -> Provider:
    from providers.webhook import WebhookProvider, WebhookSettings

    return WebhookProvider(_settings(WebhookSettings, name, section), name=name)


BUILDERS: Mapping[str, Callable[[str, dict[str, Any], Settings], Provider]] = {
    "twilio": _twilio,
    "aliyun": _aliyun,
    "smtp": _smtp,
    "fcm": _fcm,
    "webhook": _webhook,
}


def _settings(cls: type[Any], name: str, section: Mapping[str, Any]) -> Any:
    """The adapter's settings dataclass, with errors that name the key as the operator wrote it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in section:
        if key not in fields:
            raise ValueError(f"providers.{name}.{key}: unknown setting (known: {', '.join(sorted(fields))})")
    for field in fields.values():
        missing = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if missing and field.name not in section:
            raise ValueError(f"providers.{name}.{field.name}: is required")
    try:
        return cls(**section)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"providers.{name}: {exc}") from None


def build_configured(settings: Settings) -> list[Provider]:
    """Providers from `[providers.<name>]` sections; `type` defaults to the section's name."""
    built = []
    for name, raw in settings.providers.items():
        section = dict(raw)
        kind = section.pop("type", name)
        builder = BUILDERS.get(kind)
        if builder is None:
            raise ValueError(f"providers.{name}.type: {kind!r} is not one of {', '.join(BUILDERS)}")
        built.append(builder(name, section, settings))
    return built


class ProviderRegistry:
    def __init__(self, providers: list[Provider]) -> None:
        self.by_name: dict[str, Provider] = {p.name: p for p in providers}
        by_channel: dict[str, list[str]] = defaultdict(list)
        for provider in providers:
            for channel in sorted(provider.capabilities.channels):
                by_channel[channel].append(provider.name)
        self.by_channel: dict[str, tuple[str, ...]] = {c: tuple(names) for c, names in by_channel.items()}

    def get(self, name: str) -> Provider | None:
        return self.by_name.get(name)

    async def start(self) -> None:
        for provider in self.by_name.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self.by_name.values():
            await provider.close()


def build_providers(settings: Settings, *, secrets: dict[str, str], dispatching: bool) -> ProviderRegistry:
    """`dispatching` is False for API-only processes: they verify callbacks but send nothing."""
    providers: list[Provider] = build_configured(settings)
    sandbox = settings.sandbox
    if sandbox.enabled:
        receipt_url = None
        if dispatching and sandbox.receipts:
            receipt_url = sandbox.receipt_url or f"{settings.base_url}/v1/receipts/sandbox"
        providers.append(
            SandboxProvider(
                receipt_url=receipt_url,
                secret=secrets["sandbox"],
                latency_ms=sandbox.latency_ms,
                failure_rate=sandbox.failure_rate,
                errors=[SimulatedError(e.code, ErrorKind(e.kind), e.weight, e.message) for e in sandbox.errors],
                delivery_rate=sandbox.delivery_rate,
                receipt_delay_ms=sandbox.receipt_delay_ms,
                ledger_path=sandbox.ledger_path if dispatching else None,
                seed=sandbox.seed,
            )
        )
    return ProviderRegistry(providers)
