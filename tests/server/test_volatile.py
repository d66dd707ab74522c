"""Volatile emits (Node's ``volatile`` flag): delivered to a recipient whose transport takes them at
once, dropped for one that can't (here: a long-polling client with no GET waiting), never queued."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
import socketio

import roomcast

from livesrv import LiveServer, wait_until


def polling_session(server: LiveServer) -> tuple[httpx.Client, str]:
    """A long-polling client by hand, joined to '/', with no GET waiting."""
    http = httpx.Client(base_url=server.url, timeout=5)
    opened = http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    sid = json.loads(opened.text[1:])["sid"]
    assert http.post("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": sid}, content=b"40").text == "ok"
    assert http.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": sid}).text.startswith("40{")
    return http, sid


def test_volatile_reaches_ready_clients_and_skips_the_others(live: Any) -> None:
    sio = roomcast.AsyncServer()
    server = live(roomcast.ASGIApp(sio))
    ws_client = socketio.Client(reconnection=False)
    got: list[Any] = []
    ws_client.on("pos", got.append)
    ws_client.connect(server.url, transports=["websocket"], wait_timeout=5)
    http, eio_sid = polling_session(server)
    params = {"EIO": "4", "transport": "polling", "sid": eio_sid}
    conn = sio.engine.connections[eio_sid]  # type: ignore[union-attr]
    try:
        # No GET waiting: the polling client misses it; the WebSocket client gets it.
        server.call(sio.emit("pos", 1, volatile=True))
        wait_until(lambda: got == [1])
        assert not conn.session.has_packets  # dropped, not queued
        server.call(sio.emit("pos", "marker"))  # a plain emit is queued for the next GET
        assert http.get("/socket.io/", params=params).text == '42["pos","marker"]'
        # With a GET waiting, it goes out in that GET.
        answers: list[str] = []
        poll = threading.Thread(target=lambda: answers.append(http.get("/socket.io/", params=params).text))
        poll.start()
        wait_until(lambda: conn.session.polling_get)
        server.call(sio.emit("pos", 2, volatile=True))
        poll.join(5)
        assert answers == ['42["pos",2]']
        wait_until(lambda: got == [1, "marker", 2])
        with pytest.raises(ValueError):
            server.call(sio.emit("pos", 3, volatile=True, callback=lambda *a: None))
    finally:
        ws_client.disconnect()
        http.close()
