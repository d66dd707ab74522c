"""The official socket.io-client (node) against Roomcast's server and Node's server.

Every test runs for server in ["roomcast", "node"] and for each client
transport path ["websocket", "polling", "upgrade"]; the app is the interop app
(tests/apps/interop_app.py, tests/interop/node/server.js).

Negative checks ("C did not receive it") use a barrier instead of a delay: the
server delivers one socket's packets in order, so once C has received a later
``broadcast_all`` marker, anything emitted to C before it would already be there.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.helpers.node_peer import NodePeer
from tests.helpers.servers import ServerProcess
from tests.helpers.interop import Connect, expected, transport_options

pytestmark = pytest.mark.interop

_markers = itertools.count()


def barrier(peer: NodePeer, sender: str, *clients: str) -> None:
    """Wait until ``clients`` (and ``sender``) got a fresh broadcast_all marker."""
    token = f"marker-{next(_markers)}"
    assert peer.call(sender, "broadcast_all", token) == ["sent"]
    for client in (sender, *clients):
        peer.wait_for({"client": client, "type": "event", "event": "broadcast_all", "args": [token]})


def server_reasons(peer: NodePeer, asker: str, sid: str, timeout: float = 5.0) -> list[str]:
    """The disconnect reasons the server recorded for ``sid``, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        [reasons] = peer.call(asker, "reasons", sid)
        if reasons or time.monotonic() > deadline:
            return list(reasons)
        # The server records the reason when it processes the disconnect,
        # which races with this question; ask again until the deadline.
        time.sleep(0.02)


def test_connect(peer: NodePeer, connect: Connect, transport: str) -> None:
    mark = peer.mark()
    client = connect()
    [connected] = peer.events(client, "connect", after=mark)
    assert connected["sid"] and isinstance(connected["sid"], str)
    [opened] = peer.events(client, "open", after=mark)
    assert opened["transport"] == ("polling" if transport == "upgrade" else transport)
    # A round trip also lets any (unwanted) upgrade report arrive first.
    [me] = peer.call(client, "whoami")
    assert me["sid"] == connected["sid"] == peer.state(client)["id"]
    upgrades = [r["transport"] for r in peer.events(client, "upgrade", after=mark)]
    if transport == "upgrade":
        assert upgrades == ["websocket"]
        assert peer.state(client)["transport"] == "websocket"
    else:
        assert upgrades == []
        assert peer.state(client)["transport"] == transport


def test_emits_right_after_connect_arrive_in_order(peer: NodePeer, server: ServerProcess, transport: str) -> None:
    """Emits sent at once, while an upgrade may be in flight, all arrive, in order."""
    client = peer.connect(server.url, **transport_options(transport))
    for i in range(20):
        peer.emit(client, "echo", i)
    echoes = peer.wait_for_count((client, "event", "echo"), 20)
    assert [r["args"] for r in echoes] == [[i] for i in range(20)]


def test_auth_and_query(peer: NodePeer, connect: Connect) -> None:
    auth = {"user": "ann", "n": 1, "tags": ["a", "b"]}
    client = connect(auth=auth, query={"x": "42"})
    [me] = peer.call(client, "whoami")
    assert me["auth"] == auth
    assert me["query"] == "42"


