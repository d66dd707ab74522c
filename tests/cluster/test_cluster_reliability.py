"""A Roomcast cluster when things go wrong, with real uvicorn processes and the real Redis.

- Redis goes away and comes back for one node (a TCP proxy in this process sits between that node
  and Redis): while cut off, the node still serves its own clients and hears nothing from the
  others; once the link is back it subscribes again by itself, broadcasts cross both ways, what it
  published meanwhile arrives at most once, and it logs a few one-line warnings, no tracebacks.
- A node hangs (SIGSTOP), then dies (SIGKILL): requests to the cluster fail after
  ``requests_timeout`` with a clear error while Redis still counts the hung node; once it is dead,
  server_count drops to the survivors, fetch_sockets/all_rooms answer promptly without it, and a
  ``call`` to one of its sids fails at once with "no connected client".
- The Flask facade in a cluster (tests/apps/flask_cluster_app.py, plain ``def`` handlers) next to a
  Roomcast node (tests/apps/cluster_app.py): broadcasts, room emits, remote joins and disconnects
  and an emit from a background thread reach the clients of both nodes.

"Did not arrive" is shown with ordering, as in tests/cluster/test_cluster.py (``marker``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import pytest

from tests.cluster.test_cluster import Peer, marker
from tests.helpers import wait_until
from tests.helpers.cluster import REDIS_URL, cluster_key, roomcast_node, subscribers, wait_for_nodes
from tests.helpers.require import require_redis
from tests.helpers.servers import HOST, RoomcastServer

TIMEOUT = 5.0
REQUESTS_TIMEOUT = 5.0  # AsyncRedisManager's default, which tests/apps/cluster_app.py keeps
MAX_WARNINGS = 4  # lines a node may log for one outage: one of each kind (see test 1)


class RedisProxy:
    """127.0.0.1:<port> forwarding to Redis, run on an event loop of its own thread.

    ``cut()`` aborts every forwarded connection on both sides (the node sees a reset; Redis drops the
    client and its subscriptions) and from then on refuses new ones: they are accepted, reset at once
    and counted in ``refused``. ``restore()`` forwards new connections again.
    """

    def __init__(self, upstream_port: int = 6379) -> None:
        self.upstream_port = upstream_port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))  # bound now: the port is ours, no race for a "free" one
        self.port: int = self._sock.getsockname()[1]
        self.url = f"redis://{HOST}:{self.port}/0"
        self.forwarded = 0
        self.refused = 0
        self._accepting = True
        self._links: set[asyncio.WriteTransport] = set()
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="redis-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> RedisProxy:
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._accept, sock=self._sock))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)
        self._loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(TIMEOUT)

    def _count(self, what: str) -> None:
        with self._changed:
            setattr(self, what, getattr(self, what) + 1)
            self._changed.notify_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._accepting:
            writer.transport.abort()
            self._count("refused")
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        if not self._accepting:  # cut while connecting upstream
            for transport in (writer.transport, up_writer.transport):
                transport.abort()
            self._count("refused")
            return
        pair = (writer.transport, up_writer.transport)
        self._links.update(pair)
        self._count("forwarded")
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)), asyncio.ensure_future(self._pipe(up_reader, writer))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for transport in pair:
                transport.abort()
                self._links.discard(transport)
            for pipe in pipes:
                pipe.cancel()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:  # (reset: the link ends)
            pass

    async def _cut(self) -> None:
        self._accepting = False
        for transport in list(self._links):
            transport.abort()

    async def _shutdown(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self._run(self._cut())

    def restore(self) -> None:
        self._accepting = True

    def wait_refused(self, count: int, timeout: float = TIMEOUT) -> None:
        """Wait until ``count`` connection attempts were refused since the proxy started."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.refused < count:
                left = deadline - time.monotonic()
                assert left > 0, f"only {self.refused} of {count} connection attempts came while cut"
                self._changed.wait(left)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """What a test starts (proxies, nodes, clients), closed in reverse order at its end."""
    require_redis()
    with ExitStack() as stack:
        yield stack


def started(stack: ExitStack, node: RoomcastServer) -> RoomcastServer:
    stack.callback(node.close)
    node.start()
    return node


def peer(stack: ExitStack, node: RoomcastServer) -> Peer:
    made = Peer(node)
    stack.callback(made.close)
    return made


def timed_call(client: Peer, event: str, *args: Any) -> tuple[Any, float]:
    """``client.call(event, *args)`` and how long it took."""
    began = time.monotonic()
    result = client.call(event, *args)
    return result, time.monotonic() - began


