"""Reputation checkers: something outside the gateway that knows whether a number is flagged.

Two forms, chosen in `[numbers.reputation]`:

* `url`: an HTTP hook. The gateway POSTs `{"numbers": [{id, pool, sender, kind, provider,
  channel, state}]}` and expects `{"flagged": [{"id" or "sender", "reason"}]}` (200). Anything
  else is logged and the numbers are asked again on the next run.
* `entry_point = "package.module:function"`: a Python callable taking the same list of number
  objects and returning the same `flagged` list (plain or async).

Numbers not listed as flagged are left as they are: a checker can condemn, never absolve (only
the health evidence and the operator bring a number back).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import aiohttp
import structlog

from gateway.domain.numbers import SenderNumber

log = structlog.get_logger("gateway.reputation")


class ReputationError(Exception):
    """The checker did not give a usable answer."""


class ReputationChecker(Protocol):
    async def check(self, numbers: Sequence[SenderNumber]) -> dict[str, str]:
        """Number id -> reason, for the numbers the checker says are flagged."""
        ...


def describe(number: SenderNumber) -> dict[str, Any]:
    return {
        "id": number.id,
        "pool": number.pool,
        "sender": number.sender,
        "kind": number.kind.value,
        "provider": number.provider,
        "channel": number.channel,
        "state": number.state.value,
    }


def flagged_of(answer: Any, numbers: Sequence[SenderNumber]) -> dict[str, str]:
    """`{"flagged": [...]}` or the bare list -> number id -> reason; refuses anything else."""
    items = answer.get("flagged") if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        raise ReputationError("the answer is not a list of flagged numbers")
    by_id = {n.id: n for n in numbers}
    by_sender = {n.sender: n for n in numbers}
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ReputationError("each flagged entry must be an object")
        number = by_id.get(str(item.get("id"))) or by_sender.get(str(item.get("sender")))
        if number is None:
            continue  # not one we asked about
        reason = item.get("reason")
        out[number.id] = str(reason)[:200] if reason else "flagged by the reputation check"
    return out


class HttpReputationChecker:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    async def check(self, numbers: Sequence[SenderNumber]) -> dict[str, str]:
        body = {"numbers": [describe(n) for n in numbers]}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.post(self.url, json=body) as response,
            ):
                if response.status != 200:
                    raise ReputationError(f"the hook answered HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ReputationError(f"the hook could not be asked: {exc!r}") from None
        return flagged_of(answer, numbers)


class EntryPointReputationChecker:
    def __init__(self, function: Callable[[list[dict[str, Any]]], Any], timeout: float = 10.0) -> None:
        self.function = function
        self.timeout = timeout

    @classmethod
    def load(cls, spec: str, timeout: float = 10.0) -> EntryPointReputationChecker:
        module_name, _, attribute = spec.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise ReputationError(f"{spec} is not callable")
        return cls(target, timeout)

    async def check(self, numbers: Sequence[SenderNumber]) -> dict[str, str]:
        result = self.function([describe(n) for n in numbers])
        if inspect.isawaitable(result):
            awaited: Awaitable[Any] = result
            result = await asyncio.wait_for(awaited, self.timeout)
        return flagged_of(result, numbers)
