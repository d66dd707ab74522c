"""Engine.IO over real sockets: EngineServer (and AsyncServer) under uvicorn on 127.0.0.1, driven by
raw HTTP (httpx) and raw WebSocket frames (the websockets sync client).

Handlers record what happens; tests wait for it with deadlines. Every hostile case ends with a canary:
a second, well-behaved session on the same server must still work.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

import roomcast
from roomcast import EngineServer
from tests.helpers import wait_until

if TYPE_CHECKING:
    from tests.asyncio.conftest import LiveServer

TIMEOUT = 5.0


class Recorder:
    """Events from the server's handlers (called on the server thread), awaited from the test thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[tuple[Any, ...]] = []

    def add(self, *event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: str, sid: str | None = None) -> list[tuple[Any, ...]]:
        with self._cond:
            return [e for e in self.events if e[0] == kind and (sid is None or e[1] == sid)]

    def wait(self, kind: str, sid: str | None = None, count: int = 1, timeout: float = TIMEOUT) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e[0] == kind and (sid is None or e[1] == sid)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count} {kind!r} event(s) for {sid} within {timeout} s: {self.events}")
                self._cond.wait(left)


class Engine:
    """An EngineServer under uvicorn whose handlers record every event and echo every message."""

    def __init__(self, live: LiveServer, eio: EngineServer, rec: Recorder) -> None:
        self.live = live
        self.eio = eio
        self.rec = rec
        self.url = live.url + "/engine.io/"

    def ws_url(self, **query: str) -> str:
        params = {"EIO": "4", "transport": "websocket", **query}
        return self.live.ws_url + "/engine.io/?" + "&".join(f"{k}={v}" for k, v in params.items())

    def send(self, sid: str, data: str | bytes) -> None:
        self.live.call(self.eio.send(sid, data))

    def disconnect(self, sid: str) -> None:
        self.live.call(self.eio.disconnect(sid))

    def session_attr(self, sid: str, name: str) -> Any:
        """Read one attribute of a session's core state, on the server's loop."""
        assert self.eio.app is not None
        app = self.eio.app

        def read() -> Any:
            conn = app.connections.get(sid)
            return None if conn is None else getattr(conn.session, name)

        return self.live.run_sync(read)

    def wait_pending_get(self, sid: str) -> None:
        wait_until(lambda: self.session_attr(sid, "polling_get"))

    def disconnect_reason(self, sid: str, timeout: float = TIMEOUT) -> str:
        reason: str = self.rec.wait("disconnect", sid, timeout=timeout)[0][2]
        return reason

    def connected(self, sid: str) -> bool:
        assert self.eio.app is not None
        return bool(self.live.run_sync(lambda: sid in self.eio.app.connections))  # type: ignore[union-attr]


@pytest.fixture
def engine(serve: Callable[..., LiveServer]) -> Callable[..., Engine]:
    """``engine(**options)``: a recording, echoing EngineServer under uvicorn.

    Text messages come back as ``"re:" + text``, binary ones unchanged. ``connect`` (a callable taking
    ``sid, environ``) can refuse connections; ``other_asgi_app`` and ``uvicorn`` options pass through.
    """

    def make(
        *,
        connect: Callable[[str, dict[str, Any]], Any] | None = None,
        other_asgi_app: Any = None,
        uvicorn: dict[str, Any] | None = None,
        **options: Any,
    ) -> Engine:
        eio = EngineServer(**options)
        rec = Recorder()

        @eio.on("connect")
        def on_connect(sid: str, environ: dict[str, Any]) -> Any:
            rec.add("connect", sid, environ)
            return connect(sid, environ) if connect is not None else None

        @eio.on("message")
        async def on_message(sid: str, data: str | bytes) -> None:
            rec.add("message", sid, data)
            await eio.send(sid, "re:" + data if isinstance(data, str) else data)

        @eio.on("disconnect")
        def on_disconnect(sid: str, reason: str) -> None:
            rec.add("disconnect", sid, reason)

        live = serve(eio.asgi_app(other_asgi_app=other_asgi_app), **(uvicorn or {}))
        return Engine(live, eio, rec)

    return make


