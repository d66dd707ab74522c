"""Where python-socketio breaks under abuse (measured on uvicorn, see the issue), each as a test here.

Covered elsewhere: the slow reader that keeps answering pings and the release of its connection
(test_slow_reader.py); polling POSTs that begin with packet types 0, 2 or 6, then SIGTERM
(test_shutdown.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.reliability.harness import (
    TIMEOUT,
    App,
    Canary,
    Polling,
    log_problems,
    roomcast_lines,
    ws_close_frame,
    ws_open,
    ws_recv_message,
)

#: (name, Engine.IO message, disconnect reason). The peer ignores every one of these silently.
HOSTILE = [
    ("unknown-engineio-type", "9", "parse error"),
    ("unknown-socketio-type", "47", "parse error"),
    ("broken-json", '42["echo"', "parse error"),
    ("event-not-a-list", '42{"not":"a list"}', "parse error"),
    ("event-name-not-a-string", "42[1,2]", "parse error"),
    ("deep-json", "42" + "[" * 100_000 + "]" * 100_000, "parse error"),
    ("deep-json-unclosed", "42" + "[" * 100_000, "parse error"),
    ("10000-attachments", '4510000-["echo",{"_placeholder":true,"num":0}]', "payload too large"),
    ("nan", '421["echo",NaN]', "parse error"),
    ("infinity", '421["echo",Infinity]', "parse error"),
    ("huge-exponent", '421["echo",1e99999]', "parse error"),
    ("client-sends-connect-error", '44{"message":"x"}', "parse error"),
    ("reserved-event-name", '42["disconnect"]', "parse error"),
    ("ack-id-too-long", '421234567890123456789["echo"]', "parse error"),
]


@pytest.mark.parametrize(("frame", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_websocket_message_closes_the_offender(
    serve: Callable[..., App], logs: Any, frame: str, reason: str
) -> None:
    app = serve()
    with Canary(app) as canary:
        ws = ws_open(app)
        ws.send(frame)
        frames: list[Any] = []
        code, why = ws_close_frame(ws, into=frames)
        assert code in (1000, 1002) and why == reason, (code, why)  # a close with a reason
        app.rec.wait("disconnect", reason=reason)
        assert not any("NaN" in str(f) or "Infinity" in str(f) for f in frames)  # never echoed
        canary.check()
    assert not log_problems(logs.records), log_problems(logs.records)
    lines = roomcast_lines(logs.records)
    assert len(lines) == 1 and "closing session" in lines[0], lines


@pytest.mark.parametrize(("frame", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_polling_message_closes_the_offender(
    serve: Callable[..., App], logs: Any, frame: str, reason: str
) -> None:
    app = serve()
    with Canary(app, "polling") as canary, Polling(app) as p:
        p.connect()
        r = p.post(frame)
        if frame[0] == "9":  # refused by the Engine.IO payload decoder: the POST itself is a 400
            assert r.status_code == 400 and r.json()["code"] == 3
        else:  # a well-formed Engine.IO message whose Socket.IO content is refused: the session closes
            assert r.status_code == 200
        app.rec.wait("disconnect", reason=reason)
        got = p.get()
        assert got.status_code == 400 or got.text.split("\x1e")[-1] == "1", got.text
        assert "NaN" not in got.text and "Infinity" not in got.text
        canary.check()
    assert not log_problems(logs.records), log_problems(logs.records)
    assert len(roomcast_lines(logs.records)) == 1, roomcast_lines(logs.records)


MALFORMED_BODIES = [
    ("empty", b""),
    ("invalid-utf8", b"4\xff\xfe"),
    ("empty-packet", b"4a\x1e\x1e4b"),
    ("bad-base64", b"b!!!"),
    ("unknown-type", b"x"),
    ("open-from-client", b"0"),
    ("upgrade-from-client", b"5"),
    ("trailing-separator", b"4a\x1e"),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED_BODIES], ids=[n for n, _ in MALFORMED_BODIES])
def test_malformed_polling_body_is_a_400_without_traceback(serve: Callable[..., App], logs: Any, body: bytes) -> None:
    app = serve()
    with Polling(app) as p:
        p.connect()
        r = p.post(body)
        assert r.status_code == 400, (r.status_code, r.text)
        assert r.headers["content-type"] == "application/json" and r.json()["code"] == 3
        app.rec.wait("disconnect")
    assert not log_problems(logs.records), log_problems(logs.records)
    lines = roomcast_lines(logs.records)
    assert len(lines) == 1 and "closing session" in lines[0], lines


def test_nan_from_the_application_is_never_sent(serve: Callable[..., App], logs: Any) -> None:
    """The other direction: a handler answering NaN is the application's bug (an error line), the
    client gets no non-JSON ack, and its connection goes on."""
    app = serve()

    @app.sio.on("nan")
    async def nan(sid: str) -> float:
        return float("nan")

    ws = ws_open(app)
    with ws:
        ws.send('421["nan"]')
        ws.send('422["echo","after"]')
        assert ws_recv_message(ws) == '32["after"]'
    errors = [r.getMessage() for r in logs.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "ack cannot carry" in errors[0], errors


def test_posts_racing_a_closing_session_get_no_500(serve: Callable[..., App], logs: Any) -> None:
    """POSTs in flight while the server closes their session (or the client's own close packet
    arrives): every answer is 200 or 400, never a 500, and nothing is logged as an error."""
    app = serve()
    statuses: list[int] = []
    lock = threading.Lock()
    with Canary(app, "polling") as canary, ThreadPoolExecutor(8) as pool, httpx.Client(timeout=TIMEOUT) as http:
        for round_ in range(12):
            p = Polling(app)
            p.http = http
            p.connect()
            sid = app.rec.of("connect")[-1][1]
            stop = threading.Event()

            def hammer(n: int, p: Polling = p, stop: threading.Event = stop) -> None:
                for i in range(40):
                    if stop.is_set():
                        return
                    # one thread of one round in three sends the client's own close packet midway
                    last = n == 0 and round_ % 3 == 2 and i == 5
                    r = p.post("1" if last else f'42["echo",{n * 1000 + i}]')
                    with lock:
                        statuses.append(r.status_code)
                    if r.status_code != 200 or last:
                        return  # the session is gone: the race is over for this thread

            futures = [pool.submit(hammer, n) for n in range(4)]

            async def close(sid: str = sid, round_: int = round_) -> None:
                await asyncio.sleep(0.004 * (round_ % 4))  # a different point of the race each round
                socket = app.sio.sockets.get(sid)
                if socket is None:
                    return
                if round_ % 2:
                    await app.sio.disconnect(sid)  # the namespace, then the connection
                socket.conn.close(flush=round_ % 4 < 2)

            app.live.call(close())
            for f in futures:
                f.result(TIMEOUT * 2)
            stop.set()
        canary.check()
    assert set(statuses) == {200, 400}, sorted(set(statuses))
    assert not log_problems(logs.records), log_problems(logs.records)
