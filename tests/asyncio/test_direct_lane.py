"""Roomcast's uvicorn WebSocket protocol (roomcast.asyncio.uvicorn_ws): the direct lane is really
taken when offered and not otherwise, and what goes through it is what plain ASGI would deliver,
with permessage-deflate too. Served by uvicorn in a thread, talked to with the websockets client."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect as ws_connect

import roomcast
from roomcast.asyncio import uvicorn_ws
from roomcast.asyncio.uvicorn_ws import WebSocketProtocol
from tests.asyncio.conftest import LiveServer

TIMEOUT = 5.0
ROOMCAST_WS = "roomcast.asyncio.uvicorn_ws:WebSocketProtocol"


def echo_server() -> roomcast.AsyncServer:
    sio = roomcast.AsyncServer()

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echo", data, to=sid)

    @sio.on("everyone")
    async def everyone(sid: str, data: Any) -> None:
        await sio.emit("everyone", data)

    return sio


@contextlib.contextmanager
def connect(live: LiveServer, **options: Any) -> Iterator[Any]:
    """A WebSocket client joined to the namespace '/'."""
    with ws_connect(live.ws_url + "/socket.io/?EIO=4&transport=websocket", open_timeout=TIMEOUT, **options) as ws:
        assert ws.recv(TIMEOUT).startswith("0{")
        ws.send("40")
        assert ws.recv(TIMEOUT).startswith("40{")
        yield ws


def lanes(live: LiveServer, sio: roomcast.AsyncServer) -> list[Any]:
    """The direct lane of every open session, read on the server's loop."""
    return live.run_sync(lambda: [conn.direct for conn in sio.engine.connections.values()])


@pytest.mark.parametrize("ws", [ROOMCAST_WS, "websockets-sansio"])
def test_lane_taken_only_when_offered(serve: Callable[..., LiveServer], ws: str) -> None:
    sio = echo_server()
    live = serve(roomcast.ASGIApp(sio), ws=ws)
    with connect(live) as client:
        client.send('42["echo",{"n":1}]')
        assert client.recv(TIMEOUT) == '42["echo",{"n":1}]'
        taken = lanes(live, sio)
    assert len(taken) == 1
    if ws == ROOMCAST_WS:
        assert isinstance(taken[0], WebSocketProtocol)
    else:
        assert taken[0] is None


def test_broadcast_reaches_everyone_in_order(serve: Callable[..., LiveServer]) -> None:
    sio = echo_server()
    live = serve(roomcast.ASGIApp(sio), ws=ROOMCAST_WS)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(live)) for _ in range(5)]
        for n in range(20):
            clients[n % 5].send(f'42["everyone",{n}]')
        for client in clients:
            got = [client.recv(TIMEOUT) for _ in range(20)]
            assert sorted(got, key=lambda m: int(m.split(",")[1][:-1])) == [
                f'42["everyone",{n}]' for n in range(20)
            ]


def test_permessage_deflate_through_the_lane(serve: Callable[..., LiveServer]) -> None:
    """A client that negotiated compression gets frames its own compressor made (RSV1 set)."""
    sio = echo_server()
    live = serve(roomcast.ASGIApp(sio), ws=ROOMCAST_WS, ws_per_message_deflate=True)
    text = "hello " * 200
    with connect(live) as client:
        assert client.protocol.extensions, "the server declined permessage-deflate"
        client.send(f'42["echo","{text}"]')
        assert client.recv(TIMEOUT) == f'42["echo","{text}"]'
        client.send(f'42["everyone","{text}"]')
        assert client.recv(TIMEOUT) == f'42["everyone","{text}"]'
    with connect(live, compression=None) as plain:
        plain.send('42["echo","x"]')
        assert plain.recv(TIMEOUT) == '42["echo","x"]'


def test_binary_attachments_through_the_lane(serve: Callable[..., LiveServer]) -> None:
    sio = echo_server()
    live = serve(roomcast.ASGIApp(sio), ws=ROOMCAST_WS)
    with connect(live) as client:
        client.send('451-["echo",{"_placeholder":true,"num":0}]')
        client.send(b"\x00\x01\x02")
        assert client.recv(TIMEOUT) == '451-["echo",{"_placeholder":true,"num":0}]'
        assert client.recv(TIMEOUT) == b"\x00\x01\x02"


def test_invalid_utf8_is_closed_with_1007_and_one_line(
    serve: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A text frame that is not UTF-8: close 1007, one info line, no traceback; others go on."""
    sio = echo_server()
    live = serve(roomcast.ASGIApp(sio), ws=ROOMCAST_WS)
    with connect(live) as bystander, caplog.at_level(logging.INFO):
        raw = socket.create_connection(("127.0.0.1", live.port), timeout=TIMEOUT)
        raw.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += raw.recv(4096)
        assert received.startswith(b"HTTP/1.1 101")
        payload = b"\xff\xfe"
        raw.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + b"\x00\x00\x00\x00" + payload)
        frames = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            frames += chunk
        raw.close()
        close_at = frames.rfind(b"\x88")
        assert close_at >= 0, frames
        assert struct.unpack("!H", frames[close_at + 2:close_at + 4])[0] == 1007
        bystander.send('42["echo","still here"]')
        assert bystander.recv(TIMEOUT) == '42["echo","still here"]'
    assert any("not valid UTF-8" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


def test_oversized_message_through_the_lane(serve: Callable[..., LiveServer]) -> None:
    sio = roomcast.AsyncServer(max_http_buffer_size=1000)
    live = serve(roomcast.ASGIApp(sio), ws=ROOMCAST_WS)
    with connect(live) as client:
        client.send('42["echo","' + "x" * 2000 + '"]')
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_frames_are_what_websockets_serializes(opcode: Opcode) -> None:
    # The lane reuses the header websockets writes for each payload length: every length class (7-bit,
    # 16-bit, 64-bit) and both sides of the cache's limit must give the library's bytes exactly.
    headers = uvicorn_ws._TEXT_HEADERS if opcode is Opcode.TEXT else uvicorn_ws._BINARY_HEADERS
    limit = uvicorn_ws._HEADER_CACHE_MAX
    for size in (0, 1, 2, 125, 126, 127, 1000, limit - 1, limit, limit + 1, 65535, 65536, 70000):
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        for _ in range(2):  # the first builds the header, the second reuses it
            framed = uvicorn_ws._frame(opcode, headers, payload)
            assert framed == Frame(opcode, payload).serialize(mask=False), size
