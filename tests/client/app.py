"""The Roomcast peer of the client suite (tests/client/node_server.js is the same app on Node).

Run with ``python -m uvicorn tests.client.app:app``.
"""

from __future__ import annotations

from typing import Any

import roomcast

sio = roomcast.AsyncServer(cors_allowed_origins="*", namespaces=["/", "/admin"])
app = roomcast.ASGIApp(sio)

_auth: dict[str, Any] = {}
_extra: dict[str, Any] = {}


@sio.on("connect")
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    if isinstance(auth, dict) and "refuse" in auth:
        raise roomcast.ConnectionRefusedError("refused", {"reason": auth["refuse"]})
    _auth[sid] = auth
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    _extra[sid] = {"x": query.get("x"), "header": environ.get("HTTP_X_TEST")}


@sio.on("disconnect")
async def disconnect(sid: str, reason: str = "") -> None:
    _auth.pop(sid, None)


@sio.on("echo")
async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    await sio.emit("echo", args, to=sid)
    return args


@sio.on("whoami")
async def whoami(sid: str) -> dict[str, Any]:
    return {"sid": sid, "auth": _auth.get(sid), **_extra.get(sid, {})}


@sio.on("server_call")
async def server_call(sid: str, payload: Any) -> None:
    answer = await sio.call("question", payload, to=sid, timeout=10)
    await sio.emit("answer", answer, to=sid)


@sio.on("disconnect_me")
async def disconnect_me(sid: str) -> None:
    await sio.disconnect(sid)


@sio.on("connect", namespace="/admin")
async def admin_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    if auth != {"token": "secret"}:
        raise roomcast.ConnectionRefusedError("not authorized")


@sio.on("echo", namespace="/admin")
async def admin_echo(sid: str, *args: Any) -> tuple[Any, ...]:
    return ("admin", *args)


@sio.on("slow")
async def slow(sid: str, seconds: float) -> str:
    # Answers late: the client's call() times out first.
    await sio.sleep(seconds)
    return "late"
