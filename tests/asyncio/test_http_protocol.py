"""Roomcast's HTTP protocol for uvicorn (roomcast.asyncio.uvicorn_http): a response's head and body
leave in one write at the end of the loop's pass, large bodies are not held back, and a WebSocket
upgrade keeps working (every live-server suite runs on it too). The protocol is driven over a
transport that records what is written, so that the number of writes can be seen."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from roomcast.asyncio.uvicorn_http import HttpProtocol
from roomcast.asyncio.uvicorn_ws import _CORK_LIMIT, WebSocketProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 5000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def body_app(body: bytes) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve_one(app: Any, request: bytes) -> RecordingTransport:
    config = Config(app, http=HttpProtocol, ws=WebSocketProtocol, lifespan="off", log_level="warning")
    config.load()
    protocol = HttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(200):  # wait on what is written, pass by pass, for at most 200 passes
        await asyncio.sleep(0)
        if transport.writes:
            await asyncio.sleep(0)  # (anything else written in the same pass)
            break
    return transport


GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def test_head_and_body_leave_in_one_write() -> None:
    transport = asyncio.run(serve_one(body_app(b"hello"), GET))
    assert len(transport.writes) == 1, transport.writes
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\nhello")


def test_a_large_body_is_written_at_once() -> None:
    body = b"x" * (_CORK_LIMIT + 1)
    transport = asyncio.run(serve_one(body_app(body), GET))
    assert b"".join(transport.writes).endswith(b"\r\n\r\n" + body)
    assert len(transport.writes) <= 2  # the head may go alone; the body is not split or held


def test_websocket_upgrade_keeps_the_corked_transport() -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    transport = asyncio.run(serve_one(body_app(b""), request))
    assert isinstance(transport.protocol, WebSocketProtocol)
    assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 101 ")
    assert len(transport.writes) == 1  # one cork, not one wrapped in another