def test_no_auth_no_query(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    [me] = peer.call(client, "whoami")
    assert me["auth"] == {}
    assert me["query"] is None


def test_refusal_with_message_and_data(peer: NodePeer, connect: Connect) -> None:
    mark = peer.mark()
    client = connect(auth={"refuse": "banned"}, wait=False)
    error = peer.wait_for((client, "connect_error"), after=mark)
    assert error["message"] == "refused"
    assert error["data"] == {"reason": "banned"}
    assert peer.events(client, "connect", after=mark) == []
    assert peer.state(client)["connected"] is False


def test_unknown_namespace_refused(peer: NodePeer, connect: Connect, server: ServerProcess) -> None:
    mark = peer.mark()
    client = connect("/nope", wait=False)
    error = peer.wait_for((client, "connect_error"), after=mark)
    assert error["message"] == expected(server, "Invalid namespace")
    assert peer.events(client, "connect", after=mark) == []


def test_admin_namespace_requires_token(peer: NodePeer, connect: Connect) -> None:
    mark = peer.mark()
    wrong = connect("/admin", auth={"token": "guess"}, wait=False)
    error = peer.wait_for((wrong, "connect_error"), after=mark)
    assert error["message"] == "not authorized"
    assert error["data"] is None
    missing = connect("/admin", wait=False)
    assert peer.wait_for((missing, "connect_error"), after=mark)["message"] == "not authorized"
    admin = connect("/admin", auth={"token": "secret"})
    assert peer.call(admin, "echo", "hello", 2) == ["hello", 2]


def test_multiple_namespaces_on_one_connection(peer: NodePeer, connect: Connect) -> None:
    mark = peer.mark()
    main = connect()
    admin = connect("/admin", share=main, auth={"token": "secret"})
    dyn = connect("/dyn-7", share=main)
    reports = {c: peer.events(c, "connect", after=mark)[0] for c in (main, admin, dyn)}
    # One Engine.IO session carries the three namespaces, each with its own id.
    assert len({r["engine"] for r in reports.values()}) == 1
    assert len({r["sid"] for r in reports.values()}) == 3
    assert peer.call(main, "echo", "m") == ["m"]
    assert peer.call(admin, "echo", "a") == ["a"]
    assert peer.call(dyn, "echo", "d") == ["/dyn-7", "d"]
    # Leaving one namespace leaves the others (and the connection) working.
    peer.disconnect(admin)
    assert peer.call(main, "echo", "still") == ["still"]
    assert peer.call(dyn, "echo", "here") == ["/dyn-7", "here"]


def test_dynamic_namespace(peer: NodePeer, connect: Connect, server: ServerProcess) -> None:
    mark = peer.mark()
    first = connect("/dyn-1")
    second = connect("/dyn-12345")
    assert peer.call(first, "echo", 1, {"k": [2]}) == ["/dyn-1", 1, {"k": [2]}]
    assert peer.call(second, "echo") == ["/dyn-12345"]
    peer.emit(first, "echo", "x")
    echoed = peer.wait_for(lambda r: r.get("client") == first and r["type"] == "event" and r["args"][-1:] == ["x"])
    assert echoed["args"] == ["/dyn-1", "x"]
    bad = connect("/dyn-x", wait=False)
    assert peer.wait_for((bad, "connect_error"), after=mark)["message"] == expected(server, "Invalid namespace")


ARGS: list[list[Any]] = [
    [],
    ["text"],
    [0, -1, 2.5, True, False, None],
    ["unicode ✓ é 日本", {"nested": {"list": [1, [2, [3]]], "empty": {}}}],
    [{"a": None}, [], "", "x" * 10_000],
]


def test_client_to_server_with_ack(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    for args in ARGS:
        assert peer.call(client, "echo", *args) == args


def test_server_to_client_events(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    mark = peer.mark()
    for args in ARGS:
        peer.emit(client, "echo", *args)
    echoes = peer.wait_for_count((client, "event", "echo"), len(ARGS), after=mark)
    assert [r["args"] for r in echoes] == ARGS
    assert not any(r["with_ack"] for r in echoes)


def test_server_to_client_ack(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    peer.auto_reply(client, "question", "yes", 42, {"why": ["because"]})
    mark = peer.mark()
    peer.emit(client, "server_call", {"q": "ready?"})
    question = peer.wait_for((client, "event", "question"), after=mark)
    assert question["args"] == [{"q": "ready?"}]
    assert question["with_ack"] is True
    answer = peer.wait_for((client, "event", "answer"), after=mark)
    assert answer["args"] == ["yes", 42, {"why": ["because"]}]


def test_server_to_client_ack_without_args(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    peer.auto_reply(client, "question")
    mark = peer.mark()
    peer.emit(client, "server_call", 1)
    assert peer.wait_for((client, "event", "answer"), after=mark)["args"] == []


@pytest.mark.parametrize("size", [0, 1, 1000, 200_000])
def test_binary_client_to_server(peer: NodePeer, connect: Connect, size: int) -> None:
    client = connect()
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    [result] = peer.call(client, "bin_echo", data)
    assert result == {"size": size, "data": data}


def test_binary_mixed_with_json_both_ways(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    args = [b"\x00\xff", {"k": b"abc", "n": [1, b"", "s"]}, "text", [b"\x01", b"\x02"]]
    assert peer.call(client, "echo", *args) == args
    mark = peer.mark()
    peer.emit(client, "echo", *args)
    assert peer.wait_for((client, "event", "echo"), after=mark)["args"] == args


def test_binary_in_server_to_client_ack(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    peer.auto_reply(client, "question", b"\xde\xad\xbe\xef", {"nested": b"\x00"})
    mark = peer.mark()
    peer.emit(client, "server_call", b"\x01\x02")
    question = peer.wait_for((client, "event", "question"), after=mark)
    assert question["args"] == [b"\x01\x02"]
    answer = peer.wait_for((client, "event", "answer"), after=mark)
    assert answer["args"] == [b"\xde\xad\xbe\xef", {"nested": b"\x00"}]


def test_rooms(peer: NodePeer, connect: Connect) -> None:
    alice, bob, carol = connect(name="alice"), connect(name="bob"), connect(name="carol")
    assert peer.call(alice, "join", "r1") == ["joined"]
    assert peer.call(bob, "join", "r1") == ["joined"]
    mark = peer.mark()
    assert peer.call(carol, "to_room", "r1", "hello") == ["sent"]
    for member in (alice, bob):
        assert peer.wait_for((member, "event", "room_message"), after=mark)["args"] == ["hello"]
    barrier(peer, carol, alice, bob)
    assert peer.received(carol, "room_message", after=mark) == []

    assert peer.call(alice, "leave", "r1") == ["left"]
    mark = peer.mark()
    assert peer.call(alice, "to_room", "r1", "again") == ["sent"]
    assert peer.wait_for((bob, "event", "room_message"), after=mark)["args"] == ["again"]
    barrier(peer, alice, bob, carol)
    assert peer.received(alice, "room_message", after=mark) == []
    assert peer.received(carol, "room_message", after=mark) == []
    assert peer.received(bob, "room_message", after=mark) == [["again"]]


def test_sender_in_room_receives_its_room_message(peer: NodePeer, connect: Connect) -> None:
    alice = connect(name="alice")
    assert peer.call(alice, "join", "solo") == ["joined"]
    mark = peer.mark()
    assert peer.call(alice, "to_room", "solo", {"m": 1}) == ["sent"]
    assert peer.wait_for((alice, "event", "room_message"), after=mark)["args"] == [{"m": 1}]


def test_broadcast_excludes_sender(peer: NodePeer, connect: Connect) -> None:
    alice, bob, carol = connect(name="alice"), connect(name="bob"), connect(name="carol")
    mark = peer.mark()
    assert peer.call(alice, "broadcast", "news") == ["sent"]
    for other in (bob, carol):
        assert peer.wait_for((other, "event", "broadcast"), after=mark)["args"] == ["news"]
    barrier(peer, alice, bob, carol)
    assert peer.received(alice, "broadcast", after=mark) == []


def test_broadcast_all_includes_sender(peer: NodePeer, connect: Connect) -> None:
    alice, bob = connect(name="alice"), connect(name="bob")
    mark = peer.mark()
    assert peer.call(alice, "broadcast_all", {"all": True}) == ["sent"]
    for client in (alice, bob):
        assert peer.wait_for((client, "event", "broadcast_all"), after=mark)["args"] == [{"all": True}]


def test_broadcast_except_room(peer: NodePeer, connect: Connect) -> None:
    alice, bob, carol = connect(name="alice"), connect(name="bob"), connect(name="carol")
    assert peer.call(bob, "join", "vip") == ["joined"]
    mark = peer.mark()
    assert peer.call(alice, "broadcast_except_room", "vip", "not for vips") == ["sent"]
    for client in (alice, carol):
        assert peer.wait_for((client, "event", "broadcast_except_room"), after=mark)["args"] == ["not for vips"]
    barrier(peer, alice, bob, carol)
    assert peer.received(bob, "broadcast_except_room", after=mark) == []


def test_server_side_disconnect(peer: NodePeer, connect: Connect, server: ServerProcess) -> None:
    victim, observer = connect(name="victim"), connect(name="observer")
    [me] = peer.call(victim, "whoami")
    mark = peer.mark()
    peer.emit(victim, "disconnect_me")
    assert peer.wait_for((victim, "disconnect"), after=mark)["reason"] == "io server disconnect"
    assert peer.state(victim)["connected"] is False
    assert server_reasons(peer, observer, me["sid"]) == [expected(server, "server namespace disconnect")]
    # The client does not reconnect on its own after a server-side disconnect.
    assert peer.call(observer, "echo", "barrier") == ["barrier"]
    assert peer.events(victim, "connect", after=mark) == []


def test_client_side_disconnect_seen_by_server(peer: NodePeer, connect: Connect, server: ServerProcess) -> None:
    leaver, observer = connect(name="leaver"), connect(name="observer")
    [me] = peer.call(leaver, "whoami")
    mark = peer.mark()
    peer.disconnect(leaver)
    assert peer.wait_for((leaver, "disconnect"), after=mark)["reason"] == "io client disconnect"
    assert server_reasons(peer, observer, me["sid"]) == [expected(server, "client namespace disconnect")]


def test_reconnect_after_client_side_disconnect(peer: NodePeer, connect: Connect) -> None:
    client = connect()
    first = peer.state(client)["id"]
    peer.disconnect(client)
    mark = peer.mark()
    peer.open(client)
    again = peer.wait_for((client, "connect"), after=mark)
    assert again["sid"] != first
    assert peer.call(client, "echo", "back") == ["back"]
