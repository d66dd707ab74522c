"""Every limit over real sockets: the offender is refused (one concise log line at most, no traceback),
and a second client goes on unaffected.

The outgoing-buffer limit (``max_send_buffer``) has its own module, test_slow_reader.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import socketio
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

import roomcast
from tests.reliability.harness import (
    TIMEOUT,
    App,
    Canary,
    Polling,
    log_problems,
    roomcast_lines,
    wait_until,
    ws_close_frame,
    ws_open,
    ws_recv_message,
)


def only_lines(logs: Any, *fragments: str) -> None:
    """The run logged no problem, and exactly one roomcast line per fragment, each containing it."""
    assert not log_problems(logs.records), log_problems(logs.records)
    lines = roomcast_lines(logs.records)
    assert len(lines) == len(fragments), lines
    for line, fragment in zip(lines, fragments):
        assert fragment in line, (fragment, line)


# -- payload size ----------------------------------------------------------------------------------


def test_oversized_websocket_message(serve: Callable[..., App], logs: Any) -> None:
    app = serve(max_http_buffer_size=10_000)
    with Canary(app) as canary:
        ws = ws_open(app)
        ws.send('42["echo","' + "x" * 10_000 + '"]')
        assert ws_close_frame(ws) == (1009, "payload too large")  # 1009: "message too big"
        app.rec.wait("disconnect", reason="payload too large")
        canary.check()
    only_lines(logs, "over the limit")


def test_oversized_polling_body(serve: Callable[..., App], logs: Any) -> None:
    app = serve(max_http_buffer_size=10_000)
    with Canary(app, "polling") as canary, Polling(app) as p:
        p.connect()
        r = p.post('42["echo","' + "x" * 10_000 + '"]')
        assert r.status_code == 413 and r.json() == {"code": 3, "message": "Payload too large"}
        app.rec.wait("disconnect", reason="payload too large")
        assert p.get().status_code == 400  # the session is gone
        canary.check()
    only_lines(logs, "max_http_buffer_size")


def test_handshake_announces_the_payload_limit(serve: Callable[..., App]) -> None:
    app = serve(max_http_buffer_size=12_345)
    with Polling(app) as p:
        assert p.handshake()["maxPayload"] == 12_345


# -- binary attachments per packet -----------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 10_000, 10**30])
def test_too_many_attachments(serve: Callable[..., App], logs: Any, count: int) -> None:
    app = serve(max_attachments=2)
    with Canary(app) as canary:
        ws = ws_open(app)
        placeholders = ",".join(json.dumps({"_placeholder": True, "num": i}) for i in range(min(count, 3)))
        ws.send(f'45{count}-["echo",{placeholders}]')
        assert ws_close_frame(ws)[1] == "payload too large"
        app.rec.wait("disconnect", reason="payload too large")
        canary.check()
    only_lines(logs, "attachments")


def test_attachments_within_the_limit_arrive(serve: Callable[..., App]) -> None:
    app = serve(max_attachments=2)
    ws = ws_open(app)
    with ws:
        ws.send('451-1["echo",{"_placeholder":true,"num":0}]')
        ws.send(b"\x01\x02")
        assert ws_recv_message(ws) == '61-1[{"_placeholder":true,"num":0}]'
        assert ws.recv(TIMEOUT) == b"\x01\x02"


# -- namespaces per connection ---------------------------------------------------------------------


def test_namespaces_per_connection(serve: Callable[..., App], logs: Any) -> None:
    app = serve(namespaces="*", max_namespaces=3)
    with Canary(app) as canary:
        ws = ws_open(app)  # "/"
        with ws:
            for name in ("/a", "/b"):
                ws.send(f"40{name},")
                assert ws_recv_message(ws).startswith(f"0{name},{{")
            ws.send("40/c,")
            assert ws_recv_message(ws) == '4/c,{"message":"Too many namespaces"}'
            # refused, not disconnected: the connection's namespaces still work, and leaving one frees a place
            ws.send('421["echo","still here"]')
            assert ws_recv_message(ws) == '31["still here"]'
            ws.send("41/b,")
            ws.send("40/c,")
            assert ws_recv_message(ws).startswith("0/c,{")
        # a second connection has its own count
        other = ws_open(app)
        with other:
            for name in ("/a", "/b"):
                other.send(f"40{name},")
                assert ws_recv_message(other).startswith(f"0{name},{{")
        canary.check()
    only_lines(logs, "max_namespaces (3)")


# -- pending acks per socket -----------------------------------------------------------------------


def test_pending_acks_per_socket(serve: Callable[..., App], logs: Any) -> None:
    app = serve(max_pending_acks=4)
    sio = app.sio
    good = socketio.Client(reconnection=False)
    good.on("question", lambda n: n * 2)
    good.connect(app.live.url, transports=["websocket"], wait_timeout=TIMEOUT)
    mute = ws_open(app)  # reads everything, acknowledges nothing
    try:
        good_sid = good.get_sid()
        mute_sid = app.rec.of("connect")[-1][1]
        assert mute_sid != good_sid
        callbacks: list[Any] = []

        async def scenario() -> dict[str, Any]:
            calls = [asyncio.ensure_future(sio.call("question", i, to=mute_sid, timeout=30)) for i in range(4)]
            await asyncio.sleep(0)  # let each register its ack
            first = calls[0]
            # the fifth pending ack drops the oldest: that call fails now, not after its 30 s
            await sio.emit("question", 4, to=mute_sid, callback=lambda *a: callbacks.append(a))
            try:
                await asyncio.wait_for(first, 1)
                outcome: Any = "answered"
            except roomcast.TimeoutError as exc:
                outcome = str(exc)
            pending = len(sio.sockets[mute_sid].acks)
            # more emits keep the count at the limit
            for i in range(10):
                await sio.emit("question", i, to=mute_sid, callback=lambda *a: callbacks.append(a))
            still_pending = len(sio.sockets[mute_sid].acks)
            for call in calls[1:]:
                call.cancel()
            # dropped or cancelled, each outcome is retrieved here (else asyncio logs it when collected)
            others = await asyncio.gather(*calls[1:], return_exceptions=True)
            # the client that answers is not affected
            answer = await sio.call("question", 21, to=good_sid, timeout=TIMEOUT)
            return {"first": outcome, "pending": pending, "still": still_pending, "answer": answer,
                    "others": [type(o).__name__ for o in others]}

        result = app.live.call(scenario(), timeout=10)
        assert "max_pending_acks" in result["first"]
        assert result["pending"] == result["still"] == 4
        assert result["answer"] == 42
        assert result["others"] == ["TimeoutError"] * 3  # each dropped in turn by the later emits
        assert callbacks == []
    finally:
        mute.close()
        good.disconnect()
    only_lines(logs, "max_pending_acks")


def test_pending_acks_unlimited_when_none(serve: Callable[..., App]) -> None:
    app = serve(max_pending_acks=None)
    mute = ws_open(app)
    with mute:
        sid = app.rec.of("connect")[-1][1]

        async def scenario() -> int:
            for i in range(2000):
                await app.sio.emit("question", i, to=sid, callback=lambda *a: None)
            return len(app.sio.sockets[sid].acks)

        assert app.live.call(scenario()) == 2000


# -- connections per process -----------------------------------------------------------------------


def test_connections_per_process(serve: Callable[..., App], logs: Any) -> None:
    app = serve(max_connections=2)
    with Canary(app) as canary, Polling(app) as second:
        second.connect()
        with httpx.Client(timeout=TIMEOUT) as http:
            r = http.get(app.url, params={"EIO": "4", "transport": "polling"})
        assert r.status_code == 503 and r.json() == {"code": 4, "message": "Server full"}
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(app.ws_url(), open_timeout=TIMEOUT).__enter__()
        assert refused.value.response.status_code == 403
        # a place frees up when a client leaves
        second.post("1")
        wait_until(lambda: app.connection_count() == 1)
        third = ws_open(app)
        third.close()
        canary.check()
    only_lines(logs, "max_connections (2)", "max_connections (2)")


# -- the connect timeout ---------------------------------------------------------------------------


def test_connect_timeout(serve: Callable[..., App], logs: Any) -> None:
    app = serve(connect_timeout=0.3)
    with Canary(app) as canary, Polling(app) as idle:
        ws = ws_open(app, namespace=None)  # handshake, then no namespace
        idle.handshake()
        assert ws_close_frame(ws) == (1000, "forced server close")
        # a waiting poll gets the close packet (or the session is already gone)
        r = idle.get()
        assert r.status_code == 400 or r.text.split("\x1e")[-1] == "1", r.text
        wait_until(lambda: app.connection_count() == 1)
        canary.check()
    lines = roomcast_lines(logs.records)
    assert len(lines) == 2 and all("connect_timeout" in line for line in lines), lines
    assert not log_problems(logs.records)


# -- events waiting for one socket's handlers ------------------------------------------------------


def test_queued_events_per_socket(serve: Callable[..., App], logs: Any) -> None:
    """A client that sends faster than its (ordered) handlers finish is closed, not buffered without end."""
    import threading

    app = serve(max_queued_events=5)
    release = threading.Event()
    started = threading.Event()

    def hold(sid: str) -> None:
        started.set()
        release.wait(TIMEOUT)

    app.sio.on("hold", hold)
    try:
        with Canary(app) as canary:
            ws = ws_open(app)
            with ws:
                ws.send('42["hold"]')
                assert started.wait(TIMEOUT)
                for i in range(5):  # these wait behind "hold": within the limit
                    ws.send(f'42["echo",{i}]')
                ws.send('42["echo","one too many"]')
                code, reason = ws_close_frame(ws)
            assert reason == roomcast.Reason.EVENT_QUEUE_FULL
            release.set()
            canary.check()
    finally:
        release.set()
    only_lines(logs, "max_queued_events")
