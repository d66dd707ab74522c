"""A client that stops reading: disconnected with its own reason once its buffer is full, memory bounded,
connection released, everyone else served.

python-socketio on uvicorn queues every broadcast for such a client (+45 MB for 50,000 broadcasts) and
never disconnects it, and keeps its connection after its disconnect handler ran. The client here is a
raw TCP socket that completes the WebSocket and Socket.IO handshakes, shrinks its receive buffer, then
never reads again while it keeps sending pongs (so the heartbeat cannot save the server).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

from websockets.sync.client import connect as ws_connect

import roomcast
from roomcast.asyncio.engine import DIRECT_EXTENSION
from tests.reliability.harness import (
    TIMEOUT,
    App,
    ServerProcess,
    Canary,
    log_problems,
    raw_ws,
    read_frame,
    read_until_closed,
    wait_until,
    ws_close_frame,
    ws_frame,
)

MAX_SEND_BUFFER = 256_000
MESSAGE = "x" * 4000


class SendMeter:
    """ASGI middleware counting, per WebSocket (by client port), the bytes whose ``send()`` returned:
    what left Roomcast's hands for the ASGI server's."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: dict[int, int] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        port = scope["client"][1]
        self.sent[port] = 0

        async def metered(message: Any) -> None:
            await send(message)
            if message["type"] == "websocket.send":
                self.sent[port] += len(message.get("text") or message.get("bytes") or b"")

        extensions = scope.get("extensions") or {}
        lane = extensions.get(DIRECT_EXTENSION)
        if lane is not None:
            scope = {**scope, "extensions": {**extensions, DIRECT_EXTENSION: MeteredLane(lane, self.sent, port)}}
        await self.app(scope, receive, metered)


class MeteredLane:
    """The WebSocket protocol's direct lane, counting the bytes it took, like ``metered`` above."""

    def __init__(self, lane: Any, sent: dict[int, int], port: int) -> None:
        self.lane, self.sent, self.port = lane, sent, port

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lane, name)

    def write(self, packet: Any) -> bool:
        return self.write_many([packet])

    def write_many(self, packets: list[Any]) -> bool:
        if not self.lane.write_many(packets):
            return False
        self.sent[self.port] += sum(len(packet) for packet in packets)
        return True


