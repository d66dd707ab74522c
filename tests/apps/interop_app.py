"""The interop app: the behaviour of tests/interop/node/server.js, written with the
python-socketio API so the same file runs on Roomcast or on python-socketio.

``INTEROP_IMPL`` selects the implementation: ``roomcast`` (default) or
``python-socketio`` (a reference used to validate the test harness itself).
Run it with ``python -m uvicorn tests.apps.interop_app:app``.

Handlers ack only when the client asked for an ack (the API drops the return
value otherwise). "echo" always emits its args back as an "echo" event too,
because the API does not tell a handler whether an ack was requested. The
broadcast-style handlers return "sent" after emitting so a
client can wait until the emit happened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

IMPL = os.environ.get("INTEROP_IMPL", "roomcast")

if IMPL == "roomcast":
    import roomcast as _lib

    _server_opts: dict[str, Any] = {}
elif IMPL == "python-socketio":
    import socketio as _lib  # type: ignore[no-redef]

    # python-socketio picks its async mode from what is installed; pin ASGI.
    _server_opts = {"async_mode": "asgi"}
else:
    raise RuntimeError(f"INTEROP_IMPL must be 'roomcast' or 'python-socketio', not {IMPL!r}")

DYNAMIC = re.compile(r"^/dyn-\d+$")


class Namespaces(list):  # type: ignore[type-arg]
    """The accepted namespaces: names, plus patterns for dynamic namespaces.

    Node accepts dynamic namespaces with ``io.of(/regex/)``; the python-socketio
    API only has ``namespaces='*'`` (accept everything), which would also accept
    "/nope". A list whose membership test understands compiled patterns accepts
    exactly "/dyn-<digits>" and leaves every other name to the server's default
    refusal.
    """

    def __init__(self, items: Iterable[str | re.Pattern[str]]) -> None:
        super().__init__(items)

    def __contains__(self, name: object) -> bool:
        return any(
            item.match(name) if isinstance(item, re.Pattern) and isinstance(name, str) else item == name
            for item in self
        )


sio = _lib.AsyncServer(
    cors_allowed_origins="*",
    namespaces=Namespaces(["/", "/admin", DYNAMIC]),
    **_server_opts,
)
app = _lib.ASGIApp(sio)

# What each connection on "/" presented at connect, by socket id.
_handshakes: dict[str, dict[str, Any]] = {}
# Disconnect reasons seen so far, in order, as (sid, reason).
_reasons: list[tuple[str, str]] = []
# Room membership kept by the app, so "everyone except a room" needs only the
# public emit(skip_sid=[...]) API.
_rooms: dict[str, set[str]] = {}


def _query_x(environ: dict[str, Any]) -> str | None:
    values = parse_qs(environ.get("QUERY_STRING", "")).get("x")
    return values[0] if values else None


def _as_args(result: Any) -> tuple[Any, ...]:
    """Turn ``call()``'s return value back into the client's ack arguments.

    ``call()`` returns None for no argument, the value for one, a tuple for
    several; JSON never yields a tuple, so this is unambiguous.
    """
    if result is None:
        return ()
    if isinstance(result, tuple):
        return result
    return (result,)


@sio.on("connect")
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    auth = auth or {}
    if isinstance(auth, dict) and "refuse" in auth:
        raise _lib.exceptions.ConnectionRefusedError("refused", {"reason": auth["refuse"]})
    _handshakes[sid] = {"auth": auth, "query": _query_x(environ)}


@sio.on("disconnect")
async def disconnect(sid: str, reason: str = "") -> None:
    _reasons.append((sid, reason))
    _handshakes.pop(sid, None)
    for members in _rooms.values():
        members.discard(sid)


@sio.on("echo")
async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    # The API hides whether the client asked for an ack (the return value is
    # dropped when it did not), so "echo" always emits the args back and also
    # acks with them when asked; server.js does the same.
    await sio.emit("echo", args, to=sid)
    return args


@sio.on("join")
async def join(sid: str, room: str) -> str:
    await sio.enter_room(sid, room)
    _rooms.setdefault(room, set()).add(sid)
    return "joined"


@sio.on("leave")
async def leave(sid: str, room: str) -> str:
    await sio.leave_room(sid, room)
    _rooms.get(room, set()).discard(sid)
    return "left"


@sio.on("to_room")
async def to_room(sid: str, room: str, msg: Any) -> str:
    await sio.emit("room_message", msg, to=room)
    return "sent"


@sio.on("broadcast")
async def broadcast(sid: str, msg: Any) -> str:
    await sio.emit("broadcast", msg, skip_sid=sid)
    return "sent"


@sio.on("broadcast_all")
async def broadcast_all(sid: str, msg: Any) -> str:
    await sio.emit("broadcast_all", msg)
    return "sent"


@sio.on("broadcast_except_room")
async def broadcast_except_room(sid: str, room: str, msg: Any) -> str:
    await sio.emit("broadcast_except_room", msg, skip_sid=sorted(_rooms.get(room, ())))
    return "sent"


@sio.on("server_call")
async def server_call(sid: str, payload: Any) -> None:
    answer = await sio.call("question", payload, to=sid, timeout=10)
    await sio.emit("answer", _as_args(answer), to=sid)


@sio.on("disconnect_me")
async def disconnect_me(sid: str) -> None:
    await sio.disconnect(sid)


@sio.on("whoami")
async def whoami(sid: str) -> dict[str, Any]:
    handshake = _handshakes.get(sid, {"auth": {}, "query": None})
    return {"sid": sid, **handshake}


@sio.on("bin_echo")
async def bin_echo(sid: str, data: bytes) -> dict[str, Any]:
    return {"size": len(data), "data": data}


@sio.on("reasons")
async def reasons(sid: str, of_sid: str | None = None) -> list[str]:
    return [reason for s, reason in _reasons if of_sid is None or s == of_sid]


@sio.on("connect", namespace="/admin")
async def admin_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    if auth != {"token": "secret"}:
        raise _lib.exceptions.ConnectionRefusedError("not authorized")


@sio.on("echo", namespace="/admin")
async def admin_echo(sid: str, *args: Any) -> tuple[Any, ...]:
    await sio.emit("echo", args, to=sid, namespace="/admin")
    return args


@sio.on("echo", namespace="*")
async def dynamic_echo(namespace: str, sid: str, *args: Any) -> tuple[Any, ...]:
    # The catch-all namespace handler receives the namespace name first.
    await sio.emit("echo", (namespace, *args), to=sid, namespace=namespace)
    return (namespace, *args)
