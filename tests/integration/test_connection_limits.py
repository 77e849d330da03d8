"""Slowloris and connection floods, over real sockets: a client that trickles its request head is cut
off after api.header_read_timeout_seconds however steadily it sends, and one address gets no more
than api.max_connections_per_client connections, while a well-behaved client is served throughout."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.harness import Running, running_gateway

HEAD_TIMEOUT = 1.0
# Linux routes all of 127.0.0.0/8 to loopback: a second client address on the same machine.
OTHER_ADDRESS = "127.0.0.2"


async def closed_after(reader: asyncio.StreamReader, within: float) -> float | None:
    """Seconds until the server closed the connection (EOF or reset), or None if it is still open."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(reader.read(), within)
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        return None
    return time.monotonic() - started


async def trickle(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """A request head, one byte every 0.2 s, never finished."""
    head = b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nX-Padding: " + b"a" * 1000
    for byte in head:
        if stop.is_set():
            return
        with contextlib.suppress(ConnectionError):
            writer.write(bytes([byte]))
            await writer.drain()
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def well_behaved_client(gw: Running) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def healthz(session: aiohttp.ClientSession, gw: Running) -> int:
    async with session.get(gw.url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status


async def test_trickling_heads_are_cut_off_after_the_bound(tmp_path: Path) -> None:
    env = {"GATEWAY_API__HEADER_READ_TIMEOUT_SECONDS": str(HEAD_TIMEOUT)}
    async with running_gateway(tmp_path, env) as gw, well_behaved_client(gw) as session:
        connections = [await asyncio.open_connection("127.0.0.1", gw.gateway.port) for _ in range(200)]
        stop = asyncio.Event()
        trickling = [asyncio.create_task(trickle(writer, stop)) for _, writer in connections]
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
        served = [await healthz(session, gw) for _ in range(3)]
        cut_off = await asyncio.gather(*(closed_after(reader, 5.0) for reader, _ in connections))
        silent = await closed_after(silent_reader, 5.0)
        served.append(await healthz(session, gw))
        stop.set()
        await asyncio.gather(*trickling)
        for _, writer in [*connections, (silent_reader, silent_writer)]:
            writer.close()

    assert served == [200] * 4
    assert all(seconds is not None for seconds in cut_off), "a trickling client was still connected after 5 s"
    # Measured from the test's first read, which began a moment after each connection opened.
    assert max(s for s in cut_off if s is not None) < HEAD_TIMEOUT + 1.5
    assert silent is not None, "a client that sends nothing is cut off too"


async def test_a_kept_alive_connection_may_idle_longer_than_the_head_bound(tmp_path: Path) -> None:
    env = {"GATEWAY_API__HEADER_READ_TIMEOUT_SECONDS": str(HEAD_TIMEOUT)}
    async with running_gateway(tmp_path, env) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
        answers = []
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            answers.append(await reader.readuntil(b'{"status":"ok"}'))
            await asyncio.sleep(HEAD_TIMEOUT * 2)  # idle between requests: the keep-alive timeout's business
        writer.close()

    assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)


async def test_one_address_gets_no_more_than_its_connections(tmp_path: Path) -> None:
    env = {"GATEWAY_API__MAX_CONNECTIONS_PER_CLIENT": "5", "GATEWAY_API__HEADER_READ_TIMEOUT_SECONDS": "30"}
    async with running_gateway(tmp_path, env) as gw, well_behaved_client(gw) as session:
        held = [await asyncio.open_connection("127.0.0.1", gw.gateway.port) for _ in range(5)]
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
        refused_after = await closed_after(extra_reader, 2.0)
        still_open = [await closed_after(reader, 0.2) for reader, _ in held]
        served = await healthz(session, gw)
        held[0][1].close()
        await held[0][1].wait_closed()
        await asyncio.sleep(0.2)
        # A slot freed is a slot to use: a sixth connection now gets an answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5.0)
        for _, w in [*held[1:], (extra_reader, extra_writer), (reader, writer)]:
            w.close()

    assert refused_after is not None and refused_after < 1.0, "the sixth connection from one address is closed"
    assert still_open == [None] * 5
    assert served == 200, "a client at another address is served"
    assert answer.startswith(b"HTTP/1.1 200 OK")
