"""Roomcast: real-time two-way messaging for Python web apps (Socket.IO on ASGI)."""

from __future__ import annotations

from .asyncio.engine import EngineServer
from .asyncio.server import ASGIApp, AsyncNamespace, AsyncServer, Reason
from .exceptions import (
    BadNamespaceError,
    ConnectionError,
    ConnectionRefusedError,
    DisconnectedError,
    PayloadTooLarge,
    ProtocolError,
    RoomcastError,
    TimeoutError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ASGIApp",
    "AsyncNamespace",
    "AsyncServer",
    "BadNamespaceError",
    "ConnectionError",
    "ConnectionRefusedError",
    "DisconnectedError",
    "EngineServer",
    "PayloadTooLarge",
    "ProtocolError",
    "Reason",
    "RoomcastError",
    "TimeoutError",
    "__version__",
]
