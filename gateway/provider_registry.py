"""Builds the configured providers and answers which ones serve a channel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from gateway.domain.recipients import PLATFORMS
from gateway.settings import Settings
from providers.base import CallbackIntake, ErrorKind, Provider
from providers.catalog import accounts_of, build_sections
from providers.sandbox import SandboxProvider, SimulatedError, ledger_beside_database


def build_configured(settings: Settings) -> list[Provider]:
    """Providers from `[providers.<name>]` sections; `type` defaults to the section's name."""
    return build_sections(settings.providers, settings.base_url)


class ProviderRegistry:
    def __init__(
        self,
        providers: list[Provider],
        accounts: Mapping[str, str] | None = None,
        platforms: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.by_name: dict[str, Provider] = {p.name: p for p in providers}
        # Push platforms each push provider delivers to: what it declares (capabilities.extra
        # "push_platforms"), else what `platforms` says for it, else all of them.
        self.push_platforms: frozenset[str] = frozenset(
            platform
            for p in providers
            if "push" in p.capabilities.channels
            for platform in p.capabilities.extra.get("push_platforms", (platforms or {}).get(p.name, PLATFORMS))
        )
        self.accounts: dict[str, str] = dict(accounts or {})
        by_channel: dict[str, list[str]] = defaultdict(list)
        for provider in providers:
            for channel in sorted(provider.capabilities.channels):
                by_channel[channel].append(provider.name)
        self.by_channel: dict[str, tuple[str, ...]] = {c: tuple(names) for c, names in by_channel.items()}
        self.channels: frozenset[str] = frozenset(self.by_channel)  # the channels some provider sends

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
    accounts = accounts_of(settings.providers, providers)
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
                ledger_path=ledger_beside_database(sandbox.ledger_path, settings.database_url) if dispatching else None,
                filtered_senders=sandbox.filtered_senders,
                receipts_per_segment=sandbox.receipts_per_segment,
                seed=sandbox.seed,
            )
        )
    return ProviderRegistry(providers, accounts, {"sandbox": sandbox.push_platforms})
