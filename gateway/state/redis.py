"""The State port on Redis: shared by every API and worker process (scale-out).

Each batch of decisions is ONE EVALSHA of a server-side Lua script (batches above `chunk` are
split into several EVALSHAs sent in one pipeline), so a batch costs one round trip and, just as
important with redis-py, one command's worth of client CPU instead of N. Scripts are transcriptions
of gateway.domain.limits (`gcra`, `cap_block`) in integer microseconds.

Clock: by default the scripts read Redis' own `TIME`, so every node decides against one clock and
a worker whose clock runs 100 ms ahead cannot squeeze extra sends past a 50/s limit (with a
shared TAT, a skewed caller clock turns directly into extra or lost capacity). Pass `clock` to
decide against the caller's clock instead (tests with a frozen clock; all callers must then share
a clock). Redis >= 5 replicates script effects, so TIME in a writing script is safe.

Keys (all under `gw:`, all expiring):
  gw:tp:<limit key>                        GCRA theoretical arrival time, µs  (string)
  gw:cap:{<subject>}:<category>:<channel>  sliding log of sends: member reservation id, score µs
  gw:cap:{<subject>}:<category>:all        the same send, counted across channels
  gw:ctr:<key>                             sliding-window counter: field bucket index, value count
Batches touch many keys in one script, so this backend wants a single Redis (or a primary with
replicas), not Redis Cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from gateway.domain.limits import ALL_CHANNELS, CapRule
from gateway.state.base import (
    CapDecision,
    CapReservation,
    ThroughputDecision,
    ThroughputRequest,
    WindowCounter,
    cap_keys,
    to_us,
)

_NOW = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
"""

# ARGV: now, n, then per request: nlimits, then per limit: interval_us, burst, cost.
# KEYS: every limit's key, request after request. Returns now, then per request:
# allowed (0/1), retry_after_us, index of the blocking limit (-1).
GCRA_LUA = (
    _NOW
    + """
local n = tonumber(ARGV[2])
local a, k = 3, 1
local out = {now}
for i = 1, n do
  local nl = tonumber(ARGV[a])
  a = a + 1
  local retry, blocking = 0, -1
  local tats = {}
  for j = 1, nl do
    local interval, burst, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local tat = tonumber(redis.call('GET', KEYS[k + j - 1]) or '0')
    local new_tat = math.max(tat, now) + cost * interval
    local allow_at = new_tat - math.max(burst, cost) * interval
    if allow_at > now and allow_at - now > retry then
      retry, blocking = allow_at - now, j - 1
    end
    tats[j] = new_tat
  end
  if blocking < 0 then
    for j = 1, nl do
      redis.call('SET', KEYS[k + j - 1], string.format('%d', tats[j]),
                 'PX', math.floor((tats[j] - now) / 1000) + 1000)
    end
  end
  k = k + nl
  out[#out + 1] = blocking < 0 and 1 or 0
  out[#out + 1] = retry
  out[#out + 1] = blocking
end
return out
"""
)

# ARGV: now, n, then per reservation: id, retention_us, nrules, then per rule: scope (1 = the
# channel's log, 2 = all channels'), count, period_us. KEYS: two logs per reservation.
# Returns now, then per reservation: status (1 reserved, 2 already held, 0 blocked),
# index of the blocking rule (-1), frees_at_us (0).
CAPS_LUA = (
    _NOW
    + """
local n = tonumber(ARGV[2])
local a, k = 3, 1
local out = {now}
for i = 1, n do
  local id, retention, nr = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local keys = {KEYS[k], KEYS[k + 1]}
  k = k + 2
  local horizon = string.format('%d', now - retention)
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', horizon)
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', horizon)
  local status, block, frees = 1, -1, 0
  if redis.call('ZSCORE', keys[1], id) then
    status = 2
    a = a + 3 * nr
  else
    for j = 1, nr do
      local s, limit, period = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
      a = a + 3
      local lo = '(' .. string.format('%d', now - period)
      local c = redis.call('ZCOUNT', keys[s], lo, '+inf')
      if c >= limit then
        local e = redis.call('ZRANGEBYSCORE', keys[s], lo, '+inf', 'WITHSCORES', 'LIMIT', c - limit, 1)
        local at = tonumber(e[2]) + period
        if at > frees then
          block, frees = j - 1, at
        end
      end
    end
    if block >= 0 then
      status = 0
    else
      local ttl = math.floor(retention / 1000) + 1000
      for s = 1, 2 do
        redis.call('ZADD', keys[s], string.format('%d', now), id)
        redis.call('PEXPIRE', keys[s], ttl)
      end
    end
  end
  out[#out + 1] = status
  out[#out + 1] = block
  out[#out + 1] = frees
end
return out
"""
)

# KEYS: two logs per reservation; ARGV: the ids. Returns per reservation 1 if anything was removed.
RELEASE_LUA = """
local out = {}
for i = 1, #ARGV do
  local removed = redis.call('ZREM', KEYS[2 * i - 1], ARGV[i]) + redis.call('ZREM', KEYS[2 * i], ARGV[i])
  out[i] = removed > 0 and 1 or 0
end
return out
"""

