"""Uvicorn's HTTP protocol (httptools) with its writes corked, for long-polling.

uvicorn writes a response's status line and headers, then its body, each with a ``write`` of its
own: two system calls, and two wake-ups of the client, per long-polling request. Here every write of
a connection is held until the end of the event loop's pass and written in one piece, as Roomcast's
WebSocket protocol does (:class:`roomcast.asyncio.uvicorn_ws._CorkedTransport`: at most 64 KiB held,
``close`` writes what is held first). ``roomcast run`` and ``socketio.run`` serve with it; with
uvicorn's own command line, pass ``--http roomcast.asyncio.uvicorn_http:HttpProtocol``. A WebSocket
upgrade hands the corked transport on to the WebSocket protocol, which keeps it.
"""

from __future__ import annotations

import asyncio
from typing import cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .uvicorn_ws import _CorkedTransport

__all__ = ["HttpProtocol"]


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol with corked writes (see the module doc)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        super().connection_made(raw)
        self.transport = cast(asyncio.Transport, _CorkedTransport(raw, self.loop))
