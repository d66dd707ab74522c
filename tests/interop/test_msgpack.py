"""``AsyncServer(serializer="msgpack")`` with the official client and its MessagePack parser
(npm ``socket.io-msgpack-parser``, the client's ``parser`` option), over WebSocket, long-polling and
the upgrade: connect (with auth, and a refusal), events and acks both ways, binary values inside
them, rooms, a second namespace; and a text packet, which a MessagePack connection refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.interop import TRANSPORTS, transport_options
from tests.helpers.node_peer import NodePeer, PeerError
from tests.helpers.require import require_node
from tests.helpers.servers import RoomcastServer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def msgpack_server() -> Iterator[RoomcastServer]:
    require_node()
    with RoomcastServer("tests.apps.msgpack_app:app", name="msgpack") as server:
        yield server  # type: ignore[misc]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_official_client_with_its_msgpack_parser(
    peer: NodePeer, msgpack_server: RoomcastServer, transport: str
) -> None:
    options = {**transport_options(transport), "parser": "msgpack"}
    mark = peer.mark()
    a = peer.connect(msgpack_server.url, auth={"token": "x"}, **options)
    if transport == "upgrade":
        peer.wait_for((a, "upgrade"), after=mark)
    b = peer.connect(msgpack_server.url, **options)
    assert peer.call(a, "echo", 1, "two", {"three": [3.5, None, True]}) == [1, "two", {"three": [3.5, None, True]}]
    blob = bytes(range(256))
    assert peer.call(a, "echo", blob, {"nested": blob}) == [blob, {"nested": blob}]
    peer.wait_for({"client": a, "type": "event", "event": "echo", "args": [blob, {"nested": blob}]})
    for client in (a, b):
        assert peer.call(client, "join", "room") == ["joined"]
    assert peer.call(a, "shout", "room", {"n": 1, "bin": b"\x00\x01"}) == ["sent"]
    for client in (a, b):
        peer.wait_for({"client": client, "type": "event", "event": "news", "args": [{"n": 1, "bin": b"\x00\x01"}]})
    peer.auto_reply(b, "question", "answered in msgpack")
    assert peer.call(b, "ask", "q?") == ["answered in msgpack"]
    chat = peer.connect(msgpack_server.url, "/chat", share=a)
    assert peer.call(chat, "echo", "in chat") == ["in chat"]
    with pytest.raises(PeerError, match="refused"):
        peer.connect(msgpack_server.url, auth={"refuse": "because"}, **options)


def test_a_text_packet_is_refused(msgpack_server: RoomcastServer) -> None:
    import websockets.sync.client as ws_client

    url = msgpack_server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)  # the Engine.IO handshake (text, as always)
        ws.send("40")  # a Socket.IO CONNECT in the text format
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=5)
    assert "Timeout" not in type(closed.value).__name__  # closed, not left waiting
