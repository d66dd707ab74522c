"""Connection middlewares (``sio.use``, Node's ``io.use``) over real sockets: they run in order
before the ``connect`` handler, per namespace or for all, plain or ``async def``; the first that
refuses ends the connection with Node's CONNECT_ERROR, and the rest never run."""

from __future__ import annotations

import json
import threading
from typing import Any

import websockets.sync.client as ws_client

import roomcast


def connect_reply(server: Any, namespace: str = "/", auth: Any = None) -> str:
    """The server's answer to a Socket.IO CONNECT to ``namespace`` with ``auth``, over a raw WebSocket."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with ws_client.connect(url, open_timeout=5) as ws:
        ws.recv(timeout=5)
        prefix = "" if namespace == "/" else f"{namespace},"
        ws.send("40" + prefix + ("" if auth is None else json.dumps(auth)))
        reply = ws.recv(timeout=5)
    assert isinstance(reply, str)
    return reply


def test_middlewares_run_in_order_before_the_connect_handler(live: Any) -> None:
    sio = roomcast.AsyncServer(namespaces="*")
    calls: list[str] = []

    @sio.use
    async def first(sid: str, environ: dict[str, Any], auth: Any) -> None:
        calls.append(f"first {environ['REQUEST_METHOD']} {auth}")
        await sio.save_session(sid, {"user": (auth or {}).get("user")})

    @sio.use
    def second(sid: str) -> None:  # plain, and asking for the sid alone
        calls.append(f"second on a worker thread: {threading.current_thread() is not threading.main_thread()}")

    @sio.use(namespace="/admin")
    def admins_only(sid: str, environ: dict[str, Any], auth: Any) -> Any:
        calls.append("admins_only")
        return (auth or {}).get("user") == "root"

    @sio.use(namespace="*")
    async def everywhere(sid: str) -> None:
        calls.append("everywhere")

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        calls.append(f"connect as {(await sio.get_session(sid))['user']}")

    server = live(roomcast.ASGIApp(sio))
    assert connect_reply(server, auth={"user": "ada"}).startswith('40{"sid":')
    assert calls == ["first GET {'user': 'ada'}", "second on a worker thread: True", "everywhere",
                     "connect as ada"]
    calls.clear()
    assert connect_reply(server, "/admin", {"user": "ada"}) == '44/admin,{"message":"Connection rejected by server"}'
    assert calls == ["admins_only"]  # refused: "everywhere" never ran
    calls.clear()
    assert connect_reply(server, "/admin", {"user": "root"}).startswith('40/admin,{"sid":')
    assert calls == ["admins_only", "everywhere"]  # '/' middlewares are for '/' only, as in Node


def test_a_refusal_carries_message_and_data_and_stops_the_chain(live: Any, caplog: Any) -> None:
    sio = roomcast.AsyncServer()
    reached: list[str] = []

    @sio.use
    def check_token(sid: str, environ: dict[str, Any], auth: Any) -> None:
        token = (auth or {}).get("token")
        if token == "crash":
            raise RuntimeError("a bug in the middleware")
        if token != "ok":
            raise roomcast.ConnectionRefusedError("not authorized", {"hint": "token"})

    @sio.use
    def after(sid: str) -> None:
        reached.append(sid)

    @sio.event
    def connect(sid: str) -> None:
        reached.append("connect")

    server = live(roomcast.ASGIApp(sio))
    assert connect_reply(server, auth={"token": "no"}) == '44{"message":"not authorized","data":{"hint":"token"}}'
    assert reached == []
    with caplog.at_level("ERROR", logger="roomcast"):
        assert connect_reply(server, auth={"token": "crash"}) == '44{"message":"Internal server error"}'
    assert "a bug in the middleware" in caplog.text
    assert reached == []
    assert connect_reply(server, auth={"token": "ok"}).startswith('40{"sid":')
    assert len(reached) == 2 and reached[1] == "connect"


def test_a_slow_middleware_holds_up_its_connection_only(live: Any) -> None:
    """A middleware that blocks (a slow token check) delays its own connection; others connect."""
    sio = roomcast.AsyncServer()
    release = threading.Event()

    @sio.use
    def slow_for_some(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if (auth or {}).get("slow"):
            release.wait(10)

    server = live(roomcast.ASGIApp(sio))
    replies: list[str] = []
    slow = threading.Thread(target=lambda: replies.append(connect_reply(server, auth={"slow": True})))
    slow.start()
    try:
        assert connect_reply(server).startswith('40{"sid":')  # (within connect_reply's 5 s timeout)
        assert replies == []  # the slow one is still held
    finally:
        release.set()
        slow.join(10)
    assert replies and replies[0].startswith('40{"sid":')
