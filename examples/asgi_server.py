"""A plain ASGI Socket.IO server (no Flask): run with `uvicorn examples.asgi_server:app`."""

from __future__ import annotations

from typing import Any

import roomcast

sio = roomcast.AsyncServer(cors_allowed_origins="*")


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    if auth and auth.get("token") == "banned":
        raise roomcast.ConnectionRefusedError("not authorized", {"retry": False})
    await sio.emit("welcome", {"sid": sid}, to=sid)


@sio.on("chat")
async def chat(sid: str, text: str) -> str:
    await sio.emit("chat", {"from": sid, "text": text}, skip_sid=sid)
    return "delivered"


@sio.on("join")
async def join(sid: str, room: str) -> list[str]:
    await sio.enter_room(sid, room)
    return sio.rooms(sid)


@sio.on("slow_report")
def slow_report(sid: str, n: int) -> int:
    """A plain handler: it runs on a worker thread, so blocking here stalls nobody."""
    return sum(range(n))


@sio.event
async def disconnect(sid: str, reason: str) -> None:
    print(f"{sid} left: {reason}")


app = roomcast.ASGIApp(sio)