@pytest.fixture
def background() -> Iterator[Callable[..., Future[Any]]]:
    """Run a blocking call (a long-polling GET) in a worker thread."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool.submit


class Polling:
    """A hand-driven long-polling client."""

    def __init__(self, engine: Engine, headers: dict[str, str] | None = None) -> None:
        self.engine = engine
        self.http = httpx.Client(timeout=TIMEOUT, headers=headers)
        self.sid = ""

    def __enter__(self) -> Polling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def handshake(self) -> dict[str, Any]:
        r = self.http.get(self.engine.url, params={"EIO": "4", "transport": "polling"})
        assert r.status_code == 200, r.text
        assert r.text[0] == "0", r.text
        info: dict[str, Any] = json.loads(r.text[1:])
        self.sid = info["sid"]
        return info

    def params(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    def get(self, **headers: str) -> httpx.Response:
        return self.http.get(self.engine.url, params=self.params(), headers=headers)

    def post(self, body: str | bytes) -> httpx.Response:
        content = body.encode() if isinstance(body, str) else body
        return self.http.post(self.engine.url, params=self.params(), content=content)


def handshake_frame(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(TIMEOUT)
    assert isinstance(frame, str) and frame[0] == "0", frame
    info: dict[str, Any] = json.loads(frame[1:])
    return info


def recv_skipping_pings(ws: ClientConnection) -> str | bytes:
    """The next frame that is not a ping (pings are answered, as a client must)."""
    while True:
        frame = ws.recv(TIMEOUT)
        if frame != "2":
            return frame
        ws.send("3")


def closed_code(ws: ClientConnection) -> int:
    """Wait for the server to close ``ws``; return the close code it sent."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(TIMEOUT)
    assert info.value.rcvd is not None, "the server closed the TCP connection without a close frame"
    return info.value.rcvd.code


