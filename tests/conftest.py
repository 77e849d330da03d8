from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import GatewayStarter, running_gateway
from tests.servers import postgres_server, redis_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fuzz test first: it runs for minutes, so with the suite spread over processes
    (scripts/test) it starts at once rather than keeping one process busy after the rest are done."""
    items.sort(key=lambda item: item.get_closest_marker("fuzz") is None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        if url is None:
            pytest.skip("no redis-server on PATH and GATEWAY_TEST_REDIS_URL unset")
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        if url is None:
            pytest.skip("no PostgreSQL binaries and GATEWAY_TEST_POSTGRES_URL unset")
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test runs on both stores; on PostgreSQL in a database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    import asyncpg

    server: str = request.getfixturevalue("postgres_url")
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield server.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def start_gateway(tmp_path: Path, database_url: str) -> GatewayStarter:
    """Starts a real gateway (HTTP on loopback, worker, sandbox) on the test's store."""
    return functools.partial(running_gateway, tmp_path, database_url=database_url)
