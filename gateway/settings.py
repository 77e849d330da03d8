"""Settings: defaults, then the TOML file named by GATEWAY_CONFIG, then GATEWAY_* environment variables.

Nested keys take a double underscore in the environment: `[worker] batch_size` is
GATEWAY_WORKER__BATCH_SIZE. A wrong value stops start-up with one line naming the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(Exception):
    """A setting is wrong; the message is one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Section):
    max_body_bytes: int = Field(262_144, gt=0, description="largest accepted body of a single-job request")
    max_batch_body_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_batch_items: int = Field(1000, gt=0, le=10_000)
    require_idempotency_key: bool = False
    idempotency_retention_hours: float = Field(24.0, gt=0)
    group_commit_ms: float = Field(
        2.0, ge=0, le=1000, description="how long an accept waits for company before committing"
    )
    group_commit_max_rows: int = Field(2000, gt=0)
    allow_http_webhooks: bool = False
    # Off (0) by default. Per tenant and per API process, so the accept path never waits on Redis: with N API
    # processes a tenant may reach N times this rate. 0 turns the limit off.
    tenant_requests_per_second: float = Field(0.0, ge=0)
    tenant_request_burst: int = Field(2000, ge=1)
    key_use_audit_seconds: float = Field(60.0, gt=0, description="how often key use is written to the audit log")


class WorkerSettings(_Section):
    batch_size: int = Field(200, gt=0, le=5000)
    concurrency: int = Field(256, gt=0, description="provider calls in flight per worker process")
    poll_interval_ms: float = Field(50.0, gt=0)
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, gt=0)
    backoff_base_seconds: float = Field(2.0, gt=0)
    backoff_max_seconds: float = Field(600.0, gt=0)
    # What to do with a job found in `sending` after its worker died, when the provider cannot tell
    # whether it took the message: resend (at-least-once) or mark unknown (at-most-once).
    handoff_marketing: Literal["unknown", "resend"] = "unknown"
    handoff_transactional: Literal["unknown", "resend"] = "resend"
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    # Retries per provider at most this share of first attempts over the window (plus the floor).
    retry_budget_ratio: float = Field(0.2, ge=0)
    retry_budget_floor: int = Field(10, ge=0)
    retry_budget_window_seconds: float = Field(60.0, gt=0)


class SandboxErrorSpec(_Section):
    code: str
    kind: Literal[
        "transient", "rate_limited", "permanent", "recipient_invalid", "recipient_opted_out", "sender_flagged"
    ]
    weight: float = Field(1.0, gt=0)
    message: str = ""


class SandboxSettings(_Section):
    enabled: bool = True
    latency_ms: float = Field(20.0, ge=0, description="mean simulated provider latency")
    failure_rate: float = Field(0.0, ge=0, le=1, description="share of sends the provider refuses")
    errors: tuple[SandboxErrorSpec, ...] = (
        SandboxErrorSpec(code="SBX-503", kind="transient", weight=3, message="service unavailable"),
        SandboxErrorSpec(code="SBX-429", kind="rate_limited", weight=1, message="too many requests"),
        SandboxErrorSpec(code="SBX-21211", kind="recipient_invalid", weight=1, message="invalid 'To' number"),
    )
    delivery_rate: float = Field(1.0, ge=0, le=1, description="share of sent messages whose receipt says delivered")
    seed: int | None = Field(None, description="seed of the simulated failures and fates, for a reproducible mix")
    receipts: bool = True
    receipt_delay_ms: float = Field(200.0, ge=0)
    receipt_url: str | None = None
    ledger_path: str | None = Field(
        "gateway-sandbox.ndjson",
        description="append-only record of what the simulated provider accepted; lets crash recovery ask it",
    )


class ContentRouteSettings(_Section):
    """China marketing rules for a provider/route: a 【signature】 and the unsubscribe suffix it requires."""

    china_marketing: bool = False
    unsubscribe_suffixes: tuple[str, ...] = ("拒收请回复R", "回T退订")
    signature_min_chars: int = Field(2, ge=1)
    signature_max_chars: int = Field(12, ge=1)