def assert_canary(engine: Engine) -> None:
    """A second, well-behaved session on the same server still works, over both transports."""
    with Polling(engine) as client:
        client.handshake()
        assert client.post("4canary").text == "ok"
        assert client.get().text == "4re:canary"
        assert client.post("1").text == "ok"
        assert engine.disconnect_reason(client.sid) == "transport close"
    with ws_connect(engine.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        ws.send("4canary")
        assert recv_skipping_pings(ws) == "4re:canary"
    assert engine.disconnect_reason(sid) == "transport close"


def error_body(r: httpx.Response, status: int = 400) -> Any:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


# -- handshakes and messages -------------------------------------------------------------------------


def test_polling_handshake_and_messages(engine: Callable[..., Engine]) -> None:
    e = engine(ping_interval=12.5, ping_timeout=7.5, max_http_buffer_size=4321)
    with Polling(e) as client:
        r = client.http.get(e.url, params={"EIO": "4", "transport": "polling", "t": "x1"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; charset=UTF-8"
        info = json.loads(r.text[1:])
        assert r.text[0] == "0"
        assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert info["upgrades"] == ["websocket"]
        assert (info["pingInterval"], info["pingTimeout"], info["maxPayload"]) == (12500, 7500, 4321)
        client.sid = sid = info["sid"]
        (_, connect_sid, environ), = e.rec.wait("connect")
        assert connect_sid == sid
        assert environ["REQUEST_METHOD"] == "GET"
        assert environ["PATH_INFO"] == "/engine.io/"
        assert "EIO=4" in environ["QUERY_STRING"] and "t=x1" in environ["QUERY_STRING"]
        assert environ["REMOTE_ADDR"] == "127.0.0.1"
        assert "asgi.scope" in environ
        assert e.eio.transport(sid) == "polling"

        # Several packets in one POST, text and binary, come out in order and echo in one GET.
        r = client.post("4hello\x1ebAQIDBA==\x1e4€ wörld")
        assert (r.status_code, r.text) == (200, "ok")
        messages = [m[2] for m in e.rec.wait("message", sid, count=3)]
        assert messages == ["hello", b"\x01\x02\x03\x04", "€ wörld"]
        assert client.get().text == "4re:hello\x1ebAQIDBA==\x1e4re:€ wörld"


def test_pending_get_is_answered_when_the_server_sends(
    engine: Callable[..., Engine], background: Callable[..., Future[Any]]
) -> None:
    e = engine()
    with Polling(e) as client:
        client.handshake()
        pending = background(client.get)
        e.wait_pending_get(client.sid)
        assert not pending.done()
        e.send(client.sid, b"\xff\x00")
        assert pending.result(TIMEOUT).text == "b/wA="


def test_websocket_only_session(engine: Callable[..., Engine]) -> None:
    e = engine(ping_interval=12.5, ping_timeout=7.5, max_http_buffer_size=4321)
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        info = handshake_frame(ws)
        assert info["upgrades"] == []
        assert (info["pingInterval"], info["pingTimeout"], info["maxPayload"]) == (12500, 7500, 4321)
        sid = info["sid"]
        assert e.rec.wait("connect")[0][1] == sid
        assert e.eio.transport(sid) == "websocket"
        ws.send("4hi")
        assert ws.recv(TIMEOUT) == "4re:hi"
        ws.send(b"\x00\x01")
        assert ws.recv(TIMEOUT) == b"\x00\x01"
        e.send(sid, "pushed")
        e.send(sid, b"raw")
        assert ws.recv(TIMEOUT) == "4pushed"
        assert ws.recv(TIMEOUT) == b"raw"
        assert [m[2] for m in e.rec.of("message", sid)] == ["hi", b"\x00\x01"]
    assert e.disconnect_reason(sid) == "transport close"
    assert not e.connected(sid)


def test_upgrade_by_hand(engine: Callable[..., Engine], background: Callable[..., Future[Any]]) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        pending = background(client.get)
        e.wait_pending_get(sid)
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send("2probe")
            assert ws.recv(TIMEOUT) == "3probe"
            # "send a noop packet to any pending GET request ... to cleanly close HTTP long-polling"
            assert pending.result(TIMEOUT).text == "6"
            # Emitted between the probe and the upgrade packet: neither lost nor sent on polling.
            e.send(sid, "during")
            assert e.eio.transport(sid) == "polling"
            ws.send("5")
            assert ws.recv(TIMEOUT) == "4during"
            wait_until(lambda: e.eio.transport(sid) == "websocket")
            ws.send("4after")
            assert ws.recv(TIMEOUT) == "4re:after"
            e.send(sid, "pushed")
            assert ws.recv(TIMEOUT) == "4pushed"
            # Polling is over for this session.
            assert error_body(client.get()) == {"code": 3, "message": "Bad request"}
            assert error_body(client.post("4late")) == {"code": 3, "message": "Bad request"}
            # ... and so is a second WebSocket.
            with pytest.raises(InvalidStatus):
                ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT).close()
            assert e.connected(sid)
            ws.send("1")
            assert closed_code(ws) == 1000
        assert e.disconnect_reason(sid) == "transport close"
        assert [m[2] for m in e.rec.of("message", sid)] == ["after"]


def test_messages_posted_during_the_upgrade_arrive(engine: Callable[..., Engine]) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send("2probe")
            assert ws.recv(TIMEOUT) == "3probe"
            # A POST already in flight when the client paused polling.
            assert client.post("4in flight").text == "ok"
            ws.send("5")
            # Its echo was queued during the upgrade; the WebSocket delivers it.
            assert ws.recv(TIMEOUT) == "4re:in flight"


def test_upgrade_timeout_falls_back_to_polling(engine: Callable[..., Engine]) -> None:
    e = engine(upgrade_timeout=0.3)
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send("2probe")
            assert ws.recv(TIMEOUT) == "3probe"
            started = time.monotonic()
            assert closed_code(ws) == 1000  # the server gave up on the upgrade
            assert time.monotonic() - started > 0.2
        assert client.post("4still polling").text == "ok"
        assert client.get().text == "4re:still polling"
        assert e.eio.transport(sid) == "polling"
        assert not e.rec.of("disconnect")


def test_probing_websocket_gone_falls_back_to_polling(engine: Callable[..., Engine]) -> None:
    e = engine(ping_interval=0.5, ping_timeout=5)
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send("2probe")
            assert ws.recv(TIMEOUT) == "3probe"
        wait_until(lambda: e.session_attr(sid, "upgrade_failed"))
        assert client.post("4back").text == "ok"
        assert client.get().text == "4re:back"
        assert e.eio.transport(sid) == "polling"
        # A later attempt is not condemned by the failed one, even when a timer (the ping) fires
        # while it is in progress.
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send("2probe")
            assert ws.recv(TIMEOUT) == "3probe"
            assert not e.session_attr(sid, "has_packets")
            wait_until(lambda: e.session_attr(sid, "has_packets"))  # the ping, held for the new transport
            ws.send("5")
            assert ws.recv(TIMEOUT) == "2"
            ws.send("3")
            assert e.eio.transport(sid) == "websocket"
            ws.send("4upgraded")
            assert ws.recv(TIMEOUT) == "4re:upgraded"


@pytest.mark.parametrize("first", ["4hello", "2", "5", b"\x01"])
def test_bad_probe_fails_the_upgrade_not_the_session(engine: Callable[..., Engine], first: str | bytes) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send(first)
            assert closed_code(ws) == 1002
        assert client.post("4fine").text == "ok"
        assert client.get().text == "4re:fine"
        assert e.connected(sid)


def test_one_probing_websocket_at_a_time(engine: Callable[..., Engine]) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        with ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT) as ws:
            ws.send("2probe")
            assert ws.recv(TIMEOUT) == "3probe"
            with pytest.raises(InvalidStatus) as info:
                ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT).close()
            assert info.value.response.status_code == 403
            ws.send("5")
            wait_until(lambda: e.eio.transport(sid) == "websocket")


# -- heartbeat ---------------------------------------------------------------------------------------


def test_answered_pings_keep_a_websocket_session(engine: Callable[..., Engine]) -> None:
    e = engine(ping_interval=0.2, ping_timeout=0.2)
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        info = handshake_frame(ws)
        assert (info["pingInterval"], info["pingTimeout"]) == (200, 200)
        for _ in range(3):
            assert ws.recv(TIMEOUT) == "2"
            ws.send("3")
        ws.send("4alive")
        assert recv_skipping_pings(ws) == "4re:alive"
        assert not e.rec.of("disconnect")


