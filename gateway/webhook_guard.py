"""The SSRF guard of status callbacks: a subscription's URL must lead to the public internet.

Checked twice: when the subscription is made (its host resolved, every address judged), and on
every connection (the resolver the delivery session connects through drops refused addresses), so a
name that resolved to a public address at subscription time and to 127.0.0.1 later (DNS rebinding)
still reaches nothing inside. The judging is pure (domain/webhooks.py); the resolving is here."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from gateway.domain.webhooks import address_refusal, addresses_refusal, url_refusal


class RefusedAddress(OSError):
    """The receiver's host resolves to an address the guard refuses; nothing was sent."""


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def url_refusal_now(url: str, *, allow_http: bool, allow_private: bool) -> str | None:
    """Why this URL may not be subscribed, judged by its form and by what its host resolves to now."""
    refusal = url_refusal(url, allow_http=allow_http)
    if refusal is not None:
        return refusal
    host = urlsplit(url).hostname or ""
    literal = _literal(host)
    if literal is not None:
        return address_refusal(literal, allow_private=allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"host {host} does not resolve"
    return addresses_refusal((str(info[4][0]) for info in infos), allow_private=allow_private)


def literal_refusal(url: str, *, allow_private: bool) -> str | None:
    """A URL naming an IP address is connected to without a resolver: judged here, before the request."""
    literal = _literal(urlsplit(url).hostname or "")
    return None if literal is None else address_refusal(literal, allow_private=allow_private)


class GuardedResolver(AbstractResolver):
    """Resolves as the default resolver does, then refuses the connection if any address is refused."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        refusal = addresses_refusal((r["host"] for r in found), allow_private=self._allow_private)
        if refusal is not None:
            raise RefusedAddress(f"{host} {refusal}")
        return found

    async def close(self) -> None:
        await self._inner.close()
