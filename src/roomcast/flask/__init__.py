"""Roomcast's Flask facade: Flask-SocketIO's API (``from roomcast import SocketIO, emit, ...``).

See docs/flask.md for the guide and docs/migrating.md for the differences from Flask-SocketIO.
"""

from __future__ import annotations

from ..exceptions import ConnectionRefusedError
from .extension import SocketIO
from .functions import call, close_room, disconnect, emit, join_room, leave_room, rooms, send
from .namespace import Namespace
from .test_client import SocketIOTestClient

__all__ = [
    "ConnectionRefusedError",
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