def test_ping_timeout_closes_a_silent_websocket_client(engine: Callable[..., Engine]) -> None:
    e = engine(ping_interval=0.2, ping_timeout=0.2)
    started = time.monotonic()
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        assert ws.recv(TIMEOUT) == "2"
        assert closed_code(ws) == 1000
    assert e.disconnect_reason(sid) == "ping timeout"
    assert time.monotonic() - started >= 0.35  # interval + timeout, not earlier
    assert_canary(e)


def test_polling_heartbeat(engine: Callable[..., Engine]) -> None:
    e = engine(ping_interval=0.2, ping_timeout=0.2)
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        assert client.get().text == "2"
        assert client.post("3").text == "ok"
        assert client.get().text == "2"  # the next ping, one interval after the pong
        # Now stay silent: no pong.
        assert e.disconnect_reason(sid) == "ping timeout"
        assert error_body(client.get()) == {"code": 1, "message": "Session ID unknown"}


# -- closing -----------------------------------------------------------------------------------------


def test_client_close_packet_on_websocket(engine: Callable[..., Engine]) -> None:
    e = engine()
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        ws.send("4last")
        assert ws.recv(TIMEOUT) == "4re:last"
        ws.send("1")
        assert closed_code(ws) == 1000
    assert e.disconnect_reason(sid) == "transport close"


def test_client_close_packet_on_polling(
    engine: Callable[..., Engine], background: Callable[..., Future[Any]]
) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        pending = background(client.get)
        e.wait_pending_get(sid)
        assert client.post("4last words\x1e1").text == "ok"
        assert e.disconnect_reason(sid) == "transport close"
        # The message before the close packet was delivered, not dropped.
        assert [m[2] for m in e.rec.wait("message", sid)] == ["last words"]
        assert pending.result(TIMEOUT).text == "1"
        assert error_body(client.get()) == {"code": 1, "message": "Session ID unknown"}


def test_server_disconnect_releases_the_pending_get(
    engine: Callable[..., Engine], background: Callable[..., Future[Any]]
) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        pending = background(client.get)
        e.wait_pending_get(sid)

        async def goodbye() -> None:
            # One step of the server's loop: the GET wakes after both calls.
            await e.eio.send(sid, "bye")
            await e.eio.disconnect(sid)

        e.live.call(goodbye())
        assert pending.result(TIMEOUT).text == "4bye\x1e1"  # flushed, then closed
        assert e.disconnect_reason(sid) == "forced close"


def test_server_disconnect_of_a_polling_client_that_stopped_polling(engine: Callable[..., Engine]) -> None:
    # No GET ever comes for the close packet: the session still ends, within a heartbeat.
    e = engine(ping_interval=0.2, ping_timeout=0.2)
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        e.disconnect(sid)
        assert e.disconnect_reason(sid, timeout=2) == "forced close"
        assert not e.connected(sid)
        assert error_body(client.get()) == {"code": 1, "message": "Session ID unknown"}


def test_server_disconnect_closes_the_websocket(engine: Callable[..., Engine]) -> None:
    e = engine()
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        e.send(sid, "bye")
        e.disconnect(sid)
        assert ws.recv(TIMEOUT) == "4bye"  # flushed before the close
        assert closed_code(ws) == 1000
    assert e.disconnect_reason(sid) == "forced close"


def test_polling_get_abandoned_by_the_client(engine: Callable[..., Engine]) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
    with httpx.Client(timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.get(e.url, params={"EIO": "4", "transport": "polling", "sid": sid})
    assert e.disconnect_reason(sid) == "transport error"
    assert_canary(e)


# -- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("GET", {"EIO": "3", "transport": "polling"}, {"code": 5, "message": "Unsupported protocol version"}),
        ("GET", {"transport": "polling"}, {"code": 5, "message": "Unsupported protocol version"}),
        ("GET", {"EIO": "4", "transport": "carrier-pigeon"}, {"code": 0, "message": "Transport unknown"}),
        ("GET", {"EIO": "4"}, {"code": 0, "message": "Transport unknown"}),
        ("GET", {"EIO": "4", "transport": "polling", "sid": "nope"}, {"code": 1, "message": "Session ID unknown"}),
        ("POST", {"EIO": "4", "transport": "polling", "sid": "nope"}, {"code": 1, "message": "Session ID unknown"}),
        ("POST", {"EIO": "4", "transport": "polling"}, {"code": 2, "message": "Bad handshake method"}),
        ("PUT", {"EIO": "4", "transport": "polling"}, {"code": 2, "message": "Bad handshake method"}),
        ("GET", {"EIO": "4", "transport": "websocket"}, {"code": 3, "message": "Bad request"}),
    ],
)
def test_error_responses(
    engine: Callable[..., Engine], method: str, params: dict[str, str], expected: dict[str, Any]
) -> None:
    e = engine()
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.request(method, e.url, params=params, content=b"4x" if method != "GET" else None)
    assert error_body(r) == expected
    assert not e.rec.of("connect")
    assert_canary(e)


