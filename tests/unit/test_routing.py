"""Routing decisions (pure): region rules, fallback channels, failover order, circuit breaker."""

from __future__ import annotations

from gateway.domain.regions import region_of
from gateway.domain.routing import (
    CircuitBreaker,
    RoutingConfig,
    choose_route,
    denying_rule,
    next_channel,
    parse_routing,
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
    assert denying_rule(config, "voice", region_of("+8613999123456")) is not None
    assert denying_rule(config, "sms", region_of("+8613999123456")) is None
    assert denying_rule(config, "voice", region_of("+8613812345678")) is None


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