def wait_for_log(node: RoomcastServer, text: str, since: int, timeout: float) -> float:
    """Wait until ``text`` is in ``node``'s log past offset ``since``; return how long that took."""
    began = time.monotonic()
    wait_until(lambda: text in node.log_text(since), timeout, f"{text!r} in the log of {node.name}")
    return time.monotonic() - began


def test_a_node_cut_off_from_redis_serves_its_clients_and_rejoins(stack: ExitStack) -> None:
    key = cluster_key()
    proxy = stack.enter_context(RedisProxy())
    cut_node = started(stack, roomcast_node(key, "a", env={"REDIS_URL": proxy.url}))
    other = started(stack, roomcast_node(key, "b"))
    wait_for_nodes(key, 2)
    a1, a2, b1 = peer(stack, cut_node), peer(stack, cut_node), peer(stack, other)
    marker(a1, a2, b1)
    marker(b1, a1, a2)
    assert proxy.forwarded >= 2, "node a should reach Redis through the proxy (a subscriber and a publisher)"
    since = cut_node.log_size()

    proxy.cut()
    wait_until(lambda: subscribers(key) == 1, TIMEOUT, "Redis dropping node a's subscriptions")
    published_while_cut = [("news", f"a while cut {n}") for n in range(3)]
    for item in published_while_cut:  # a's own clients are still served
        assert a1.call("shout", item[1]) == "sent"
        for client in (a1, a2):
            assert client.wait_for(item) == []
    assert a2.call("whoami") == [a2.sid, "a"]
    assert b1.call("shout", "b while cut") == "sent"  # published while nobody on a hears
    assert b1.wait_for(("news", "b while cut")) == []
    # The outage lasts until node a was refused several times (its subscriber and its publisher
    # retry, backing off: about 2 s).
    proxy.wait_refused(8)

    proxy.restore()
    wait_for_nodes(key, 2, timeout=10.0)  # node a subscribed again, by itself
    tag = ("news", "a after the cut")
    assert a1.call("shout", tag[1]) == "sent"
    for client in (a1, a2):
        assert client.wait_for(tag) == []
    # What a published while cut was queued: it arrives before what it published later, or never;
    # in any case at most once and nothing else.
    late = b1.wait_for(tag)
    assert all(item in published_while_cut for item in late) and len(set(late)) == len(late), late
    marker(b1, a1, a2)  # b's emit while a was cut is gone, and nothing else came
    marker(a2, a1, b1)
    assert cut_node.running and a1.client.connected

    # Node a's log for the whole outage: only the cluster manager's one-line warnings, each once per
    # outage ("lost the subscription", "publishing failed", "publishing again", "subscribed again"),
    # no traceback and nothing else.
    log = cut_node.log_text(since)
    lines = [line for line in log.splitlines() if line.strip()]
    assert "Traceback" not in log, log
    assert all(line.startswith("cluster: ") and len(line) < 240 for line in lines), log
    assert any(line.startswith("cluster: lost the subscription") for line in lines), log
    assert any(line.startswith("cluster: subscribed again") for line in lines), log
    assert len(lines) <= MAX_WARNINGS, log


def test_a_node_that_hangs_then_dies_leaves_the_survivors_working(stack: ExitStack) -> None:
    key = cluster_key()
    first, second, doomed = (started(stack, roomcast_node(key, name)) for name in ("a", "b", "c"))
    wait_for_nodes(key, 3)
    a1, a2, b1, c1 = peer(stack, first), peer(stack, first), peer(stack, second), peer(stack, doomed)
    assert c1.call("join", "doomed room") == "joined"
    assert {a1.sid, b1.sid, c1.sid} <= {s["sid"] for s in a1.call("fetch")}
    assert a1.call("count") == 3
    assert doomed.proc is not None
    since = first.log_size()

    # Hung: Redis still counts c, so requests wait for it, and give up after requests_timeout.
    os.kill(doomed.proc.pid, signal.SIGSTOP)
    began = time.monotonic()
    a1.client.emit("fetch", None)  # the handler fails (no ack): its error is in a's log
    a2.client.emit("ask", (c1.sid, "are you there?"))  # (a socket's handlers run one at a time)
    wait_for_log(first, "REMOTE_FETCH: 1 of 2 other nodes answered within 5.0 s", since, REQUESTS_TIMEOUT + 3)
    wait_for_log(first, "no acknowledgement of 'question' within 5 s", since, 3)
    assert REQUESTS_TIMEOUT - 0.5 <= time.monotonic() - began < REQUESTS_TIMEOUT + 3

    # Dead: Redis drops c's subscriptions, the survivors count themselves and answer without it.
    doomed.stop(kill=True)
    assert doomed.returncode == -signal.SIGKILL
    wait_until(lambda: a1.call("count") == 2, TIMEOUT, "server_count dropping to the 2 survivors")
    assert b1.call("count") == 2
    for asker in (a1, b1):
        found, took = timed_call(asker, "fetch")
        assert {s["sid"] for s in found} == {a1.sid, a2.sid, b1.sid} and took < REQUESTS_TIMEOUT, (found, took)
        rooms, took = timed_call(asker, "all_rooms")
        assert {a1.sid, a2.sid, b1.sid} <= set(rooms) and took < REQUESTS_TIMEOUT, (rooms, took)
        assert c1.sid not in rooms and "doomed room" not in rooms, rooms
    marker(a1, a2, b1)
    marker(b1, a1, a2)

    # A call to a sid that lived on c fails at once: b answers that it has no such client.
    since = first.log_size()
    a1.client.emit("ask", (c1.sid, "still there?"))
    took = wait_for_log(first, f"ValueError(\"no connected client with sid '{c1.sid}'\")", since, REQUESTS_TIMEOUT)
    assert took < REQUESTS_TIMEOUT
    assert first.running and second.running


