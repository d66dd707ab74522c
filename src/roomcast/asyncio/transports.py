"""The client's transports: Engine.IO over one WebSocket (``websockets``) or over HTTP long-polling
(``httpx``). Each only moves encoded packets; the sans-I/O cores decide what they mean."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from ..engineio.client import Reason
from ..engineio.packets import decode_payload, encode_payload
from ..exceptions import ProtocolError

__all__ = ["TransportClosed", "WebSocketTransport", "PollingTransport", "Transport"]


class TransportClosed(Exception):
    """A transport can't carry packets any more; ``reason`` is the disconnect reason to report."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class WebSocketTransport:
    """Engine.IO over one WebSocket: one packet per frame."""

    name = "websocket"

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.paused = False

    @classmethod
    async def open(cls, url: str, headers: dict[str, str], timeout: float) -> WebSocketTransport:
        try:
            ws = await ws_connect(
                url,
                additional_headers=headers or None,
                open_timeout=timeout,
                ping_interval=None,  # Engine.IO has its own heartbeat
                max_size=None,
                close_timeout=timeout,
            )
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as exc:
            raise TransportClosed(Reason.TRANSPORT_ERROR, f"WebSocket connection to {url} failed: {exc!r}") from exc
        return cls(ws)

    async def send(self, packets: list[str | bytes]) -> None:
        try:
            for packet in packets:
                await self.ws.send(packet)
        except websockets.ConnectionClosed as exc:
            raise TransportClosed(Reason.TRANSPORT_CLOSE) from exc

    async def receive(self) -> list[str | bytes]:
        try:
            return [await self.ws.recv()]
        except websockets.ConnectionClosed as exc:
            raise TransportClosed(Reason.TRANSPORT_CLOSE) from exc
        except (OSError, websockets.WebSocketException) as exc:
            raise TransportClosed(Reason.TRANSPORT_ERROR, repr(exc)) from exc

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


class PollingTransport:
    """Engine.IO over HTTP long-polling: a GET loop receives, one POST at a time sends."""

    name = "polling"

    def __init__(self, http: httpx.AsyncClient, url: str, timeout: float) -> None:
        self.http = http
        self.base_url = url
        self.url = url
        self.timeout = timeout
        self.poll_timeout = timeout
        self.max_payload = 1_000_000
        self.paused = False
        self._post_lock = asyncio.Lock()

    def opened(self, sid: str, ping_interval: float, ping_timeout: float, max_payload: int) -> None:
        sep = "&" if "?" in self.base_url else "?"
        self.url = f"{self.base_url}{sep}sid={sid}"
        # The server holds a GET up to pingInterval before it pings; leave room for the timeout too.
        self.poll_timeout = ping_interval + ping_timeout + self.timeout
        self.max_payload = max_payload

    async def _request(self, method: str, timeout: float, content: str | None = None) -> bytes:
        try:
            if content is None:
                response = await self.http.get(self.url, timeout=timeout)
            else:
                response = await self.http.post(
                    self.url, content=content.encode(), timeout=timeout,
                    headers={"Content-Type": "text/plain;charset=UTF-8"},
                )
        except httpx.HTTPError as exc:
            raise TransportClosed(Reason.TRANSPORT_ERROR, f"{method} {self.url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise TransportClosed(
                Reason.TRANSPORT_ERROR, f"{method} {self.url}: HTTP {response.status_code} {response.text[:100]!r}"
            )
        return response.content

    async def receive(self) -> list[str | bytes]:
        body = await self._request("GET", self.poll_timeout)
        try:
            return decode_payload(body)
        except ProtocolError as exc:
            raise TransportClosed(Reason.PARSE_ERROR, str(exc)) from exc

    async def send(self, packets: list[str | bytes]) -> None:
        async with self._post_lock:
            await self._request("POST", self.timeout, encode_payload(packets))

    async def drained(self) -> None:
        """Wait until no POST is in flight (before the upgrade moves the session)."""
        async with self._post_lock:
            pass

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()


Transport = WebSocketTransport | PollingTransport
