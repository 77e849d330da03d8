"""The HTTP server: aiohttp's, with requests the parser refuses answered as problems
(protocol_errors.py), each client's connections bounded (connection_limits.py), and the click
redirect answered before the router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.api.connection_limits import ClientConnections, ConnectionLimits, GuardedRequestHandler
from gateway.api.problems import problem_middleware
from gateway.api.protocol_errors import HEADER_FIELD_LIMIT, REQUEST_LINE_LIMIT
from gateway.api.tracking import redirect
from gateway.domain.tracking import TOKEN_RE
from gateway.link_redirects import Redirects

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
CLICK_PATH = "/c/"


def with_redirect_lane(routed: Handler, redirects: Redirects) -> Handler:
    """`GET /c/{token}` answered without the route table and the middleware chain: the one public
    endpoint a campaign's recipients reach by the thousand a second, where those two were a tenth of
    its CPU (bench/clicks.py). Its problems are answered as the middleware answers them. A path that is
    not plainly a click (another method, an encoded or malformed token) takes the routed way."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path
        if path.startswith(CLICK_PATH) and request.method in ("GET", "HEAD"):
            token = path[len(CLICK_PATH) :].partition("?")[0]
            if TOKEN_RE.match(token):
                return await problem_middleware(
                    cast(web.Request, request), lambda clicked: redirect(redirects, clicked, token)
                )
        return await routed(request)

    return handle


class _GatewayServer(web.Server):
    limits: ConnectionLimits
    clients: ClientConnections

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, limits=self.limits, clients=self.clients, **self._kwargs)


class GatewayAppRunner(web.AppRunner):
    def __init__(
        self, app: web.Application, *, limits: ConnectionLimits, redirects: Redirects | None = None, **kwargs: Any
    ) -> None:
        super().__init__(app, max_line_size=REQUEST_LINE_LIMIT, max_field_size=HEADER_FIELD_LIMIT, **kwargs)
        self._limits = limits
        self._redirects = redirects

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GatewayServer
        gateway_server = cast(_GatewayServer, server)
        gateway_server.limits = self._limits
        gateway_server.clients = ClientConnections(self._limits.per_client)
        if self._redirects is not None:
            server.request_handler = with_redirect_lane(server.request_handler, self._redirects)
        return server