def flask_node(key: str, name: str = "flask") -> RoomcastServer:
    """A Flask node (tests/apps/flask_cluster_app.py under uvicorn) in the cluster ``key``."""
    return RoomcastServer(
        "tests.apps.flask_cluster_app:asgi_app",
        name=f"cluster-{name}",
        env={"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL, "NODE_NAME": name},
    )


def test_flask_facade_in_a_cluster_with_a_roomcast_node(stack: ExitStack) -> None:
    pytest.importorskip("flask", reason="the Flask facade needs Flask: install the test extras")
    pytest.importorskip("a2wsgi", reason="the Flask facade needs a2wsgi: install the test extras")
    key = cluster_key()
    flask, plain = started(stack, flask_node(key)), started(stack, roomcast_node(key, "r"))
    wait_for_nodes(key, 2)
    f1, f2, r1, r2 = peer(stack, flask), peer(stack, flask), peer(stack, plain), peer(stack, plain)
    everyone = (f1, f2, r1, r2)
    assert f1.call("whoami") == [f1.sid, "flask"]

    # emit(..., broadcast=True) in a plain def handler, and the Roomcast node's broadcasts back
    assert f1.call("shout", {"from": "flask", "n": [1, 2.5]}) == "sent"
    for client in everyone:
        assert client.wait_for(("news", {"from": "flask", "n": [1, 2.5]})) == []
    assert r1.call("shout", {"from": "roomcast"}) == "sent"
    for client in everyone:
        assert client.wait_for(("news", {"from": "roomcast"})) == []
    assert f1.call("shout_others", "not to f1") == "sent"  # include_self=False
    for client in (f2, r1, r2):
        assert client.wait_for(("news", "not to f1")) == []
    marker(r1, f1, f2, r2)

    # join_room and emit(..., to=room) on the Flask node; a room spanning both nodes
    assert f1.call("join", "mixed") == "joined"
    assert r1.call("join", "mixed") == "joined"
    assert f2.call("to_room", "mixed", "flask to mixed") == "sent"
    assert r2.call("to_room", "mixed", "roomcast to mixed") == "sent"
    for client in (f1, r1):
        assert client.wait_for_all([("news", "flask to mixed"), ("news", "roomcast to mixed")]) == []
    marker(f2, f1, r1, r2)

    # join_room(room, sid=...) for a client of the Roomcast node, through the cluster
    assert f1.call("put", r2.sid, "mixed") == "put"
    wait_until(lambda: r2.sid in {s["sid"] for s in r1.call("fetch", "mixed")}, TIMEOUT, "r2 joining 'mixed'")
    assert f2.call("to_room", "mixed", "r2 is in now") == "sent"
    for client in (f1, r1, r2):
        assert client.wait_for(("news", "r2 is in now")) == []

    # socketio.emit from a background thread started by a handler reaches both nodes' clients
    assert f2.call("from_thread", {"tick": 1}) == "started"
    for client in everyone:
        assert client.wait_for(("news", {"tick": 1})) == []
    marker(f1, f2, r1, r2)

    # disconnect(sid=...) of a client of the Roomcast node
    assert f1.call("kick", r2.sid) == "kicked"
    assert r2.disconnected.wait(TIMEOUT), "the Flask node's disconnect never reached r2"
    marker(r1, f1, f2)
    for node in (flask, plain):
        assert node.running and "Traceback" not in node.log_text(), node.log_text()
