"""Fixtures for the interop suite: servers (Roomcast or Node) and the Node client peer.

Servers and the node client process are started once per session; each test
opens its own clients, closed at teardown. ``server`` is parametrised over
["roomcast", "node"], ``transport`` over the client's transport path:
"websocket" (WebSocket only), "polling" (long-polling only) and "upgrade"
(socket.io-client's default: polling, then upgrade to WebSocket).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

from tests.helpers.interop import SERVERS, TRANSPORTS, Connect, transport_options
from tests.helpers.node_peer import NodePeer
from tests.helpers.require import require_node, require_roomcast_server
from tests.helpers.servers import NodeServer, RoomcastServer, ServerProcess


S = TypeVar("S", bound=ServerProcess)


def _running(server: S) -> Iterator[S]:
    server.start()
    try:
        yield server
    finally:
        # Graceful stops are tested in test_reconnection.py; here speed wins.
        server.stop(kill=True)
        server.close()


@pytest.fixture(scope="session")
def node_server() -> Iterator[NodeServer]:
    require_node()
    yield from _running(NodeServer())


@pytest.fixture(scope="session")
def roomcast_server() -> Iterator[RoomcastServer]:
    require_roomcast_server()
    yield from _running(RoomcastServer())


@pytest.fixture(params=SERVERS, scope="session")
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """The server under test: Roomcast's (tests/apps/interop_app.py) or Node's."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def node_peer_process() -> Iterator[NodePeer]:
    require_node()
    with NodePeer() as peer:
        yield peer


@pytest.fixture
def peer(node_peer_process: NodePeer) -> Iterator[NodePeer]:
    """The shared socket.io-client process; this test's clients are closed afterwards."""
    node_peer_process.close_clients()
    yield node_peer_process
    node_peer_process.close_clients()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def connect(peer: NodePeer, server: ServerProcess, transport: str) -> Connect:
    """Open a client on ``server`` over ``transport``; returns its id.

    For "upgrade" it also waits until the connection has moved to WebSocket,
    so the test's later steps run on a known transport.
    """

    def open_client(namespace: str = "/", **kwargs: Any) -> str:
        mark = peer.mark()
        options = {**transport_options(transport), **kwargs}
        client = peer.connect(server.url, namespace, **options)
        if transport == "upgrade" and options.get("wait", True) and "share" not in options:
            peer.wait_for((client, "upgrade"), after=mark)
        return client

    return open_client
