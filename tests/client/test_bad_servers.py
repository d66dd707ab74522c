"""The client facing servers that misbehave: silent, garbage, closing mid-handshake, never answering.

Each case must end in a clear exception or a disconnect with a reason, quickly: never a hang. The peer is
a scripted Engine.IO server (a raw ASGI app under uvicorn, in the test's own event loop), so that the
misbehaviour is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

import roomcast
from roomcast.asyncio.client import AsyncClient
from tests.client.conftest import TRANSPORTS, run

OPEN = "0" + json.dumps({"sid": "fake-sid", "upgrades": [], "pingInterval": 150, "pingTimeout": 150, "maxPayload": 100000})


class FakeServer:
    """An Engine.IO server that completes the handshake, answers CONNECT, then does what ``mode`` says.

    Modes: ``silent`` (no ping, nothing ever again), ``garbage`` (an invalid Socket.IO packet after the
    CONNECT reply), ``bad_open`` (a handshake that is not JSON), ``close_early`` (the WebSocket closes /
    the GET fails before the handshake), ``no_namespace`` (CONNECT never answered).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connect_seen = asyncio.Event()

    def reply_packets(self) -> list[str]:
        out = ['40{"sid":"ns-sid"}']
        if self.mode == "garbage":
            out.append("42not json at all")
        return out

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "websocket":
            await self.websocket(receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)

    async def websocket(self, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if self.mode == "close_early":
            await send({"type": "websocket.close", "code": 1011})
            return
        await send({"type": "websocket.send", "text": "0{not json" if self.mode == "bad_open" else OPEN})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text", "").startswith("40") and self.mode != "no_namespace":
                self.connect_seen.set()
                for packet in self.reply_packets():
                    await send({"type": "websocket.send", "text": packet})

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode()
        if self.mode == "close_early":
            status, text = 500, "boom"
        elif "sid=" not in query:
            status, text = 200, ("0{not json" if self.mode == "bad_open" else OPEN)
        elif scope["method"] == "POST":
            if body.startswith(b"40") and self.mode != "no_namespace":
                self.connect_seen.set()
            status, text = 200, "ok"
        elif self.connect_seen.is_set() and not getattr(self, "_replied", False):
            self._replied = True
            status, text = 200, "\x1e".join(self.reply_packets())
        else:
            # A long-poll that never returns: the server went silent.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)
            return
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": text.encode()})


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", timeout_graceful_shutdown=0.1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline and not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait([task], timeout=3)


@pytest.fixture(params=["websocket", "polling"])
def transport(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


def test_ping_timeout_when_the_server_goes_silent(transport: list[str]) -> None:
    async def body() -> None:
        async with serving(FakeServer("silent")) as url:
            client = AsyncClient(reconnection=False)
            reasons: asyncio.Queue[str] = asyncio.Queue()
            client.on("disconnect", reasons.put_nowait)
            await client.connect(url, transports=transport, wait_timeout=3)
            assert client.connected
            started = time.monotonic()
            # pingInterval + pingTimeout = 300 ms without a ping.
            assert await asyncio.wait_for(reasons.get(), 3) == "ping timeout"
            assert time.monotonic() - started < 1.5
            await asyncio.wait_for(client.wait(), 3)
            assert not client.connected

    run(body())


def test_garbage_after_connect_is_a_parse_error(transport: list[str]) -> None:
    async def body() -> None:
        async with serving(FakeServer("garbage")) as url:
            client = AsyncClient(reconnection=False)
            reasons: asyncio.Queue[str] = asyncio.Queue()
            client.on("disconnect", reasons.put_nowait)
            await client.connect(url, transports=transport, wait=False)
            assert await asyncio.wait_for(reasons.get(), 3) == "parse error"
            await asyncio.wait_for(client.wait(), 3)

    run(body())


@pytest.mark.parametrize("mode", ["bad_open", "close_early"])
def test_broken_handshake_raises(transport: list[str], mode: str) -> None:
    async def body() -> None:
        async with serving(FakeServer(mode)) as url:
            client = AsyncClient(reconnection=False)
            with pytest.raises(roomcast.ConnectionError):
                await asyncio.wait_for(client.connect(url, transports=transport), 5)

    run(body())


def test_namespace_never_answered_raises(transport: list[str]) -> None:
    async def body() -> None:
        async with serving(FakeServer("no_namespace")) as url:
            client = AsyncClient(reconnection=False)
            started = time.monotonic()
            with pytest.raises(roomcast.ConnectionError, match="no answer"):
                await client.connect(url, transports=transport, wait_timeout=0.1)
            assert time.monotonic() - started < 2
            assert not client.connected

    run(body())


def test_server_that_never_answers_raises(transport: list[str]) -> None:
    async def body() -> None:
        # Accepts TCP connections (the backlog does) but never reads or writes.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            url = "http://127.0.0.1:%d" % listener.getsockname()[1]
            client = AsyncClient(reconnection=False, request_timeout=0.3)
            started = time.monotonic()
            with pytest.raises(roomcast.ConnectionError):
                await client.connect(url, transports=transport)
            assert time.monotonic() - started < 2

    run(body())


def test_nothing_listening_raises_and_retry_reconnects_later(transport: list[str]) -> None:
    async def body() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = AsyncClient(reconnection=False)
        with pytest.raises(roomcast.ConnectionError):
            await client.connect(f"http://127.0.0.1:{port}", transports=transport)

        # reconnection_attempts bounds the retries; wait() returns once they are exhausted.
        retrying = AsyncClient(reconnection_attempts=2, reconnection_delay=0.01, reconnection_delay_max=0.02)
        await retrying.connect(f"http://127.0.0.1:{port}", transports=transport, retry=True)
        await asyncio.wait_for(retrying.wait(), 5)
        assert not retrying.connected

    run(body())
