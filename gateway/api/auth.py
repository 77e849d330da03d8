"""API keys: shown once, stored as a SHA-256 hash, identified by a public prefix, cached briefly.

Keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.api.problems import Problem
from gateway.domain.limits import US_PER_S, emission_interval_us, gcra
from gateway.store.port import KeyStore

SCOPES = ("send", "read", "report", "admin")
KEY_PREFIX = "gw_"
CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its public id (the part before the secret)."""
    key_id = secrets.token_hex(4)
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def key_row(
    key: str, key_id: str, tenant_id: str, name: str, scopes: tuple[str, ...], expires_at: float | None = None
) -> dict[str, Any]:
    return {
        "id": key_id,
        "tenant_id": tenant_id,
        "name": name,
        "key_hash": hash_key(key),
        "scopes": ",".join(scopes),
        "created_at": time.time(),
        "expires_at": expires_at,
        "revoked_at": None,
    }


def provisioned_key_id(key: str) -> str:
    # Operator-supplied keys have no prefix of ours; derive a stable public id from the hash.
    return "env_" + hash_key(key)[:8]


class TenantRateLimiter:
    """Requests per tenant in this process: GCRA in memory, so the accept path never waits on Redis."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tat_us: dict[str, int] = {}

    def check(self, tenant_id: str) -> None:
        if self.rate <= 0:
            return
        now_us = int(time.monotonic() * US_PER_S)
        interval = emission_interval_us(self.rate)
        decision = gcra(self._tat_us.get(tenant_id, 0), now_us, interval, self.burst, 1)
        if decision.allowed:
            self._tat_us[tenant_id] = decision.tat_us
            return
        retry_after = max(1, math.ceil(decision.retry_after_us / US_PER_S))
        raise Problem(
            429,
            "too-many-requests",
            "Too Many Requests",
            f"tenant {tenant_id!r} is over {self.rate:g} requests per second; retry after {retry_after}s",
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Limit": f"{self.rate:g}",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(retry_after),
                "RateLimit-Policy": f"{self.burst};w=1",
            },
        )


class Authenticator:
    def __init__(self, store: KeyStore, limiter: TenantRateLimiter | None = None) -> None:
        self.store = store
        self.limiter = limiter
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        # Requests per key since the last flush to the audit log: counted here, written in bulk.
        self.uses: dict[tuple[str, str], tuple[int, float]] = {}

    async def principal(self, request: web.Request, scope: str) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "unauthorized",
                "Unauthorized",
                "send the API key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="delivery-gateway"'},
            )
        return await self.principal_for_digest(hash_key(token.strip()), scope)

    async def principal_for_digest(self, digest: str, scope: str) -> Principal:
        """The key behind a hash, checked again (revoked or expired keys fail within CACHE_SECONDS)."""
        principal = await self.lookup(digest)
        if principal is None:
            raise Problem(
                401,
                "unauthorized",
                "Unauthorized",
                "the API key is unknown, revoked or expired",
                headers={"WWW-Authenticate": 'Bearer realm="delivery-gateway", error="invalid_token"'},
            )
        if not principal.allows(scope):
            raise Problem(403, "forbidden", "Forbidden", f"this API key lacks the '{scope}' scope")
        if self.limiter is not None:
            self.limiter.check(principal.tenant_id)
        count, _ = self.uses.get((principal.key_id, principal.tenant_id), (0, 0.0))
        self.uses[(principal.key_id, principal.tenant_id)] = (count + 1, time.time())
        return principal

    async def lookup(self, digest: str) -> Principal | None:
        """The live key with this hash, or None when unknown, revoked or expired."""
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] >= now:
            return cached[1]
        row = await self.store.find_api_key(digest)
        principal = None
        if (
            row is not None
            and row["revoked_at"] is None
            and (row["expires_at"] is None or row["expires_at"] > time.time())
        ):
            principal = Principal(row["id"], row["tenant_id"], frozenset(row["scopes"].split(",")))
        if len(self._cache) > 10_000:
            self._cache.clear()
        cache_until = now + CACHE_SECONDS
        if principal is not None and row is not None and row["expires_at"] is not None:
            # An expiring key is refused from its expiry on, not up to a cache period later.
            cache_until = min(cache_until, now + row["expires_at"] - time.time())
        self._cache[digest] = (cache_until, principal)
        return principal

    async def flush_uses(self) -> None:
        uses, self.uses = self.uses, {}
        if uses:
            rows = [(key_id, tenant, count, last) for (key_id, tenant), (count, last) in uses.items()]
            await self.store.record_key_use(rows)
