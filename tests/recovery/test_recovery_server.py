"""Connection state recovery in AsyncServer, over real sockets, byte by byte.

A raw WebSocket client speaks the wire protocol itself, so each test chooses exactly which packets it
"processed" (the offset it presents) and how it loses the connection (a TCP close without a WebSocket
close frame, like a dropped network).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import websockets.sync.client as ws_client

import roomcast
from tests.server.livesrv import LiveServer, wait_until


class RawClient:
    """One Engine.IO WebSocket session joined to "/", answering pings, recording what arrives."""

    def __init__(self, server: LiveServer, auth: dict[str, Any] | None = None) -> None:
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(
            ws_client.connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket", open_timeout=5)
        )
        opening = self.ws.recv(timeout=5)
        assert isinstance(opening, str) and opening.startswith("0"), opening
        self.ws.send("40" + (json.dumps(auth) if auth is not None else ""))
        self.reply = self.packet()

    def packet(self, timeout: float = 5.0) -> str | bytes:
        """The next message that is not a ping (pings are answered)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            if message == "2":
                self.ws.send("3")
                continue
            return message

    def connected(self) -> dict[str, Any]:
        """The CONNECT reply's data (fails on anything else)."""
        assert isinstance(self.reply, str) and self.reply.startswith("40{"), self.reply
        return json.loads(self.reply[2:])  # type: ignore[no-any-return]

    def event(self, timeout: float = 5.0) -> list[Any]:
        """The next EVENT's [name, *args]."""
        message = self.packet(timeout)
        assert isinstance(message, str) and message.startswith("42["), message
        return json.loads(message[2:])  # type: ignore[no-any-return]

    def events(self, count: int) -> list[list[Any]]:
        return [self.event() for _ in range(count)]

    def nothing_more(self, wait: float = 0.2) -> None:
        """Assert no further packet arrives within ``wait`` seconds (pings aside)."""
        with pytest.raises(TimeoutError):
            message = self.packet(timeout=wait)
            pytest.fail(f"unexpected packet {message!r}")

    def cut(self) -> None:
        """Drop the TCP connection without a WebSocket close frame: a lost network."""
        sock = self.ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()

    def close(self) -> None:
        try:
            self._stack.close()
        except OSError:
            pass  # already cut


class App:
    """An AsyncServer with recovery, running under uvicorn, plus what its handlers saw."""

    def __init__(self, live: Callable[[Any], LiveServer], *, refuse: bool = False, **options: Any) -> None:
        options.setdefault("connection_state_recovery", {"max_disconnection_duration": 30})
        self.sio = sio = roomcast.AsyncServer(**options)
        self.connects: list[tuple[str, bool, Any]] = []
        self.disconnects: list[tuple[str, str]] = []

        @sio.event
        async def connect(sid: str, environ: dict[str, Any], auth: Any) -> Any:
            recovered = sio.is_recovered(sid)
            self.connects.append((sid, recovered, auth))
            if refuse and isinstance(auth, dict) and auth.get("refuse"):
                raise roomcast.ConnectionRefusedError("go away")
            if not recovered:
                await sio.emit("welcome", to=sid)
            return None

        @sio.event
        async def disconnect(sid: str, reason: str) -> None:
            self.disconnects.append((sid, reason))

        self.server = live(roomcast.ASGIApp(sio))

    def run(self, coro: Any) -> Any:
        return self.server.call(coro)

    def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        data = args[0] if len(args) == 1 else tuple(args)
        self.run(self.sio.emit(event, data, **kwargs))

    def gone(self, sid: str) -> str:
        """Wait until the server noticed ``sid`` left; return the reason its handler got."""
        wait_until(lambda: any(s == sid for s, _ in self.disconnects))
        return next(r for s, r in self.disconnects if s == sid)


@pytest.fixture
def clients() -> Iterator[list[RawClient]]:
    opened: list[RawClient] = []
    yield opened
    for client in opened:
        client.close()