@pytest.mark.parametrize(
    "query",
    [{"EIO": "3"}, {"transport": "polling"}, {"sid": "nope"}],
    ids=["bad-eio", "polling-transport", "unknown-sid"],
)
def test_websocket_refusals(engine: Callable[..., Engine], query: dict[str, str]) -> None:
    e = engine()
    with pytest.raises(InvalidStatus) as info:
        ws_connect(e.ws_url(**query), open_timeout=TIMEOUT).close()
    assert info.value.response.status_code == 403
    assert not e.rec.of("connect")
    assert_canary(e)


def test_no_websocket_on_a_websocket_session(engine: Callable[..., Engine]) -> None:
    e = engine()
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        with pytest.raises(InvalidStatus):
            ws_connect(e.ws_url(sid=sid), open_timeout=TIMEOUT).close()
        ws.send("4ok")
        assert ws.recv(TIMEOUT) == "4re:ok"


def test_concurrent_get_closes_the_session(
    engine: Callable[..., Engine], background: Callable[..., Future[Any]]
) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        pending = background(client.get)
        e.wait_pending_get(sid)
        assert error_body(client.get()) == {"code": 3, "message": "Bad request"}
        assert pending.result(TIMEOUT).text == "1"
        assert e.disconnect_reason(sid) == "transport error"
        assert error_body(client.get()) == {"code": 1, "message": "Session ID unknown"}
    assert_canary(e)


def test_oversized_post_closes_the_session(engine: Callable[..., Engine]) -> None:
    e = engine(max_http_buffer_size=1000)
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        assert client.post("4" + "x" * 999).text == "ok"  # exactly the limit is fine
        r = client.post("4" + "x" * 5000)
        assert error_body(r, 413) == {"code": 3, "message": "Payload too large"}
        assert e.disconnect_reason(sid) == "payload too large"
        assert [len(m[2]) for m in e.rec.wait("message", sid)] == [999]
        assert error_body(client.get()) == {"code": 1, "message": "Session ID unknown"}
    assert_canary(e)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "payload is not valid UTF-8 (byte 0)"),
        (b"4a\x1e\x1e4b", "empty packet in payload"),
        (b"b!!!", "invalid base64 in binary packet"),
        (b"0{}", "unexpected Engine.IO packet type '0' from the client"),
    ],
)
def test_malformed_post_closes_the_session(engine: Callable[..., Engine], body: bytes, message: str) -> None:
    e = engine()
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        assert error_body(client.post(body)) == {"code": 3, "message": message}
        assert e.disconnect_reason(sid) == "parse error"
    assert_canary(e)


@pytest.mark.parametrize(
    ("at_limit", "over_limit"),
    [
        ("4" + "x" * 999, "4" + "x" * 1000),
        ("4" + "€" * 333, "4" + "€" * 334),  # the limit is in UTF-8 bytes: 1000 vs 1003
        (b"\x00" * 1000, b"\x00" * 1001),
    ],
    ids=["ascii", "multibyte", "binary"],
)
def test_oversized_websocket_message(
    engine: Callable[..., Engine], at_limit: str | bytes, over_limit: str | bytes
) -> None:
    e = engine(max_http_buffer_size=1000)
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        ws.send(at_limit)
        assert recv_skipping_pings(ws)
        ws.send(over_limit)
        assert closed_code(ws) == 1009
    assert e.disconnect_reason(sid) == "payload too large"
    assert_canary(e)


@pytest.mark.parametrize("frame", ["9", "", "0{}", "5"])
def test_malformed_websocket_packet(engine: Callable[..., Engine], frame: str) -> None:
    e = engine()
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        ws.send(frame)
        assert closed_code(ws) == 1002
    assert e.disconnect_reason(sid) == "parse error"
    assert_canary(e)


def test_connect_handler_refuses(engine: Callable[..., Engine]) -> None:
    e = engine(connect=lambda sid, environ: "token=good" in environ["QUERY_STRING"])
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(e.url, params={"EIO": "4", "transport": "polling"})
        assert error_body(r, 401) == {"code": 4, "message": "Unauthorized"}
        r = http.get(e.url, params={"EIO": "4", "transport": "polling", "token": "good"})
        assert r.status_code == 200
        params = {"EIO": "4", "transport": "polling", "sid": json.loads(r.text[1:])["sid"]}
        assert http.post(e.url, params=params, content=b"1").text == "ok"
    with pytest.raises(InvalidStatus) as info:
        ws_connect(e.ws_url(), open_timeout=TIMEOUT).close()
    assert info.value.response.status_code == 403
    with ws_connect(e.ws_url(token="good"), open_timeout=TIMEOUT) as ws:
        handshake_frame(ws)
    sids = [c[1] for c in e.rec.of("connect")]
    assert len(sids) == 4
    e.rec.wait("disconnect", count=2)
    # Refused connections never were sessions: only the accepted ones disconnect.
    assert sorted(d[1] for d in e.rec.of("disconnect")) == sorted([sids[1], sids[3]])
    assert error_body(httpx.get(e.url, params={"EIO": "4", "transport": "polling", "sid": sids[0]})) == {
        "code": 1,
        "message": "Session ID unknown",
    }


