"""Fresh PostgreSQL databases and an empty Redis for the multi-process tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis


@pytest.fixture
async def fresh_postgres(postgres_url: str) -> AsyncIterator[str]:
    name = f"gw_e2e_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield postgres_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
async def fresh_redis(redis_url: str) -> str:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    return redis_url
