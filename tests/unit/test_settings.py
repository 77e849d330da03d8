"""Settings: file, then environment; a wrong value stops start-up with one line naming the key."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.provider_registry import build_configured
from gateway.settings import SettingsError, load_settings
from tests.fakes.fcm import FakeFcm


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\n[worker]\nbatch_size = 50\n')
    settings = load_settings({"GATEWAY_CONFIG": str(config), "GATEWAY_PORT": "9100"})
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.worker.batch_size == 50
    assert settings.redis_url is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GATEWAY_PORT": "eighty"}, "setting port (GATEWAY_PORT)"),
        ({"GATEWAY_WORKER__BATCH_SIZE": "0"}, "setting worker.batch_size (GATEWAY_WORKER__BATCH_SIZE)"),
        ({"GATEWAY_DATABASE_URL": "mysql://db/x"}, "setting database_url (GATEWAY_DATABASE_URL)"),
        ({"GATEWAY_REDIS_URL": "localhost:6379"}, "setting redis_url (GATEWAY_REDIS_URL)"),
        ({"GATEWAY_API_KEY": "short"}, "setting api_key (GATEWAY_API_KEY)"),
        ({"GATEWAY_PROT": "80"}, "setting GATEWAY_PROT: no such setting"),
        (
            {"GATEWAY_LINKS__QUEUED_CLICK_COMMIT_MS": "0"},
            "setting links.queued_click_commit_ms (GATEWAY_LINKS__QUEUED_CLICK_COMMIT_MS)",
        ),
        ({"GATEWAY_CONFIG": "/nonexistent/gateway.toml"}, "GATEWAY_CONFIG names /nonexistent/gateway.toml"),
    ],
)
def test_wrong_values_name_the_key(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[worker]\nbatch_sise = 5\n")
    with pytest.raises(SettingsError, match=r"setting worker\.batch_sise"):
        load_settings({"GATEWAY_CONFIG": str(config)})


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "gateway.example.toml"
    settings = load_settings({"GATEWAY_CONFIG": str(example)})
    assert settings.sandbox.enabled


def test_the_process_stops_with_one_line_naming_the_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_WORKER__LEASE_SECONDS"] = "-5"
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gateway: setting worker.lease_seconds (GATEWAY_WORKER__LEASE_SECONDS): "
        "Input should be greater than 0 (got '-5')"
    ]
    assert not (tmp_path / "gateway.db").exists()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"GATEWAY_PROVIDERS__TWILIO__ACCOUNT_SID": "AC1"},
            "setting providers.twilio.auth_token (GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN): is required",
        ),
        ({"GATEWAY_PROVIDERS__MAIL__TYPE": "pigeon"}, "setting providers.mail.type (GATEWAY_PROVIDERS__MAIL__TYPE)"),
        (
            {
                "GATEWAY_PROVIDERS__SMTP__HOST": "mx",
                "GATEWAY_PROVIDERS__SMTP__FROM_ADDRESS": "a@b.c",
                "GATEWAY_PROVIDERS__SMTP__COLOUR": "x",
            },
            "setting providers.smtp.colour",
        ),
    ],
)
def test_provider_sections_are_checked_at_start(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("routing", "needle"),
    [
        ('{"rules": [{"channel": "fax", "deny": {"province": "X"}}]}', "routing.rules[0].channel"),
        ('{"rules": [{"channel": "voice", "deny": {"planet": "Mars"}}]}', "routing.rules[0].deny"),
        (
            '{"rules": [{"channel": "voice", "deny": {"province": "X"}, "fallback": "voice"}]}',
            "routing.rules[0].fallback",
        ),
        ('{"channels": {"sms": "twilio"}}', "routing.channels.sms"),
        (
            '{"rules": [{"channel": "voice", "deny": {"province": "X"}, "unknown_region": "maybe"}]}',
            "routing.rules[0].unknown_region",
        ),
    ],
)
def test_routing_rules_are_checked_at_start(routing: str, needle: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_ROUTING": routing})
    assert needle in str(caught.value)


def test_number_pools_are_read_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        """
[numbers]
filtered_to_quarantine = 4
cooldown_seconds = 7200

