"""An API process reuses a template's row for jobs for TEMPLATE_ROW_SECONDS (templated accept read
it for every job, more than half its cost: docs/BENCHMARKS.md). A change made by another process
(here: straight in the store, as `gateway templates push --publish` or another API process does)
must still be seen: a job naming a version newer than the row knows reads it again at once, and
the rest see the change once the row is older than TEMPLATE_ROW_SECONDS."""

from __future__ import annotations

import asyncio

import orjson

from gateway.api.templated_jobs import TEMPLATE_ROW_SECONDS
from tests.harness import GatewayStarter
from tests.integration.test_template_jobs import JOB, _publish


async def test_a_version_published_by_another_process_is_found(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        first = await gw.post("/v1/messages", JOB)  # the row (latest version 1) is now held
        assert (await first.json())["template"]["version"] == 1
        store = gw.gateway.store
        row = await store.get_template("default", "order_shipped")
        assert row is not None
        assert await store.publish_template("default", "order_shipped", row["draft"], "[]", "elsewhere") == 2

        pinned = await gw.post("/v1/messages", {**JOB, "version": 2})
        assert pinned.status == 202, await pinned.text()
        assert (await pinned.json())["template"]["version"] == 2
        await asyncio.sleep(TEMPLATE_ROW_SECONDS + 0.1)
        latest = await gw.post("/v1/messages", JOB)
        assert (await latest.json())["template"]["version"] == 2


async def test_an_archive_by_another_process_takes_effect_within_the_row_time(start_gateway: GatewayStarter) -> None:
    async with start_gateway() as gw:
        await _publish(gw)
        assert (await gw.post("/v1/messages", JOB)).status == 202
        assert await gw.gateway.store.archive_template("default", "order_shipped", "elsewhere") is not None
        await asyncio.sleep(TEMPLATE_ROW_SECONDS + 0.1)
        refused = await gw.post("/v1/messages", JOB)
        assert refused.status == 422
        assert orjson.loads(await refused.read())["errors"] == [
            {"field": "/template", "message": "the template 'order_shipped' is archived"}
        ]
        assert await gw.count("messages") == 1
