"""AsyncServer behaviour over real sockets, with python-socketio's client as an independent peer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
import websockets.sync.client as ws_client

import roomcast

from livesrv import LiveServer, wait_until

TRANSPORTS = [["websocket"], ["polling"]]


def client(server: LiveServer, transports: list[str] | None = None, **kwargs: Any) -> socketio.Client:
    c = socketio.Client(reconnection=False)
    received: list[tuple[Any, ...]] = []
    c.received = received  # type: ignore[attr-defined]
    c.on("*", lambda event, *args: received.append((event, *args)))
    namespaces = kwargs.pop("namespaces", None)
    c.connect(server.url, transports=transports, namespaces=namespaces, wait_timeout=5, **kwargs)
    return c


def chat_server(**options: Any) -> roomcast.AsyncServer:
    sio = roomcast.AsyncServer(**options)

    @sio.on("join")
    async def join(sid: str, room: str) -> str:
        await sio.enter_room(sid, room)
        return "joined"

    @sio.on("leave")
    async def leave(sid: str, room: str) -> str:
        await sio.leave_room(sid, room)
        return "left"

    @sio.on("to_room")
    async def to_room(sid: str, room: str, msg: str) -> None:
        await sio.emit("room_message", msg, to=room)

    @sio.on("broadcast")
    async def broadcast(sid: str, msg: str) -> None:
        await sio.emit("broadcast", msg, skip_sid=sid)

    @sio.on("except_room")
    async def except_room(sid: str, room: str, msg: str) -> None:
        await sio.emit("except", msg, exclude_rooms=room)

    @sio.on("echo")
    async def echo(sid: str, *args: Any) -> Any:
        return args

    return sio


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
def test_rooms_and_broadcast_exclusions(live: Any, transports: list[str]) -> None:
    server = live(roomcast.ASGIApp(chat_server()))
    a, b, c = (client(server, transports) for _ in range(3))
    try:
        assert a.call("join", "red", timeout=5) == "joined"
        assert b.call("join", "red", timeout=5) == "joined"
        a.emit("to_room", ("red", "hi red"))
        wait_until(lambda: ("room_message", "hi red") in b.received)
        wait_until(lambda: ("room_message", "hi red") in a.received)
        c.emit("broadcast", "from c")
        wait_until(lambda: ("broadcast", "from c") in a.received and ("broadcast", "from c") in b.received)
        c.emit("except_room", ("red", "not red"))
        wait_until(lambda: ("except", "not red") in c.received)
        assert b.call("leave", "red", timeout=5) == "left"
        a.emit("to_room", ("red", "second"))
        wait_until(lambda: ("room_message", "second") in a.received)
        # barrier: a later round trip proves the earlier packets that were due have arrived
        assert b.call("echo", "barrier", timeout=5) == "barrier"
        assert c.call("echo", "barrier", timeout=5) == "barrier"
        assert ("room_message", "hi red") not in c.received
        assert ("room_message", "second") not in b.received
        assert ("broadcast", "from c") not in c.received
        assert ("except", "not red") not in a.received and ("except", "not red") not in b.received
    finally:
        for x in (a, b, c):
            x.disconnect()


def test_one_sockets_plain_handlers_run_in_arrival_order(live: Any) -> None:
    sio = roomcast.AsyncServer()
    seen: list[int] = []
    gate = threading.Event()

    @sio.on("n")
    def n(sid: str, i: int) -> None:
        if i == 0:
            gate.wait(5)  # later events must wait behind this one, not overtake it
        seen.append(i)

    server = live(roomcast.ASGIApp(sio))
    c = client(server, ["websocket"])
    try:
        for i in range(20):
            c.emit("n", i)
        gate.set()
        wait_until(lambda: len(seen) == 20)
        assert seen == list(range(20))
    finally:
        c.disconnect()


def test_blocking_plain_handler_stalls_nobody_else(live: Any) -> None:
    sio = chat_server(ping_interval=0.3, ping_timeout=0.3)
    release = threading.Event()
    started = threading.Event()

    @sio.on("block")
    def block(sid: str) -> str:
        started.set()
        release.wait(10)
        return "released"

    server = live(roomcast.ASGIApp(sio))
    a = client(server, ["websocket"])
    b = client(server, ["websocket"])
    try:
        results: list[Any] = []
        a.emit("block", callback=lambda *args: results.append(args))
        assert started.wait(5)
        # while a's handler blocks a worker thread, b is served and heartbeats keep both alive
        for i in range(5):
            assert b.call("echo", i, timeout=5) == i
        disconnects: list[str] = []
        a.on("disconnect", lambda *r: disconnects.append("a"))
        wait_until(lambda: server.call(_pings_answered(sio)), timeout=5)
        release.set()
        wait_until(lambda: results == [("released",)])
        assert not disconnects
        assert a.connected and b.connected
    finally:
        release.set()
        a.disconnect()
        b.disconnect()


async def _pings_answered(sio: roomcast.AsyncServer) -> bool:
    # every session has been pinged at least once and is still open
    assert sio.engine is not None
    conns = list(sio.engine.connections.values())
    return len(conns) == 2 and all(not c.closed for c in conns) and all(
        c.session._next_ping is not None or c.session._pong_deadline is not None for c in conns
    )


def test_malformed_packets_close_the_offender_only(live: Any, caplog: Any) -> None:
    sio = chat_server()
    server = live(roomcast.ASGIApp(sio))
    canary = client(server, ["websocket"])
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    bad_frames = [
        '42["echo"',  # broken JSON
        "9",  # unknown Engine.IO type
        "4" + "9",  # unknown Socket.IO type
        '42{"not":"a list"}',  # an event must be a list
        "45999-[]",  # too many attachments
        '42["echo",NaN]',  # not JSON
        "4" + "2" + "[" * 100_000,  # absurdly deep
    ]
    try:
        for frame in bad_frames:
            with ws_client.connect(url, open_timeout=5) as ws:
                assert ws.recv(timeout=5).startswith("0")
                ws.send("40")
                assert ws.recv(timeout=5).startswith("40")
                ws.send(frame)
                with pytest.raises(Exception) as closed:
                    while True:  # the server closes the offender: recv ends with a close
                        ws.recv(timeout=5)
                assert "Timeout" not in type(closed.value).__name__, frame
            assert canary.call("echo", frame[:10], timeout=5) == frame[:10]
    finally:
        canary.disconnect()
    assert not [r for r in caplog.records if r.exc_info], "a bad packet must not log a traceback"


def test_unknown_namespace_is_refused_with_the_reference_message(live: Any) -> None:
    server = live(roomcast.ASGIApp(chat_server()))
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send("40/nope,")
        reply = ws.recv(timeout=5)
    assert reply == '44/nope,{"message":"Invalid namespace"}'


def test_connect_timeout_closes_a_session_that_joins_no_namespace(live: Any) -> None:
    server = live(roomcast.ASGIApp(chat_server(connect_timeout=0.3)))
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=5)
        assert "Timeout" not in type(closed.value).__name__


def test_refusal_carries_message_and_data(live: Any) -> None:
    sio = roomcast.AsyncServer()

    @sio.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> Any:
        if auth and auth.get("token") == "ok":
            return True
        if auth and auth.get("token") == "false":
            return False
        raise roomcast.ConnectionRefusedError("not authorized", {"hint": "token"})

    server = live(roomcast.ASGIApp(sio))
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    replies = []
    for auth in ({"token": "ok"}, {"token": "false"}, {"token": "bad"}):
        with ws_client.connect(url, open_timeout=5) as ws:
            ws.recv(timeout=5)
            ws.send("40" + json.dumps(auth))
            replies.append(ws.recv(timeout=5))
    assert replies[0].startswith('40{"sid":')
    assert replies[1] == '44{"message":"Connection rejected by server"}'
    assert replies[2] == '44{"message":"not authorized","data":{"hint":"token"}}'


def server_recording_sids(live: Any) -> tuple[roomcast.AsyncServer, list[str], Any]:
    """A live server whose connect handler records each client's sid."""
    sio = roomcast.AsyncServer()
    sids: list[str] = []

    @sio.event
    def connect(sid: str, environ: dict[str, Any]) -> None:
        sids.append(sid)

    return sio, sids, live(roomcast.ASGIApp(sio))