[numbers.pools.us-marketing]
provider = "twilio"
countries = ["US", "CA"]
categories = ["marketing"]
daily_cap = 2000
warmup = true
senders = ["+14155550101", { sender = "+12125550101", region = "NY", daily_cap = 500 }]
"""
    )
    settings = load_settings({"GATEWAY_CONFIG": str(config)})
    pool = settings.numbers.pools["us-marketing"]
    assert settings.numbers.filtered_to_quarantine == 4 and settings.numbers.cooldown_seconds == 7200
    assert pool.countries == ("US", "CA") and pool.warmup and len(pool.senders) == 2


@pytest.mark.parametrize(
    ("pool", "needle"),
    [
        ('senders = ["4155550101"]', "not a phone number in E.164"),
        ('senders = ["+14155550101", "+14155550101"]', "listed twice"),
        ("senders = []", "senders"),
        ('countries = ["usa"]\nsenders = ["+14155550101"]', "ISO 3166"),
        ('channel = "email"\nsenders = ["+14155550101"]', "numbers.pools.p.channel"),
        ('kind = "alphanumeric"\nsenders = ["ACME"]\nfrom = "x"', "numbers.pools.p.from"),
    ],
)
def test_a_wrong_pool_is_named(tmp_path: Path, pool: str, needle: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f"[numbers.pools.p]\n{pool}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_CONFIG": str(config)})
    assert needle in str(caught.value) and "numbers" in str(caught.value)


def test_thresholds_that_cannot_work_are_refused() -> None:
    with pytest.raises(SettingsError, match="filtered_to_suspect must not exceed"):
        load_settings({"GATEWAY_NUMBERS__FILTERED_TO_SUSPECT": "5"})


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"w" * 24).decode()


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_every_provider_credential_can_come_from_a_file(tmp_path: Path) -> None:
    account = FakeFcm().service_account()
    env = {
        "GATEWAY_PROVIDERS__TWILIO__ACCOUNT_SID": "AC1",
        "GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE": secret_file(tmp_path, "twilio", "tw-token-1\n"),
        "GATEWAY_PROVIDERS__ALIYUN__ACCESS_KEY_ID": "LTAI1",
        "GATEWAY_PROVIDERS__ALIYUN__ACCESS_KEY_SECRET_FILE": secret_file(tmp_path, "ak", "ak-secret-2\r\n"),
        "GATEWAY_PROVIDERS__ALIYUN__CALLBACK_TOKEN_FILE": secret_file(tmp_path, "cb", "cb-token-3"),
        "GATEWAY_PROVIDERS__ALIYUN__SIGN_NAME": "示例",
        "GATEWAY_PROVIDERS__ALIYUN__TEMPLATE_CODE": "SMS_1",
        "GATEWAY_PROVIDERS__SMTP__HOST": "mx.example.com",
        "GATEWAY_PROVIDERS__SMTP__FROM_ADDRESS": "news@example.com",
        "GATEWAY_PROVIDERS__SMTP__PASSWORD_FILE": secret_file(tmp_path, "smtp", "smtp-pass-4\n"),
        "GATEWAY_PROVIDERS__FCM__SERVICE_ACCOUNT_FILE": secret_file(tmp_path, "sa.json", json.dumps(account)),
        "GATEWAY_PROVIDERS__WEBHOOK__SECRET_FILE": secret_file(tmp_path, "wh", WEBHOOK_SECRET + "\n"),
    }
    settings = load_settings(env)
    built = {p.name: p.settings for p in build_configured(settings)}  # type: ignore[attr-defined]
    assert built["twilio"].auth_token == "tw-token-1", "the trailing newline is not part of the secret"
    assert (built["aliyun"].access_key_secret, built["aliyun"].callback_token) == ("ak-secret-2", "cb-token-3")
    assert built["smtp"].password == "smtp-pass-4"
    assert built["fcm"].private_key == account["private_key"] and built["fcm"].project_id == account["project_id"]
    assert built["webhook"].secret == WEBHOOK_SECRET
    shown = repr(settings) + settings.model_dump_json() + str(settings.model_dump())
    for secret in ("tw-token-1", "ak-secret-2", "cb-token-3", "smtp-pass-4", "PRIVATE KEY", WEBHOOK_SECRET):
        assert secret not in shown, f"{secret} leaked into the settings' repr or dump"
    assert "**********" in shown


def test_credentials_given_inline_are_hidden_too() -> None:
    settings = load_settings(
        {"GATEWAY_PROVIDERS": json.dumps({"twilio": {"account_sid": "AC1", "auth_token": "inline-token-5"}})}
    )
    assert "inline-token-5" not in repr(settings) + settings.model_dump_json()
    [twilio] = build_configured(settings)
    assert twilio.settings.auth_token == "inline-token-5"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda tmp: {"GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE": str(tmp / "missing")},
            "setting providers.twilio.auth_token_file (GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE): "
            "cannot read {tmp}/missing: No such file or directory",
        ),
        (
            lambda tmp: {"GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE": str(tmp)},
            "setting providers.twilio.auth_token_file (GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE): "
            "cannot read {tmp}: Is a directory",
        ),
        (
            lambda tmp: {"GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE": secret_file(tmp, "empty", "\n")},
            "setting providers.twilio.auth_token_file (GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE): "
            "{tmp}/empty is empty",
        ),
        (
            lambda tmp: {
                "GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN": "x",
                "GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE": secret_file(tmp, "t", "y"),
            },
            "setting providers.twilio.auth_token_file (GATEWAY_PROVIDERS__TWILIO__AUTH_TOKEN_FILE): "
            "give auth_token or auth_token_file, not both",
        ),
        (
            lambda tmp: {"GATEWAY_PROVIDERS__FCM__SERVICE_ACCOUNT_FILE": str(tmp / "sa.json")},
            "setting providers.fcm.service_account_file (GATEWAY_PROVIDERS__FCM__SERVICE_ACCOUNT_FILE): "
            "cannot read {tmp}/sa.json: No such file or directory",
        ),
    ],
)
def test_an_unreadable_secret_file_stops_start_up_naming_the_key(
    tmp_path: Path, setup: Callable[[Path], dict[str, str]], message: str
) -> None:
    env = {"GATEWAY_PROVIDERS__TWILIO__ACCOUNT_SID": "AC1", **setup(tmp_path)}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value) == message.format(tmp=tmp_path)


def test_the_api_key_can_come_from_a_mounted_secret(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("mounted-key-0123456789abcdef\n", encoding="utf-8")
    settings = load_settings({"GATEWAY_API_KEY_FILE": str(secret)})
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "mounted-key-0123456789abcdef"
    assert "mounted-key" not in repr(settings)


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        (None, {}, "setting api_key_file (GATEWAY_API_KEY_FILE): cannot read"),
        ("\n", {}, "setting api_key_file (GATEWAY_API_KEY_FILE): "),
        ("short\n", {}, "must be at least 16 characters"),
        ("mounted-key-0123456789abcdef", {"GATEWAY_API_KEY": "inline-key-0123456789abcdef"}, "not both"),
    ],
)
def test_a_wrong_api_key_file_stops_start_up_naming_the_variable(
    tmp_path: Path, content: str | None, extra: dict[str, str], needle: str
) -> None:
    secret = tmp_path / "api-key"
    if content is not None:
        secret.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_settings({"GATEWAY_API_KEY_FILE": str(secret), **extra})
    assert needle in str(raised.value)
    assert "GATEWAY_API_KEY_FILE" in str(raised.value)


class _WatchedEnvironment(dict[str, str]):
    """The variables handed to load_settings; each read checks that the process's own environment is
    untouched meanwhile (another thread may be reading it)."""

    def __init__(self, values: dict[str, str], expected: dict[str, str]) -> None:
        super().__init__(values)
        self.expected = expected
        self.reads = 0

    def _check(self) -> None:
        self.reads += 1
        assert dict(os.environ) == self.expected, "os.environ was rewritten while settings were read"

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self._check()
        return super().get(key, default)

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._check()
        return super().__iter__()

    def items(self):  # type: ignore[no-untyped-def]
        self._check()
        return super().items()


def test_given_variables_are_read_without_rewriting_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9999")
    given = _WatchedEnvironment({"GATEWAY_WORKER__BATCH_SIZE": "17"}, dict(os.environ))
    settings = load_settings(given)
    assert (settings.port, settings.worker.batch_size) == (8080, 17)  # only the given variables count
    assert given.reads > 0
    assert load_settings().port == 9999


def test_a_tenants_settings_are_its_own_section_over_the_default_in_every_copy_of_the_settings(
    tmp_path: Path,
) -> None:
    # Merged settings are kept per tenant (recipients' jobs ask on every request): a copy of the settings
    # with another [tenants] table must not be answered from what the first one merged.
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[tenants.default]\ntime_zone = "Asia/Shanghai"\npreferences = {marketing = {voice = false}}\n'
        '[tenants.acme]\ntime_zone = "Europe/Berlin"\n'
    )
    settings = load_settings({"GATEWAY_CONFIG": str(config)})
    acme = settings.tenant("acme")
    assert (acme.time_zone, acme.preferences) == ("Europe/Berlin", {"marketing": {"voice": False}})
    assert settings.tenant("acme") is acme
    assert settings.tenant("other").time_zone == "Asia/Shanghai"
    moved = settings.model_copy(
        update={
            "tenants": {**settings.tenants, "acme": settings.tenants["acme"].model_copy(update={"time_zone": "UTC"})}
        }
    )
    assert moved.tenant("acme").time_zone == "UTC"
    assert settings.tenant("acme").time_zone == "Europe/Berlin"
    bare = load_settings({})
    assert (bare.tenant("acme").time_zone, bare.tenant("acme").preferences) == (None, {})
