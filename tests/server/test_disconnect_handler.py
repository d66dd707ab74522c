"""What a ``disconnect`` handler still sees of its socket, as in python-socketio and Flask-SocketIO
(where the handler runs before the socket leaves its rooms): its rooms, its session, its environ,
and emits to its rooms reach the other members (not the socket that left)."""

from __future__ import annotations

from typing import Any

import socketio

import roomcast

from livesrv import wait_until


def test_the_disconnect_handler_sees_rooms_and_session(live: Any) -> None:
    sio = roomcast.AsyncServer(namespaces=["/", "/chat"])
    seen: list[Any] = []

    @sio.on("join", namespace="/chat")
    async def join(sid: str, room: str) -> str:
        await sio.enter_room(sid, room, namespace="/chat")
        await sio.save_session(sid, {"name": room.upper()}, namespace="/chat")
        return "joined"

    @sio.on("disconnect", namespace="/chat")
    async def disconnect(sid: str, reason: str) -> None:
        rooms = sorted(r for r in sio.rooms(sid, namespace="/chat") if r != sid)
        session = await sio.get_session(sid, namespace="/chat")
        environ = sio.get_environ(sid, namespace="/chat")
        for room in rooms:
            await sio.emit("left", {"who": session["name"]}, to=room, namespace="/chat")
        seen.append((rooms, session, environ is not None and "REQUEST_METHOD" in environ))

    @sio.on("plain_disconnect_probe", namespace="/chat")
    def probe(sid: str) -> list[str]:
        return sio.rooms(sid, namespace="/chat")

    server = live(roomcast.ASGIApp(sio))
    stays, leaves = socketio.Client(reconnection=False), socketio.Client(reconnection=False)
    heard: list[Any] = []
    stays.on("left", heard.append, namespace="/chat")
    for client in (stays, leaves):
        client.connect(server.url, namespaces=["/chat"], transports=["websocket"], wait_timeout=5)
        assert client.call("join", "lobby", namespace="/chat", timeout=5) == "joined"
    leaves.disconnect()
    wait_until(lambda: seen)
    assert seen == [(["lobby"], {"name": "LOBBY"}, True)]
    wait_until(lambda: heard == [{"who": "LOBBY"}])
    # Once the handler is done, the socket is out of every room.
    assert sorted(stays.call("plain_disconnect_probe", namespace="/chat", timeout=5)) == sorted(
        [stays.get_sid("/chat"), "lobby"]
    )
    assert all(len(sio.rooms_table.room("/chat", room)) <= 1 for room in ("lobby",))
    stays.disconnect()