def test_failing_or_async_connect_handlers(engine: Callable[..., Engine]) -> None:
    async def connect(sid: str, environ: dict[str, Any]) -> bool:
        if "fail" in environ["QUERY_STRING"]:
            raise RuntimeError("connect handler failure")
        return "refuse" not in environ["QUERY_STRING"]

    e = engine(connect=connect)
    with httpx.Client(timeout=TIMEOUT) as http:
        for flag, status in (("fail", 401), ("refuse", 401), ("ok", 200)):
            r = http.get(e.url, params={"EIO": "4", "transport": "polling", flag: "1"})
            assert r.status_code == status, flag
    assert len(e.rec.of("connect")) == 3
    assert_canary(e)


def test_send_buffer_full_closes_the_session(engine: Callable[..., Engine]) -> None:
    # A polling client that stops fetching is disconnected, not allowed to eat the server's memory.
    e = engine(max_send_buffer=1000)
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        e.send(sid, "x" * 600)
        assert e.connected(sid)
        e.send(sid, "x" * 600)
        assert e.disconnect_reason(sid) == "send buffer full"
        assert error_body(client.get()) == {"code": 1, "message": "Session ID unknown"}
    assert_canary(e)


def test_shutdown_closes_every_session(
    engine: Callable[..., Engine], background: Callable[..., Future[Any]]
) -> None:
    e = engine()
    assert e.eio.app is not None
    with Polling(e) as client, ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        ws_sid = handshake_frame(ws)["sid"]
        sid = client.handshake()["sid"]
        pending = background(client.get)
        e.wait_pending_get(sid)
        e.live.call(e.eio.app.shutdown(timeout=TIMEOUT))
        assert pending.result(TIMEOUT).text == "1"
        assert closed_code(ws) == 1000
    assert e.disconnect_reason(sid) == "server shutting down"
    assert e.disconnect_reason(ws_sid) == "server shutting down"
    assert e.live.run_sync(lambda: not e.eio.app.connections)  # type: ignore[union-attr]


def lifespan_messages(app: Any) -> list[str]:
    """Run one lifespan cycle in-process; return the message types the app sent."""
    sent: list[str] = []

    async def scenario() -> None:
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(scenario())
    return sent


