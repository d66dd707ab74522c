"""A Roomcast server instrumented for the Socket.IO Admin UI, which it also serves at ``/ui/`` from
the npm package (``@socket.io/admin-ui``'s ``ui/dist``), for tests/browser/test_browser_admin_ui.py.

Run with ``python -m uvicorn tests.apps.admin_app:app``. Login: ``admin`` / ``roomcast``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import roomcast

UI = Path(__file__).resolve().parents[2] / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
LOGIN = {"username": "admin", "password": "roomcast"}

sio = roomcast.AsyncServer(cors_allowed_origins="*")
sio.instrument(auth=LOGIN, server_id="roomcast-test", server_stats_interval=0.5)


@sio.on("join")
async def join(sid: str, room: str) -> str:
    await sio.enter_room(sid, room)
    return "joined"


async def static_ui(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The UI's files under /ui/ (nothing else: 404)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    relative = path[len("/ui/"):] if path.startswith("/ui/") else None
    target = (UI / (relative or "index.html")).resolve() if relative is not None else None
    if target is None or UI not in target.parents or not target.is_file():
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind.encode())]})
    await send({"type": "http.response.body", "body": target.read_bytes()})


app = roomcast.ASGIApp(sio, other_asgi_app=static_ui)
