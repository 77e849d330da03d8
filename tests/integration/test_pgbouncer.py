"""The gateway behind a real PgBouncer in transaction pooling mode (Debian's package): API and worker
processes reach PostgreSQL only through it (`db_transaction_pooling`: no prepared statement outlives
its transaction), jobs are accepted and delivered with their receipts; the worker LISTENs on a direct
URL (`database_listen_url`; LISTEN cannot go through transaction pooling) or, without one, polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.domain.models import Status
from tests.harness import API_KEY, running_gateway
from tests.servers import pgbouncer

pytestmark = pytest.mark.slow


@pytest.fixture
def pooled_url(database_url: str) -> Iterator[str]:
    with pgbouncer(database_url) as url:
        if url is None:
            pytest.skip("no pgbouncer here (Debian package pgbouncer)")
        yield url


def _job(n: int) -> dict[str, object]:
    return {"channel": "sms", "to": f"+86138{n:08d}", "content": {"text": f"Your code is {n:06d}"}}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("listen", ["direct", "poll"])
async def test_accepted_and_delivered_through_pgbouncer_in_transaction_mode(
    tmp_path: Path, database_url: str, pooled_url: str, listen: str
) -> None:
    for part in ("api", "worker"):
        (tmp_path / part).mkdir()
    through = {"GATEWAY_DB_TRANSACTION_POOLING": "true", "GATEWAY_DB_POOL_SIZE": "8"}
    async with running_gateway(tmp_path / "api", through, role="api", database_url=pooled_url) as api:
        worker_env = {
            **through,
            "GATEWAY_PUBLIC_URL": api.url,  # receipts go to the API process, through PgBouncer too
            # Only a notification can wake this worker: it would poll once an hour.
            **(
                {"GATEWAY_DATABASE_LISTEN_URL": database_url, "GATEWAY_WORKER__POLL_INTERVAL_MS": "3600000"}
                if listen == "direct"
                else {}
            ),
        }
        async with running_gateway(tmp_path / "worker", worker_env, role="worker", database_url=pooled_url) as worker:
            listener = worker.gateway.store.listener  # type: ignore[attr-defined]
            if listen == "direct":
                await asyncio.wait_for(listener.listening.wait(), 20)
                await asyncio.sleep(0.3)  # its first claim, at start, found nothing
            else:
                assert listener is None, "through transaction pooling without a direct URL the worker polls"
            headers = {"Authorization": f"Bearer {API_KEY}"}
            ids = []
            for n in range(5):
                async with api.session.post(
                    api.url + "/v1/messages", json=_job(n), headers={**headers, "Idempotency-Key": f"one-{n}"}
                ) as response:
                    assert response.status == 202, await response.text()
                    ids.append((await response.json())["id"])
            batch = {"messages": [{**_job(100 + n), "idempotency_key": f"batch-{n}"} for n in range(50)]}
            async with api.session.post(api.url + "/v1/messages/batch", json=batch, headers=headers) as response:
                assert response.status == 200
                ids += [r["id"] for r in (await response.json())["results"]]
            deadline = time.monotonic() + 60
            statuses: dict[str, str] = {}
            while True:
                for message_id in ids:
                    async with api.session.get(api.url + f"/v1/messages/{message_id}", headers=headers) as response:
                        assert response.status == 200
                        statuses[message_id] = (await response.json())["status"]
                if set(statuses.values()) == {Status.DELIVERED}:
                    break
                assert time.monotonic() < deadline, f"not all delivered: {sorted(set(statuses.values()))}"
                await asyncio.sleep(0.3)
    assert len(statuses) == 55
