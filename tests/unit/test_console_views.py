"""The console's pure parts: charts drawn as SVG, time windows and filters read from query strings."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from gateway.ui import charts
from gateway.ui.filters import Sort, parse_when, read_log_filter, read_sort, read_window, sort_rows
from gateway.ui.session import Session, SessionCodec

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
SVG = "{http://www.w3.org/2000/svg}"


def test_a_stacked_bar_chart_is_valid_svg_with_every_label_escaped() -> None:
    svg = charts.stacked_bars(
        ["10:00", "11:00"],
        [("<script>alert(1)</script>", [3, 0]), ("provider.permanent", [1, 2])],
        title='failures "by" reason',
    )
    root = ET.fromstring(svg)  # well-formed: nothing a reason contains can break the markup
    assert "<script>" not in svg
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["<script>alert(1)</script>", "provider.permanent"]
    bars = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert bars == ["10:00 <script>alert(1)</script>: 3", "10:00 provider.permanent: 1", "11:00 provider.permanent: 2"]


def test_an_empty_window_says_so() -> None:
    root = ET.fromstring(charts.stacked_bars(["a", "b"], [], title="t"))
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "empty"] == ["nothing in this window"]


def test_the_funnel_shows_each_step_as_a_share_of_the_one_before() -> None:
    root = ET.fromstring(
        charts.funnel([("sent", 200), ("delivered", 150), ("clicked", 30), ("converted", 0)], title="f")
    )
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "value"]
    assert values == ["200", "150 (75%)", "30 (20%)", "0 (0%)"]


def test_a_window_is_named_or_given_and_bad_values_are_named() -> None:
    errors: dict[str, str] = {}
    assert read_window({}, NOW, errors) == read_window({"window": "24h"}, NOW, errors)
    assert read_window({"window": "7d"}, NOW, errors).since == NOW - 7 * 86400
    given = read_window({"since": "2026-11-20T08:00", "until": "2026-11-21T08:00:00Z"}, NOW, errors)
    assert (given.since, given.until, given.preset) == (NOW - 3 * 86400 - 4 * 3600, NOW - 2 * 86400 - 4 * 3600, None)
    assert errors == {}
    bad = read_window({"window": "1y", "since": "yesterday"}, NOW, errors)
    assert bad.preset == "24h"
    assert set(errors) == {"window", "since"}
    errors.clear()
    read_window({"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, NOW, errors)
    assert errors == {"until": "must be after since"}


def test_a_time_typed_without_a_zone_is_read_as_utc() -> None:
    assert parse_when("2026-11-23T12:00") == NOW
    assert parse_when("2026-11-23T20:00:00+08:00") == NOW
    assert parse_when("23/11/2026") is None


def test_sorting_toggles_and_keeps_empty_values_last() -> None:
    errors: dict[str, str] = {}
    by_count = read_sort({}, ("reason", "count"), "count", errors)
    assert by_count == Sort("count", descending=True)
    assert by_count.link("count") == {"sort": "count", "dir": "asc"}
    assert by_count.link("reason") == {"sort": "reason", "dir": "asc"}
    rows = [{"reason": None, "count": 5}, {"reason": "b", "count": 9}, {"reason": "a", "count": 1}]
    assert [r["reason"] for r in sort_rows(rows, Sort("reason", descending=False))] == ["a", "b", None]
    assert [r["reason"] for r in sort_rows(rows, Sort("reason", descending=True))] == ["b", "a", None]
    read_sort({"sort": "colour", "dir": "up"}, ("reason", "count"), "count", errors)
    assert set(errors) == {"sort", "dir"}


def test_the_log_filter_normalises_a_phone_number_and_names_a_bad_status() -> None:
    errors: dict[str, str] = {}
    found = read_log_filter({"to": "+86 138 1234 5678", "status": "failed", "campaign": " spring "}, errors)
    assert (found.to, found.status, found.campaign) == ("+8613812345678", ("failed",), "spring")
    read_log_filter({"status": "lost"}, errors)
    assert list(errors) == ["status"]


def test_a_session_cookie_cannot_be_read_forged_or_moved_to_another_store() -> None:
    codec = SessionCodec("secret-of-this-store")
    session = Session.signed_in("ab" * 32)
    cookie = codec.encode(session)
    assert "ab" * 32 not in cookie
    assert codec.decode(cookie) == session
    assert codec.decode(cookie[:-4] + "AAAA") is None
    assert SessionCodec("another-store").decode(cookie) is None
    assert codec.decode(None) is None and codec.decode("not a cookie") is None
    assert session.csrf_matches(session.csrf) and not session.csrf_matches("") and not session.csrf_matches(None)
