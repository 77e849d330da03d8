"""`[tenants.<tenant>]` settings: what differs from tenant to tenant (docs/recipients.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TenantSettings(BaseModel):
    """`[tenants.<tenant>]`, or `[tenants.default]` for every tenant without a section of its own (a tenant's
    section overrides the default's keys one by one). docs/recipients.md"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str | None = Field(
        None,
        examples=["Asia/Shanghai"],
        description="quiet hours of a recipient with no time zone of their own and no phone number to tell one;"
        " unset: UTC, and the deferral event says so (tz_source utc_unconfigured)",
    )
    preferences: dict[str, dict[str, bool]] = Field(
        default_factory=dict,
        examples=[{"marketing": {"voice": False}}],
        description="default preferences, category -> channel -> on/off, for what a recipient never said",
    )
    opt_out_scope: Literal["tenant", "tenant_and_pool"] = Field(
        "tenant",
        description="what an opt-out reply suppresses: marketing of the tenant whose message it answered, or"
        " also of every tenant that sent to the person from the same sender number pool",
    )
    inbound_numbers: tuple[str, ...] = Field(
        (), description="our numbers whose replies, when they answer no message we know, apply to this tenant"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from gateway.domain.quiet_hours import zone

        if value is not None:
            zone(value, "time_zone")
        return value

    @field_validator("preferences")
    @classmethod
    def _known_preferences(cls, value: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
        from gateway.domain.recipients import CATEGORIES, CHANNELS

        for category, channels in value.items():
            if category not in CATEGORIES:
                raise ValueError(f"preferences.{category}: not a category ({', '.join(CATEGORIES)})")
            for channel in channels:
                if channel not in CHANNELS:
                    raise ValueError(f"preferences.{category}.{channel}: not a channel ({', '.join(CHANNELS)})")
        return value
