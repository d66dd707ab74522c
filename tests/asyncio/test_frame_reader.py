"""Frames read by aiohttp's compiled reader (roomcast.asyncio.frame_reader) in Roomcast's uvicorn
protocol: the same behaviour as with ``websockets`` reading them (every test runs on both), control
frames still answered by websockets and uvicorn, protocol errors closed with the RFC's codes."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import roomcast
from roomcast.asyncio import frame_reader
from tests.asyncio.conftest import LiveServer
from tests.helpers import wait_until
from tests.reliability.harness import raw_ws, read_frame, read_until_closed, ws_frame

TIMEOUT = 5.0
FAST = "roomcast.asyncio.uvicorn_ws:WebSocketProtocol"
PARSER = "tests.helpers.protocols:WebsocketsParserProtocol"
WS_PATH = "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture(params=[FAST, PARSER], ids=["aiohttp-reader", "websockets-parser"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def echo_app() -> tuple[roomcast.AsyncServer, list[str]]:
    sio = roomcast.AsyncServer(max_http_buffer_size=1_000_000)
    reasons: list[str] = []

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echo", data, to=sid)

    @sio.on("disconnect")
    async def disconnect(sid: str, reason: str) -> None:
        reasons.append(reason)

    return sio, reasons


@contextlib.contextmanager
def joined(live: LiveServer) -> Iterator[Any]:
    with ws_connect(live.ws_url + WS_PATH, open_timeout=TIMEOUT, compression=None) as ws:
        assert ws.recv(TIMEOUT).startswith("0{")
        ws.send("40")
        assert ws.recv(TIMEOUT).startswith("40{")
        yield ws


def raw_joined(live: LiveServer) -> socket.socket:
    sock = raw_ws(live.port, WS_PATH)
    assert read_frame(sock)[1].startswith(b"0{")
    sock.sendall(ws_frame(b"40"))
    assert read_frame(sock)[1].startswith(b"40{")
    return sock


def close_code(frames: bytes) -> int:
    """The code of the close frame that ends ``frames`` (a server's unmasked frames)."""
    at = frames.rfind(b"\x88")
    assert at >= 0, frames
    return int.from_bytes(frames[at + 2:at + 4], "big")


def test_the_reader_is_the_one_asked_for(serve: Callable[..., LiveServer], protocol: str) -> None:
    if protocol == FAST:
        # aiohttp is a test dependency: the fast path must really be the one tested.
        assert frame_reader.AVAILABLE, "aiohttp's compiled frame reader is not usable here"
    sio, _ = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol)
    with joined(live) as ws:
        ws.send('42["echo","hi"]')
        assert ws.recv(TIMEOUT) == '42["echo","hi"]'
        readers = live.run_sync(lambda: [c.direct._reader for c in sio.engine.connections.values()])
    assert len(readers) == 1
    assert (readers[0] is not None) == (protocol == FAST)


def test_ping_is_answered_and_close_handshake_completes(serve: Callable[..., LiveServer], protocol: str) -> None:
    sio, reasons = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol)
    with joined(live) as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(TIMEOUT), "no pong"
        ws.send('42["echo","after the ping"]')
        assert ws.recv(TIMEOUT) == '42["echo","after the ping"]'
        ws.close(4000, "bye")
        close = ws.protocol.close_rcvd
        assert close is not None and (close.code, close.reason) == (4000, "bye")
    wait_until(lambda: len(reasons) == 1, what="the disconnect")


def test_fragments_with_a_ping_between_them(serve: Callable[..., LiveServer], protocol: str) -> None:
    sio, _ = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol)
    with contextlib.closing(raw_joined(live)) as sock:
        sock.sendall(
            ws_frame(b'42["echo","fr', fin=False) + ws_frame(b"mid", opcode=0x9)
            + ws_frame(b"ag", opcode=0x0, fin=False) + ws_frame(b'ment"]', opcode=0x0)
        )
        assert read_frame(sock) == (0xA, b"mid")
        assert read_frame(sock) == (0x1, b'42["echo","fragment"]')


def test_a_frame_a_byte_at_a_time(serve: Callable[..., LiveServer], protocol: str) -> None:
    sio, _ = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol)
    with contextlib.closing(raw_joined(live)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame = ws_frame(b'42["echo","' + b"x" * 300 + b'"]')  # a 16-bit length
        for i in range(len(frame)):
            sock.sendall(frame[i:i + 1])
        assert read_frame(sock) == (0x1, b'42["echo","' + b"x" * 300 + b'"]')


def test_unmasked_frame_is_refused_with_1002(serve: Callable[..., LiveServer], protocol: str) -> None:
    sio, reasons = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol)
    with joined(live) as bystander, contextlib.closing(raw_joined(live)) as sock:
        payload = b'42["echo","unmasked"]'
        sock.sendall(bytes([0x81, len(payload)]) + payload)
        assert close_code(read_until_closed(sock)) == 1002
        bystander.send('42["echo","still here"]')
        assert bystander.recv(TIMEOUT) == '42["echo","still here"]'
    wait_until(lambda: len(reasons) == 2, what="both disconnects")


@pytest.mark.parametrize("extra, closed", [(0, False), (1, True)])
def test_ws_max_size_is_inclusive(serve: Callable[..., LiveServer], protocol: str, extra: int, closed: bool) -> None:
    """uvicorn's ``ws_max_size`` bounds a message as websockets does: its size is allowed, one more is 1009."""
    sio, _ = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol, ws_max_size=2000)
    text = '42["echo","' + "x" * (2000 + extra - 13) + '"]'
    assert len(text) == 2000 + extra
    with joined(live) as ws:
        ws.send(text)
        if closed:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        else:
            assert ws.recv(TIMEOUT) == text


async def plain_echo(scope: Any, receive: Any, send: Any) -> None:
    """A plain ASGI WebSocket echo (not Roomcast): messages come through ``receive()``."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


def test_plain_asgi_app_gets_messages_through_receive(serve: Callable[..., LiveServer], protocol: str) -> None:
    live = serve(plain_echo, ws=protocol)
    with ws_connect(live.ws_url + "/", open_timeout=TIMEOUT, compression=None) as ws:
        for n in range(50):  # more than the reader completes between two receive() calls
            ws.send(f"text {n}")
        ws.send(b"\x00bytes")
        assert [ws.recv(TIMEOUT) for _ in range(50)] == [f"text {n}" for n in range(50)]
        assert ws.recv(TIMEOUT) == b"\x00bytes"


def test_many_clients_at_once(serve: Callable[..., LiveServer], protocol: str) -> None:
    sio, _ = echo_app()
    live = serve(roomcast.ASGIApp(sio), ws=protocol)
    failures: list[str] = []

    def client(n: int) -> None:
        try:
            with joined(live) as ws:
                for i in range(20):
                    ws.send(f'42["echo",[{n},{i}]]')
                    assert ws.recv(TIMEOUT) == f'42["echo",[{n},{i}]]'
        except Exception as exc:  # reported below with the client's number
            failures.append(f"{n}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 4)
    assert not failures


def test_pure_python_aiohttp_is_not_used() -> None:
    """aiohttp without its compiled extensions reads frames no faster than websockets: not used."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "from roomcast.asyncio import frame_reader; print(frame_reader.AVAILABLE)"],
        env={**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"}, capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "False"
