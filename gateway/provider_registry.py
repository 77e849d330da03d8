"""Builds the configured providers and answers which ones serve a channel."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr

from gateway.settings import Settings, read_secret_file
from providers.base import CallbackIntake, ErrorKind, Provider
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


def _smpp(name: str, section: dict[str, Any], settings: Settings) -> Provider:
    from providers.smpp import SmppProvider, SmppSettings

    return SmppProvider(_settings(SmppSettings, name, section), name=name)


BUILDERS: Mapping[str, Callable[[str, dict[str, Any], Settings], Provider]] = {
    "twilio": _twilio,
    "aliyun": _aliyun,
    "smtp": _smtp,
    "fcm": _fcm,
    "webhook": _webhook,
    "smpp": _smpp,
}


# The setting that names the account a provider section sends through: sections of one type that
# share it share the account's limits (`limits.throughput.account`, keyed "<type>:<value>").
ACCOUNT_SETTINGS: Mapping[str, str] = {
    "twilio": "account_sid",
    "aliyun": "access_key_id",
    "smtp": "host",
    "fcm": "project_id",
    "smpp": "system_id",
}


def accounts_of(settings: Settings, providers: list[Provider]) -> dict[str, str]:
    """Provider name -> its account's throughput name, e.g. twilio-us -> "twilio:AC123"."""
    accounts: dict[str, str] = {}
    by_name = {p.name: p for p in providers}
    for name, raw in settings.providers.items():
        kind = str(raw.get("type", name))
        field_name = ACCOUNT_SETTINGS.get(kind)
        provider_settings = getattr(by_name.get(name), "settings", None)
        value = getattr(provider_settings, field_name, None) if field_name else None
        if value:
            accounts[name] = f"{kind}:{value}"
    return accounts


def _settings_class(kind: str) -> type[Any] | None:
    if kind == "twilio":
        from providers.twilio import TwilioSettings

        return TwilioSettings
    if kind == "aliyun":
        from providers.aliyun import AliyunSettings

        return AliyunSettings
    if kind == "smtp":
        from providers.smtp import SmtpSettings

        return SmtpSettings
    if kind == "fcm":
        from providers.fcm import FcmSettings

        return FcmSettings
    if kind == "webhook":
        from providers.webhook import WebhookSettings

        return WebhookSettings
    if kind == "smpp":
        from providers.smpp import SmppSettings

        return SmppSettings
    return None


def secret_keys(kind: str) -> frozenset[str]:
    """The settings of a provider type that are credentials: the adapter keeps them out of its repr.
    FCM's whole service-account JSON is one too (`service_account_file` is its file)."""
    cls = _settings_class(kind)
    keys = {f.name for f in dataclasses.fields(cls) if not f.repr} if cls is not None else set()
    if kind == "fcm":
        keys.add("service_account_json")
    return frozenset(keys)


def resolve_secrets(providers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each provider section with `<secret>_file` read into `<secret>`, and every credential held as a
    SecretStr so no repr, log line or dump of the settings shows it. Errors name the key."""
    resolved: dict[str, dict[str, Any]] = {}
    for name, raw in providers.items():
        if not isinstance(raw, Mapping):
            raise ValueError(f"providers.{name}: expected a table of settings")
        section = dict(raw)
        kind = str(section.get("type", name))
        for secret in sorted(secret_keys(kind)):
            file_key = "service_account_file" if secret == "service_account_json" else f"{secret}_file"
            if file_key not in section:
                continue
            if section.get(secret) is not None:
                raise ValueError(f"providers.{name}.{file_key}: give {secret} or {file_key}, not both")
            section[secret] = read_secret_file(section.pop(file_key), f"providers.{name}.{file_key}")
        for secret in secret_keys(kind):
            value = section.get(secret)
            if isinstance(value, str):
                section[secret] = SecretStr(value)
        resolved[name] = section
    return resolved


def _revealed(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in section.items()}


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
        section = _revealed(raw)
        kind = section.pop("type", name)
        builder = BUILDERS.get(kind)
        if builder is None:
            raise ValueError(f"providers.{name}.type: {kind!r} is not one of {', '.join(BUILDERS)}")
        built.append(builder(name, section, settings))
    return built


class ProviderRegistry:
    def __init__(self, providers: list[Provider], accounts: Mapping[str, str] | None = None) -> None:
        self.by_name: dict[str, Provider] = {p.name: p for p in providers}
        self.accounts: dict[str, str] = dict(accounts or {})
        by_channel: dict[str, list[str]] = defaultdict(list)
        for provider in providers:
            for channel in sorted(provider.capabilities.channels):
                by_channel[channel].append(provider.name)
        self.by_channel: dict[str, tuple[str, ...]] = {c: tuple(names) for c, names in by_channel.items()}

    def get(self, name: str) -> Provider | None:
        return self.by_name.get(name)

    def attach(self, intake: CallbackIntake) -> None:
        """Hand the intake to providers that receive over their own connections (they have `attach`)."""
        for provider in self.by_name.values():
            attach = getattr(provider, "attach", None)
            if attach is not None:
                attach(intake)

    async def start(self) -> None:
        for provider in self.by_name.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self.by_name.values():
            await provider.close()


def build_providers(settings: Settings, *, secrets: dict[str, str], dispatching: bool) -> ProviderRegistry:
    """`dispatching` is False for API-only processes: they verify callbacks but send nothing."""
    providers: list[Provider] = build_configured(settings)
    accounts = accounts_of(settings, providers)
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
                filtered_senders=sandbox.filtered_senders,
                receipts_per_segment=sandbox.receipts_per_segment,
                seed=sandbox.seed,
            )
        )
    return ProviderRegistry(providers, accounts)