@contextlib.contextmanager
def raw_client(server: Any) -> Iterator[Any]:
    """A WebSocket client speaking the wire protocol by hand, joined to ``/``."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send("40")
        ws.recv(timeout=5)
        yield ws


def test_server_call_with_timeout_and_ack_callback(live: Any) -> None:
    sio, sids, server = server_recording_sids(live)
    c = socketio.Client(reconnection=False)
    c.on("question", lambda x: x * 2)
    c.on("silent", lambda x: None)
    c.connect(server.url, transports=["websocket"], wait_timeout=5)
    try:
        wait_until(lambda: sids)
        assert server.call(sio.call("question", 21, to=sids[0], timeout=5)) == 42
        got: list[Any] = []
        server.call(sio.emit("question", 5, to=sids[0], callback=lambda v: got.append(v)))
        wait_until(lambda: got == [10])
    finally:
        c.disconnect()
    # a peer that never acknowledges: call() gives up with roomcast.TimeoutError
    with raw_client(server) as ws:
        wait_until(lambda: len(sids) == 2)
        with pytest.raises(roomcast.TimeoutError):
            server.call(sio.call("never_answered", 1, to=sids[1], timeout=0.2))
        assert ws.recv(timeout=5) == '420["never_answered",1]'


def test_server_call_ends_when_the_client_disconnects(live: Any) -> None:
    # A call() whose client goes away raises DisconnectedError at once, not after its timeout.
    sio, sids, server = server_recording_sids(live)
    with raw_client(server) as ws:
        wait_until(lambda: sids)
        pending = asyncio.run_coroutine_threadsafe(sio.call("never_answered", 1, to=sids[0], timeout=60),
                                                   server.loop)
        assert ws.recv(timeout=5) == '420["never_answered",1]'
    started = time.monotonic()
    with pytest.raises(roomcast.DisconnectedError):
        pending.result(timeout=10)
    assert time.monotonic() - started < 5


def test_catch_all_dynamic_namespaces_and_sessions(live: Any) -> None:
    sio = roomcast.AsyncServer()
    caught: list[Any] = []

    @sio.on("*")
    def any_event(event: str, sid: str, *args: Any) -> Any:
        caught.append((event, args))
        return event

    @sio.on("ping_ns", namespace=re.compile(r"/dyn-\d+"))
    async def dyn(namespace: str, sid: str) -> str:
        return namespace

    @sio.on("remember")
    async def remember(sid: str, value: Any) -> None:
        async with sio.session(sid) as session:
            session["value"] = value

    @sio.on("recall")
    async def recall(sid: str) -> Any:
        return (await sio.get_session(sid)).get("value")

    server = live(roomcast.ASGIApp(sio))
    c = client(server, ["websocket"], namespaces=["/", "/dyn-42"])
    try:
        assert c.call("whatever", 1, timeout=5) == "whatever"
        assert caught == [("whatever", (1,))]
        assert c.call("ping_ns", namespace="/dyn-42", timeout=5) == "/dyn-42"
        c.call("remember", {"k": [1, 2]}, timeout=5)
        assert c.call("recall", timeout=5) == {"k": [1, 2]}
    finally:
        c.disconnect()


def test_disconnect_reasons_both_sides(live: Any) -> None:
    sio = chat_server()
    reasons: list[str] = []

    @sio.event
    def disconnect(sid: str, reason: str) -> None:
        reasons.append(reason)

    @sio.on("kick_me")
    async def kick_me(sid: str) -> None:
        await sio.disconnect(sid)

    server = live(roomcast.ASGIApp(sio))
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send("40")
        ws.recv(timeout=5)
        ws.send('42["kick_me"]')
        assert ws.recv(timeout=5) == "41"
    wait_until(lambda: reasons == [roomcast.Reason.SERVER_DISCONNECT])
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send("40")
        ws.recv(timeout=5)
        ws.send("41")
        wait_until(lambda: len(reasons) == 2)
    assert reasons[1] == roomcast.Reason.CLIENT_DISCONNECT
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send("40")
        ws.recv(timeout=5)
    wait_until(lambda: len(reasons) == 3)
    assert reasons[2] == roomcast.Reason.TRANSPORT_CLOSE


def test_emit_from_another_thread(live: Any) -> None:
    sio = chat_server()
    server = live(roomcast.ASGIApp(sio))
    c = client(server, ["websocket"])
    try:
        def worker() -> None:
            sio.submit(sio._emit, "from_thread", (1, 2))

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        wait_until(lambda: ("from_thread", 1, 2) in c.received)
    finally:
        c.disconnect()


def test_broadcast_encodes_once(live: Any) -> None:
    """Every recipient's buffer holds the very same encoded object."""
    sio = chat_server()
    server = live(roomcast.ASGIApp(sio))
    import httpx

    sids = []
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            r = http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            sid = json.loads(r.text[1:])["sid"]
            http.post("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": sid}, content="40")
            sids.append(sid)
        wait_until(lambda: len(sio.sockets) == 3)

        async def inspect() -> list[Any]:
            assert sio.engine is not None
            for sid in sids:  # drop the CONNECT replies still queued
                sio.engine.connections[sid].session.take_packets()
            await sio.emit("news", {"big": "x" * 1000})
            return [sio.engine.connections[sid].session._queue[0] for sid in sids]

        queued = server.call(inspect())
    assert queued[0].startswith('42["news"')
    assert queued[0] is queued[1] is queued[2]


