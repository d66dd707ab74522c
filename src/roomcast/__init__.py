"""Roomcast: real-time two-way messaging for Python web apps (Socket.IO on ASGI)."""

from __future__ import annotations

from .adapters.base import PubSubManager, RemoteSocket
from .adapters.redis import AsyncRedisManager, RedisManager
from .asyncio.client import AsyncClient, AsyncClientNamespace
from .asyncio.simple_client import AsyncSimpleClient
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
from .sync.client import Client, ClientNamespace, SimpleClient

__version__ = "0.1.0.dev0"

# The Flask facade (Flask-SocketIO's names) loads on first use, so that `import roomcast` works
# without Flask installed.
_FLASK_NAMES = frozenset(
    {
        "SocketIO",
        "Namespace",
        "SocketIOTestClient",
        "emit",
        "send",
        "call",
        "join_room",
        "leave_room",
        "close_room",
        "rooms",
        "disconnect",
    }
)


def __getattr__(name: str) -> object:
    if name in _FLASK_NAMES:
        try:
            from . import flask as _flask
        except ImportError as exc:
            raise ImportError(
                f"roomcast.{name} is part of the Flask facade, which needs Flask and a2wsgi: "
                "pip install 'roomcast[flask]'"
            ) from exc
        value = getattr(_flask, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'roomcast' has no attribute {name!r}")

__all__ = [
    "ASGIApp",
    "AsyncClient",
    "AsyncClientNamespace",
    "AsyncNamespace",
    "AsyncRedisManager",
    "AsyncServer",
    "AsyncSimpleClient",
    "BadNamespaceError",
    "Client",
    "ClientNamespace",
    "ConnectionError",
    "ConnectionRefusedError",
    "DisconnectedError",
    "EngineServer",
    "PayloadTooLarge",
    "ProtocolError",
    "PubSubManager",
    "Reason",
    "RedisManager",
    "RemoteSocket",
    "RoomcastError",
    "SimpleClient",
    "TimeoutError",
    "__version__",
    # Flask facade (loaded lazily)
    "Namespace",
    "SocketIO",
    "SocketIOTestClient",
    "call",
    "close_room",
    "disconnect",
    "emit",
    "join_room",
    "leave_room",
    "rooms",
    "send",
]
