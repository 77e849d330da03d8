from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path

import pytest

from gateway.store.store import SqlStore
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


def _database(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


async def _admin(server: str, statement: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(server)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def _migrated(url: str) -> None:
    store = SqlStore.open(url)
    try:
        await store.migrate()
    finally:
        await store.close()


def _run_apart(coroutine: Coroutine[object, object, None]) -> None:
    """Runs a coroutine on an event loop of its own: session fixtures are set up from inside a
    test's running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    """A database at this build's schema, which each test's PostgreSQL database is copied from:
    creating the schema anew took a gateway's first start ~0.2 s, in each of ~700 tests. (The gateway
    still migrates it at start; creating a schema from nothing has tests of its own.)"""
    name = f"gw_template_{uuid.uuid4().hex[:12]}"
    _run_apart(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    _run_apart(_migrated(_database(postgres_url, name)))
    yield name
    _run_apart(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test runs on both stores; on PostgreSQL in a database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    template: str = request.getfixturevalue("postgres_template")
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    await _admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _database(server, name)
    await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def start_gateway(tmp_path: Path, database_url: str) -> GatewayStarter:
    """Starts a real gateway (HTTP on loopback, worker, sandbox) on the test's store."""
    return functools.partial(running_gateway, tmp_path, database_url=database_url)
