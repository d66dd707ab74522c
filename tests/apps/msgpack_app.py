"""A Roomcast server speaking MessagePack (``serializer='msgpack'``) for tests/interop/test_msgpack.py.

Run with ``python -m uvicorn tests.apps.msgpack_app:app``.
"""

from __future__ import annotations

from typing import Any

import roomcast

sio = roomcast.AsyncServer(serializer="msgpack", namespaces=["/", "/chat"])
app = roomcast.ASGIApp(sio)


@sio.on("echo")
@sio.on("echo", namespace="/chat")
async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    await sio.emit("echo", args if len(args) != 1 else args[0], to=sid)
    return args


@sio.on("join")
async def join(sid: str, room: str) -> str:
    await sio.enter_room(sid, room)
    return "joined"


@sio.on("shout")
async def shout(sid: str, room: str, payload: Any) -> str:
    await sio.emit("news", payload, to=room)
    return "sent"


@sio.on("ask")
async def ask(sid: str, payload: Any) -> Any:
    return await sio.call("question", payload, to=sid, timeout=5)


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    if isinstance(auth, dict) and auth.get("refuse"):
        raise roomcast.ConnectionRefusedError("refused", {"why": auth["refuse"]})
