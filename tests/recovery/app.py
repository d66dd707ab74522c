"""The Roomcast side of the official-client recovery test (tests/recovery/node_server.js is the same
app on Node's socket.io 4.8). Run with ``python -m uvicorn tests.recovery.app:app``.

Environment: RECOVERY_WINDOW (seconds), PING_INTERVAL and PING_TIMEOUT (seconds).
"""

from __future__ import annotations

import os
from typing import Any

import roomcast

sio = roomcast.AsyncServer(
    cors_allowed_origins="*",
    ping_interval=float(os.environ.get("PING_INTERVAL", "25")),
    ping_timeout=float(os.environ.get("PING_TIMEOUT", "20")),
    connection_state_recovery={"max_disconnection_duration": float(os.environ.get("RECOVERY_WINDOW", "120"))},
)
app = roomcast.ASGIApp(sio)


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    print(f"connect {sid} recovered={sio.is_recovered(sid)}", flush=True)


@sio.event
async def disconnect(sid: str, reason: str) -> None:
    print(f"disconnect {sid} {reason}", flush=True)


@sio.event
async def whoami(sid: str) -> dict[str, Any]:
    return {
        "sid": sid,
        "recovered": sio.is_recovered(sid),
        "rooms": sorted(sio.rooms(sid)),
        "data": dict(await sio.get_session(sid)),
    }


@sio.event
async def join(sid: str, room: str, name: str) -> str:
    await sio.enter_room(sid, room)
    async with sio.session(sid) as session:
        session["name"] = name
    return "joined"


@sio.event
async def stream(sid: str, room: str, count: int, interval_ms: int) -> str:
    """Emit "n" 1..count to ``room``, one every ``interval_ms``, then "done"."""

    async def run() -> None:
        for n in range(1, count + 1):
            await sio.emit("n", n, to=room)
            await sio.sleep(interval_ms / 1000)
        await sio.emit("done", count, to=room)

    sio.start_background_task(run)
    return "started"
