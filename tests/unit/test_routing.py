"""Routing decisions (pure): region rules, fallback channels, failover order, circuit breaker."""

from __future__ import annotations

import random
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from gateway.domain.regions import region_of
from gateway.domain.routing import (
    CircuitBreaker,
    RoutingConfig,
    cheapest_first,
    choose_route,
    next_channel,
    parse_routing,
    receipt_deadline,
    region_denial,
    weighted_order,
)

BY_CHANNEL = {"sms": ("twilio", "aliyun", "sandbox"), "voice": ("twilio",)}


def test_regions_come_from_the_number_prefix() -> None:
    urumqi = region_of("+8613999123456")
    assert (urumqi.country, urumqi.province, urumqi.carrier) == ("CN", "Xinjiang", "China Mobile")
    assert region_of("+8613812345678").province == "Jiangsu"
    assert region_of("not a number").country is None


def test_a_rule_matches_every_key_case_insensitively() -> None:
    config = parse_routing(
        {"rules": [{"channel": "voice", "deny": {"country": "cn", "province": "xinjiang"}, "fallback": "sms"}]}
    )
    assert region_denial(config, "voice", region_of("+8613999123456")) is not None
    assert region_denial(config, "sms", region_of("+8613999123456")) is None
    assert region_denial(config, "voice", region_of("+8613812345678")) is None


XINJIANG_RULE = {"channel": "voice", "deny": {"province": "Xinjiang"}, "fallback": "sms"}
XINJIANG_PHONENUMBERS_MISSES = "+8616609001234"  # a 166 block: phonenumbers has no province for it
PROVINCE_UNKNOWN = "+8619900001234"  # a 199 block neither phonenumbers nor the segment data places
JIANGSU = "+8613812345678"


def test_a_xinjiang_number_phonenumbers_cannot_place_is_denied_as_xinjiang() -> None:
    config = parse_routing({"rules": [XINJIANG_RULE]})
    denial = region_denial(config, "voice", region_of(XINJIANG_PHONENUMBERS_MISSES))
    assert denial is not None and (denial.reason, denial.unknown) == ("route.region_denied", ())


def test_a_number_of_unknown_province_is_kept_off_the_channel_by_default() -> None:
    config = parse_routing({"rules": [XINJIANG_RULE]})
    assert config.rules[0].unknown_region == "deny"
    denial = region_denial(config, "voice", region_of(PROVINCE_UNKNOWN))
    assert denial is not None and (denial.reason, denial.unknown) == ("route.region_unknown", ("province",))
    assert next_channel(denial.rule, [], "voice") == "sms"
    assert region_denial(config, "voice", region_of(JIANGSU)) is None, "a known province elsewhere is not in doubt"
    assert region_denial(config, "sms", region_of(PROVINCE_UNKNOWN)) is None


def test_unknown_region_allow_places_the_call() -> None:
    config = parse_routing({"rules": [{**XINJIANG_RULE, "unknown_region": "allow"}]})
    assert region_denial(config, "voice", region_of(PROVINCE_UNKNOWN)) is None
    assert region_denial(config, "voice", region_of(XINJIANG_PHONENUMBERS_MISSES)) is not None


def test_unknown_region_fallback_moves_only_when_there_is_somewhere_to_go() -> None:
    with_sms = parse_routing({"rules": [{**XINJIANG_RULE, "unknown_region": "fallback"}]})
    denial = region_denial(with_sms, "voice", region_of(PROVINCE_UNKNOWN))
    assert denial is not None and denial.reason == "route.region_unknown"
    deny_only = {"channel": "voice", "deny": {"province": "Xinjiang"}, "unknown_region": "fallback"}
    nowhere = parse_routing({"rules": [deny_only]})
    assert region_denial(nowhere, "voice", region_of(PROVINCE_UNKNOWN)) is None, "called rather than lost"
    assert region_denial(nowhere, "voice", region_of(PROVINCE_UNKNOWN), ["sms"]) is not None, "the job's own fallback"
    denied = parse_routing({"rules": [{"channel": "voice", "deny": {"province": "Xinjiang"}}]})
    assert region_denial(denied, "voice", region_of(PROVINCE_UNKNOWN)) is not None, "deny: failed, not called"


