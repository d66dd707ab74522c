"""Graceful shutdown on SIGTERM, with clients connected, in a server process of its own.

Expected: the process stops accepting, tells every client (a waiting long-poll gets the ``close``
packet; a WebSocket is closed), flushes what was queued for a WebSocket, runs every disconnect handler
with ``"server shutting down"``, and exits within a bound. python-socketio, once a polling POST starting
with packet type 0, 2 or 6 has gone unanswered, ignores SIGTERM: that case is here too.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.reliability.harness import TIMEOUT, ServerProcess

EXIT_BOUND = 3.0
#: uvicorn shuts down gracefully, then re-raises the signal with the default handler restored (so that
#: the exit status says "terminated by SIGTERM", as a supervisor expects).
CLEAN_EXIT = (0, -signal.SIGTERM)


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess()
    try:
        yield proc
    finally:
        proc.kill()


def polling_connect(http: httpx.Client, server: ServerProcess) -> tuple[str, str]:
    """A polling session joined to '/': (engine sid, socket sid)."""
    url = server.url + "/socket.io/"
    r = http.get(url, params={"EIO": "4", "transport": "polling"})
    sid = json.loads(r.text[1:])["sid"]
    params = {"EIO": "4", "transport": "polling", "sid": sid}
    assert http.post(url, params=params, content=b"40").text == "ok"
    reply = http.get(url, params=params).text
    assert reply.startswith("40{"), reply
    return sid, json.loads(reply[2:])["sid"]


def test_sigterm_with_clients_connected(server: ServerProcess) -> None:
    url = server.url + "/socket.io/"
    with httpx.Client(timeout=TIMEOUT) as http, ThreadPoolExecutor(2) as pool:
        # A WebSocket client with messages queued for it that it has not read yet.
        ws = ws_connect(server.ws_url + "/socket.io/?EIO=4&transport=websocket", open_timeout=TIMEOUT).__enter__()
        assert ws.recv(TIMEOUT).startswith("0")
        ws.send("40")
        ws_socket_sid = json.loads(ws.recv(TIMEOUT)[2:])["sid"]
        ws.send('421["join","all"]')
        assert ws.recv(TIMEOUT) == '431["joined"]'
        # A polling client with a GET waiting.
        engine_sid, poll_socket_sid = polling_connect(http, server)
        params = {"EIO": "4", "transport": "polling", "sid": engine_sid}
        pending = pool.submit(http.get, url, params=params)
        ack = 1
        deadline = time.monotonic() + TIMEOUT
        while True:  # until the server holds the GET
            ack += 1
            ws.send(f'42{ack}["pending"]')
            if ws.recv(TIMEOUT) == f"43{ack}[1]":
                break
            assert time.monotonic() < deadline, "the long-poll never arrived"
        assert not pending.done()
        # 20 messages for the WebSocket, unread when the signal comes (another client asks for them).
        with ws_connect(server.ws_url + "/socket.io/?EIO=4&transport=websocket") as blaster:
            assert blaster.recv(TIMEOUT).startswith("0")
            blaster.send("40")
            assert blaster.recv(TIMEOUT).startswith("40")
            blaster.send('421["blast",{"count":20,"size":100,"room":"all"}]')
            assert blaster.recv(TIMEOUT) == "431[20]"

        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)

        # The long-poll is answered with the close packet.
        answer = pending.result(EXIT_BOUND)
        assert answer.status_code == 200
        assert answer.text.split("\x1e")[-1] == "1", answer.text
        # The WebSocket gets what was queued for it, then the close.
        frames = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(ws.recv(EXIT_BOUND))
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "server shutting down")
        news = [f for f in frames if isinstance(f, str) and f.startswith('42["news"')]
        assert len(news) == 20, frames[:5]
        # Every disconnect handler ran, and the process exited in time, cleanly.
        server.proc.wait(EXIT_BOUND)
        elapsed = time.monotonic() - start
        assert elapsed < EXIT_BOUND
        assert server.proc.returncode in CLEAN_EXIT, server.output()
    out = server.output()
    assert f"disconnect {ws_socket_sid} server_shutting_down" in out, out
    assert f"disconnect {poll_socket_sid} server_shutting_down" in out, out
    assert "Traceback" not in out, out


@pytest.mark.parametrize("body", ["0", "2", "2probe", "6", '0{"sid":"x"}'])
def test_posts_beginning_with_open_ping_or_noop_are_answered_and_sigterm_still_works(
    server: ServerProcess, body: str
) -> None:
    url = server.url + "/socket.io/"
    with httpx.Client(timeout=TIMEOUT) as http:
        engine_sid, _ = polling_connect(http, server)
        params = {"EIO": "4", "transport": "polling", "sid": engine_sid}
        r = http.post(url, params=params, content=body.encode())
        if body.startswith("0"):
            # "open" comes from the server only: a protocol error, the session is closed.
            assert r.status_code == 400 and r.json()["code"] == 3
            assert http.get(url, params=params).status_code == 400
        else:
            # a ping is answered with a pong (engine.io-protocol: harmless from a v3-style client); noop is
            # ignored; the session goes on.
            assert (r.status_code, r.text) == (200, "ok")
            if body.startswith("2"):
                assert http.get(url, params=params).text == "3" + body[1:]
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(EXIT_BOUND)
    assert time.monotonic() - start < EXIT_BOUND
    assert server.proc.returncode in CLEAN_EXIT, server.output()
    assert "Traceback" not in server.output()


def test_handshakes_are_refused_once_shutdown_began(serve: Any) -> None:
    app = serve()
    app.live.run_sync(app.engine.begin_shutdown)
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(app.url, params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 503 and r.json() == {"code": 4, "message": "Server shutting down"}
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(app.ws_url(), open_timeout=TIMEOUT).__enter__()
    assert refused.value.response.status_code == 403
    assert app.connection_count() == 0
