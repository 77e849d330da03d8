"""The audit log export: NDJSON or CSV, streamed, filtered, scoped to the tenant."""

from __future__ import annotations

import csv
import io
import json

from tests.harness import SMS, GatewayStarter


async def test_events_export_as_ndjson_and_csv(start_gateway: GatewayStarter) -> None:
    from gateway.api.auth import key_row, new_key

    async with start_gateway() as gw:
        ids = []
        for n in range(3):
            response = await gw.post("/v1/messages", {**SMS, "content": {"text": f"hello {n}"}})
            ids.append((await response.json())["id"])
        for message_id in ids:
            await gw.wait_status(message_id, {"delivered"})
        await gw.post("/v1/suppressions", {"address": "+8613900000000"})

        response = await gw.get("/v1/events")
        assert response.status == 200 and response.content_type == "application/x-ndjson"
        records = [json.loads(line) for line in (await response.text()).splitlines()]
        for message_id in ids:
            steps = [r["status"] for r in records if r["message_id"] == message_id and r["type"] == "status"]
            # "sent" is absent when the receipt overtook the hand-off's own commit (then the
            # provider's acceptance is an "attempt.accepted" event, never a step back).
            assert steps in (["queued", "sending", "sent", "delivered"], ["queued", "sending", "delivered"])
        assert [r["type"] for r in records if r["message_id"] is None] == ["suppression.added"]
        assert [r["id"] for r in records] == sorted(r["id"] for r in records)

        as_csv = await gw.get(f"/v1/events?message_id={ids[0]}", headers={"Accept": "text/csv"})
        assert as_csv.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
        assert [r["status"] for r in rows][:2] == ["queued", "sending"]
        assert rows[-1]["status"] in ("delivered", "")
        assert json.loads(rows[1]["detail"]) == {"provider": "sandbox"}

        only = await gw.get("/v1/events?type=suppression.added")
        assert len((await only.text()).splitlines()) == 1
        future = await gw.get("/v1/events", params={"since": "2999-01-01T00:00:00Z"})
        assert (await future.text()) == ""
        bad = await gw.get("/v1/events?since=yesterday")
        assert bad.status == 400

        other_key, key_id = new_key()
        await gw.gateway.store.add_api_key(key_row(other_key, key_id, "acme", "t", ("read",)))
        theirs = await gw.session.get(gw.url + "/v1/events", headers={"Authorization": f"Bearer {other_key}"})
        assert (await theirs.text()) == "", "another tenant sees none of these events"
