"""A cluster of Roomcast servers through the real Redis: three uvicorn processes running
tests/apps/cluster_app.py, with Roomcast's Python client connected to each.

What one server does for its clients must reach the clients of every server: broadcasts (with
exclusions), rooms, namespaces, room changes and disconnects for sockets of another server, calls
and acknowledgements across servers, fetch_sockets/all_rooms/server_count, server-side emits, and
emitters that serve no clients (``roomcast.RedisManager``, ``AsyncRedisManager(write_only=True)``,
the Flask facade's ``SocketIO(message_queue=...)``). Garbage on the channels loses nothing.

"Did not arrive" is shown with ordering, not with sleeps: after the emit under test, a marker is
broadcast to everyone; a client that must not get the first sees the marker as its next message.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import roomcast
from tests.helpers.cluster import REDIS_URL, cluster_key, roomcast_node, wait_for_nodes
from tests.helpers.require import require_redis
from tests.helpers.servers import RoomcastServer

TIMEOUT = 5.0


class Peer:
    """Roomcast's blocking client, recording every ``news``/``answer``/``question`` it gets."""

    def __init__(self, server: RoomcastServer, namespaces: list[str] | None = None) -> None:
        self.client = roomcast.Client(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.changed = threading.Condition()
        self.disconnected = threading.Event()
        for event in ("news", "answer"):
            for namespace in namespaces or ["/"]:
                self.client.on(event, self._recorder(event, namespace), namespace=namespace)
        self.client.on("question", lambda payload: {"answer": payload, "by": self.sid})
        self.client.on("disconnect", lambda *args: self.disconnected.set())
        self.client.connect(server.url, transports=["websocket"], namespaces=namespaces or ["/"], wait_timeout=TIMEOUT)
        self.sid: str = self.client.get_sid()

    def _recorder(self, event: str, namespace: str) -> Callable[..., None]:
        name = event if namespace == "/" else f"{namespace} {event}"

        def record(*args: Any) -> None:
            with self.changed:
                self.events.append((name, args[0] if len(args) == 1 else list(args)))
                self.changed.notify_all()

        return record

    def call(self, event: str, *args: Any, namespace: str | None = None) -> Any:
        data = args[0] if len(args) == 1 else (tuple(args) if args else None)
        return self.client.call(event, data, namespace=namespace, timeout=TIMEOUT)

    def wait_for(self, expected: tuple[str, Any], timeout: float = TIMEOUT) -> list[tuple[str, Any]]:
        """Wait until ``expected`` has arrived; return what arrived before it (and drop both)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while expected not in self.events:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.sid} did not get {expected!r}; it got {self.events!r}")
                self.changed.wait(left)
            index = self.events.index(expected)
            before, self.events = self.events[:index], self.events[index + 1:]
            return before

    def wait_for_all(self, expected: list[tuple[str, Any]], timeout: float = TIMEOUT) -> list[tuple[str, Any]]:
        """Wait until every one of ``expected`` has arrived, in any order; return the rest (and drop all)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while any(item not in self.events for item in expected):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.sid} did not get all of {expected!r}; it got {self.events!r}")
                self.changed.wait(left)
            rest = [event for event in self.events if event not in expected]
            self.events = []
            return rest

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, list[RoomcastServer]]]:
    require_redis()
    key = cluster_key()
    nodes = [roomcast_node(key, name) for name in ("a", "b", "c")]
    try:
        for node in nodes:
            node.start()
        wait_for_nodes(key, 3)
        wait_for_nodes(key, 3, namespace="/chat")
        yield key, nodes
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def peers(cluster: tuple[str, list[RoomcastServer]]) -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(node: int, namespaces: list[str] | None = None) -> Peer:
        peer = Peer(cluster[1][node], namespaces)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def marker(sender: Peer, *receivers: Peer) -> None:
    """Broadcast a marker from ``sender``; each receiver's next message must be it."""
    tag = f"marker-{time.monotonic_ns()}"
    assert sender.call("shout", tag) == "sent"
    for peer in (sender, *receivers):
        assert peer.wait_for(("news", tag)) == [], f"{peer.sid} got more than the marker"


