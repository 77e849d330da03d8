"""Caps configuration, hit policies and the GCRA / sliding-log arithmetic both storages share."""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.limits import (
    CapRule,
    HitAction,
    HitReason,
    OnHit,
    Period,
    ThroughputUnit,
    cap_block,
    cap_subject,
    emission_interval_us,
    gcra,
    parse_caps,
    parse_limits,
    parse_rule,
    resolve_hit,
)
from gateway.domain.models import Status
from gateway.pacer import ThroughputPacer
from gateway.provider_registry import build_providers
from gateway.settings import load_settings
from gateway.state.memory import MemoryState

EXAMPLE = {"marketing": {"sms": ["1/day", "3/week"], "all": ["5/week"], "voice": ["1/week"]}}
S = 1_000_000


def test_parses_the_issue_example():
    caps = parse_caps(EXAMPLE)
    assert [str(r) for r in caps["marketing"]] == ["sms 1/day", "sms 3/week", "all 5/week", "voice 1/week"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"marketing": {"sms": ["1/day", "3/wek"]}},
            "limits.caps.marketing.sms[1]: '3/wek' is not <count>/<day|week|hour|month>",
        ),
        ({"marketing": {"sms": ["0/day"]}}, "limits.caps.marketing.sms[0]: '0/day' must allow at least 1 send"),
        ({"marketing": {"sms": [3]}}, "limits.caps.marketing.sms[0]: 3 is not <count>/<day|week|hour|month>"),
        ({"promo": {"sms": ["1/day"]}}, "limits.caps.promo: unknown category 'promo'"),
        ({"marketing": {"fax": ["1/day"]}}, "limits.caps.marketing.fax: unknown channel 'fax'"),
        ({"marketing": ["1/day"]}, "limits.caps.marketing: expected a mapping, got list"),
    ],
)
def test_bad_cap_rules_name_the_key(config, message):
    with pytest.raises(ValueError) as err:
        parse_caps(config)
    assert str(err.value).startswith(message)


def test_rule_text_is_forgiving_about_case_and_spaces():
    assert parse_rule(" 2 / Week ", "k") == (2, Period.WEEK)


def test_campaign_rules_add_to_the_base_rules():
    cfg = parse_limits({"caps": EXAMPLE, "campaigns": {"spring": {"marketing": {"sms": ["1/week"]}}}})
    assert [str(r) for r in cfg.caps.rules_for("marketing", "sms", "spring")] == [
        "sms 1/day",
        "sms 3/week",
        "all 5/week",
        "sms 1/week",
    ]
    assert [str(r) for r in cfg.caps.rules_for("marketing", "sms", "other")] == [
        "sms 1/day",
        "sms 3/week",
        "all 5/week",
    ]
    assert [str(r) for r in cfg.caps.rules_for("marketing", "email")] == ["all 5/week"]


def test_a_campaign_cannot_widen_a_cap():
    with pytest.raises(
        ValueError,
        match=r"limits\.campaigns\.spring\.marketing\.sms: 2/day would widen the base "
        r"cap 1/day",
    ):
        parse_limits({"caps": EXAMPLE, "campaigns": {"spring": {"marketing": {"sms": ["2/day"]}}}})


def test_transactional_is_exempt_unless_configured():
    assert parse_limits({"caps": EXAMPLE}).caps.rules_for("transactional", "sms") == ()
    cfg = parse_limits({"caps": {**EXAMPLE, "transactional": {"sms": ["10/hour"]}}})
    assert [str(r) for r in cfg.caps.rules_for("transactional", "sms")] == ["sms 10/hour"]


def test_retention_covers_the_longest_rule_of_any_campaign():
    cfg = parse_limits({"caps": EXAMPLE, "campaigns": {"c": {"marketing": {"all": ["1/month"]}}}})
    assert cfg.caps.retention_seconds == 30 * 86_400


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"on_hit": {"marketing": "queue"}}, "limits.on_hit.marketing: 'queue' is not 'defer' or 'drop'"),
        ({"on_hit": {"promo": "drop"}}, "limits.on_hit.promo: unknown category"),
        ({"caps": {}, "capz": {}}, "limits.capz: unknown key"),
        (
            {"throughput": {"provider": {"twilio": {"rate": 0}}}},
            "limits.throughput.provider.twilio.rate: 0 is not a positive number",
        ),
        (
            {"throughput": {"provider": {"twilio": {"rate": 5, "burst": 0}}}},
            "limits.throughput.provider.twilio.burst: 0 is not an integer >= 1",
        ),
        (
            {"throughput": {"provider": {"twilio": {"rate": 5, "per": "byte"}}}},
            "limits.throughput.provider.twilio.per: 'byte' is not",
        ),
        ({"throughput": {"carrier": {}}}, "limits.throughput.carrier: unknown kind"),
    ],
)
def test_bad_limits_config_names_the_key(config, message):
    with pytest.raises(ValueError) as err:
        parse_limits(config)
    assert str(err.value).startswith(message)


