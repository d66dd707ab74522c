"""Roomcast's uvicorn WebSocket protocol with ``websockets`` reading every frame, as it does where
aiohttp's compiled reader is not installed (``uvicorn_ws.WebSocketProtocol.fast_reader``)."""

from __future__ import annotations

from roomcast.asyncio.uvicorn_ws import WebSocketProtocol


class WebsocketsParserProtocol(WebSocketProtocol):
    fast_reader = False