def test_a_rule_the_number_matches_wins_over_one_that_cannot_tell() -> None:
    in_doubt = {"channel": "voice", "deny": {"province": "Tibet", "city": "Lhasa"}, "unknown_region": "fallback"}
    config = parse_routing({"rules": [in_doubt, {"channel": "voice", "deny": {"province": "Xinjiang"}}]})
    denial = region_denial(config, "voice", region_of(XINJIANG_PHONENUMBERS_MISSES))
    assert denial is not None and denial.rule.deny["province"] == "Xinjiang" and denial.reason == "route.region_denied"


def test_a_rule_naming_a_chinese_province_is_about_chinese_numbers() -> None:
    [rule] = parse_routing({"rules": [XINJIANG_RULE]}).rules
    assert dict(rule.deny) == {"country": "CN", "province": "Xinjiang"}
    config = parse_routing({"rules": [XINJIANG_RULE]})
    guernsey_mobile = region_of("+447911123456")  # no province: its place is only its country
    assert guernsey_mobile.country == "GG" and guernsey_mobile.province is None
    assert region_denial(config, "voice", guernsey_mobile) is None
    [elsewhere] = parse_routing({"rules": [{"channel": "voice", "deny": {"province": "NY"}}]}).rules
    assert dict(elsewhere.deny) == {"province": "NY"}, "only China's provinces imply the country"


def test_an_unknown_region_policy_must_be_one_of_the_three() -> None:
    with pytest.raises(
        ValueError, match=r"routing\.rules\[0\]\.unknown_region: 'block' is not one of deny, fallback, allow"
    ):
        parse_routing({"rules": [{**XINJIANG_RULE, "unknown_region": "block"}]})


def test_fallback_prefers_the_jobs_list_and_only_compatible_channels() -> None:
    [rule] = parse_routing({"rules": [{"channel": "voice", "deny": {"province": "X"}, "fallback": "sms"}]}).rules
    assert next_channel(rule, [], "voice") == "sms"
    assert next_channel(None, ["push", "sms"], "voice") == "sms", "push cannot take a phone number and {text}"
    assert next_channel(None, ["email"], "sms") is None


def test_failover_order_and_open_circuits() -> None:
    config = RoutingConfig(channels={"sms": ("aliyun", "twilio")})
    assert choose_route("sms", BY_CHANNEL, config).provider == "aliyun"  # type: ignore[union-attr]
    assert choose_route("sms", BY_CHANNEL, config, failed_last="aliyun").provider == "twilio"  # type: ignore[union-attr]
    assert choose_route("sms", BY_CHANNEL, config, unavailable=frozenset({"aliyun"})).provider == "twilio"  # type: ignore[union-attr]
    everything_open = frozenset({"aliyun", "twilio"})
    assert choose_route("sms", BY_CHANNEL, config, unavailable=everything_open).provider == "aliyun"  # type: ignore[union-attr]
    assert choose_route("push", BY_CHANNEL) is None


def test_the_breaker_opens_half_opens_and_closes() -> None:
    breaker = CircuitBreaker(failures=2, cooldown=10)
    breaker.failure(0)
    assert breaker.state == "closed" and breaker.available(0)
    breaker.failure(1)
    assert breaker.state == "open" and not breaker.available(5)
    assert breaker.available(11)
    breaker.begin(11)
    assert breaker.state == "half-open" and not breaker.available(11), "one trial at a time"
    breaker.failure(12)
    assert breaker.state == "open" and not breaker.available(15)
    breaker.begin(22)
    breaker.success()
    assert breaker.state == "closed" and breaker.available(22)


WEIGHTED = {"channels": {"sms": [{"name": "twilio", "weight": 3}, {"name": "aliyun", "weight": 1}]}}


def message_ids(count: int, seed: int = 5) -> list[str]:
    draw = random.Random(seed)
    return [f"msg_{draw.getrandbits(128):026X}" for _ in range(count)]


