"""Roomcast and Node's socket.io in one cluster through the real Redis: a Roomcast node
(tests/apps/cluster_app.py under uvicorn) and a Node node (tests/cluster/node/server.js, socket.io
4.8 with ``@socket.io/redis-adapter`` 8) share a channel key, with official socket.io-client sockets
(NodePeer) connected to each.

Checked both ways where it makes sense: broadcasts (binary too; ``skip_sid``/``socket.broadcast``),
emits to a room, to a remote sid and to a room except another, namespaces, remote room joins and
disconnects, fetchSockets (rooms and data), allRooms, serverCount, acknowledged emits to a socket and
to a room of both servers, server-side emits with acks; and the emitters that serve no clients:
Node's ``@socket.io/redis-emitter`` 5 towards Roomcast's clients (tests/cluster/node/emit.js) and
``roomcast.RedisManager`` towards Node's.

One pair of servers serves the module; each test opens its own sockets and rooms. "Did not arrive"
is shown with ordering, not with sleeps: after the emit under test the same sender broadcasts a
marker, and a socket that must not get the first has no ``news`` before the marker (a server writes
one connection's packets in order; one publisher's messages reach a subscriber in order).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import roomcast
from tests.helpers import ROOT
from tests.helpers.cluster import REDIS_URL, cluster_key, node_node, roomcast_node, wait_for_nodes
from tests.helpers.node_peer import NodePeer
from tests.helpers.require import require, require_node, require_redis
from tests.helpers.servers import ServerProcess

EMIT_SCRIPT = ROOT / "tests" / "cluster" / "node" / "emit.js"
SERVERS = ("roomcast", "node")

_names = itertools.count()


def fresh(what: str) -> str:
    """A room name or payload no other test uses."""
    return f"{what}-{next(_names)}"


@dataclass
class Sock:
    """One socket.io-client socket of the peer, connected to ``server``."""

    peer: NodePeer
    id: str
    sid: str
    server: str

    def call(self, event: str, *args: Any) -> Any:
        """Emit with an ack; the ack's (single) value."""
        [value] = self.peer.call(self.id, event, *args)
        return value

    def news(self, payload: Any, after: int) -> dict[str, Any]:
        """Wait for the ``news`` carrying ``payload`` (after transcript position ``after``)."""
        return self.peer.wait_for(
            {"client": self.id, "type": "event", "event": "news", "args": [payload]},
            after=after, what=f"{self.id} ({self.server}) to get news {payload!r}",
        )

    def news_until(self, payload: Any, after: int) -> list[Any]:
        """The ``news`` payloads this socket got after ``after`` and before ``payload`` (awaited)."""
        stop = self.news(payload, after)["n"]
        reports = self.peer.events(self.id, "event", after)
        return [r["args"][0] for r in reports if r["event"] == "news" and r["n"] < stop]


@dataclass
class Cluster:
    key: str
    servers: dict[str, ServerProcess]
    node: str  # the node executable


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_redis()
    node = require_node()
    for package in ("@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis"):
        installed = (ROOT / "node_modules" / package / "package.json").is_file()
        require(installed, f"npm package {package} is missing: run `npm ci` at the repository root")
    key = cluster_key()
    servers: dict[str, ServerProcess] = {"roomcast": roomcast_node(key), "node": node_node(key)}
    try:
        for server in servers.values():
            server.start()
        wait_for_nodes(key, 2)
        wait_for_nodes(key, 1, namespace="/chat")  # (Node's; Roomcast's joins with its first /chat socket)
        yield Cluster(key, servers, node)
    finally:
        for server in servers.values():
            server.stop(kill=True)
            server.close()


@pytest.fixture(scope="module")
def peer_process(cluster: Cluster) -> Iterator[NodePeer]:
    with NodePeer() as peer:
        yield peer


@pytest.fixture
def peer(peer_process: NodePeer) -> Iterator[NodePeer]:
    """The shared socket.io-client process; this test's sockets are closed afterwards."""
    yield peer_process
    peer_process.close_clients()


Connect = Callable[..., Sock]


@pytest.fixture
def connect(peer: NodePeer, cluster: Cluster) -> Connect:
    """``connect("roomcast" | "node", namespace="/", share=None)``: a new socket over WebSocket
    (``share``: multiplexed on that socket's connection)."""

    def open_socket(server: str, namespace: str = "/", share: Sock | None = None) -> Sock:
        mark = peer.mark()
        url = None if share is not None else cluster.servers[server].url
        client = peer.connect(url, namespace, transports=["websocket"], share=share.id if share else None, name=server)
        connected = peer.wait_for((client, "connect"), after=mark)
        return Sock(peer, client, connected["sid"], server)

    return open_socket