def test_connect_reply_has_a_pid_and_unacked_events_an_offset(live: Any, clients: list[RawClient]) -> None:
    app = App(live)
    client = RawClient(app.server)
    clients.append(client)
    reply = client.connected()
    assert set(reply) == {"sid", "pid"} and reply["pid"] != reply["sid"]
    sid = reply["sid"]
    welcome = client.event()  # emitted to the sid by the connect handler: recorded too, like Node's socket.emit
    assert welcome[0] == "welcome" and isinstance(welcome[-1], str)
    app.emit("news", "a", 1)
    app.emit("news", "b", to=sid)
    first, second = client.events(2)
    assert first[:3] == ["news", "a", 1] and second[:2] == ["news", "b"]
    assert int(welcome[-1]) < int(first[-1]) < int(second[-1])
    # an emit asking for an ack is neither stamped nor logged (Node: the callback cannot be replayed)
    app.run(app.sio.emit("question", "q?", to=sid, callback=lambda *a: None))
    message = client.packet()
    assert isinstance(message, str) and message.startswith("420[") and json.loads(message[3:]) == ["question", "q?"]


def test_recovery_off_changes_nothing_on_the_wire(live: Any, clients: list[RawClient]) -> None:
    app = App(live, connection_state_recovery=None)
    client = RawClient(app.server)
    clients.append(client)
    assert set(client.connected()) == {"sid"}
    assert client.event() == ["welcome"]
    app.emit("news", "a")
    assert client.event() == ["news", "a"]


def test_lost_connection_gets_back_its_sid_rooms_data_and_missed_packets(
    live: Any, clients: list[RawClient]
) -> None:
    app = App(live)
    first = RawClient(app.server)
    clients.append(first)
    reply = first.connected()
    sid, pid = reply["sid"], reply["pid"]
    first.event()  # welcome
    app.run(app.sio.enter_room(sid, "news"))
    app.run(app.sio.save_session(sid, {"user": "ann"}))
    for n in range(1, 4):
        app.emit("item", n, to="news")
    received = first.events(3)
    processed = received[0][-1]  # the client "processed" item 1; 2 and 3 were in flight
    first.cut()
    assert app.gone(sid) in ("transport close", "transport error")
    app.emit("item", 4, to="news")
    app.emit("item", 5, to=sid)  # direct emits are kept too
    app.emit("item", 6, to="sport")  # not its room
    app.emit("item", 7, skip_sid=sid)  # skipped it
    app.emit("item", 8, exclude_rooms="news")  # excluded its room
    app.emit("item", 9)  # everyone
    app.run(app.sio.emit("item", b"\x00\x01", to="news"))  # binary events are kept as well

    again = RawClient(app.server, auth={"pid": pid, "offset": processed, "token": "t"})
    clients.append(again)
    assert again.connected() == {"sid": sid, "pid": pid}
    replayed = [again.event()[1] for _ in range(5)]
    assert replayed == [2, 3, 4, 5, 9]
    header = again.packet()
    assert isinstance(header, str) and header.startswith("451-[")
    assert again.packet() == b"\x00\x01"
    # the connect handler ran after the connection completed, and could tell it was a recovery
    wait_until(lambda: len(app.connects) == 2)
    assert app.connects[1][:2] == (sid, True)
    assert app.connects[1][2] == {"pid": pid, "offset": processed, "token": "t"}
    assert app.sio.is_recovered(sid)
    assert set(app.sio.rooms(sid)) == {sid, "news"}
    assert app.run(app.sio.get_session(sid)) == {"user": "ann"}
    # live again: new emits arrive once, after the replay
    app.emit("item", 10, to="news")
    assert again.event()[1] == 10
    again.nothing_more()


def test_after_the_window_the_client_gets_a_fresh_session(live: Any, clients: list[RawClient]) -> None:
    window = 0.3
    app = App(live, connection_state_recovery={"max_disconnection_duration": window})
    first = RawClient(app.server)
    clients.append(first)
    reply = first.connected()
    offset = first.event()[-1]
    app.run(app.sio.enter_room(reply["sid"], "news"))
    first.cut()
    app.gone(reply["sid"])
    # Waiting on the clock is the point here: the session must outlive the window.
    time.sleep(window + 0.2)
    again = RawClient(app.server, auth={"pid": reply["pid"], "offset": offset})
    clients.append(again)
    fresh = again.connected()
    assert fresh["sid"] != reply["sid"] and fresh["pid"] != reply["pid"]
    assert again.event()[0] == "welcome"  # its connect handler ran as for a new client
    assert not app.sio.is_recovered(fresh["sid"])
    assert app.sio.rooms(fresh["sid"]) == [fresh["sid"]]