def test_a_weighted_list_splits_messages_by_weight() -> None:
    config = parse_routing(WEIGHTED)
    firsts = Counter(choose_route("sms", BY_CHANNEL, config, key=i).provider for i in message_ids(10_000))  # type: ignore[union-attr]
    # 75/25 within 1.5 percentage points (the binomial standard deviation is 0.43 points).
    assert abs(firsts["twilio"] / 10_000 - 0.75) < 0.015
    assert firsts["twilio"] + firsts["aliyun"] == 10_000, "sandbox serves sms but is not in the list"


def test_three_weights_split_first_and_second_choices() -> None:
    weights = {"a": 5.0, "b": 3.0, "c": 2.0}
    orders = [weighted_order(weights, i) for i in message_ids(10_000, seed=9)]
    firsts = Counter(order[0] for order in orders)
    assert all(abs(firsts[p] / 10_000 - w / 10) < 0.015 for p, w in weights.items())
    assert all(sorted(order) == ["a", "b", "c"] for order in orders), "every provider stays in the order"
    # Second choice when a was first: b and c split 3:2 among what is left.
    seconds = Counter(order[1] for order in orders if order[0] == "a")
    assert abs(seconds["b"] / sum(seconds.values()) - 0.6) < 0.03


def test_a_message_keeps_its_weighted_choice_and_fails_over_to_the_rest() -> None:
    config = parse_routing(WEIGHTED)
    for message_id in message_ids(200):
        first = choose_route("sms", BY_CHANNEL, config, key=message_id)
        assert first == choose_route("sms", BY_CHANNEL, config, key=message_id), "stable across retries"
        assert first is not None
        other = "aliyun" if first.provider == "twilio" else "twilio"
        retried = choose_route("sms", BY_CHANNEL, config, key=message_id, failed_last=first.provider)
        assert retried is not None and retried.provider == other
        tripped = choose_route("sms", BY_CHANNEL, config, key=message_id, unavailable=frozenset({first.provider}))
        assert tripped is not None and tripped.provider == other