class ContentSettings(_Section):
    blocklist_dir: str | None = Field("config/blocklists", description="global and per-carrier word lists")
    enforce_at_accept: bool = True
    enforce_at_dispatch: bool = True
    max_segments: int = Field(6, ge=1)
    max_links: int = Field(2, ge=0)
    link_domain_allowlist: tuple[str, ...] = ()
    hard_max_chars: int = Field(1600, ge=1)
    reload_seconds: float = Field(5.0, gt=0, description="how often processes look for changed tenant lists")
    routes: dict[str, ContentRouteSettings] = Field(default_factory=dict, description="rules per provider")


class LinkSettings(_Section):
    # per_message: every link in SMS, push and e-mail text becomes a short tracked link at dispatch.
    tracking: Literal["per_message", "off"] = "per_message"
    base_url: str | None = Field(None, description="the click domain, e.g. https://go.example.com; default public_url")
    append_utm: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None
    database_url: str = "sqlite:///gateway.db"
    redis_url: str | None = None
    config: str | None = None
    api_key: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    db_pool_size: int = Field(10, gt=0)
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()
    sandbox: SandboxSettings = SandboxSettings()
    content: ContentSettings = ContentSettings()
    links: LinkSettings = LinkSettings()
    # One section per provider account: [providers.twilio], [providers.aliyun-marketing] (with
    # type = "aliyun"), ... Keys are the adapter's settings; see docs/providers.md.
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Provider preference per channel, region rules (voice: deny province=Xinjiang -> sms), breakers.
    routing: dict[str, Any] = Field(default_factory=dict)
    # Caps, quiet hours, hit policies, throughput and opt-out keywords; see docs/limits.md.
    limits: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_providers(self) -> Settings:
        from gateway.provider_registry import build_configured

        build_configured(self)  # constructing an adapter opens nothing; it only checks the settings
        return self

    @field_validator("routing")
    @classmethod
    def _valid_routing(cls, value: dict[str, Any]) -> dict[str, Any]:
        from gateway.domain.routing import parse_routing

        parse_routing(value)
        return value

    @field_validator("limits")
    @classmethod
    def _valid_limits(cls, value: dict[str, Any]) -> dict[str, Any]:
        from gateway.domain.limits import parse_limits
        from gateway.domain.optout import parse_opt_out
        from gateway.domain.quiet_hours import parse_quiet_hours

        parse_limits(value)
        parse_quiet_hours(value.get("quiet_hours"))
        parse_opt_out(value.get("opt_out"))
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init carries the TOML file's values; the environment wins over it.
        return (env_settings, init_settings)


def _env_name(loc: tuple[int | str, ...]) -> str:
    return "GATEWAY_" + "__".join(str(part).upper() for part in loc if isinstance(part, str))


def _refuse_unknown_variables(env: Mapping[str, str]) -> None:
    # A misspelt variable would otherwise be ignored in silence and the default used instead.
    known = set(Settings.model_fields)
    for name in env:
        upper = name.upper()
        if not upper.startswith("GATEWAY_") or upper.startswith("GATEWAY_TEST_"):
            continue
        first = upper.removeprefix("GATEWAY_").split("__", 1)[0].lower()
        if first not in known:
            raise SettingsError(f"setting {name}: no such setting (known: {', '.join(sorted(known))})")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raises SettingsError with one line naming the bad key."""
    env = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    config_path = env.get("GATEWAY_CONFIG")
    if config_path:
        try:
            file_values = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"config: GATEWAY_CONFIG names {config_path}, which does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config: {config_path} is not valid TOML: {exc}") from None
        file_values["config"] = config_path
    _refuse_unknown_variables(env)
    saved = dict(os.environ)
    try:
        if environ is not None:
            os.environ.clear()
            os.environ.update(environ)
        return Settings(**file_values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        message = first["msg"]
        got = first.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        named = re.match(r"^Value error, ([\w.\-\[\]]+): (.*)$", message)
        if not loc and named:
            # A check across sections names its own key, e.g. providers.twilio.auth_token.
            loc = tuple(named.group(1).replace("[", ".").replace("]", "").split("."))
            message, shown = named.group(2), ""
        key = ".".join(str(part) for part in loc)
        raise SettingsError(
            f"setting {key} ({_env_name(loc)}): {message}{shown}"
            + (f"; {len(exc.errors()) - 1} more problem(s)" if len(exc.errors()) > 1 else "")
        ) from None
    finally:
        if environ is not None:
            os.environ.clear()
            os.environ.update(saved)
