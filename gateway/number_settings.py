"""`[numbers]` settings: sender number pools, their senders, health policy and reputation checks (docs/numbers.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SenderSettings(_Section):
    """One sender of a pool, when it differs from the pool's defaults."""

    sender: str = Field(min_length=1, max_length=64, description="the number (E.164) or alphanumeric id")
    kind: Literal["number", "short_code", "alphanumeric"] | None = Field(None, description="default: the pool's")
    region: str | None = Field(None, max_length=64, description="where the number is registered, for local caller id")
    daily_cap: int | None = Field(None, ge=1, description="default: the pool's")
    rate: float | None = Field(None, gt=0, description="default: the pool's")
    warmup: bool | None = Field(None, description="default: the pool's")


class PoolSettings(_Section):
    """`[numbers.pools.<name>]`: the senders of one pool and what they serve."""

    provider: str | None = Field(
        None, examples=["twilio"], description="the provider that sends from these numbers; default any"
    )
    channel: Literal["sms", "voice"] = Field("sms", description="the channel these numbers send on")
    countries: tuple[str, ...] = Field((), description="recipients' ISO country codes served; empty: any")
    categories: tuple[Literal["marketing", "transactional"], ...] = Field(
        (), description="the categories served; empty: any"
    )
    kind: Literal["number", "short_code", "alphanumeric"] = Field("number", description="what the senders are")
    daily_cap: int | None = Field(None, ge=1, examples=[2000], description="messages per number per day")
    rate: float | None = Field(None, gt=0, examples=[1.0], description="messages per second per number")
    warmup: bool = Field(False, description="new numbers climb numbers.warmup_caps day by day")
    senders: tuple[str | SenderSettings, ...] = Field(
        min_length=1,
        examples=[["+14155550101", {"sender": "+12125550101", "region": "NY", "warmup": True}]],
        description="the numbers: E.164 strings, or tables that override the pool's defaults",
    )

    @model_validator(mode="after")
    def _senders_in_their_form(self) -> PoolSettings:
        from gateway.domain.jobs import normalise_phone

        seen: set[str] = set()
        for entry in self.senders:
            spec = entry if isinstance(entry, SenderSettings) else SenderSettings(sender=entry)
            if spec.sender in seen:
                raise ValueError(f"sender {spec.sender!r} is listed twice")
            seen.add(spec.sender)
            if (spec.kind or self.kind) == "number" and normalise_phone(spec.sender) != spec.sender:
                raise ValueError(f"sender {spec.sender!r} is not a phone number in E.164 (+<country><number>)")
        for country in self.countries:
            if not re.fullmatch(r"[A-Z]{2}", country):
                raise ValueError(f"countries: {country!r} is not an ISO 3166 alpha-2 code in capitals")
        return self


class ReputationSettings(_Section):
    """A pluggable check that can mark numbers flagged: an HTTP hook or a Python entry point."""

    url: str | None = Field(
        None, examples=["https://checker.internal/numbers"], description="POSTed the numbers; answers which are flagged"
    )
    entry_point: str | None = Field(
        None, examples=["mypackage.checks:flagged_numbers"], pattern=r"^[\w.]+:[\w.]+$", description="module:function"
    )
    interval_seconds: float = Field(86_400.0, gt=0, description="how often each number is checked")
    timeout_seconds: float = Field(10.0, gt=0, description="how long one check may take")
    batch_size: int = Field(100, gt=0, description="numbers per check")


class NumbersSettings(_Section):
    """Sender number pools and the thresholds of their health; see docs/numbers.md."""

    window_seconds: float = Field(3600.0, gt=0, description="sliding window the evidence is counted in")
    filtered_to_suspect: int = Field(1, ge=1, description="carrier-filtered receipts that make a number suspect")
    filtered_to_quarantine: int = Field(3, ge=1, description="... and take it out of rotation")
    min_sample: int = Field(20, ge=1, description="settled messages before a failure rate counts")
    failure_ratio: float = Field(2.0, ge=1, description="suspect above this times the rest of the pool's failure rate")
    failure_margin: float = Field(0.10, ge=0, le=1, description="... and this far above it")
    assumed_baseline: float = Field(
        0.05, ge=0, le=1, description="the failure rate assumed for a pool with too few messages of its own"
    )
    quarantine_failure_rate: float = Field(0.5, gt=0, le=1, description="a failure rate that quarantines at once")
    opt_out_rate: float = Field(
        0.05, gt=0, le=1, description="opt-out replies per delivered that make a number suspect"
    )
    cooldown_seconds: float = Field(86_400.0, ge=0, description="quarantined this long, then on probation")
    probation_seconds: float = Field(3600.0, ge=0, description="on probation this long (with enough deliveries)")
    probation_deliveries: int = Field(5, ge=0, description="deliveries on probation before a number is active again")
    probation_daily_cap: int = Field(100, ge=1, description="daily cap of a number on probation")
    warmup_caps: tuple[int, ...] = Field(
        (50, 100, 200, 400, 800), description="daily caps of a new number (warmup = true), day by day"
    )
    tick_seconds: float = Field(5.0, gt=0, description="how often time-based changes are looked for")
    reputation: ReputationSettings = Field(ReputationSettings(), description="a check that can mark numbers flagged")
    pools: dict[str, PoolSettings] = Field(
        default_factory=dict,
        description="sender pools, one [numbers.pools.<name>] section each",
        json_schema_extra={"section_name": "us-marketing"},
    )

    @model_validator(mode="after")
    def _thresholds(self) -> NumbersSettings:
        if self.filtered_to_suspect > self.filtered_to_quarantine:
            raise ValueError("filtered_to_suspect must not exceed filtered_to_quarantine")
        if any(c < 1 for c in self.warmup_caps):
            raise ValueError("warmup_caps must be whole numbers >= 1")
        for name in self.pools:
            if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name):
                raise ValueError(f"pool name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        return self
