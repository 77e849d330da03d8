"""The part every HTTP fake shares: a loopback aiohttp server, a record of requests, a script.

A fake answers each request in this order: record it; check auth as the real service does; play
the next scripted answer if the test queued one (an error status, a hang, a dropped connection);
otherwise answer as the service would for that request (rules such as "this number is invalid").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import MultiDict


@dataclass
class Recorded:
    method: str
    path: str
    query: MultiDict[str]
    headers: dict[str, str]
    body: bytes
    form: MultiDict[str] = field(default_factory=MultiDict)
    raw_path: str = ""  # path and query exactly as sent
    at: float = field(default_factory=time.time)  # when it arrived

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Scripted:
    status: int = 500
    body: Any = None  # dict -> JSON; bytes/str sent as is
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without an answer


class FakeHttpService:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Scripted] = deque()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.url = ""
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    # -- scripting ---------------------------------------------------------------------------------

    def script(self, *answers: Scripted) -> None:
        self._script.extend(answers)

    def fail_next(
        self, count: int, status: int = 500, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.script(*[Scripted(status, body, headers or {}) for _ in range(count)])

    def hang_next(self, count: int, seconds: float) -> None:
        self.script(*[Scripted(delay=seconds, drop=True) for _ in range(count)])

    def drop_next(self, count: int) -> None:
        self.script(*[Scripted(drop=True) for _ in range(count)])

    # -- serving -----------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeHttpService:
        await self._listen(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.go_down()

    async def go_down(self) -> None:
        """Stop listening and close every open connection: the service's host is gone (connection refused)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def come_back(self) -> None:
        """Listen again at the same address, as the service restarted."""
        await self._listen(self._port)

    async def _listen(self, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self._port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form: MultiDict[str] = MultiDict()
        if request.content_type == "application/x-www-form-urlencoded":
            form = MultiDict(await request.post())  # type: ignore[arg-type]
        recorded = Recorded(
            request.method, request.path, MultiDict(request.query), dict(request.headers), body, form, request.raw_path
        )
        self.requests.append(recorded)
        refused = self.authenticate(request, recorded)
        if refused is not None:
            return refused
        if self._script and self.scriptable(request):
            step = self._script.popleft()
            if step.delay:
                await asyncio.sleep(step.delay)
            if step.drop:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            return respond(step.status, step.body, step.headers)
        return await self.answer(request, recorded)

    def authenticate(self, request: web.Request, recorded: Recorded) -> web.StreamResponse | None:
        return None

    def scriptable(self, request: web.Request) -> bool:
        """Whether scripted answers apply to this request (a fake may keep some routes out of it)."""
        return True

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=404)


def respond(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> web.Response:
    if body is None or isinstance(body, bytes | str):
        return web.Response(status=status, body=body, headers=headers)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


@dataclass
class Answer:
    """What a callback got back, as the service sees it."""

    status: int
    content_type: str
    body: bytes


async def post_answer(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
    """Deliver a callback the way the service would: one POST, the whole answer back."""
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=dict(headers)) as response:
        return Answer(response.status, response.content_type, await response.read())


async def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    return (await post_answer(url, body, headers)).status


class CallbackSink(FakeHttpService):
    """Stands where our public receipt endpoint would: records what a service's callback looks like
    on arrival (URL, headers as received, raw body) so a test can hand it to parse_receipts."""

    async def answer(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=200)

    def public_url(self, recorded: Recorded) -> str:
        return self.url + recorded.raw_path
