"""The interop harness itself: binary encoding, waits, errors, server processes.

If these fail, interop failures elsewhere may be the harness's fault.
"""

from __future__ import annotations

import pytest

from tests.helpers.node_peer import NodePeer, PeerError, decode, encode
from tests.helpers.require import require_node
from tests.helpers.servers import NodeServer, RoomcastServer, ServerStartError, port_accepts

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\xff",
        [b"a", {"b": [b"c", 1, None]}],
        {"text": "$bin"},
        ["plain", 1, 2.5, True, None, {}],
    ],
)
def test_binary_encoding_round_trip(value: object) -> None:
    assert decode(encode(value)) == value


def test_encoding_shape() -> None:
    assert encode([b"\x00\x01"]) == [{"$bin": "AAE="}]
    assert decode({"k": {"$bin": "AAE="}}) == {"k": b"\x00\x01"}


def test_unknown_client_is_an_error(peer: NodePeer) -> None:
    with pytest.raises(PeerError, match="unknown client"):
        peer.emit("no-such-client", "echo")


def test_wait_for_times_out_with_context(peer: NodePeer) -> None:
    with pytest.raises(PeerError, match="timed out waiting for nothing in particular"):
        peer.wait_for(lambda r: False, timeout=0.2, what="nothing in particular")


def test_connect_failure_raises(peer: NodePeer, node_server: NodeServer) -> None:
    with pytest.raises(PeerError, match="Invalid namespace"):
        peer.connect(node_server.url, "/nope", transports=["websocket"])


def test_restart_keeps_port() -> None:
    require_node()
    server = NodeServer()
    try:
        server.start()
        url = server.url
        server.restart()
        assert server.url == url and port_accepts(server.port)
        server.stop()
        assert not port_accepts(server.port)
    finally:
        server.close()


def test_start_failure_shows_output() -> None:
    server = RoomcastServer("tests.apps.no_such_module:app", start_timeout=10)
    try:
        with pytest.raises(ServerStartError, match="no_such_module"):
            server.start()
    finally:
        server.close()