def test_leaving_on_purpose_is_not_recoverable(live: Any, clients: list[RawClient]) -> None:
    app = App(live)
    first = RawClient(app.server)
    clients.append(first)
    reply = first.connected()
    offset = first.event()[-1]
    first.ws.send("41")  # the client leaves the namespace
    assert app.gone(reply["sid"]) == "client namespace disconnect"
    again = RawClient(app.server, auth={"pid": reply["pid"], "offset": offset})
    clients.append(again)
    assert again.connected()["sid"] != reply["sid"]


def test_unknown_pid_or_offset_gets_a_fresh_session(live: Any, clients: list[RawClient]) -> None:
    app = App(live)
    first = RawClient(app.server)
    clients.append(first)
    reply = first.connected()
    first.event()
    first.cut()
    app.gone(reply["sid"])
    stranger = RawClient(app.server, auth={"pid": "nope", "offset": "1"})
    clients.append(stranger)
    assert stranger.connected()["sid"] != reply["sid"]
    bad_offset = RawClient(app.server, auth={"pid": reply["pid"], "offset": "999999"})
    clients.append(bad_offset)
    assert bad_offset.connected()["sid"] != reply["sid"]


def test_without_skip_middlewares_the_connect_handler_decides_first(live: Any, clients: list[RawClient]) -> None:
    app = App(live, refuse=True, connection_state_recovery={"skip_middlewares": False})
    first = RawClient(app.server)
    clients.append(first)
    reply = first.connected()
    offset = first.event()[-1]
    first.cut()
    app.gone(reply["sid"])
    app.emit("item", 1)
    refused = RawClient(app.server, auth={"pid": reply["pid"], "offset": offset, "refuse": True})
    clients.append(refused)
    assert refused.reply == '44{"message":"go away"}'
    assert app.connects[-1][1] is True  # it ran before the reply, knowing it was a recovery

    second = RawClient(app.server)
    clients.append(second)
    reply = second.connected()
    offset = second.event()[-1]
    second.cut()
    app.gone(reply["sid"])
    app.emit("item", 2)
    again = RawClient(app.server, auth={"pid": reply["pid"], "offset": offset})
    clients.append(again)
    assert again.connected()["sid"] == reply["sid"]
    assert again.event()[:2] == ["item", 2]


def test_with_skip_middlewares_a_refusal_disconnects_the_recovered_socket(
    live: Any, clients: list[RawClient]
) -> None:
    app = App(live, refuse=True)
    first = RawClient(app.server)
    clients.append(first)
    reply = first.connected()
    offset = first.event()[-1]
    first.cut()
    app.gone(reply["sid"])
    app.emit("item", 1)
    again = RawClient(app.server, auth={"pid": reply["pid"], "offset": offset, "refuse": True})
    clients.append(again)
    assert again.connected()["sid"] == reply["sid"]
    assert again.event()[:2] == ["item", 1]
    assert again.packet() == "41"
    wait_until(lambda: app.disconnects[-1] == (reply["sid"], "server namespace disconnect"))


def test_the_flask_facade_passes_the_option_through() -> None:
    flask = pytest.importorskip("flask")
    socketio = roomcast.SocketIO(flask.Flask(__name__), connection_state_recovery={"max_disconnection_duration": 7})
    assert socketio.server is not None
    recovery = socketio.server._recovery
    assert recovery is not None and recovery.config.max_disconnection_duration == 7


def test_bad_option_is_refused() -> None:
    with pytest.raises(TypeError, match="skipMiddlewares"):
        roomcast.AsyncServer(connection_state_recovery={"skipMiddlewares": True})