def marker(sender: Sock, *receivers: Sock, after: int, expect: dict[str, list[Any]] | None = None) -> None:
    """``sender`` shouts a marker to everyone; each of ``receivers`` got, since ``after`` and before
    the marker, exactly the news payloads ``expect`` lists for its id (none when it is not named)."""
    tag = fresh("marker")
    assert sender.call("shout", tag) == "sent"
    for sock in receivers:
        assert sock.news_until(tag, after) == (expect or {}).get(sock.id, []), f"{sock.id} ({sock.server})"


def other(server: str) -> str:
    return "node" if server == "roomcast" else "roomcast"


def test_broadcast_reaches_the_clients_of_both_servers(peer: NodePeer, connect: Connect) -> None:
    a, n = connect("roomcast"), connect("node")
    for sender in (a, n):
        mark = peer.mark()
        payload = {"from": sender.server, "n": [1, 2.5, None, True], "text": fresh("héllo"), "bin": b"\x00\xff"}
        assert sender.call("shout", payload) == "sent"
        marker(sender, a, n, after=mark, expect={a.id: [payload], n.id: [payload]})


@pytest.mark.parametrize("side", SERVERS)
def test_shout_others_skips_the_sender(peer: NodePeer, connect: Connect, side: str) -> None:
    sender, here, there = connect(side), connect(side), connect(other(side))
    mark = peer.mark()
    payload = fresh("others")
    assert sender.call("shout_others", payload) == "sent"
    marker(sender, sender, here, there, after=mark, expect={here.id: [payload], there.id: [payload]})


@pytest.mark.parametrize("side", SERVERS)
def test_room_emit_reaches_members_on_both_servers_and_nobody_else(peer: NodePeer, connect: Connect, side: str) -> None:
    room = fresh("room")
    members = [connect("roomcast"), connect("node")]
    outsiders = [connect("roomcast"), connect("node")]
    for sock in members:
        assert sock.call("join", room) == "joined"
    sender = outsiders[0] if side == "roomcast" else outsiders[1]
    mark = peer.mark()
    payload = fresh("to-room")
    assert sender.call("to_room", room, payload) == "sent"
    marker(sender, *members, *outsiders, after=mark, expect={m.id: [payload] for m in members})


@pytest.mark.parametrize("side", SERVERS)
def test_emit_to_a_sid_of_the_other_server(peer: NodePeer, connect: Connect, side: str) -> None:
    sender, target, bystander = connect(side), connect(other(side)), connect(other(side))
    mark = peer.mark()
    payload = fresh("to-sid")
    assert sender.call("to_room", target.sid, payload) == "sent"
    marker(sender, sender, target, bystander, after=mark, expect={target.id: [payload]})


@pytest.mark.parametrize("side", SERVERS)
def test_room_emit_except_a_room_spanning_both_servers(peer: NodePeer, connect: Connect, side: str) -> None:
    room, excluded = fresh("room"), fresh("excluded")
    kept = [connect("roomcast"), connect("node")]
    skipped = [connect("roomcast"), connect("node")]
    for sock in kept + skipped:
        assert sock.call("join", room) == "joined"
    for sock in skipped:
        assert sock.call("join", excluded) == "joined"
    sender = kept[0] if side == "roomcast" else kept[1]
    mark = peer.mark()
    payload = fresh("except")
    assert sender.call("to_room_except", room, excluded, payload) == "sent"
    marker(sender, *kept, *skipped, after=mark, expect={k.id: [payload] for k in kept})


@pytest.mark.parametrize("side", SERVERS)
def test_chat_broadcast_stays_in_chat(peer: NodePeer, connect: Connect, side: str) -> None:
    # Each '/chat' socket shares its connection with a '/' socket: a '/chat' news wrongly given to
    # '/' would come before the '/' marker on that connection.
    roots = {server: connect(server) for server in SERVERS}
    chats = {server: connect(server, "/chat", share=roots[server]) for server in SERVERS}
    mark = peer.mark()
    payload = fresh("chat")
    assert chats[side].call("shout", payload) == "sent"
    for sock in chats.values():
        sock.news(payload, mark)
    marker(roots[side], *roots.values(), after=mark)