# ARGV: now, n, then per counter: amount (0 = read only), bucket_us, buckets. Returns totals.
COUNTERS_LUA = (
    _NOW
    + """
local n = tonumber(ARGV[2])
local a = 3
local out = {}
for i = 1, n do
  local key = KEYS[i]
  local amount, width, buckets = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local idx = math.floor(now / width)
  if amount ~= 0 then
    redis.call('HINCRBY', key, string.format('%d', idx), amount)
    redis.call('PEXPIRE', key, math.floor(width * (buckets + 1) / 1000) + 1000)
  end
  local all = redis.call('HGETALL', key)
  local total = 0
  for p = 1, #all, 2 do
    local b = tonumber(all[p])
    if b > idx - buckets then
      total = total + tonumber(all[p + 1])
    elseif amount ~= 0 then
      redis.call('HDEL', key, all[p])
    end
  end
  out[i] = total
end
return out
"""
)


class _Script:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


_GCRA, _CAPS, _RELEASE, _COUNTERS = (_Script(t) for t in (GCRA_LUA, CAPS_LUA, RELEASE_LUA, COUNTERS_LUA))

_Call = tuple[_Script, list[str], list[str | int]]


def _chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


class RedisState:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        clock: Callable[[], float] | None = None,
        namespace: str = "gw:",
        chunk: int = 500,
    ) -> None:
        self._redis = client
        self._clock = clock
        self._ns = namespace
        self._chunk = chunk

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] | None = None, **kwargs: Any) -> RedisState:
        return cls(aioredis.Redis.from_url(url), clock=clock, **kwargs)

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(to_us(self._clock()))

    async def _run(self, calls: list[_Call]) -> list[list[int]]:
        """EVALSHA every call in one round trip; a script the server lost (restart, SCRIPT FLUSH)
        is loaded and only the calls that got NOSCRIPT - which therefore did not run - are re-sent."""
        if not calls:
            return []
        results: list[Any]
        if len(calls) == 1:
            script, keys, args = calls[0]
            try:
                results = [await self._redis.evalsha(script.sha, len(keys), *keys, *args)]
            except NoScriptError as exc:
                results = [exc]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        for i, res in enumerate(results):
            if isinstance(res, NoScriptError):
                script, keys, args = calls[i]
                await self._redis.script_load(script.text)
                results[i] = await self._redis.evalsha(script.sha, len(keys), *keys, *args)
            elif isinstance(res, Exception):
                raise res
        return [[int(x) for x in res] for res in results]

    async def acquire_throughput(self, requests: Sequence[ThroughputRequest]) -> list[ThroughputDecision]:
        calls: list[_Call] = []
        now = self._now_arg()
        for part in _chunks(len(requests), self._chunk):
            keys: list[str] = []
            args: list[str | int] = [now, len(part)]
            for i in part:
                req = requests[i]
                args.append(len(req.limits))
                for j, lim in enumerate(req.limits):
                    keys.append(self._ns + "tp:" + lim.key)
                    args += [lim.interval_us, lim.burst, req.cost_of(j)]
            calls.append((_GCRA, keys, args))
        out = []
        for part, res in zip(_chunks(len(requests), self._chunk), await self._run(calls), strict=True):
            at = res[0] / 1e6
            for n, i in enumerate(part):
                allowed, retry, blocking = res[1 + 3 * n : 4 + 3 * n]
                out.append(
                    ThroughputDecision(
                        allowed == 1, retry / 1e6, at, requests[i].limits[blocking].key if blocking >= 0 else None
                    )
                )
        return out

    async def reserve_caps(self, reservations: Sequence[CapReservation]) -> list[CapDecision]:
        calls: list[_Call] = []
        now = self._now_arg()
        for part in _chunks(len(reservations), self._chunk):
            keys: list[str] = []
            args: list[str | int] = [now, len(part)]
            for i in part:
                r = reservations[i]
                keys += cap_keys(self._ns, r)
                args += [r.id, to_us(r.retention), len(r.rules)]
                for cap in r.rules:
                    args += [2 if cap.scope == ALL_CHANNELS else 1, cap.count, cap.period.us]
            calls.append((_CAPS, keys, args))
        out = []
        for part, res in zip(_chunks(len(reservations), self._chunk), await self._run(calls), strict=True):
            at = res[0] / 1e6
            for n, i in enumerate(part):
                status, block, frees = res[1 + 3 * n : 4 + 3 * n]
                rule: CapRule | None = reservations[i].rules[block] if block >= 0 else None
                out.append(
                    CapDecision(status != 0, rule, frees / 1e6 if status == 0 else None, at, already_held=status == 2)
                )
        return out

    async def release_caps(self, reservations: Sequence[CapReservation]) -> list[bool]:
        calls: list[_Call] = []
        for part in _chunks(len(reservations), self._chunk):
            keys: list[str] = []
            for i in part:
                keys += cap_keys(self._ns, reservations[i])
            calls.append((_RELEASE, keys, [reservations[i].id for i in part]))
        return [x == 1 for res in await self._run(calls) for x in res]

    async def _counters(self, items: Sequence[tuple[WindowCounter, int]]) -> list[int]:
        calls: list[_Call] = []
        now = self._now_arg()
        for part in _chunks(len(items), self._chunk):
            keys: list[str] = []
            args: list[str | int] = [now, len(part)]
            for i in part:
                c, amount = items[i]
                keys.append(self._ns + "ctr:" + c.key)
                args += [amount, c.bucket_us, c.buckets]
            calls.append((_COUNTERS, keys, args))
        return [x for res in await self._run(calls) for x in res]

    async def incr_counters(self, increments: Sequence[tuple[WindowCounter, int]]) -> list[int]:
        return await self._counters(increments)

    async def read_counters(self, counters: Sequence[WindowCounter]) -> list[int]:
        return await self._counters([(c, 0) for c in counters])

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
