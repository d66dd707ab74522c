"""Roomcast's own Python client recovers its session when the server offers recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import roomcast
from tests.server.livesrv import LiveServer, wait_until


def recovering_server() -> roomcast.AsyncServer:
    sio = roomcast.AsyncServer(connection_state_recovery={"max_disconnection_duration": 30})

    @sio.event
    async def join(sid: str, room: str) -> str:
        await sio.enter_room(sid, room)
        return "joined"

    @sio.event
    async def stream(sid: str, room: str, count: int) -> str:
        async def run() -> None:
            for n in range(1, count + 1):
                await sio.emit("n", n, to=room)
                await asyncio.sleep(0.005)
            await sio.emit("done", count, to=room)

        sio.start_background_task(run)
        return "started"

    return sio


async def cut(sio: roomcast.AsyncServer, sid: str) -> None:
    """Drop the client's transport the way a network loss does (no Socket.IO goodbye)."""
    sio.sockets[sid].conn.close(roomcast.Reason.TRANSPORT_CLOSE, flush=False)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
def test_a_cut_connection_recovers_with_every_event_once(live: Any, transports: list[str]) -> None:
    sio = recovering_server()
    server: LiveServer = live(roomcast.ASGIApp(sio))
    client = roomcast.Client(reconnection_delay=0.05, reconnection_delay_max=0.1, randomization_factor=0)
    got: list[int] = []
    done: list[int] = []
    client.on("n", lambda n: got.append(n))
    client.on("done", lambda n: done.append(n))
    client.connect(server.url, transports=transports, wait_timeout=5)
    try:
        sid = client.sid
        assert sid is not None and not client.recovered()
        assert client.call("join", "feed", timeout=5) == "joined"
        assert client.call("stream", ("feed", 80), timeout=5) == "started"
        wait_until(lambda: len(got) >= 10)
        server.call(cut(sio, sid))
        wait_until(lambda: done == [80], timeout=15)
        assert client.recovered()
        assert client.sid == sid
        assert got == list(range(1, 81)), "a gap or a duplicate after recovery"
        assert server.call(_rooms(sio, sid)) == sorted([sid, "feed"])
    finally:
        client.disconnect()


async def _rooms(sio: roomcast.AsyncServer, sid: str) -> list[str]:
    return sorted(sio.rooms(sid))