@pytest.mark.parametrize("side", SERVERS)
def test_remote_room_join_then_room_emit(peer: NodePeer, connect: Connect, side: str) -> None:
    asker, target, bystander = connect(side), connect(other(side)), connect(other(side))
    room = fresh("put")
    assert asker.call("put", target.sid, room) == "put"
    mark = peer.mark()
    payload = fresh("after-put")
    assert asker.call("to_room", room, payload) == "sent"
    marker(asker, asker, target, bystander, after=mark, expect={target.id: [payload]})
    assert [s["sid"] for s in asker.call("fetch", room)] == [target.sid]


@pytest.mark.parametrize("side", SERVERS)
def test_remote_disconnect(peer: NodePeer, connect: Connect, side: str) -> None:
    asker, target, bystander = connect(side), connect(other(side)), connect(other(side))
    mark = peer.mark()
    assert asker.call("kick", target.sid) == "kicked"
    assert peer.wait_for((target.id, "disconnect"), after=mark)["reason"] == "io server disconnect"
    marker(asker, bystander, after=mark)
    assert peer.events(bystander.id, "disconnect", after=mark) == []
    assert peer.state(bystander.id)["connected"] is True


def test_fetch_sockets_lists_the_sockets_of_both_servers(peer: NodePeer, connect: Connect) -> None:
    room = fresh("fetch")
    socks = [connect("roomcast"), connect("node"), connect("roomcast"), connect("node")]
    data = {s.sid: {"who": s.server, "i": i, "list": [1, "two", None]} for i, s in enumerate(socks[:2])}
    for sock in socks[:2]:
        assert sock.call("join", room) == "joined"
        assert sock.call("remember", data[sock.sid]) == "remembered"
    expected = [{"sid": sid, "rooms": sorted([room, sid]), "data": {"remembered": data[sid]}} for sid in sorted(data)]
    for asker in socks:
        assert asker.call("fetch", room) == expected, f"fetch from {asker.server}"
    # Everyone: the others too, in their sid rooms alone, with empty data.
    for asker in socks[:2]:
        everyone = {s["sid"]: s for s in asker.call("fetch")}
        assert {s.sid for s in socks} <= everyone.keys()
        for sock in socks[2:]:
            assert everyone[sock.sid] == {"sid": sock.sid, "rooms": [sock.sid], "data": {}}, sock.server


def test_all_rooms_and_server_count(peer: NodePeer, connect: Connect) -> None:
    a, n = connect("roomcast"), connect("node")
    rooms = {"roomcast": fresh("only-roomcast"), "node": fresh("only-node")}
    for sock in (a, n):
        assert sock.call("join", rooms[sock.server]) == "joined"
    for asker in (a, n):
        assert {rooms["roomcast"], rooms["node"], a.sid, n.sid} <= set(asker.call("all_rooms")), asker.server
        assert asker.call("count") == 2, asker.server


@pytest.mark.parametrize("side", SERVERS)
def test_ask_a_socket_of_the_other_server(peer: NodePeer, connect: Connect, side: str) -> None:
    asker, target = connect(side), connect(other(side))
    payload = {"q": fresh("question"), "n": 41}
    answer = {"answer": payload, "by": target.sid}  # (the client answers with what it was asked)
    peer.auto_reply(target.id, "question", answer)
    mark = peer.mark()
    assert asker.call("ask", target.sid, payload) == answer
    asked = peer.wait_for((target.id, "event", "question"), after=mark)
    assert asked["args"] == [payload] and asked["with_ack"] is True
    assert peer.wait_for((target.id, "replied", "question"), after=mark)["args"] == [answer]


@pytest.mark.parametrize("side", SERVERS)
def test_ask_a_room_spanning_both_servers(peer: NodePeer, connect: Connect, side: str) -> None:
    asker, members = connect(side), [connect("roomcast"), connect("node")]
    room, payload = fresh("ask-room"), fresh("question")
    for sock in members:
        assert sock.call("join", room) == "joined"
        peer.auto_reply(sock.id, "question", {"answer": payload, "by": sock.sid})
    mark = peer.mark()
    assert asker.call("ask_room", room, payload) == "asked"
    answers = peer.wait_for_count((asker.id, "event", "answer"), 2, after=mark)
    assert sorted((r["args"] for r in answers), key=str) == sorted(
        ([[{"answer": payload, "by": m.sid}]] for m in members), key=str
    )
    assert peer.events(asker.id, "event", after=mark) == answers  # (the asker, no member, was not asked)


