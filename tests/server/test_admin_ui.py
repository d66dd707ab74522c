"""``AsyncServer.instrument()``: the server side of the Socket.IO Admin UI, spoken to by a client that
does what the UI does (login in the auth, then the events of @socket.io/admin-ui's protocol)."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
import socketio
import websockets.sync.client as ws_client

import roomcast

from livesrv import LiveServer, wait_until

LOGIN = {"username": "admin", "password": "s3cret"}


class AdminView:
    """A python-socketio client in the admin namespace, recording every event it gets."""

    def __init__(self, server: LiveServer, auth: Any = LOGIN) -> None:
        self.client = socketio.Client(reconnection=False)
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.lock = threading.Lock()
        self.client.on("*", self._record, namespace="/admin")
        self.client.connect(server.url, namespaces=["/admin"], auth=auth, transports=["websocket"], wait_timeout=5)

    def _record(self, event: str, *args: Any) -> None:
        with self.lock:
            self.events.append((event, args))

    def first(self, event: str, where: Any = lambda args: True) -> tuple[Any, ...]:
        found: list[tuple[Any, ...]] = []

        def seen() -> bool:
            with self.lock:
                found[:] = [args for name, args in self.events if name == event and where(args)]
            return bool(found)

        wait_until(seen, what=f"the admin event {event!r}")
        return found[0]


def test_the_admin_namespace_reports_and_acts(live: Any) -> None:
    sio = roomcast.AsyncServer()
    sio.instrument(auth=LOGIN, server_id="test-server", server_stats_interval=0.2)

    @sio.on("hello")
    async def hello(sid: str, name: str) -> None:
        await sio.emit("welcome", name, to=sid)

    server = live(roomcast.ASGIApp(sio))
    with pytest.raises(socketio.exceptions.ConnectionError):
        AdminView(server, auth={"username": "admin", "password": "wrong"})
    admin = AdminView(server)
    try:
        assert admin.first("config")[0]["supportedFeatures"] == [
            "EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS",
        ]
        assert isinstance(admin.first("session")[0], str)
        listed = admin.first("all_sockets")[0]  # every namespace's sockets, the admin's own included
        assert [(s["nsp"], s["id"]) for s in listed] == [("/admin", admin.client.get_sid("/admin"))]
        stats = admin.first("server_stats")[0]
        assert stats["serverId"] == "test-server" and stats["clientsCount"] >= 1

        user = socketio.Client(reconnection=False)
        welcomed: list[str] = []
        user.on("welcome", welcomed.append)
        user.connect(server.url, transports=["websocket"], wait_timeout=5)
        sid = user.get_sid()
        connected = admin.first("socket_connected", lambda a: a[0]["nsp"] == "/")[0]
        assert connected["id"] == sid and connected["nsp"] == "/" and connected["transport"] == "websocket"
        assert connected["rooms"] == [sid] and "host" in connected["handshake"]["headers"]
        user.emit("hello", "ada")
        wait_until(lambda: welcomed == ["ada"])
        assert admin.first("event_received", lambda a: a[1] == sid)[2] == ["hello", "ada"]
        assert admin.first("event_sent", lambda a: a[1] == sid)[2] == ["welcome", "ada"]

        # What the UI's buttons do: make sockets join a room, emit to it, disconnect them.
        admin.client.emit("join", ("/", "vip", sid), namespace="/admin")
        assert admin.first("room_joined", lambda a: a[1] == "vip")[2] == sid
        wait_until(lambda: "vip" in sio.rooms(sid))
        admin.client.emit("emit", ("/", "vip", "welcome", "from the admin"), namespace="/admin")
        wait_until(lambda: welcomed == ["ada", "from the admin"])
        admin.client.emit("_disconnect", ("/", False, sid), namespace="/admin")
        assert admin.first("socket_disconnected", lambda a: a[1] == sid)[2] == "server namespace disconnect"
        assert admin.first("room_left", lambda a: a[1] == "vip")[2] == sid
        wait_until(lambda: not user.connected)
    finally:
        admin.client.disconnect()


def test_read_only_and_production_modes(live: Any) -> None:
    sio = roomcast.AsyncServer()
    sio.instrument(auth=[LOGIN, {"username": "ops", "password": "x"}], mode="production", read_only=True)
    server = live(roomcast.ASGIApp(sio))
    admin = AdminView(server, auth={"username": "ops", "password": "x"})
    try:
        assert admin.first("config")[0]["supportedFeatures"] == ["AGGREGATED_EVENTS"]
        assert admin.first("server_stats")[0]["namespaces"]
        user = socketio.Client(reconnection=False)
        user.connect(server.url, transports=["websocket"], wait_timeout=5)
        assert not any(key == "/admin" and ("_disconnect" in table or "join" in table)
                       for key, table in sio.handlers.items())  # the UI's actions are not offered
        with admin.lock:
            assert not any(name == "socket_connected" for name, _ in admin.events)  # production: stats only
        user.disconnect()
    finally:
        admin.client.disconnect()
    with pytest.raises(ValueError):
        roomcast.AsyncServer().instrument()  # auth must be given (False to go without)


def test_an_upgrade_updates_the_transport_shown(live: Any) -> None:
    """A socket joined over long-polling, whose connection then upgrades to WebSocket (by hand, so
    that the order is certain): socket_connected says polling, then socket_updated websocket."""
    sio = roomcast.AsyncServer()
    sio.instrument(auth=False)
    server = live(roomcast.ASGIApp(sio))
    admin = AdminView(server, auth={})
    http = httpx.Client(base_url=server.url, timeout=5)
    try:
        eio = json.loads(http.get("/socket.io/?EIO=4&transport=polling").text[1:])["sid"]
        query = f"/socket.io/?EIO=4&transport=polling&sid={eio}"
        assert http.post(query, content=b"40").text == "ok"
        sid = json.loads(http.get(query).text[2:])["sid"]
        assert admin.first("socket_connected", lambda a: a[0]["id"] == sid)[0]["transport"] == "polling"
        url = server.url.replace("http", "ws") + f"/socket.io/?EIO=4&transport=websocket&sid={eio}"
        with ws_client.connect(url, open_timeout=5) as ws:
            ws.send("2probe")
            assert ws.recv(timeout=5) == "3probe"
            ws.send("5")
            assert admin.first("socket_updated", lambda a: a[0]["id"] == sid)[0] == {
                "id": sid, "nsp": "/", "transport": "websocket",
            }
    finally:
        http.close()
        admin.client.disconnect()