def test_a_weighted_list_keeps_only_the_providers_that_serve_the_channel() -> None:
    config = parse_routing({"channels": {"sms": [{"name": "gone", "weight": 9}, {"name": "aliyun", "weight": 1}]}})
    assert {choose_route("sms", BY_CHANNEL, config, key=i).provider for i in message_ids(50)} == {"aliyun"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ({"sms": [{"name": "twilio", "weight": 0}]}, "routing.channels.sms[0].weight: 0 is not a positive number"),
        ({"sms": [{"name": "twilio", "weight": "3"}]}, "routing.channels.sms[0].weight: '3' is not a positive number"),
        ({"sms": [{"name": "twilio"}]}, "routing.channels.sms[0].weight: None is not a positive number"),
        ({"sms": [{"weight": 1}]}, "routing.channels.sms[0].name: must be a provider name"),
        (
            {"sms": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]},
            "routing.channels.sms[1].name: 'a' is listed twice",
        ),
        ({"sms": [{"name": "a", "weight": 1, "cost": 2}]}, "routing.channels.sms[0].cost: unknown key"),
        ({"sms": [{"name": "a", "weight": 1}, "b"]}, "routing.channels.sms: must be a list of provider names"),
        ({"sms": ["a", "a"]}, "routing.channels.sms: names a provider twice"),
    ],
)
def test_bad_weighted_lists_are_refused_naming_the_entry(channels: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_routing({"channels": channels})
    assert str(caught.value).startswith(message)


COSTS = {"sms": 0.0075, "voice": 0.013, "email": 0.0001}


def test_the_cheapest_channel_that_takes_the_address_goes_first() -> None:
    assert cheapest_first("voice", ["sms"], COSTS) == ("sms", ("voice",))
    assert cheapest_first("sms", ["voice"], COSTS) == ("sms", ("voice",)), "already cheapest"
    # e-mail is cheaper but cannot take a phone number: it keeps its place after the adequate ones.
    assert cheapest_first("voice", ["email", "sms"], COSTS) == ("sms", ("voice", "email"))
    assert cheapest_first("voice", ["sms"], {"voice": 0.013}) == ("voice", ("sms",)), "priced before unpriced"
    assert cheapest_first("voice", ["sms"], {}) == ("voice", ("sms",)), "no costs: the job's order"
    assert cheapest_first("voice", ["sms"], {"sms": 1, "voice": 1}) == ("voice", ("sms",)), "a tie keeps the order"
    assert cheapest_first("push", ["sms"], COSTS) == ("push", ("sms",)), "a device token cannot go by sms"


@pytest.mark.parametrize(
    ("costs", "message"),
    [
        ({"fax": 1}, "routing.costs.fax: not a channel"),
        ({"sms": -1}, "routing.costs.sms: -1 is not a cost (a number >= 0)"),
        ({"sms": "cheap"}, "routing.costs.sms: 'cheap' is not a cost (a number >= 0)"),
        ([1], "routing.costs: expected a table of channel = cost per message"),
    ],
)
def test_bad_costs_are_refused_naming_the_key(costs: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_routing({"costs": costs})
    assert str(caught.value) == message


def test_a_receipt_deadline_only_for_jobs_that_can_still_fall_back() -> None:
    config = parse_routing({"receipt_timeout": {"sms": 600, "voice": 90.5}})
    assert receipt_deadline(config, "sms", ["voice"], 1000.0) == 1600.0
    assert receipt_deadline(config, "voice", ["push", "sms"], 1000.0) == 1090.5
    assert receipt_deadline(config, "sms", [], 1000.0) is None, "nothing to fall back to"
    assert receipt_deadline(config, "sms", ["email"], 1000.0) is None, "e-mail cannot take the number"
    assert receipt_deadline(parse_routing({}), "sms", ["voice"], 1000.0) is None, "no timeout configured"


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        ({"fax": 1}, "routing.receipt_timeout.fax: not a channel"),
        ({"sms": 0}, "routing.receipt_timeout.sms: 0 is not a positive number of seconds"),
        ({"sms": True}, "routing.receipt_timeout.sms: True is not a positive number of seconds"),
        (600, "routing.receipt_timeout: expected a table of channel = seconds"),
    ],
)
def test_bad_receipt_timeouts_are_refused_naming_the_key(timeouts: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_routing({"receipt_timeout": timeouts})
    assert str(caught.value) == message


def test_the_example_config_ships_the_xinjiang_rule_commented() -> None:
    text = (Path(__file__).parents[2] / "config" / "gateway.example.toml").read_text()
    assert "routing" not in tomllib.loads(text), "shipped commented, not in force"
    block = text[text.index("# [routing]") :].splitlines()
    uncommented = "\n".join(line.removeprefix("# ") for line in block if line.startswith("# "))
    config = parse_routing(tomllib.loads(uncommented)["routing"])
    [rule] = config.rules
    assert (rule.channel, rule.fallback, rule.unknown_region) == ("voice", "sms", "deny")
    assert region_denial(config, "voice", region_of(XINJIANG_PHONENUMBERS_MISSES)) is not None
    assert "calls to Xinjiang numbers often do not connect: voice to Xinjiang falls back to SMS" in text


def test_a_recipients_job_falls_back_to_any_channel_it_has_an_address_for() -> None:
    from gateway.domain.routing import cheapest_first, next_channel

    assert next_channel(None, ["email"], "push") is None, "one address: push cannot become e-mail"
    assert next_channel(None, ["sms", "email"], "push", addressed={"push", "sms", "email"}) == "sms"
    assert next_channel(None, ["email"], "sms", addressed={"sms"}) is None, "no address for e-mail"
    costs = {"sms": 0.05, "email": 0.001}
    assert cheapest_first("push", ["sms", "email"], costs) == ("push", ("sms", "email"))
    assert cheapest_first("push", ["sms", "email"], costs, addressed={"sms", "email"}) == ("email", ("sms", "push"))