def test_throughput_table_lookup_and_cost():
    cfg = parse_limits(
        {
            "throughput": {
                "provider": {"twilio": {"rate": 50, "per": "segment"}},
                "number": {"*": {"rate": 1, "burst": 2}},
            }
        }
    )
    twilio = cfg.throughput.lookup("provider", "twilio")
    assert twilio is not None and twilio.rate == 50 and twilio.per is ThroughputUnit.SEGMENT
    assert twilio.cost(segments=3) == 3
    number = cfg.throughput.lookup("number", "+15550001")
    assert number is not None and (number.rate, number.burst, number.cost(segments=3)) == (1.0, 2, 1)
    assert cfg.throughput.lookup("provider", "aliyun") is None


def test_default_policies_defer_and_drop_becomes_suppressed():
    cfg = parse_limits({"on_hit": {"marketing": "drop"}})
    assert cfg.policy("marketing") is OnHit.DROP
    assert cfg.policy("transactional") is OnHit.DEFER
    out = resolve_hit(OnHit.DROP, HitReason.CAP, 100.0, None)
    assert (out.status, out.reason, out.until) == (Status.SUPPRESSED, "limit.cap", None)


def test_defer_reschedules_but_honours_expiry():
    assert resolve_hit(OnHit.DEFER, HitReason.QUIET_HOURS, 100.0, 200.0).until == 100.0
    assert resolve_hit(OnHit.DEFER, HitReason.QUIET_HOURS, 100.0, 200.0).status is Status.DEFERRED
    late = resolve_hit(OnHit.DEFER, HitReason.QUIET_HOURS, 300.0, 200.0)
    assert (late.action, late.status, late.reason) == (HitAction.EXPIRE, Status.EXPIRED, "limit.quiet_hours")
    never = resolve_hit(OnHit.DEFER, HitReason.QUIET_HOURS, None, None)
    assert never.status is Status.SUPPRESSED


def test_caps_count_per_user_across_addresses_else_per_address():
    assert cap_subject("sms", "+15550001", "42") == cap_subject("email", "a@b.example", "42") == "u:42"
    assert cap_subject("email", "Ann@Example.com", None) == "email:ann@example.com"
    assert cap_subject("sms", "+15550001", None) == "sms:+15550001"


# ---------------------------------------------------------------------------------------------
# Sliding-log caps


DAY = Period.DAY.us
RULES = (CapRule("sms", 1, Period.DAY), CapRule("sms", 3, Period.WEEK), CapRule("all", 5, Period.WEEK))


def test_cap_allows_until_full_then_names_the_rule_and_when_it_frees():
    now = 100 * DAY
    assert cap_block({}, now, RULES) == (-1, 0)
    # sent 10 hours ago: "1/day" blocks until 24 h after that send
    sent = now - 10 * 3600 * S
    assert cap_block({"sms": [sent], "all": [sent]}, now, RULES) == (0, sent + DAY)


def test_cap_reports_the_rule_that_frees_last():
    now = 100 * DAY
    sms = [now - 6 * DAY, now - 3 * DAY, now - 2 * DAY]  # 3/week full until 6 days ago + 7 days
    block, frees = cap_block({"sms": sms, "all": sms}, now, RULES)
    assert RULES[block] == CapRule("sms", 3, Period.WEEK)
    assert frees == now - 6 * DAY + Period.WEEK.us


def test_a_send_exactly_one_period_ago_no_longer_counts():
    now = 100 * DAY
    assert cap_block({"sms": [now - DAY]}, now, RULES[:1]) == (-1, 0)
    assert cap_block({"sms": [now - DAY + 1]}, now, RULES[:1]) == (0, now + 1)


@given(st.lists(st.integers(0, 20 * DAY), max_size=12), st.integers(1, 4), st.sampled_from(list(Period)))
def test_cap_frees_exactly_when_it_says(sends, count, period):
    rule = CapRule("sms", count, period)
    now = 20 * DAY
    sends = sorted(sends)
    block, frees = cap_block({"sms": sends}, now, [rule])
    in_window = [t for t in sends if t > now - period.us]
    assert (block == 0) == (len(in_window) >= count)
    if block == 0:
        # at frees one more fits, a microsecond earlier it does not (no new sends meanwhile)
        assert cap_block({"sms": sends}, frees, [rule]) == (-1, 0)
        assert cap_block({"sms": sends}, frees - 1, [rule])[0] == 0


# ---------------------------------------------------------------------------------------------
# GCRA


def run(rate: float, burst: int, cost: int, times_us: list[int]) -> list[int]:
    """Feed requests at the given times; return the times that were granted."""
    tat, granted = 0, []
    interval = emission_interval_us(rate)
    for t in times_us:
        res = gcra(tat, t, interval, burst, cost)
        if res.allowed:
            tat = res.tat_us
            granted.append(t)
    return granted