def test_broadcast_reaches_the_clients_of_every_server(peers: Callable[..., Peer]) -> None:
    a, b, c = peers(0), peers(1), peers(2)
    assert a.call("shout", {"from": "a", "n": [1, 2.5, None]}) == "sent"
    for peer in (a, b, c):
        assert peer.wait_for(("news", {"from": "a", "n": [1, 2.5, None]})) == []
    assert b.call("shout_others", "not to b") == "sent"
    for peer in (a, c):
        assert peer.wait_for(("news", "not to b")) == []
    marker(c, a, b)
    # A volatile broadcast reaches every server's clients that are reading (all of these are).
    assert c.call("shout_volatile", "volatile") == "sent"
    for peer in (a, b, c):
        assert peer.wait_for(("news", "volatile")) == []


def test_binary_arguments_cross_servers(peers: Callable[..., Peer]) -> None:
    a, b = peers(0), peers(1)
    assert a.call("shout", {"blob": b"\x00\x01\xff", "name": "bytes"}) == "sent"
    assert b.wait_for(("news", {"blob": b"\x00\x01\xff", "name": "bytes"})) == []


def test_rooms_span_servers_and_exclusions_hold(peers: Callable[..., Peer]) -> None:
    a, b, c, outsider = peers(0), peers(1), peers(2), peers(1)
    for peer in (a, b, c):
        assert peer.call("join", "lobby") == "joined"
    assert c.call("join", "vip") == "joined"
    assert outsider.call("to_room", "lobby", "to the lobby") == "sent"
    for peer in (a, b, c):
        assert peer.wait_for(("news", "to the lobby")) == []
    assert a.call("to_room_except", "lobby", "vip", "lobby but vip") == "sent"
    for peer in (a, b):
        assert peer.wait_for(("news", "lobby but vip")) == []
    assert b.call("leave", "lobby") == "left"
    assert a.call("to_room", "lobby", "after b left") == "sent"
    for peer in (a, c):
        assert peer.wait_for(("news", "after b left")) == []
    marker(a, b, c, outsider)


def test_namespaces_stay_apart(peers: Callable[..., Peer]) -> None:
    a, b = peers(0, ["/", "/chat"]), peers(2, ["/", "/chat"])
    assert a.call("shout", "in chat", namespace="/chat") == "sent"
    for peer in (a, b):
        assert peer.wait_for(("/chat news", "in chat")) == []
    marker(a, b)  # nothing reached '/'


def test_room_changes_and_disconnects_for_sockets_of_another_server(peers: Callable[..., Peer]) -> None:
    a, b, c = peers(0), peers(1), peers(2)
    assert a.call("put", b.sid, "moved-in") == "put"
    # The join travels through Redis: once the fetch (a request to every server) sees it, it is done.
    deadline = time.monotonic() + TIMEOUT
    while not any(s["sid"] == b.sid for s in a.call("fetch", "moved-in")):
        assert time.monotonic() < deadline, "b never joined the room through the cluster"
    assert c.call("to_room", "moved-in", "you were put here") == "sent"
    assert b.wait_for(("news", "you were put here")) == []
    assert c.call("move", "moved-in", "second") == "moved"  # sockets_join: everyone in moved-in joins second
    deadline = time.monotonic() + TIMEOUT
    while not a.call("fetch", "second"):
        assert time.monotonic() < deadline, "sockets_join did not reach b's server"
    assert a.call("clear_room", "moved-in") == "closed"
    deadline = time.monotonic() + TIMEOUT
    while a.call("fetch", "moved-in"):
        assert time.monotonic() < deadline, "close_room did not reach b's server"
    assert c.call("kick", b.sid) == "kicked"
    assert b.disconnected.wait(TIMEOUT), "the remote disconnect never reached b"
    marker(a, c)


def test_fetch_sockets_all_rooms_and_server_count_see_the_whole_cluster(peers: Callable[..., Peer]) -> None:
    a, b, c = peers(0), peers(1), peers(2)
    for peer, room in ((a, "fetch-x"), (b, "fetch-x"), (c, "fetch-y")):
        assert peer.call("join", room) == "joined"
    assert b.call("remember", {"name": "b"}) == "remembered"
    found = a.call("fetch", "fetch-x")
    assert [s["sid"] for s in found] == sorted([a.sid, b.sid])
    by_sid = {s["sid"]: s for s in found}
    assert by_sid[b.sid]["rooms"] == sorted([b.sid, "fetch-x"])
    assert by_sid[b.sid]["data"] == {"remembered": {"name": "b"}}
    everyone = {s["sid"] for s in c.call("fetch")}
    assert {a.sid, b.sid, c.sid} <= everyone
    rooms = set(b.call("all_rooms"))
    assert {"fetch-x", "fetch-y", a.sid, b.sid, c.sid} <= rooms
    assert [peer.call("count") for peer in (a, b, c)] == [3, 3, 3]


