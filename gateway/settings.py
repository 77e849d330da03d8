"""Settings: defaults, then the TOML file named by GATEWAY_CONFIG, then GATEWAY_* environment variables.

Nested keys take a double underscore in the environment: `[worker] batch_size` is
GATEWAY_WORKER__BATCH_SIZE. A wrong value stops start-up with one line naming the key.
"""

from __future__ import annotations

import contextvars
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from gateway.domain.client_address import parse_networks
from gateway.number_settings import NumbersSettings
from gateway.tenant_settings import TenantSettings
from gateway.webhook_settings import WebhooksSettings
from providers.catalog import build_sections, read_secret_file, resolve_secrets


class SettingsError(Exception):
    """A setting is wrong; the message is one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Section):
    max_body_bytes: int = Field(262_144, gt=0, description="largest accepted body of a single-job request")
    max_batch_body_bytes: int = Field(16 * 1024 * 1024, gt=0, description="largest accepted body of a batch request")
    max_batch_items: int = Field(1000, gt=0, le=10_000, description="most jobs in one batch request")
    require_idempotency_key: bool = Field(False, description="true: a send without Idempotency-Key is a 400")
    idempotency_retention_hours: float = Field(
        24.0, gt=0, description="after this long an Idempotency-Key may be used for a new message"
    )
    group_commit_ms: float = Field(
        2.0, ge=0, le=1000, description="how long an accept or a receipt callback waits for company before committing"
    )
    group_commit_max_rows: int = Field(2000, gt=0, description="most jobs committed in one accept transaction")
    allow_http_webhooks: bool = Field(False, description="true: webhook jobs may target plain http:// URLs")
    # Off (0) by default. Per tenant and per API process, so the accept path never waits on Redis: with N API
    # processes a tenant may reach N times this rate. 0 turns the limit off.
    tenant_requests_per_second: float = Field(
        0.0, ge=0, description="API requests per second per tenant and API process; 0 turns the limit off"
    )
    tenant_request_burst: int = Field(2000, ge=1, description="requests a tenant may make at once above that rate")
    key_use_audit_seconds: float = Field(60.0, gt=0, description="how often key use is written to the audit log")
    body_read_timeout_seconds: float = Field(
        30.0, gt=0, description="how long a client may take to send a request body before a 408"
    )
    header_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="how long a client may take to send a request line and headers, from connecting (or from"
        " the first byte of its next request on a kept-alive connection); then the connection is closed",
    )
    max_connections_per_client: int = Field(
        256,
        ge=0,
        description="connections one IP address may hold open at once; more are closed on arrival (0: no limit)."
        " Behind a proxy every connection comes from its address: raise it above the proxy's pool or set 0",
    )


class WorkerSettings(_Section):
    batch_size: int = Field(200, gt=0, le=5000, description="jobs claimed per round trip to the database")
    concurrency: int = Field(256, gt=0, description="provider calls in flight per worker process")
    poll_interval_ms: float = Field(50.0, gt=0, description="how often an idle worker looks for due jobs")
    coalesce_ms: float = Field(
        20.0,
        ge=0,
        le=1000,
        description="woken by new work, how long a worker gathers what else becomes due before it claims"
        " (a trickle of jobs is claimed in batches, not one by one); 0 claims at once",
    )
    lease_seconds: float = Field(30.0, gt=0, description="a claim held by a dead worker is taken back after this")
    max_attempts: int = Field(5, gt=0, description="provider attempts before a job fails for good")
    backoff_base_seconds: float = Field(
        2.0, gt=0, description="full-jitter backoff: uniform(0, min(max, base * 2^(n-1)))"
    )
    backoff_max_seconds: float = Field(600.0, gt=0, description="the longest wait between two attempts")
    # What to do with a job found in `sending` after its worker died, when the provider cannot tell
    # whether it took the message: resend (at-least-once) or mark unknown (at-most-once).
    handoff_marketing: Literal["unknown", "resend"] = Field(
        "unknown",  # not a status: the hand-off policy
        description="after a crash mid hand-off: unknown (at-most-once) or resend (at-least-once)",
    )
    handoff_transactional: Literal["unknown", "resend"] = Field("resend", description="the same for transactional jobs")
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="on SIGTERM, how long provider calls in flight may finish"
    )
    # Retries per provider at most this share of first attempts over the window (plus the floor).
    retry_budget_ratio: float = Field(
        0.2, ge=0, description="retries per provider at most this share of first attempts over the window"
    )
    retry_budget_floor: int = Field(10, ge=0, description="retries always allowed per window, whatever the ratio")
    retry_budget_window_seconds: float = Field(60.0, gt=0, description="the retry budget's window")


class SandboxErrorSpec(_Section):
    code: str = Field(description="the provider error code the simulator answers with")
    kind: Literal[
        "transient", "rate_limited", "permanent", "recipient_invalid", "recipient_opted_out", "sender_flagged"
    ]
    weight: float = Field(1.0, gt=0, description="how often this error is drawn, relative to the others")
    message: str = Field("", description="the provider's error text")


class SandboxSettings(_Section):
    enabled: bool = Field(True, description="offer the sandbox provider (a local simulator with receipts)")
    latency_ms: float = Field(20.0, ge=0, description="mean simulated provider latency")
    failure_rate: float = Field(0.0, ge=0, le=1, description="share of sends the provider refuses")
    errors: tuple[SandboxErrorSpec, ...] = Field(
        (
            SandboxErrorSpec(code="SBX-503", kind="transient", weight=3, message="service unavailable"),
            SandboxErrorSpec(code="SBX-429", kind="rate_limited", weight=1, message="too many requests"),
            SandboxErrorSpec(code="SBX-21211", kind="recipient_invalid", weight=1, message="invalid 'To' number"),
        ),
        description="the errors a refused send answers with, drawn by weight",
    )
    delivery_rate: float = Field(1.0, ge=0, le=1, description="share of sent messages whose receipt says delivered")
    seed: int | None = Field(
        None, examples=[7], description="seed of the simulated failures and fates, for a reproducible mix"
    )
    receipts: bool = Field(True, description="send signed delivery receipts back to the gateway")
    receipts_per_segment: bool = Field(
        False, description="one receipt per segment of a long SMS, as SMPP routes send them"
    )
    receipt_delay_ms: float = Field(200.0, ge=0, description="how long after a send its receipt comes")
    receipt_url: str | None = Field(
        None,
        examples=["http://127.0.0.1:8080/v1/receipts/sandbox"],
        description="where receipts are posted; default <public_url>/v1/receipts/sandbox",
    )
    ledger_path: str | None = Field(
        "gateway-sandbox.ndjson",
        description="append-only record of what the simulated provider accepted, so crash recovery can ask it;"
        " a relative path is taken beside the SQLite database file",
    )
    filtered_senders: tuple[str, ...] = Field(
        (), description="sender numbers the simulated carrier filters as spam (receipts: undelivered, SBX-30007)"
    )
    push_platforms: tuple[Literal["android", "ios", "web", "huawei"], ...] = Field(
        ("android", "ios", "web", "huawei"), description="the push platforms the simulator delivers to"
    )


class ContentRouteSettings(_Section):
    """China marketing rules for a provider/route: a 【signature】 and the unsubscribe suffix it requires."""

    china_marketing: bool = Field(
        False, description="marketing SMS on this route needs a 【signature】 and an unsubscribe suffix"
    )
    unsubscribe_suffixes: tuple[str, ...] = Field(
        ("拒收请回复R", "回T退订"), description="the suffixes that count as the unsubscribe instruction"
    )
    signature_min_chars: int = Field(2, ge=1, description="shortest signature between 【 and 】")
    signature_max_chars: int = Field(12, ge=1, description="longest signature between 【 and 】")


SHIPPED_BLOCKLIST_DIR = Path(__file__).parent / "blocklists"


class ContentSettings(_Section):
    blocklist_dir: str | None = Field(
        None,
        examples=["blocklists"],
        description="your own global and per-carrier word lists (relative: next to the config file); unset: the"
        " lists shipped with the gateway, empty: none",
    )
    enforce_at_accept: bool = Field(True, description="refuse a job with a blocking finding at accept (422)")
    enforce_at_dispatch: bool = Field(
        True, description="re-check content per route at dispatch (lists may have changed)"
    )
    max_segments: int = Field(6, ge=1, description="most SMS segments a message may take")
    max_links: int = Field(2, ge=0, description="most links in one SMS")
    link_domain_allowlist: tuple[str, ...] = Field((), description="if set, links may only point to these domains")
    hard_max_chars: int = Field(1600, ge=1, description="longest SMS text accepted at all")
    reload_seconds: float = Field(5.0, gt=0, description="how often processes look for changed tenant lists")
    routes: dict[str, ContentRouteSettings] = Field(
        default_factory=dict, description="rules per provider", json_schema_extra={"section_name": "aliyun"}
    )

    @field_validator("blocklist_dir")
    @classmethod
    def _existing_blocklist_dir(cls, value: str | None) -> str | None:
        # A list that is not there must stop start-up: running without it lets its words through.
        if not value:
            return value
        if not Path(value).is_dir():
            raise ValueError("no such directory")
        return str(Path(value).resolve())

    @property
    def blocklist_path(self) -> Path | None:
        """The directory of the file lists; None when the operator turned them off."""
        if self.blocklist_dir is None:
            return SHIPPED_BLOCKLIST_DIR
        return Path(self.blocklist_dir) if self.blocklist_dir else None


class LinkSettings(_Section):
    # per_message: every link in SMS, push and e-mail text becomes a short tracked link at dispatch.
    # per_campaign: one tracked link per campaign, variant and destination, the same for every
    # recipient (for routes whose approved templates forbid variable links). off: links as written.
    tracking: Literal["per_message", "per_campaign", "off"] = Field(
        "per_message",
        description="per_message: each link a tracked short link; per_campaign: one per campaign, variant and"
        " destination (for routes whose templates forbid variable links); off: links as written",
    )
    routes: dict[str, Literal["per_message", "per_campaign", "off"]] = Field(
        default_factory=dict, description="tracking mode per provider name, overriding `tracking`"
    )
    base_url: str | None = Field(None, examples=["https://go.example.com"], description="click domain; else public_url")
    append_utm: bool = Field(True, description="add utm_campaign / utm_content to the destination on a click")
    claim_tokens: bool = Field(False, description="a one-time claim token on each message's link (docs/campaigns.md)")
    claim_ttl_seconds: float = Field(7 * 86400.0, gt=0, description="how long a claim token holds, from the send")
    clicks_per_ip_per_second: float = Field(20.0, ge=0, description="clicks per client IP per API process; 0: no limit")
    click_burst: int = Field(60, ge=1, description="clicks one client IP may make at once before the rate applies")
    wait_for_click_commit: bool = Field(True, description="302 only once the click is committed (docs/tracking.md)")
    queued_click_commit_ms: float = Field(
        200.0,
        gt=0,
        le=10_000,
        description="with wait_for_click_commit off: how long answered clicks gather before their commit; longer"
        " costs less CPU per click and loses more clicks to a crash (docs/tracking.md)",
    )
    click_synchronous: Literal["FULL", "NORMAL"] | None = Field(
        None,
        examples=["NORMAL"],
        description="NORMAL: a click's commit does not wait for the disk (kept through a crash of the process,"
        " not a power loss; docs/tracking.md); default: as sqlite_synchronous (PostgreSQL: as the server)",
    )
    trusted_proxies: tuple[str, ...] = Field(
        ("127.0.0.0/8", "::1/128"),
        examples=[["127.0.0.1/32", "10.0.0.0/8"]],
        description="addresses or CIDR blocks of the proxies whose X-Forwarded-For is believed for a click's"
        " client address (per-IP limit, unique visitors); empty: the connecting address only",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)  # a ValueError names the entry
        return value


class RetentionSettings(_Section):
    # Message text and payloads are personal data that the reports do not need: after this many days
    # a finished message keeps its metadata (status, reason, provider, campaign, times) and loses its
    # content. 0 keeps content for ever.
    content_days: float = Field(
        30.0, ge=0, description="a finished message loses its text and payload after this many days; 0 keeps it"
    )
    purge_interval_seconds: float = Field(3600.0, gt=0, description="how often a worker process purges")


# The settings of a tenant when neither its own section nor [tenants.default] is given.
NO_TENANT_SECTION = TenantSettings()
# tenant id -> (the `tenants` table merged from, that tenant's merged settings): Settings.tenant.
_MERGED: dict[str, tuple[dict[str, TenantSettings], TenantSettings]] = {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    host: str = Field("127.0.0.1", description="address the API listens on; 0.0.0.0 in a container")
    port: int = Field(8080, ge=0, le=65535, description="port the API listens on")
    public_url: str | None = Field(
        None,
        examples=["https://gw.example.com"],
        description="the origin providers call back and clicks reach, e.g. https://gw.example.com; default http://host:port",
    )
    database_url: str = Field(
        "sqlite:///gateway.db", description="sqlite:///<file> (embedded) or postgresql://user@host/db (scale-out)"
    )
    redis_url: str | None = Field(
        None,
        examples=["redis://127.0.0.1:6379/0"],
        description="redis://host:6379/0 for state shared by all processes; unset: in-process",
    )
    config: str | None = Field(None, description="this file (GATEWAY_CONFIG); set by the loader")
    api_key: SecretStr | None = Field(None, description="the provisioned API key (16+ characters)")
    # A mounted secret (Docker/Kubernetes) instead of the key in the environment.
    api_key_file: str | None = Field(
        None, examples=["/run/secrets/gateway_api_key"], description="a mounted secret file holding the API key instead"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug | info | warning | error"
    )
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = Field(
        "FULL", description="FULL survives power loss; NORMAL only process crashes"
    )
    db_pool_size: int = Field(10, gt=0, description="PostgreSQL connections per process")
    db_transaction_pooling: bool = Field(
        False,
        description="true when database_url goes through a pooler in transaction mode (PgBouncer"
        " pool_mode = transaction): no prepared statement outlives its transaction, and workers LISTEN only"
        " on database_listen_url (else they poll)",
    )
    database_listen_url: str | None = Field(
        None,
        examples=["postgresql://gateway@db-primary:5432/gateway"],
        description="PostgreSQL: where workers LISTEN for new work (a session of their own, so not through a"
        ' transaction-mode pooler); unset: database_url, unless db_transaction_pooling; "off": poll only',
    )
    sqlite_cache_mib: int = Field(
        64,
        gt=0,
        description="page cache per SQLite connection, in MiB; a process opens up to 7 (docs/DEPLOYMENT.md)",
    )
    sqlite_busy_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="how long a write waits for another connection's lock on the SQLite file before it fails"
        " (a request then gets 503 with Retry-After)",
    )
    sqlite_intake_first_ms: float = Field(
        10.0,
        ge=0,
        description="while accepts wait for the SQLite file's write lock, how long a dispatching worker holds"
        " its next hand-off commit back for them; 0: no priority. Higher favours intake over dispatch while a"
        " campaign system floods the API (docs/DEPLOYMENT.md)",
    )
    db_outage_log_seconds: float = Field(
        10.0,
        gt=0,
        description="while the database is unavailable, how often the outage is logged (with the count of"
        " failed operations) instead of once per request",
    )
    api: ApiSettings = Field(ApiSettings(), description="the HTTP API")
    worker: WorkerSettings = Field(WorkerSettings(), description="dispatch")
    sandbox: SandboxSettings = Field(SandboxSettings(), description="the local provider simulator")
    content: ContentSettings = Field(ContentSettings(), description="the content policy")
    links: LinkSettings = Field(LinkSettings(), description="tracked links; docs/tracking.md")
    retention: RetentionSettings = Field(RetentionSettings(), description="what is kept how long")
    numbers: NumbersSettings = Field(NumbersSettings(), description="sender number pools; docs/numbers.md")
    webhooks: WebhooksSettings = Field(WebhooksSettings(), description="status callbacks; docs/webhooks.md")
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="one section per provider account, [providers.twilio], [providers.aliyun-marketing] (with"
        ' type = "aliyun"), ...; keys are the adapter\'s settings (docs/providers.md)',
    )
    routing: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "provider order or weights per channel (channels), region rules (rules: {channel, deny, fallback?,"
            " unknown_region?}; unknown_region = deny (default), fallback or allow says what a rule does with a"
            " number whose region it cannot tell), circuit breaker, costs and receipt_timeout; docs/providers.md"
        ),
    )
    limits: dict[str, Any] = Field(
        default_factory=dict,
        description="caps, quiet hours, hit policies, throughput, opt-out keywords (docs/limits.md)",
    )
    tenants: dict[str, TenantSettings] = Field(
        default_factory=dict,
        description="per tenant: default time zone, default preferences, opt-out scope, inbound numbers;"
        " [tenants.default] for all others (docs/recipients.md)",
    )

    def tenant(self, tenant_id: str) -> TenantSettings:
        """The tenant's settings: its own section's keys over [tenants.default]'s. Asked on every
        recipient's job: merged once per tenant and kept (with the `tenants` table merged from, so
        settings with another table merge anew)."""
        default = self.tenants.get("default") or NO_TENANT_SECTION
        own = self.tenants.get(tenant_id)
        if own is None or own is default:
            return default
        kept = _MERGED.get(tenant_id)
        if kept is not None and kept[0] is self.tenants:
            return kept[1]
        merged = default.model_copy(update={name: getattr(own, name) for name in own.model_fields_set})
        _MERGED[tenant_id] = (self.tenants, merged)
        return merged

    @model_validator(mode="after")
    def _valid_providers(self) -> Settings:
        build_sections(self.providers, self.base_url)  # constructing an adapter opens nothing; it only checks
        return self

    @field_validator("providers")
    @classmethod
    def _provider_secrets(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return resolve_secrets(value)

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

    @field_validator("database_listen_url")
    @classmethod
    def _known_listen_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if value != "off" and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (or be off)")
        return value

    @property
    def work_listen_url(self) -> str | None:
        """Where workers LISTEN for new work, or None: they poll."""
        if not self.database_url.startswith(("postgresql://", "postgres://")) or self.database_listen_url == "off":
            return None
        if self.database_listen_url is not None:
            return self.database_listen_url
        return None if self.db_transaction_pooling else self.database_url

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

    @model_validator(mode="before")
    @classmethod
    def _api_key_from_file(cls, values: Any) -> Any:
        if not isinstance(values, dict) or values.get("api_key_file") is None:
            return values
        if values.get("api_key") is not None:
            raise ValueError("api_key_file: set api_key or api_key_file, not both")
        path = values["api_key_file"]
        key = read_secret_file(path, "api_key_file")
        if len(key) < 16:
            raise ValueError(f"api_key_file: the key in {path} must be at least 16 characters")
        return {**values, "api_key": key}

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
        # init carries the TOML file's values; the environment given to load_settings wins over it.
        return (_GivenEnvironment(settings_cls, _environment.get()), init_settings)


# The variables load_settings reads, for the duration of one load (the process's own by default),
# so a caller's mapping is read without touching os.environ.
_environment: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("environment", default=None)


class _GivenEnvironment(EnvSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None) -> None:
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self._given is None:
            return super()._load_env_vars()
        return parse_env_vars(self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


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


def _resolve_from(folder: Path, file_values: dict[str, Any]) -> None:
    """A relative path in the file means next to the file, wherever the process was started."""
    content = file_values.get("content")
    if isinstance(content, dict) and isinstance(content.get("blocklist_dir"), str) and content["blocklist_dir"]:
        content["blocklist_dir"] = str(folder / content["blocklist_dir"])


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
        _resolve_from(Path(config_path).parent, file_values)
    _refuse_unknown_variables(env)
    token = _environment.set(env)
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        message = first["msg"]
        got = first.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        named = re.match(r"^Value error, ([\w.\-\[\]]+): (.*)$", message)
        message = message.removeprefix("Value error, ")  # a validator's own sentence reads better bare
        key = ".".join(str(part) for part in loc)
        env_name = _env_name(loc)
        if not loc and named:
            # A check across sections names its own key, e.g. providers.twilio.auth_token.
            loc = tuple(named.group(1).replace("[", ".").replace("]", "").split("."))
            message, shown = named.group(2), ""
            key, env_name = ".".join(str(part) for part in loc), _env_name(loc)
        elif len(loc) == 1 and named and named.group(1).split(".")[0] == loc[0]:
            # A section's own check names the key inside it, e.g. providers.twilio.auth_token_file;
            # the variable is the deepest one the key maps to (not into a list).
            key, message, shown = named.group(1), named.group(2), ""
            env_name = _env_name(tuple(key.split("[", 1)[0].split(".")))
        raise SettingsError(
            f"setting {key} ({env_name}): {message}{shown}"
            + (f"; {len(exc.errors()) - 1} more problem(s)" if len(exc.errors()) > 1 else "")
        ) from None
    finally:
        _environment.reset(token)