def test_gcra_spaces_requests_by_one_over_rate():
    # 10/s, burst 1, someone asks every millisecond for a second: exactly 10, 100 ms apart
    granted = run(10, 1, 1, [1_000_000_000 + i * 1000 for i in range(1000)])
    assert len(granted) == 10
    assert {b - a for a, b in itertools.pairwise(granted)} == {100_000}


def test_gcra_allows_burst_back_to_back_from_idle_then_smooths():
    t0 = 1_000_000_000
    granted = run(10, 5, 1, [t0 + i * 1000 for i in range(1000)])
    assert granted[:5] == [t0, t0 + 1000, t0 + 2000, t0 + 3000, t0 + 4000]
    assert len(granted) == 5 + 9  # then one per 100 ms for the rest of the second


def test_gcra_retry_after_is_exact():
    interval = emission_interval_us(50)
    first = gcra(0, 10 * S, interval, 1, 1)
    second = gcra(first.tat_us, 10 * S + 5000, interval, 1, 1)
    assert not second.allowed and second.retry_after_us == 15_000
    assert gcra(first.tat_us, 10 * S + 5000 + 15_000, interval, 1, 1).allowed


def test_a_request_dearer_than_the_burst_passes_when_idle_and_pays_in_spacing():
    interval = emission_interval_us(1)
    big = gcra(0, 10 * S, interval, 1, 3)
    assert big.allowed
    nxt = gcra(big.tat_us, 10 * S + 1, interval, 1, 1)
    assert not nxt.allowed and nxt.retry_after_us == 3 * S - 1


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate must be > 0"):
        emission_interval_us(0)


@settings(max_examples=200)
@given(
    rate=st.sampled_from([1, 3, 7, 50, 200]),
    burst=st.integers(1, 5),
    gaps=st.lists(st.integers(0, 400_000), min_size=1, max_size=200),
)
def test_gcra_never_exceeds_rate_plus_burst_in_any_second(rate, burst, gaps):
    times, t = [], 1_000 * S
    for g in gaps:
        t += g
        times.append(t)
    granted = run(rate, burst, 1, times)
    # In any half-open window of one second at most rate + burst - 1 grants.
    j = 0
    for i, start in enumerate(granted):
        while j < len(granted) and granted[j] < start + S:
            j += 1
        assert j - i <= rate + burst - 1


def test_sleeping_policy_is_parsed_and_checked() -> None:
    from gateway.domain.limits import is_sleeping, parse_limits

    policy = parse_limits({"sleeping": {"after": 5, "window_days": 14}}).sleeping
    assert policy is not None and policy.after == 5 and policy.window_seconds == 14 * 86400
    assert is_sleeping(policy, 5, engaged=False)
    assert not is_sleeping(policy, 5, engaged=True)
    assert not is_sleeping(policy, 4, engaged=False)
    assert parse_limits({}).sleeping is None
    with pytest.raises(ValueError, match=r"limits\.sleeping\.after"):
        parse_limits({"sleeping": {"after": 0}})


def test_a_send_asks_for_its_provider_account_and_number_limits_together():
    table = parse_limits(
        {
            "throughput": {
                "provider": {"twilio-us": {"rate": 50}},
                "account": {"twilio:AC1": {"rate": 100, "burst": 5}},
                "number": {"*": {"rate": 1}},
            }
        }
    ).throughput
    pacer = ThroughputPacer(MemoryState(), table, {"twilio-us": "twilio:AC1", "twilio-eu": "twilio:AC1"})
    request = pacer.request_for("twilio-us", "+14155550100", 1)
    assert request is not None
    assert [(limit.key, limit.burst) for limit in request.limits] == [
        ("provider:twilio-us", 1),
        ("account:twilio:AC1", 5),
        ("number:+14155550100", 1),
    ]
    shared = pacer.request_for("twilio-eu", None, 1)
    assert shared is not None and [limit.key for limit in shared.limits] == ["account:twilio:AC1"]
    assert pacer.request_for("sandbox", None, 1) is None, "no account, no limit"


def test_provider_sections_name_their_account_by_type_and_account_setting():
    twilio = {"account_sid": "AC1", "auth_token": "t", "from_number": "+14155550100"}
    settings = load_settings(
        {
            "GATEWAY_PROVIDERS": json.dumps(
                {
                    "twilio": twilio,
                    "twilio-eu": {**twilio, "type": "twilio"},
                    "aliyun": {
                        "access_key_id": "LTAI9",
                        "access_key_secret": "s",
                        "sign_name": "x",
                        "template_code": "y",
                    },
                    "webhook": {"secret": "whsec_" + base64.b64encode(b"k" * 24).decode()},
                }
            )
        }
    )
    registry = build_providers(settings, secrets={"sandbox": "s" * 32}, dispatching=False)
    assert registry.accounts == {"twilio": "twilio:AC1", "twilio-eu": "twilio:AC1", "aliyun": "aliyun:LTAI9"}
