"""A real gateway in the test's event loop (HTTP on a free loopback port) and a client for it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from gateway.app import Gateway
from gateway.settings import load_settings
from gateway.store import schema

API_KEY = "test-key-0123456789abcdef"
SMS = {"channel": "sms", "to": "+8613812345678", "content": {"text": "Your order has shipped"}}


@dataclass
class Running:
    gateway: Gateway
    url: str
    session: aiohttp.ClientSession

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    async def post(self, path: str, body: Any, key: str | None = None, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        headers.update(kwargs.pop("headers", {}))
        response = await self.session.post(self.url + path, json=body, headers=headers, **kwargs)
        await response.read()
        return response

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.session.get(self.url + path, headers=headers, **kwargs)
        await response.read()
        return response

    async def count(self, table: str = "messages") -> int:
        """Rows in a table, read through the store so it works on every backend."""

        def count_rows(conn: Any) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[table])).scalar())

        return await self.gateway.store.db.read(count_rows)

    async def wait_for(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    async def wait_status(self, message_id: str, statuses: set[str], within: float = 10.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            response = await self.get(f"/v1/messages/{message_id}")
            body: dict[str, Any] = await response.json()
            return body if body.get("status") in statuses else None

        result: dict[str, Any] = await self.wait_for(check, within)
        return result


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path, env: dict[str, str] | None = None, role: str = "all", database_url: str | None = None
) -> AsyncIterator[Running]:
    db_path = tmp_path / "gateway.db"
    settings = load_settings(
        {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": "0",
            "GATEWAY_DATABASE_URL": database_url or f"sqlite:///{db_path}",
            "GATEWAY_API_KEY": API_KEY,
            "GATEWAY_SANDBOX__LATENCY_MS": "1",
            "GATEWAY_SANDBOX__RECEIPT_DELAY_MS": "50",
            "GATEWAY_SANDBOX__LEDGER_PATH": str(tmp_path / "sandbox-ledger.ndjson"),
            "GATEWAY_WORKER__POLL_INTERVAL_MS": "20",
            # Tests must not depend on the hour they run at; quiet-hours tests set their own.
            "GATEWAY_LIMITS": '{"quiet_hours": {"marketing": "00:00-24:00"}}',
            **(env or {}),
        }
    )
    gateway = Gateway(settings, role)  # type: ignore[arg-type]
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Running(gateway, f"http://127.0.0.1:{gateway.port}", session)
    finally:
        await gateway.stop()


GatewayStarter = Callable[..., contextlib.AbstractAsyncContextManager[Running]]