def test_async_handlers_that_suspend_keep_order_and_errors_stay_contained(live: Any, caplog: Any) -> None:
    """Handlers start without a task; those that really wait finish in one, still in order."""
    sio = roomcast.AsyncServer()
    seen: list[int] = []

    @sio.on("n")
    async def n(sid: str, i: int) -> int:
        if i % 3 == 0:
            await asyncio.sleep(0.01 * (i % 5))  # a real suspension on a timer future
        elif i % 3 == 1:
            await asyncio.sleep(0)  # a bare yield
        if i == 7:
            raise ValueError("boom after waiting")
        seen.append(i)
        return i

    server = live(roomcast.ASGIApp(sio))
    c = client(server, ["websocket"])
    try:
        for i in range(30):
            c.emit("n", i)
        assert c.call("n", 30, timeout=5) == 30
        assert seen == [i for i in range(31) if i != 7]
    finally:
        c.disconnect()
    failures = [r for r in caplog.records if "boom after waiting" in r.getMessage()]
    assert len(failures) == 1 and "'n'" in failures[0].getMessage()


request_id: Any = __import__("contextvars").ContextVar("request_id", default=None)


def test_async_handlers_run_inside_a_task_as_asyncio_code_expects(live: Any) -> None:
    """asyncio.timeout(), wait_for and the drivers built on them need current_task(): the same task
    from a handler's first step to its last, cancelled when a timeout expires; and a contextvar a
    handler sets is its own (a task runs in a copy of the context)."""
    sio = roomcast.AsyncServer()
    tasks: dict[str, list[Any]] = {}

    @sio.on("timed")
    async def timed(sid: str, wait: float) -> str:
        first = asyncio.current_task()
        assert request_id.get() is None, "a contextvar leaked from an earlier handler"
        request_id.set(wait)
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(wait)
            outcome = "in time"
        except TimeoutError:
            outcome = "timed out"
        tasks.setdefault(sid, []).append((first is not None, first is asyncio.current_task()))
        await asyncio.wait_for(asyncio.sleep(0), 1)
        return outcome

    @sio.on("quick")
    async def quick(sid: str) -> bool:
        async with asyncio.timeout(1):  # entered and left without suspending
            pass
        return asyncio.current_task() is not None and request_id.get() is None

    server = live(roomcast.ASGIApp(sio))
    c = client(server, ["websocket"])
    try:
        assert c.call("quick", timeout=5) is True
        assert c.call("timed", 0, timeout=5) == "in time"
        assert c.call("timed", 1.0, timeout=5) == "timed out"
        assert c.call("quick", timeout=5) is True  # the task a timeout cancelled serves the next one
        assert c.call("timed", 0, timeout=5) == "in time"
    finally:
        c.disconnect()
    assert list(tasks.values()) == [[(True, True)] * 3]
