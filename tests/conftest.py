from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import postgres_server, redis_server


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