def test_calls_and_acknowledgements_cross_servers(peers: Callable[..., Peer]) -> None:
    a, b, c = peers(0), peers(1), peers(2)
    assert a.call("ask", b.sid, "ping?") == {"answer": "ping?", "by": b.sid}
    assert c.call("ask", a.sid, [1, 2]) == {"answer": [1, 2], "by": a.sid}
    for peer in (a, b, c):
        assert peer.call("join", "quiz") == "joined"
    assert a.call("ask_room", "quiz", "q1") == "asked"
    # one answer per member, from whichever server it is on, in the order the acks came back
    assert a.wait_for_all([("answer", [{"answer": "q1", "by": peer.sid}]) for peer in (a, b, c)]) == []
    # gathered into one list on the asking server (emit_with_ack), across the cluster
    expected = sorted(({"answer": "q2", "by": peer.sid} for peer in (a, b, c)), key=str)
    assert b.call("ask_all", "quiz", "q2") == expected
    assert c.call("ask_all", "nobody-in-it", "q3") == []


def test_server_side_emit_is_answered_by_every_other_server(peers: Callable[..., Peer]) -> None:
    b = peers(1)
    assert b.call("servers_ping") == ["pong from a to b", "pong from c to b"]


def test_emitters_that_serve_no_clients_reach_every_server(
    cluster: tuple[str, list[RoomcastServer]], peers: Callable[..., Peer]
) -> None:
    key = cluster[0]
    a, b = peers(0), peers(2)
    assert b.call("join", "emitted") == "joined"
    blocking = roomcast.RedisManager(REDIS_URL, channel=key)
    try:
        blocking.emit("news", "from a script")
        for peer in (a, b):
            assert peer.wait_for(("news", "from a script")) == []
        blocking.emit("news", "to a room", to="emitted")
        assert b.wait_for(("news", "to a room")) == []
        blocking.enter_room(a.sid, "/", "emitted")
        deadline = time.monotonic() + TIMEOUT
        while a.sid not in [s["sid"] for s in b.call("fetch", "emitted")]:
            assert time.monotonic() < deadline, "the emitter's enter_room never took effect"
        blocking.emit("news", "both now", room="emitted")
        for peer in (a, b):
            assert peer.wait_for(("news", "both now")) == []
    finally:
        blocking.close()

    async def emit_async() -> None:
        emitter = roomcast.AsyncRedisManager(REDIS_URL, channel=key, write_only=True)
        try:
            await emitter.emit("news", ("two", "args"), skip_sid=a.sid)
        finally:
            await emitter.stop()
            await emitter._close()

    asyncio.run(emit_async())
    assert b.wait_for(("news", ["two", "args"])) == []
    marker(b, a)


def test_flask_emitter_mode(cluster: tuple[str, list[RoomcastServer]], peers: Callable[..., Peer]) -> None:
    a = peers(1)
    socketio = roomcast.SocketIO(message_queue=REDIS_URL, channel=cluster[0])
    socketio.emit("news", {"from": "celery"})
    assert a.wait_for(("news", {"from": "celery"})) == []
    socketio.emit("news", "to a", to=a.sid)
    assert a.wait_for(("news", "to a")) == []
    with pytest.raises(ValueError, match="emitter"):
        socketio.emit("news", 1, callback=lambda *args: None)
    socketio.disconnect(a.sid)
    assert a.disconnected.wait(TIMEOUT)


def test_garbage_on_the_channels_loses_nothing(cluster: tuple[str, list[RoomcastServer]], peers: Callable[..., Peer]) -> None:
    import redis

    key = cluster[0]
    a, b = peers(0), peers(1)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for channel in (f"{key}#/#", f"{key}#/#{a.sid}#", f"{key}-request#/#", f"{key}-response#/#"):
            for junk in (b"", b"\xc1", b"{not json", b"\x93\xa1u\x01\x02", b'{"type":99}', b"\x92" * 100):
                client.publish(channel, junk)
    finally:
        client.close()
    marker(a, b)
    assert a.call("count") == 3
