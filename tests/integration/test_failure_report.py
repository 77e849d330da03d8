"""The failure report groups a seeded mix of failures correctly; on-call can requeue what helps."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from typing import Any

from gateway.store.records import Outcome
from tests.harness import SMS, GatewayStarter, Running

# status, reason, provider, error_code, campaign, how many
SEED = [
    ("failed", "provider.transient.exhausted", "sandbox", "SBX-503", "spring", 5),
    ("failed", "provider.permanent.recipient_invalid", "sandbox", "SBX-21211", "spring", 3),
    ("rejected", "content.blocked_word", None, None, "autumn", 2),
    ("suppressed", "limit.cap", None, None, "spring", 4),
    ("unknown", "unknown.handoff", "sandbox", None, "autumn", 1),
    ("expired", "expired", None, None, "spring", 2),
    ("delivered", "receipt", "sandbox", None, "spring", 3),  # not a failure: never in the report
]
LATER = "2999-01-01T00:00:00Z"


async def _seed(gw: Running) -> dict[str, list[str]]:
    """Jobs the worker will not touch (send_at far ahead), then given their outcomes directly."""
    ids: dict[str, list[str]] = {}
    outcomes = []
    for status, reason, provider, code, campaign, count in SEED:
        for n in range(count):
            response = await gw.post(
                "/v1/messages", {**SMS, "campaign": campaign, "send_at": LATER, "content": {"text": f"{reason} {n}"}}
            )
            message_id = (await response.json())["id"]
            ids.setdefault(reason, []).append(message_id)
            outcomes.append(
                Outcome(message_id, "default", status, time.time(), reason=reason, provider=provider, error_code=code)
            )
    await gw.gateway.store.record_outcomes(outcomes)
    return ids


def _key(group: dict[str, Any]) -> tuple[Any, ...]:
    return group["reason"], group["provider"], group["error_code"]


async def test_the_report_groups_counts_and_advises(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        ids = await _seed(gw)
        report = await (await gw.get("/v1/reports/failures")).json()
        expected = {
            (reason, provider, code): count
            for status, reason, provider, code, _, count in SEED
            if status != "delivered"
        }
        assert {_key(g): g["count"] for g in report["groups"]} == expected
        assert report["total"] == sum(expected.values())
        assert [g["count"] for g in report["groups"]] == sorted(expected.values(), reverse=True)
        by_reason = {g["reason"]: g for g in report["groups"]}
        assert by_reason["provider.transient.exhausted"]["retry_helps"] is True
        assert by_reason["content.blocked_word"]["retry_helps"] is False
        assert set(by_reason["limit.cap"]["sample_ids"]) <= set(ids["limit.cap"])
        assert len(by_reason["provider.transient.exhausted"]["sample_ids"]) == 3

        campaigns = await (await gw.get("/v1/reports/failures?group_by=campaign")).json()
        expected_campaigns = Counter()
        for status, _, _, _, campaign, count in SEED:
            if status != "delivered":
                expected_campaigns[campaign] += count
        assert {g["campaign"]: g["count"] for g in campaigns["groups"]} == dict(expected_campaigns)
        assert "retry_helps" not in campaigns["groups"][0]

        only_failed = await (await gw.get("/v1/reports/failures?status=failed&group_by=error_code")).json()
        assert {g["error_code"]: g["count"] for g in only_failed["groups"]} == {"SBX-503": 5, "SBX-21211": 3}
        before = await (await gw.get("/v1/reports/failures", params={"until": "2001-01-01T00:00:00Z"})).json()
        assert before["groups"] == [] and before["total"] == 0

        as_csv = await gw.get("/v1/reports/failures", params={"group_by": "campaign", "format": "csv"})
        assert as_csv.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
        assert {r["campaign"]: int(r["count"]) for r in rows} == dict(expected_campaigns)
        by_accept = await gw.get("/v1/reports/failures", headers={"Accept": "text/csv"})
        assert (await by_accept.text()).startswith("reason,provider,error_code,count,")


async def test_bad_report_queries_are_400(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        for query, field in [
            ("group_by=colour", "group_by"),
            ("since=yesterday", "since"),
            ("status=delivered", "status"),
            ("sort=count", "sort"),
        ]:
            response = await gw.get(f"/v1/reports/failures?{query}")
            assert response.status == 400
            assert [e["field"] for e in (await response.json())["errors"]] == [field]


async def test_requeue_one_message_and_never_a_delivered_or_suppressed_one(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        ids = await _seed(gw)
        retried = await gw.post(f"/v1/messages/{ids['provider.transient.exhausted'][0]}/retry", None)
        assert retried.status == 202
        delivered = await gw.wait_status(ids["provider.transient.exhausted"][0], {"delivered"})
        assert [e["reason"] for e in delivered["events"] if e["reason"] == "requeued"] == ["requeued"]
        for reason in ("receipt", "limit.cap", "content.blocked_word"):
            refused = await gw.post(f"/v1/messages/{ids[reason][0]}/retry", None)
            assert refused.status == 409, reason
            assert refused.content_type == "application/problem+json"
        assert (await gw.post("/v1/messages/msg_nope/retry", None)).status == 404


async def test_bulk_requeue_dry_run_then_for_real(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        ids = await _seed(gw)
        body = {"filter": {"campaign": "spring"}, "limit": 100}
        dry = await (await gw.post("/v1/messages/requeue", body)).json()
        assert dry["dry_run"] is True and dry["requeued"] == 0
        assert dry["matched"] == 5 + 3 + 4 + 2 + 3
        assert dry["requeueable"] == 5 + 3 + 2
        assert dry["skipped"] == {"suppressed": 4, "delivered": 3}
        statuses = Counter(m["status"] for m in (await (await gw.get("/v1/messages?limit=500")).json())["data"])
        assert statuses["failed"] == 8, "a dry run changes nothing"
        real = await (
            await gw.post(
                "/v1/messages/requeue", {**body, "dry_run": False, "filter": {"reason": "provider.transient.exhausted"}}
            )
        ).json()
        assert real["requeued"] == 5
        for message_id in ids["provider.transient.exhausted"]:
            await gw.wait_status(message_id, {"delivered"})
        bad = await gw.post("/v1/messages/requeue", {"filter": {"colour": "red"}, "dry_run": "yes"})
        assert bad.status == 422
        assert [e["field"] for e in (await bad.json())["errors"]] == ["/filter/colour", "/dry_run"]


async def test_the_report_command_prints_the_same_groups(start_gateway: GatewayStarter) -> None:
    import asyncio
    import json
    import os
    import sys

    async with start_gateway() as gw:
        await _seed(gw)
        api = await (await gw.get("/v1/reports/failures?group_by=reason")).json()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
            "GATEWAY_DATABASE_URL": gw.gateway.settings.database_url,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "report",
            "failures",
            "--since",
            "1h",
            "--group-by",
            "reason",
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        cli = json.loads(out)
        assert {g["reason"]: g["count"] for g in cli["groups"]} == {g["reason"]: g["count"] for g in api["groups"]}
        table = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "report",
            "failures",
            "--since",
            "2h",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        text, _ = await table.communicate()
        lines = text.decode().splitlines()
        assert lines[0].endswith(f": {api['total']}")
        assert lines[1].split()[:3] == ["REASON", "PROVIDER", "ERROR_CODE"]
        assert any(line.split()[:4] == ["provider.transient.exhausted", "sandbox", "SBX-503", "5"] for line in lines)