class NonReader:
    """A raw WebSocket client joined to '/', which then never reads but sends a pong every 0.1 s."""

    def __init__(self, port: int) -> None:
        self.sock = raw_ws(port, "/socket.io/?EIO=4&transport=websocket", rcvbuf=4096)
        self.port = self.sock.getsockname()[1]
        opcode, payload = read_frame(self.sock)
        assert payload.startswith(b"0"), payload
        self.sock.sendall(ws_frame(b"40"))
        opcode, payload = read_frame(self.sock)
        assert payload.startswith(b"40{"), payload
        self.sid = roomcast.serializer.default_serializer.loads(payload[2:])["sid"]
        self.stop = threading.Event()
        self.pongs = threading.Thread(target=self._pong, daemon=True)
        self.pongs.start()

    def emit(self, text: str) -> None:
        self.sock.sendall(ws_frame(b"4" + text.encode()))

    def _pong(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.sock.sendall(ws_frame(b"3"))
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.pongs.join(5)
        self.sock.close()


def test_non_reader_is_cut_at_its_buffer_bound_and_released(serve: Callable[..., App], logs: Any) -> None:
    meter: SendMeter | None = None

    def wrap(asgi: Any) -> SendMeter:
        nonlocal meter
        meter = SendMeter(asgi)
        return meter

    app = serve(wrap=wrap, max_send_buffer=MAX_SEND_BUFFER, ping_interval=2, ping_timeout=2)
    assert meter is not None
    sio = app.sio
    with Canary(app) as canary:
        baseline_tasks = app.live.asgi_tasks
        victim = NonReader(app.live.port)
        try:
            accepted = 0

            async def blast(count: int) -> bool:
                """Broadcast ``count`` messages (to everyone), yielding now and then so the writers run;
                False once the victim is gone."""
                nonlocal accepted
                for i in range(count):
                    if victim.sid not in sio.sockets:
                        return False
                    await sio.emit("news", MESSAGE)
                    accepted += len(MESSAGE) + 12  # '42["news","..."]'
                    if i % 8 == 0:
                        await asyncio.sleep(0)
                return victim.sid in sio.sockets

            rounds = 0
            while app.live.call(blast(64)):
                rounds += 1
                assert rounds < 400, "100 MB broadcast and the client that does not read is still connected"
            # Roomcast held at most its bound for the victim (plus the message that overflowed it):
            # what it accepted minus what the ASGI server took from it.
            held = accepted - meter.sent[victim.port]
            assert held <= MAX_SEND_BUFFER + len(MESSAGE) + 16, held
            app.rec.wait("disconnect", sid=victim.sid, reason="send buffer full")
            # Released: no session, no socket, and the ASGI call for its WebSocket has returned.
            assert app.live.run_sync(lambda: victim.sid not in sio.sockets and len(app.engine.connections) == 1)
            wait_until(
                lambda: app.live.asgi_tasks == baseline_tasks, timeout=1, what="the WebSocket's ASGI call returning"
            )
            # Once the client reads again, it gets what was already in flight and then the end of the
            # connection: nothing of the session stays behind in the server.
            read_until_closed(victim.sock, timeout=10)
        finally:
            victim.close()
        canary.check()
    assert not log_problems(logs.records)
    lines = [r.getMessage() for r in logs.records if r.name == "roomcast"]
    assert lines == [], lines  # a full buffer is the client's business: the disconnect handler learns it


def test_polling_client_that_stops_polling_is_cut_at_its_buffer_bound(serve: Callable[..., App]) -> None:
    from tests.reliability.harness import Polling

    app = serve(max_send_buffer=MAX_SEND_BUFFER)
    with Canary(app, "polling") as canary, Polling(app) as idle:
        idle.connect()  # ... and never polls again

        sid = app.rec.of("connect")[-1][1]

        async def blast() -> int:
            sent = 0
            while sid in app.sio.sockets and sent < 10 * MAX_SEND_BUFFER:
                await app.sio.emit("news", MESSAGE, to=sid)
                sent += len(MESSAGE)
                await asyncio.sleep(0)
            return sent

        sent = app.live.call(blast())
        assert MAX_SEND_BUFFER - len(MESSAGE) <= sent <= MAX_SEND_BUFFER + len(MESSAGE)
        app.rec.wait("disconnect", sid=sid, reason="send buffer full")
        assert idle.get().status_code == 400  # the session is gone
        canary.check()



def test_memory_stays_flat_for_50000_broadcasts_to_a_client_that_does_not_read() -> None:
    """The peer's measurement, repeated: 50,000 broadcasts of 1 kB to a client that stops reading
    (python-socketio: +45 MB, never disconnected). Here the client is cut at max_send_buffer (1 MB)."""
    server = ServerProcess(max_send_buffer=1_000_000)
    try:
        victim = NonReader(server.port)
        try:
            victim.emit('21["join","victims"]')  # acknowledged, but the victim won't read the ack
            with ws_connect(server.ws_url + "/socket.io/?EIO=4&transport=websocket") as ctl:
                assert ctl.recv(TIMEOUT).startswith("0")
                ctl.send("40")
                assert ctl.recv(TIMEOUT).startswith("40")

                def ask(n: int, event: str, *args: Any) -> Any:
                    ctl.send(f"42{n}" + json.dumps([event, *args]))
                    reply = ctl.recv(30)
                    assert isinstance(reply, str) and reply.startswith(f"43{n}["), reply
                    return json.loads(reply[len(f"43{n}"):])[0]

                # warm up the code paths, then take the baseline
                ask(1, "blast", {"count": 200, "size": 1000, "room": "nobody"})
                before = ask(2, "memory")
                assert ask(3, "blast", {"count": 50_000, "size": 1000, "room": "victims"}) == 50_000
                after = ask(4, "memory")
            server.wait_line(f"disconnect {victim.sid} send_buffer_full", timeout=10)
        finally:
            victim.close()
    finally:
        server.kill()
    # The peak (VmHWM), not only what is left after the disconnect: the buffer was bounded throughout.
    peak_growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    rss_growth_mb = (after["VmRSS"] - before["VmRSS"]) / 1024
    assert peak_growth_mb < 8, f"peak RSS grew by {peak_growth_mb:.1f} MB"
    assert rss_growth_mb < 4, f"RSS grew by {rss_growth_mb:.1f} MB"


# -- the accounting itself, on the sans-I/O session ------------------------------------------------


def test_a_held_batch_counts_until_written() -> None:
    from roomcast.engineio.session import Session, SessionConfig, State

    session = Session("sid", "websocket", SessionConfig(max_send_buffer=10), now=0.0)
    session.handshake([])
    assert session.send("4" + "a" * 5)
    assert session.take_packets(hold=True) == ["4aaaaa"]
    assert session.buffered_bytes == 6  # the writer holds it: still counted
    assert session.send("4bcd")
    assert session.buffered_bytes == 10
    session.written()
    assert session.buffered_bytes == 4  # only the batch taken is released
    assert session.take_packets(hold=True) == ["4bcd"]
    assert not session.send("4" + "e" * 6)  # 4 held + 7 queued = 11 > 10: one too many
    assert session.state is State.CLOSED
    assert session.close_reason == "send buffer full"
    session.written()  # a writer finishing after the close changes nothing
    assert session.buffered_bytes == 0


def test_take_packets_without_hold_releases_at_once() -> None:
    from roomcast.engineio.session import Session, SessionConfig

    session = Session("sid", "websocket", SessionConfig(max_send_buffer=10), now=0.0)
    session.handshake([])
    session.send("4" + "a" * 9)
    session.take_packets()
    assert session.buffered_bytes == 0
    assert session.send("4" + "b" * 9)


def test_connect_handler_emitting_without_bound_is_cut_at_the_buffer_bound(serve: Callable[..., App]) -> None:
    # What a connect handler emits to its own client waits for the CONNECT reply; it counts against
    # max_send_buffer like any queued packet, so a handler that emits without end cannot grow it.
    sio = roomcast.AsyncServer(max_send_buffer=MAX_SEND_BUFFER)
    emitted: list[int] = []

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if auth == {"blast": True}:
            while sid in sio.sockets and len(emitted) * len(MESSAGE) < 10 * MAX_SEND_BUFFER:
                await sio.emit("news", MESSAGE, to=sid)
                emitted.append(len(MESSAGE))

    @sio.on("echo")
    async def echo(sid: str, *args: Any) -> Any:
        return args

    app = serve(sio=sio)
    with Canary(app) as canary:
        with ws_connect(app.ws_url(), open_timeout=TIMEOUT) as ws:
            assert str(ws.recv(TIMEOUT)).startswith("0")
            ws.send('40{"blast":true}')
            frames: list[Any] = []
            ws_close_frame(ws, into=frames)  # the connection ends (dropped, as a send buffer overflow is)
        assert MAX_SEND_BUFFER - len(MESSAGE) <= sum(emitted) <= MAX_SEND_BUFFER + len(MESSAGE)
        assert not any(str(frame).startswith("40") for frame in frames)  # never connected
        canary.check()
