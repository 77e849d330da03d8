"""Quiet hours in the recipient's local time, over many zones and DST changes, with a frozen clock."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.quiet_hours import (
    DailyWindow,
    SendWindow,
    candidate_zones,
    check,
    country_for,
    is_allowed,
    next_allowed_time,
    parse_quiet_hours,
    parse_window,
    zone,
)

ZONES = sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "posix", "right")))
MARKETING = SendWindow((DailyWindow(8 * 60, 20 * 60),))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_minutes(t: datetime, z: ZoneInfo) -> int:
    """Independent of the module under test: local wall clock as minutes since local midnight."""
    lt = t.astimezone(z)
    return int(lt.strftime("%H")) * 60 + int(lt.strftime("%M"))


def inside(window: SendWindow, minutes: int) -> bool:
    for w in window.windows:
        if w.start < w.end and w.start <= minutes < w.end:
            return True
        if w.start > w.end and (minutes >= w.start or minutes < w.end):
            return True
    return False


def brute_force_next(now: datetime, window: SendWindow, zones: list[ZoneInfo], limit: timedelta) -> datetime | None:
    """The first whole minute (or now itself) allowed in every zone, by scanning minute by minute."""
    if all(inside(window, local_minutes(now, z)) and now.second == 0 == now.microsecond for z in zones):
        return now
    t = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = now + limit
    while t <= end:
        if all(inside(window, local_minutes(t, z)) for z in zones):
            return t
        t += timedelta(minutes=1)
    return None


frozen_now = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))
zone_lists = st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True).map(
    lambda names: [ZoneInfo(n) for n in names]
)
minutes = st.integers(0, 24 * 60 - 1)
windows = st.lists(
    st.tuples(minutes, st.integers(1, 24 * 60)).filter(lambda p: p[0] != p[1] % 1440), min_size=1, max_size=2
).map(lambda ps: SendWindow(tuple(DailyWindow(a, b) for a, b in ps)))


@settings(max_examples=300, deadline=None)
@given(now=frozen_now, zones=zone_lists, window=windows)
def test_next_allowed_time_is_allowed_everywhere_and_minimal_to_the_minute(now, zones, window):
    got = next_allowed_time(now, window, zones)
    if got is None:
        assert brute_force_next(now, window, zones, timedelta(days=8)) is None
        return
    assert got >= now
    # what a recipient sees: their local clock shows a time inside the window, in every zone
    for z in zones:
        assert inside(window, local_minutes(got, z)), (z, got.astimezone(z))
    if got != now:
        assert got == brute_force_next(now, window, zones, got - now + timedelta(minutes=1))


@settings(max_examples=300, deadline=None)
@given(now=frozen_now, zones=zone_lists, window=windows)
def test_never_allowed_inside_a_quiet_window_in_any_candidate_zone(now, zones, window):
    if is_allowed(now, window, zones):
        for z in zones:
            assert inside(window, local_minutes(now, z))
    else:
        assert any(not inside(window, local_minutes(now, z)) for z in zones)


@settings(max_examples=100, deadline=None)
@given(now=frozen_now, zone_name=st.sampled_from(ZONES))
def test_default_marketing_window_opens_at_eight_local(now, zone_name):
    z = ZoneInfo(zone_name)
    got = next_allowed_time(now, MARKETING, [z])
    assert got is not None
    local = got.astimezone(z)
    assert 8 <= local.hour < 20
    if got != now:
        # it opens at 08:00 local, or at the end of a DST gap that swallowed 08:00
        assert (local.hour, local.minute) == (8, 0) or got.astimezone(z).utcoffset() != (
            got - timedelta(seconds=1)
        ).astimezone(z).utcoffset()
    assert got - now < timedelta(hours=14)


def test_spring_forward_in_new_york():
    ny = ZoneInfo("America/New_York")
    # 2024-03-10 01:00 EST; 08:00 that day is EDT (UTC-4), so 12:00 UTC, not 13:00
    assert next_allowed_time(utc(2024, 3, 10, 6, 0), MARKETING, [ny]) == utc(2024, 3, 10, 12, 0)
    # a window starting in the skipped hour (02:30) opens when the clock jumps to 03:00 EDT
    gap = SendWindow((DailyWindow(2 * 60 + 30, 5 * 60),))
    assert next_allowed_time(utc(2024, 3, 10, 6, 0), gap, [ny]) == utc(2024, 3, 10, 7, 0)


def test_fall_back_in_new_york():
    ny = ZoneInfo("America/New_York")
    # 2024-11-03 00:30 EDT; 08:00 EST that day is 13:00 UTC
    assert next_allowed_time(utc(2024, 11, 3, 4, 30), MARKETING, [ny]) == utc(2024, 11, 3, 13, 0)
    # 01:30-01:45 happens twice; after the first one ends, the second one is next
    twice = SendWindow((DailyWindow(90, 105),))
    assert next_allowed_time(utc(2024, 11, 3, 5, 50), twice, [ny]) == utc(2024, 11, 3, 6, 30)


def test_several_candidate_zones_must_all_allow():
    la, ny = ZoneInfo("America/Los_Angeles"), ZoneInfo("America/New_York")
    # 12:30 UTC = 08:30 in New York but 05:30 in Los Angeles
    now = utc(2024, 6, 3, 12, 30)
    assert is_allowed(now, MARKETING, [ny])
    assert not is_allowed(now, MARKETING, [ny, la])
    assert next_allowed_time(now, MARKETING, [ny, la]) == utc(2024, 6, 3, 15, 0)  # 08:00 LA


def test_zones_with_no_common_window_never_allow():
    # 08:00-12:00 is 18:00-22:00 UTC in Honolulu and 02:30-06:30 UTC in Kolkata
    z = [ZoneInfo("Pacific/Honolulu"), ZoneInfo("Asia/Kolkata")]
    assert next_allowed_time(utc(2024, 6, 3), parse_window("08:00-12:00", "k"), z) is None


def test_window_crossing_midnight():
    night = parse_window("22:00-06:00", "k")
    assert night is not None
    assert is_allowed(utc(2024, 6, 3, 23), night, [ZoneInfo("UTC")])
    assert is_allowed(utc(2024, 6, 3, 5, 59), night, [ZoneInfo("UTC")])
    assert not is_allowed(utc(2024, 6, 3, 6), night, [ZoneInfo("UTC")])


def test_zones_from_the_number_or_the_job():
    assert [z.key for z in candidate_zones("+12015550123")] == ["America/New_York"]
    assert [z.key for z in candidate_zones("+12015550123", "Europe/Paris")] == ["Europe/Paris"]
    ru = [z.key for z in candidate_zones("+79161234567")]
    assert "Europe/Moscow" in ru and "Asia/Kamchatka" in ru
    assert [z.key for z in candidate_zones("ann@example.com")] == ["UTC"]
    assert [z.key for z in candidate_zones("+1999555", fallback="Asia/Shanghai")] == ["Asia/Shanghai"]
    assert country_for("+12015550123") == "US"
    assert country_for("ann@example.com") is None


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "../etc/passwd", "Europe/Paris "])
def test_invalid_job_time_zone_is_named(bad):
    with pytest.raises(ValueError) as err:
        candidate_zones("+12015550123", bad)
    assert str(err.value) == f"tz: {bad!r} is not an IANA time zone"
    with pytest.raises(ValueError, match=r"^/metadata/tz: "):
        zone(bad, "/metadata/tz")


def test_the_worker_call_defaults_and_country_override():
    rules = parse_quiet_hours({"marketing": {"countries": {"US": "08:00-21:00"}}})
    at_2030_ny = utc(2024, 6, 4, 0, 30)  # 20:30 EDT
    us = check(rules, at_2030_ny, category="marketing", channel="sms", to="+12015550123")
    assert us.allowed and us.zones == ("America/New_York",)
    ca = check(rules, at_2030_ny, category="marketing", channel="sms", to="+14165550123")  # Toronto
    assert not ca.allowed and ca.next_allowed == utc(2024, 6, 4, 12, 0)
    tx = check(rules, at_2030_ny, category="transactional", channel="sms", to="+14165550123")
    assert tx.allowed and tx.window is None


def test_channel_and_country_rules_pick_the_most_specific():
    rules = parse_quiet_hours(
        {
            "marketing": {
                "allowed": "09:00-20:00",
                "countries": {"us": "08:00-21:00"},
                "channels": {"voice": {"allowed": "10:00-18:00", "countries": {"US": "09:00-19:00"}}, "push": None},
            }
        }
    )
    assert str(rules.window_for("marketing", "voice", "US")) == "09:00-19:00"
    assert str(rules.window_for("marketing", "sms", "US")) == "08:00-21:00"
    assert str(rules.window_for("marketing", "voice", "FR")) == "10:00-18:00"
    assert str(rules.window_for("marketing", "sms", None)) == "09:00-20:00"
    assert rules.window_for("marketing", "push", None) is None
    assert rules.window_for("transactional", "sms", "US") is None
    # The gate looks up a recipient's zones only for a category some rule governs.
    assert rules.governs("marketing") and not rules.governs("transactional")


def test_invalid_job_tz_through_the_worker_call():
    with pytest.raises(ValueError, match="tz: 'Nowhere/Land' is not an IANA time zone"):
        check(
            parse_quiet_hours(None),
            utc(2024, 1, 1),
            category="marketing",
            channel="sms",
            to="+1201555",
            tz="Nowhere/Land",
        )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"marketing": "8-20"}, "limits.quiet_hours.marketing: '8-20' is not 'HH:MM-HH:MM'"),
        (
            {"marketing": {"allowed": "08:00-25:00"}},
            "limits.quiet_hours.marketing.allowed: '08:00-25:00' has a time outside 00:00-24:00",
        ),
        ({"marketing": {"allowed": "08:00-08:00"}}, "limits.quiet_hours.marketing.allowed: '08:00-08:00' is empty"),
        (
            {"marketing": {"countries": {"USA": "08:00-21:00"}}},
            "limits.quiet_hours.marketing.countries.USA: not an ISO 3166 alpha-2 country code",
        ),
        (
            {"marketing": {"channels": {"fax": "08:00-21:00"}}},
            "limits.quiet_hours.marketing.channels.fax: unknown channel",
        ),
        ({"promo": "08:00-21:00"}, "limits.quiet_hours.promo: unknown category"),
        ({"marketing": {"alowed": "08:00-21:00"}}, "limits.quiet_hours.marketing.alowed: unknown key"),
        (
            {"marketing": {"allowed": ["08:00-12:00", "13:00"]}},
            "limits.quiet_hours.marketing.allowed[1]: '13:00' is not 'HH:MM-HH:MM'",
        ),
    ],
)
def test_bad_quiet_hours_name_the_key(config, message):
    with pytest.raises(ValueError) as err:
        parse_quiet_hours(config)
    assert str(err.value).startswith(message)


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_allowed_time(datetime(2024, 1, 1), MARKETING, [ZoneInfo("UTC")])