@pytest.mark.parametrize("side", SERVERS)
def test_gather_the_answers_of_a_room_spanning_both_servers(peer: NodePeer, connect: Connect, side: str) -> None:
    """Roomcast's emit_with_ack and Node's emitWithAck, each gathering acks from both servers."""
    asker, members = connect(side), [connect("roomcast"), connect("node")]
    room, payload = fresh("ask-all"), fresh("question")
    for sock in members:
        assert sock.call("join", room) == "joined"
        peer.auto_reply(sock.id, "question", {"answer": payload, "by": sock.sid})
    answers = asker.call("ask_all", room, payload)
    assert sorted(answers, key=str) == sorted(({"answer": payload, "by": m.sid} for m in members), key=str)


@pytest.mark.parametrize("side", SERVERS)
def test_server_side_emit_with_ack(connect: Connect, side: str) -> None:
    asker = connect(side)
    assert asker.call("servers_ping") == [f"pong from {other(side)} to {side}"]


def node_emit(cluster: Cluster, *steps: dict[str, Any]) -> None:
    """Publish ``steps`` with Node's redis-emitter (tests/cluster/node/emit.js), in order."""
    env = {**os.environ, "CLUSTER_KEY": cluster.key, "REDIS_URL": REDIS_URL}
    argv = [cluster.node, str(EMIT_SCRIPT), json.dumps(steps)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


def test_node_emitter_reaches_roomcast_clients(peer: NodePeer, cluster: Cluster, connect: Connect) -> None:
    room = fresh("emitter-room")
    member, outsider = connect("roomcast"), connect("roomcast")
    chat = connect("roomcast", "/chat", share=outsider)
    node_member = connect("node")  # (Node's own clients, as a control)
    for sock in (member, node_member):
        assert sock.call("join", room) == "joined"
    mark = peer.mark()
    everyone, to_room, to_chat, tag = fresh("all"), fresh("room"), fresh("chat"), fresh("marker")
    node_emit(
        cluster,
        {"event": "news", "args": [everyone]},
        {"to": room, "event": "news", "args": [to_room]},
        {"nsp": "/chat", "event": "news", "args": [to_chat]},
        {"event": "news", "args": [tag]},
    )
    assert member.news_until(tag, mark) == [everyone, to_room]
    assert node_member.news_until(tag, mark) == [everyone, to_room]
    assert outsider.news_until(tag, mark) == [everyone]
    assert chat.news_until(to_chat, mark) == []


def test_node_emitter_joins_and_disconnects_roomcast_sockets(
    peer: NodePeer, cluster: Cluster, connect: Connect
) -> None:
    joiner, leaver, bystander = connect("roomcast"), connect("roomcast"), connect("roomcast")
    room, payload, tag = fresh("emitter-join"), fresh("joined"), fresh("marker")
    mark = peer.mark()
    node_emit(
        cluster,
        {"to": joiner.sid, "socketsJoin": room},
        {"to": room, "event": "news", "args": [payload]},
        {"to": leaver.sid, "disconnectSockets": True},
        {"event": "news", "args": [tag]},
    )
    assert joiner.news_until(tag, mark) == [payload]
    assert bystander.news_until(tag, mark) == []
    assert peer.wait_for((leaver.id, "disconnect"), after=mark)["reason"] == "io server disconnect"
    assert peer.events(bystander.id, "disconnect", after=mark) == []


def test_roomcast_redis_manager_reaches_node_clients(peer: NodePeer, cluster: Cluster, connect: Connect) -> None:
    joiner, outsider, leaver = connect("node"), connect("node"), connect("node")
    chat = connect("node", "/chat", share=outsider)
    roomcast_client = connect("roomcast")  # (Roomcast's own clients, as a control)
    room = fresh("manager-room")
    everyone, to_room, to_chat, tag = fresh("all"), fresh("room"), fresh("chat"), fresh("marker")
    mark = peer.mark()
    manager = roomcast.RedisManager(REDIS_URL, channel=cluster.key)
    try:
        manager.emit("news", everyone)
        manager.enter_room(joiner.sid, "/", room)
        manager.emit("news", to_room, to=room)
        manager.emit("news", to_chat, namespace="/chat")
        manager.disconnect(leaver.sid)
        manager.emit("news", tag)
    finally:
        manager.close()
    assert joiner.news_until(tag, mark) == [everyone, to_room]
    assert outsider.news_until(tag, mark) == [everyone]
    assert roomcast_client.news_until(tag, mark) == [everyone]
    assert chat.news_until(to_chat, mark) == []
    assert peer.wait_for((leaver.id, "disconnect"), after=mark)["reason"] == "io server disconnect"
    assert peer.events(outsider.id, "disconnect", after=mark) == []
