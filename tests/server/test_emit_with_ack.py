"""``AsyncServer.emit_with_ack`` (Node's ``io.timeout(ms).emitWithAck()``) over real sockets, with
python-socketio's client as the peer: every recipient's acknowledgement gathered into one list."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
import websockets.sync.client as ws_client

import roomcast

from livesrv import LiveServer, wait_until


def start(live: Any) -> tuple[roomcast.AsyncServer, LiveServer, list[str]]:
    sio = roomcast.AsyncServer()
    sids: list[str] = []

    @sio.event
    async def connect(sid: str) -> None:
        sids.append(sid)

    @sio.on("join")
    async def join(sid: str, room: str) -> str:
        await sio.enter_room(sid, room)
        return "joined"

    return sio, live(roomcast.ASGIApp(sio)), sids


def peer(server: LiveServer, name: str, room: str | None = None) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.on("question", lambda payload: {"from": name, "payload": payload})
    client.connect(server.url, transports=["websocket"], wait_timeout=5)
    if room is not None:
        assert client.call("join", room, timeout=5) == "joined"
    return client


@contextlib.contextmanager
def mute_peer(server: LiveServer, room: str) -> Iterator[Any]:
    """A client speaking the wire protocol by hand, in ``room``, that never acknowledges (the
    python-socketio client acknowledges every event, handled or not)."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send("40")
        ws.recv(timeout=5)
        ws.send(f'421["join","{room}"]')
        assert ws.recv(timeout=5) == '431["joined"]'
        yield ws


def test_gathers_every_recipients_ack(live: Any) -> None:
    sio, server, sids = start(live)
    clients = [peer(server, "ada", "red"), peer(server, "bob", "red"), peer(server, "cy", "blue")]
    try:
        wait_until(lambda: len(sids) == 3)
        red = server.call(sio.emit_with_ack("question", 1, to="red", timeout=5))
        assert sorted(r["from"] for r in red) == ["ada", "bob"] and all(r["payload"] == 1 for r in red)
        everyone = server.call(sio.emit_with_ack("question", 2, timeout=5))
        assert sorted(r["from"] for r in everyone) == ["ada", "bob", "cy"]
        others = server.call(sio.emit_with_ack("question", 3, skip_sid=sids[0], exclude_rooms="blue", timeout=5))
        assert [r["from"] for r in others] == ["bob"]
        assert server.call(sio.emit_with_ack("question", 4, to="nobody-here", timeout=5)) == []
    finally:
        for client in clients:
            client.disconnect()


def test_a_timeout_gives_the_acks_that_came(live: Any) -> None:
    sio, server, sids = start(live)
    ada = peer(server, "ada", "red")
    try:
        with mute_peer(server, "red") as mute:
            wait_until(lambda: len(sids) == 2)
            with pytest.raises(roomcast.TimeoutError) as raised:
                server.call(sio.emit_with_ack("question", 1, to="red", timeout=0.5))
            assert mute.recv(timeout=5).startswith('42')  # it did get the question
            assert [r["from"] for r in raised.value.responses] == ["ada"]
            assert all(not socket.acks for socket in sio.sockets.values())  # nothing left waiting
    finally:
        ada.disconnect()


def test_a_recipient_that_leaves_is_not_waited_for(live: Any) -> None:
    sio, server, sids = start(live)
    ada = peer(server, "ada", "red")
    try:
        with mute_peer(server, "red") as mute:
            wait_until(lambda: len(sids) == 2)
            pending = asyncio.run_coroutine_threadsafe(
                sio.emit_with_ack("question", 1, to="red", timeout=60), server.loop
            )
            assert mute.recv(timeout=5).startswith('42')  # got the question; leaves without answering
        assert [r["from"] for r in pending.result(timeout=10)] == ["ada"]  # long before the 60 s
    finally:
        ada.disconnect()