def test_lifespan_alone() -> None:
    eio = EngineServer()
    assert lifespan_messages(eio.asgi_app()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_lifespan_goes_to_the_other_app() -> None:
    seen: list[str] = []

    async def other(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            seen.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    eio = EngineServer()
    app = eio.asgi_app(other_asgi_app=other)
    assert lifespan_messages(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen == ["lifespan.startup", "lifespan.shutdown"]


def http_scope(query: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/engine.io/",
        "raw_path": b"/engine.io/",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def test_a_send_racing_the_poll_request_is_not_lost() -> None:
    # In-process, to pin one interleaving of the event loop: a packet is queued by a callback that
    # runs right after the GET has decided to wait, before anything else ran. The GET must see it
    # (not sleep until the next ping, pingInterval later).
    eio = EngineServer()
    app = eio.asgi_app()

    async def call(query: str, *, then: Callable[[], Any] | None = None) -> str:
        sent: list[dict[str, Any]] = []
        never = asyncio.Event()
        requests = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if requests:
                return requests.pop()
            await never.wait()  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        task = asyncio.ensure_future(app(http_scope(query), receive, send))
        if then is not None:
            asyncio.get_running_loop().call_soon(then)
        await asyncio.wait_for(task, 2)
        return bytes(sent[1]["body"]).decode()

    async def scenario() -> str:
        sid = json.loads((await call("EIO=4&transport=polling"))[1:])["sid"]
        conn = app.connections[sid]
        try:
            return await call(f"EIO=4&transport=polling&sid={sid}", then=lambda: conn.send("4raced"))
        finally:
            await app.shutdown(timeout=0)

    assert asyncio.run(scenario()) == "4raced"


# -- routing -----------------------------------------------------------------------------------------


async def other_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI app standing for the rest of a website."""
    if scope["type"] == "http":
        body = f"other:{scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"other:{scope['path']}"})
        await send({"type": "websocket.close", "code": 1000})


def test_other_paths_go_to_the_other_app(engine: Callable[..., Engine]) -> None:
    e = engine(other_asgi_app=other_app)
    with httpx.Client(timeout=TIMEOUT) as http:
        assert http.get(e.live.url + "/").text == "other:/"
        assert http.get(e.live.url + "/engine.iox/").text == "other:/engine.iox/"
        assert http.get(e.live.url + "/static/app.js").text == "other:/static/app.js"
        r = http.get(e.url, params={"EIO": "4", "transport": "polling"})
        assert r.text[0] == "0"
    with ws_connect(e.live.ws_url + "/chat", open_timeout=TIMEOUT) as ws:
        assert ws.recv(TIMEOUT) == "other:/chat"


def test_other_paths_are_404_without_another_app(engine: Callable[..., Engine]) -> None:
    e = engine()
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(e.live.url + "/nothing-here")
        assert (r.status_code, r.text) == (404, "Not Found")
        # Both spellings of the Engine.IO path are served.
        assert http.get(e.live.url + "/engine.io", params={"EIO": "4", "transport": "polling"}).status_code == 200
    with pytest.raises(InvalidStatus):
        ws_connect(e.live.ws_url + "/nothing-here", open_timeout=TIMEOUT).close()


def test_root_path_scope_in_process() -> None:
    eio = EngineServer()
    environs: list[dict[str, Any]] = []
    eio.on("connect", lambda sid, environ: environs.append(environ))
    app = eio.asgi_app()

    async def call(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "/mount",
            "query_string": b"EIO=4&transport=polling",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)
        return sent

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        mounted = await call("/mount/engine.io/")
        outside = await call("/mount/other")
        await app.shutdown(timeout=0)
        return mounted, outside

    mounted, outside = asyncio.run(scenario())
    assert mounted[0]["status"] == 200
    assert mounted[1]["body"].startswith(b"0{")
    assert outside[0]["status"] == 404
    assert len(environs) == 1
    assert (environs[0]["SCRIPT_NAME"], environs[0]["PATH_INFO"]) == ("/mount", "/engine.io/")


def test_root_path_under_uvicorn(engine: Callable[..., Engine]) -> None:
    e = engine(uvicorn={"root_path": "/mount"})
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        assert client.post("4mounted").text == "ok"
        assert client.get().text == "4re:mounted"
    environ = e.rec.wait("connect", sid)[0][2]
    assert environ["SCRIPT_NAME"] == "/mount"


# -- CORS, cookie, compression -----------------------------------------------------------------------


def test_same_origin_is_allowed_by_default(engine: Callable[..., Engine]) -> None:
    e = engine()
    origin = e.live.url  # what a page served by this very server sends
    with Polling(e, headers={"Origin": origin}) as client:
        client.handshake()
        r = client.post("4x")
        assert r.text == "ok"
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in r.headers["vary"]
    with ws_connect(e.ws_url(), origin=Origin(origin), open_timeout=TIMEOUT) as ws:
        handshake_frame(ws)


def test_foreign_origin_is_refused_by_default(engine: Callable[..., Engine]) -> None:
    e = engine()
    with httpx.Client(timeout=TIMEOUT, headers={"Origin": "http://evil.example"}) as http:
        r = http.get(e.url, params={"EIO": "4", "transport": "polling"})
        assert error_body(r) == {"code": 3, "message": "Not an accepted origin."}
        assert "access-control-allow-origin" not in r.headers
    with pytest.raises(InvalidStatus):
        ws_connect(e.ws_url(), origin=Origin("http://evil.example"), open_timeout=TIMEOUT).close()
    assert not e.rec.of("connect")
    assert_canary(e)


def test_cors_allowed_origins_list_and_preflight(engine: Callable[..., Engine]) -> None:
    e = engine(cors_allowed_origins=("https://app.example",))
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.options(
            e.url,
            params={"EIO": "4", "transport": "polling"},
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert r.headers["access-control-allow-methods"] == "OPTIONS, GET, POST"
        assert r.headers["access-control-allow-headers"] == "content-type"
        r = http.get(e.url, params={"EIO": "4", "transport": "polling"}, headers={"Origin": "https://app.example"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = http.get(e.url, params={"EIO": "4", "transport": "polling"}, headers={"Origin": e.live.url})
        assert r.status_code == 400  # same-origin is no longer implied once a list is given


def test_session_errors_carry_cors_headers(
    engine: Callable[..., Engine], background: Callable[..., Future[Any]]
) -> None:
    # A cross-origin page can only read an error it is allowed to see.
    e = engine(cors_allowed_origins="*", max_http_buffer_size=100)
    origin = {"Origin": "https://app.example"}
    with Polling(e, headers=origin) as client:
        client.handshake()
        r = client.post("4" + "x" * 200)
        assert error_body(r, 413) == {"code": 3, "message": "Payload too large"}
        assert r.headers["access-control-allow-origin"] == "https://app.example"
    with Polling(e, headers=origin) as client:
        client.handshake()
        r = client.post(b"\xff")
        assert error_body(r)["code"] == 3
        assert r.headers["access-control-allow-origin"] == "https://app.example"
    with Polling(e, headers=origin) as client:
        sid = client.handshake()["sid"]
        pending = background(client.get)
        e.wait_pending_get(sid)
        r = client.get()
        assert error_body(r) == {"code": 3, "message": "Bad request"}
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert pending.result(TIMEOUT).text == "1"


def test_handshake_cookie(engine: Callable[..., Engine]) -> None:
    e = engine(cookie="io")
    with Polling(e) as client:
        r = client.http.get(e.url, params={"EIO": "4", "transport": "polling"})
        sid = json.loads(r.text[1:])["sid"]
        assert r.headers["set-cookie"] == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"
    with ws_connect(e.ws_url(), open_timeout=TIMEOUT) as ws:
        sid = handshake_frame(ws)["sid"]
        assert ws.response is not None
        assert ws.response.headers["set-cookie"] == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"


def test_gzip_on_a_large_poll_response(engine: Callable[..., Engine]) -> None:
    e = engine()
    big = "roomcast " * 1000
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        e.send(sid, big)
        r = client.get(**{"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) < len(big) // 10
        assert r.text == "4" + big  # httpx decoded it
        e.send(sid, "small")
        r = client.get(**{"Accept-Encoding": "gzip"})
        assert "content-encoding" not in r.headers
        assert r.text == "4small"


def test_no_compression_when_disabled(engine: Callable[..., Engine]) -> None:
    e = engine(http_compression=False)
    big = "roomcast " * 1000
    with Polling(e) as client:
        sid = client.handshake()["sid"]
        e.send(sid, big)
        r = client.get(**{"Accept-Encoding": "gzip"})
        assert "content-encoding" not in r.headers
        assert r.text == "4" + big


# -- application errors ------------------------------------------------------------------------------


def test_failing_message_handlers_do_not_break_the_session(
    serve: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    eio = EngineServer()

    @eio.on("message")
    def message(sid: str, data: str | bytes) -> Any:
        if data == "sync boom":
            raise RuntimeError("sync handler failure")
        if data == "async boom":

            async def fail() -> None:
                raise RuntimeError("async handler failure")

            return fail()
        return eio.send(sid, "re:" + str(data))

    live = serve(eio.asgi_app())
    url = live.url + "/engine.io/"
    with httpx.Client(timeout=TIMEOUT) as http:
        sid = json.loads(http.get(url, params={"EIO": "4", "transport": "polling"}).text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        r = http.post(url, params=params, content=b"4sync boom\x1e4async boom\x1e4after")
        assert (r.status_code, r.text) == (200, "ok")
        assert http.get(url, params=params).text == "4re:after"
    with ws_connect(live.ws_url + "/engine.io/?EIO=4&transport=websocket", open_timeout=TIMEOUT) as ws:
        handshake_frame(ws)
        ws.send("4sync boom")
        ws.send("4async boom")
        ws.send("4still here")
        assert ws.recv(TIMEOUT) == "4re:still here"

    def logged(text: str) -> int:
        return sum(1 for r in list(caplog.records) if r.exc_info and str(r.exc_info[1]) == text)

    wait_until(lambda: logged("async handler failure") == 2)
    assert logged("sync handler failure") == 2


# -- the Socket.IO server on top ---------------------------------------------------------------------


def test_async_server_asgi_app(serve: Callable[..., LiveServer]) -> None:
    sio = roomcast.AsyncServer()
    connected: list[str] = []

    @sio.event
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        connected.append(sid)

    live = serve(roomcast.ASGIApp(sio))
    url = live.url + "/socket.io/"
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(url, params={"EIO": "4", "transport": "polling"})
        info = json.loads(r.text[1:])
        assert info["upgrades"] == ["websocket"]
        params = {"EIO": "4", "transport": "polling", "sid": info["sid"]}
        assert http.post(url, params=params, content=b"40").text == "ok"
        r = http.get(url, params=params)
        assert r.text.startswith('40{"sid":"')
        assert http.get(live.url + "/engine.io/", params={"EIO": "4", "transport": "polling"}).status_code == 404
    with ws_connect(live.ws_url + "/socket.io/?EIO=4&transport=websocket", open_timeout=TIMEOUT) as ws:
        assert handshake_frame(ws)["upgrades"] == []
        ws.send("40")
        assert str(ws.recv(TIMEOUT)).startswith('40{"sid":"')
    wait_until(lambda: len(connected) == 2)
    assert sio.asgi_app() is sio.engine
