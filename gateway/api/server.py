"""The HTTP server: aiohttp's, with requests the parser refuses answered as problems
(protocol_errors.py) and each client's connections bounded (connection_limits.py)."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.api.connection_limits import ClientConnections, ConnectionLimits, GuardedRequestHandler
from gateway.api.protocol_errors import HEADER_FIELD_LIMIT, REQUEST_LINE_LIMIT


class _GatewayServer(web.Server):
    limits: ConnectionLimits
    clients: ClientConnections

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, limits=self.limits, clients=self.clients, **self._kwargs)


class GatewayAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, max_line_size=REQUEST_LINE_LIMIT, max_field_size=HEADER_FIELD_LIMIT, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GatewayServer
        gateway_server = cast(_GatewayServer, server)
        gateway_server.limits = self._limits
        gateway_server.clients = ClientConnections(self._limits.per_client)
        return server
