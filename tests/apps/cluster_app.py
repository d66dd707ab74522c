"""One node of a Roomcast cluster for tests/cluster: an AsyncServer with an AsyncRedisManager.

Environment: ``REDIS_URL`` (redis://127.0.0.1:6379/0) and ``CLUSTER_KEY`` (the channel key; each
test uses its own, so that tests never hear each other). Run it with uvicorn:
``CLUSTER_KEY=k python -m uvicorn tests.apps.cluster_app:app``. ``tests/cluster/node/server.js`` is
the same app on Node's socket.io with ``@socket.io/redis-adapter``.

Every handler acknowledges, so that a client knows its request was carried out here (what it
published may still be on its way to the other nodes).
"""

from __future__ import annotations

import os
from typing import Any

import roomcast

NAME = os.environ.get("NODE_NAME", "roomcast")

manager = roomcast.AsyncRedisManager(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), channel=os.environ.get("CLUSTER_KEY", "socket.io")
)
sio = roomcast.AsyncServer(client_manager=manager, cors_allowed_origins="*", namespaces=["/", "/chat"])
app = roomcast.ASGIApp(sio)


@sio.on("join")
@sio.on("join", namespace="/chat")
async def join(sid: str, room: str) -> str:
    await sio.enter_room(sid, room)
    return "joined"


@sio.on("leave")
async def leave(sid: str, room: str) -> str:
    await sio.leave_room(sid, room)
    return "left"


@sio.on("shout")
async def shout(sid: str, payload: Any) -> str:
    await sio.emit("news", payload)
    return "sent"


@sio.on("shout_volatile")
async def shout_volatile(sid: str, payload: Any) -> str:
    await sio.emit("news", payload, volatile=True)
    return "sent"


@sio.on("shout", namespace="/chat")
async def shout_chat(sid: str, payload: Any) -> str:
    await sio.emit("news", payload, namespace="/chat")
    return "sent"


@sio.on("shout_others")
async def shout_others(sid: str, payload: Any) -> str:
    await sio.emit("news", payload, skip_sid=sid)
    return "sent"


@sio.on("to_room")
async def to_room(sid: str, room: str, payload: Any) -> str:
    await sio.emit("news", payload, to=room)
    return "sent"


@sio.on("to_room_except")
async def to_room_except(sid: str, room: str, excluded: str, payload: Any) -> str:
    await sio.emit("news", payload, to=room, exclude_rooms=excluded)
    return "sent"


@sio.on("whoami")
async def whoami(sid: str) -> list[str]:
    return [sid, NAME]


@sio.on("pid")
async def pid(sid: str) -> int:
    """Which process serves this client (``roomcast run --workers N`` runs several)."""
    return os.getpid()


@sio.on("put")
async def put(sid: str, target: str, room: str) -> str:
    await sio.enter_room(target, room)
    return "put"


@sio.on("kick")
async def kick(sid: str, target: str) -> str:
    await sio.disconnect(target)
    return "kicked"


@sio.on("clear_room")
async def clear_room(sid: str, room: str) -> str:
    await sio.close_room(room)
    return "closed"


@sio.on("move")
async def move(sid: str, source: str, room: str) -> str:
    await sio.sockets_join(room, to=source)
    return "moved"


@sio.on("kick_room")
async def kick_room(sid: str, room: str) -> str:
    await sio.disconnect_sockets(to=room)
    return "kicked"


@sio.on("fetch")
async def fetch(sid: str, room: str | None = None) -> list[dict[str, Any]]:
    sockets = await sio.fetch_sockets(to=room)
    return sorted(({"sid": s.sid, "rooms": sorted(s.rooms), "data": s.data} for s in sockets), key=lambda s: s["sid"])


@sio.on("remember")
async def remember(sid: str, data: Any) -> str:
    await sio.save_session(sid, {"remembered": data})
    return "remembered"


@sio.on("all_rooms")
async def all_rooms(sid: str) -> list[str]:
    return sorted(await sio.all_rooms())


@sio.on("count")
async def count(sid: str) -> int:
    return await sio.server_count()


@sio.on("ask")
async def ask(sid: str, target: str, payload: Any) -> Any:
    return await sio.call("question", payload, to=target, timeout=5)


@sio.on("ask_room")
async def ask_room(sid: str, room: str, payload: Any) -> str:
    """Emit ``question`` to a room with a callback; each answer is sent to the asker as ``answer``."""

    async def answered(*args: Any) -> None:
        await sio.emit("answer", list(args), to=sid)

    await sio.emit("question", payload, to=room, callback=answered)
    return "asked"


@sio.on("ask_all")
async def ask_all(sid: str, room: str, payload: Any) -> list[Any]:
    """Emit ``question`` to a room (on every server) and answer with every member's answer."""
    return sorted(await sio.emit_with_ack("question", payload, to=room, timeout=5), key=str)


@sio.on("servers_ping")
async def servers_ping(sid: str) -> list[Any]:
    return sorted(await sio.server_side_emit_with_ack("ping", NAME), key=str)


@sio.on_server_event("ping")
async def on_ping(origin: str) -> str:
    return f"pong from {NAME} to {origin}"
