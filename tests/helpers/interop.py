"""Shared pieces of the interop suite (tests/interop/): known differences, options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.helpers.servers import ServerProcess

SERVERS = ["roomcast", "node"]
TRANSPORTS = ["websocket", "polling", "upgrade"]
"""Client transport paths: WebSocket only, long-polling only, and socket.io-client's
default (polling, then upgrade to WebSocket)."""

# Where python-socketio, the stand-in that validates this harness until
# Roomcast's server exists (INTEROP_IMPL=python-socketio), knowingly differs
# from Node's socket.io. Keys are Node's values, which Roomcast must match.
PYTHON_SOCKETIO_DIFFERENCES: dict[Any, Any] = {
    # It answers an unknown namespace with the plain string "Unable to connect"
    # as CONNECT_ERROR data; socket.io-client reads data.message, so "".
    "Invalid namespace": "",
    # Its own names for the reasons a server sees.
    "client namespace disconnect": "client disconnect",
    "server namespace disconnect": "server disconnect",
}


# Behaviour of python-socketio's server that Roomcast must not copy; tests
# that would show it are expected to fail (xfail) in that mode only.
PYTHON_SOCKETIO_KNOWN_ISSUES = {
    # A client that closes a polling session (close packet in a POST) waits for
    # its pending long-poll GET, which python-socketio only ends at the next
    # ping (about 30 s); Node ends it at once.
    "polling close holds the pending poll",
    # A polling client that closes its Engine.IO session (close packet) is
    # reported with reason "client disconnect"; Node says "transport close".
    "polling close reported as client disconnect",
}


def known_issue(server: ServerProcess, issue: str) -> bool:
    """Whether ``server`` is the python-socketio stand-in with this known issue."""
    assert issue in PYTHON_SOCKETIO_KNOWN_ISSUES, issue
    return getattr(server, "impl", None) == "python-socketio"


def expected(server: ServerProcess, node_value: Any) -> Any:
    """What ``server`` should produce where Node's server produces ``node_value``."""
    if getattr(server, "impl", None) == "python-socketio":
        return PYTHON_SOCKETIO_DIFFERENCES.get(node_value, node_value)
    return node_value


def transport_options(transport: str) -> dict[str, Any]:
    """socket.io-client options for a transport path."""
    if transport == "upgrade":
        return {}  # the default: ["polling", "websocket"]
    return {"transports": [transport]}


Connect = Callable[..., str]
"""The ``connect`` fixture: ``connect(namespace="/", **NodePeer.connect options) -> client id``."""
