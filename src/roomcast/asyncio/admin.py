"""The server side of the Socket.IO Admin UI (https://socket.io/docs/v4/admin-ui/): what
``AsyncServer.instrument()`` sets up, as python-socketio's ``instrument()`` and Node's
``@socket.io/admin-ui`` do.

The UI connects to the admin namespace (``/admin``) with a login in its ``auth``. On connection it
gets ``config`` (the features it may use) and, in development mode, ``all_sockets``; every
``server_stats_interval`` seconds every admin client gets ``server_stats``; in development mode it is
told live of each socket that connects or disconnects, joins or leaves a room (the admin
namespace's own included, as Node reports them), and of every event received or sent (outside the
admin namespace). From the UI an admin may emit, make sockets join or leave rooms, and disconnect
them (unless ``read_only``). With a message queue, the admin namespace spans the cluster like any
other, so one UI sees every server.

The server calls this module at a few points (a socket connected or gone, an event in or out) only
once instrumented; rooms are observed by swapping the server's room table for a subclass.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import secrets
import socket as _socket
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..adapters.base import describe_handshake
from ..socketio.rooms import Rooms

if TYPE_CHECKING:
    from .server import AsyncServer, Socket

__all__ = ["AdminUI"]

_FEATURES = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
#: Admin UI sessions kept (each login gets one, which the UI presents when it reconnects).
_MAX_SESSIONS = 1000


def _now() -> str:
    """A timestamp as the UI expects it: what JSON makes of a JavaScript ``Date``."""
    stamp = datetime.datetime.now(datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class _ObservedRooms(Rooms):
    """The server's room table, telling the admin UI of each join and leave."""

    __slots__ = ("on_join", "on_leave")

    def __init__(self, rooms: Rooms, on_join: Callable[[str, str, str], None],
                 on_leave: Callable[[str, str, str], None]) -> None:
        super().__init__()
        self._members = rooms._members
        self._joined = rooms._joined
        self.on_join = on_join
        self.on_leave = on_leave

    def enter(self, namespace: str, sid: str, room: str) -> None:
        joined = room in self._joined.get(namespace, {}).get(sid, ())
        super().enter(namespace, sid, room)
        if not joined:
            self.on_join(namespace, room, sid)

    def leave(self, namespace: str, sid: str, room: str) -> None:
        joined = room in self._joined.get(namespace, {}).get(sid, ())
        super().leave(namespace, sid, room)
        if joined:
            self.on_leave(namespace, room, sid)


class AdminUI:
    """The admin namespace of one server (see the module doc)."""

    def __init__(
        self,
        server: AsyncServer,
        auth: Any,
        mode: str = "development",
        read_only: bool = False,
        server_id: str | None = None,
        namespace: str = "/admin",
        server_stats_interval: float = 2,
    ) -> None:
        if auth is None:
            raise ValueError("instrument() needs auth: a login dict, a list of them, a callable, or False")
        self.server = server
        self.auth = auth
        self.verbose = mode == "development"
        self.namespace = namespace
        self.interval = server_stats_interval
        self.server_id = server_id or _socket.gethostname()
        self.features = [] if read_only else list(_FEATURES)
        self.features.append("AGGREGATED_EVENTS")
        if self.verbose:
            self.features.append("ALL_EVENTS")
        self.started = time.monotonic()
        self._sessions: dict[str, None] = {}
        self._counts: Counter[tuple[str, str | None]] = Counter()
        self._stats_task: asyncio.Future[None] | None = None
        server.use(self._authenticate, namespace=namespace)
        server.on("connect", self._admin_connected, namespace=namespace)
        if not read_only:
            server.on("emit", self._emit, namespace=namespace)
            server.on("join", self._join, namespace=namespace)
            server.on("leave", self._leave, namespace=namespace)
            server.on("_disconnect", self._disconnect, namespace=namespace)
        if self.verbose:
            server.rooms_table = _ObservedRooms(server.rooms_table, self._room_joined, self._room_left)

    # -- the admin namespace --------------------------------------------------------------------

    async def _authenticate(self, sid: str, environ: dict[str, Any], auth: Any) -> Any:
        auth = auth if isinstance(auth, dict) else {}
        session = auth.get("sessionId")
        if isinstance(session, str) and session in self._sessions:
            return None
        login = {key: value for key, value in auth.items() if key != "sessionId"}
        expected = self.auth
        if expected is False:
            allowed = True
        elif callable(expected):
            allowed = bool(await expected(login) if asyncio.iscoroutinefunction(expected) else expected(login))
        elif isinstance(expected, dict):
            allowed = login == expected
        else:
            allowed = any(login == candidate for candidate in expected)
        if not allowed:
            from ..exceptions import ConnectionRefusedError

            raise ConnectionRefusedError("invalid credentials")
        if expected is not False:
            token = secrets.token_hex(8)
            self._sessions[token] = None
            while len(self._sessions) > _MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            await self.server.emit("session", token, to=sid, namespace=self.namespace)
        return None

    async def _admin_connected(self, sid: str) -> None:
        self.start()
        await self.server.emit("config", {"supportedFeatures": self.features}, to=sid, namespace=self.namespace)
        if self.verbose:
            sockets = []
            for namespace in list(self._namespaces()):
                for remote in await self.server.fetch_sockets(namespace=namespace):
                    sockets.append(self._serialize_remote(remote, namespace))
            await self.server.emit("all_sockets", sockets, to=sid, namespace=self.namespace)
        await self.server.emit("server_stats", self._stats(), to=sid, namespace=self.namespace)

    async def _emit(self, sid: str, nsp: str, filter: Any, event: str, *args: Any) -> None:
        await self.server.emit(event, tuple(args) if len(args) != 1 else args[0], to=filter or None, namespace=nsp)

    async def _join(self, sid: str, nsp: str, room: str, filter: Any = None) -> None:
        await self.server.sockets_join(room, to=filter or None, namespace=nsp)

    async def _leave(self, sid: str, nsp: str, room: str, filter: Any = None) -> None:
        await self.server.sockets_leave(room, to=filter or None, namespace=nsp)

    async def _disconnect(self, sid: str, nsp: str, close: Any = False, filter: Any = None) -> None:
        await self.server.disconnect_sockets(bool(close), to=filter or None, namespace=nsp)

    # -- statistics -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic ``server_stats`` (once the server's loop runs)."""
        if self._stats_task is None or self._stats_task.done():
            self._stats_task = self.server._spawn(self._stats_loop())
            self.server._background_tasks.add(self._stats_task)  # (a shutdown does not wait for it)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.server.emit("server_stats", self._stats(), namespace=self.namespace)

    def _namespaces(self) -> dict[str, int]:
        """Sockets per namespace, '/' first (as Node lists them: the UI starts on the first)."""
        counts: dict[str, int] = {"/": 0}
        for socket in list(self.server.sockets.values()):
            counts[socket.namespace] = counts.get(socket.namespace, 0) + 1
        counts.setdefault(self.namespace, 0)
        return counts

    def _stats(self) -> dict[str, Any]:
        engine = self.server.engine
        connections = list(engine.connections.values()) if engine is not None else []
        aggregated = [
            {"timestamp": int(time.time()) * 1000, "type": kind, "subType": sub, "count": count}
            for (kind, sub), count in self._counts.items()
        ]
        self._counts.clear()
        return {
            "serverId": self.server_id,
            "hostname": _socket.gethostname(),
            "pid": os.getpid(),
            "uptime": time.monotonic() - self.started,
            "clientsCount": len(connections),
            "pollingClientsCount": sum(1 for conn in connections if conn.transport == "polling"),
            "aggregatedEvents": aggregated,
            "namespaces": [{"name": name, "socketsCount": count} for name, count in self._namespaces().items()],
        }

    # -- what the server reports ----------------------------------------------------------------

    def _tell(self, event: str, *args: Any) -> None:
        """Emit to the admin clients without waiting (the server calls this from its own paths)."""
        self.server._emit(event, args, None, self.namespace)

    def _serialize(self, socket: Socket) -> dict[str, Any]:
        handshake = describe_handshake(socket.conn.environ, None, socket.issued)
        handshake.pop("auth", None)
        headers = handshake["headers"]
        handshake["address"] = headers.get("cf-connecting-ip") or headers.get("x-forwarded-for") or handshake["address"]
        return {
            "id": socket.sid,
            "clientId": socket.conn.sid[:12],
            "transport": socket.conn.transport,
            "nsp": socket.namespace,
            "data": _plain(socket.session),
            "handshake": handshake,
            "rooms": self.server.rooms_table.rooms_of(socket.namespace, socket.sid),
        }

    def _serialize_remote(self, remote: Any, namespace: str) -> dict[str, Any]:
        local = self.server.sockets.get(remote.sid)
        if local is not None:
            return self._serialize(local)
        handshake = {key: value for key, value in remote.handshake.items() if key != "auth"}
        return {"id": remote.sid, "clientId": "", "transport": "", "nsp": namespace, "data": _plain(remote.data),
                "handshake": handshake, "rooms": list(remote.rooms)}

    def connected(self, socket: Socket) -> None:
        self._counts["rawConnection", None] += 1
        if self.verbose:  # (admin sockets too, as Node reports them)
            self._tell("socket_connected", self._serialize(socket), _now())

    def upgraded(self, socket: Socket) -> None:
        if self.verbose:
            self._tell("socket_updated", {"id": socket.sid, "nsp": socket.namespace, "transport": "websocket"})

    def disconnected(self, socket: Socket, reason: str) -> None:
        self._counts["rawDisconnection", reason] += 1
        if self.verbose:
            self._tell("socket_disconnected", socket.namespace, socket.sid, reason, _now())

    def received(self, socket: Socket, data: list[Any]) -> None:
        self._counts["packetsIn", None] += 1
        if self.verbose and socket.namespace != self.namespace:
            self._tell("event_received", socket.namespace, socket.sid, list(data), _now())

    def sent(self, namespace: str, event: str, args: tuple[Any, ...], sids: list[str]) -> None:
        self._counts["packetsOut", None] += len(sids)
        if self.verbose and namespace != self.namespace:
            stamp = _now()
            for sid in sids:
                self._tell("event_sent", namespace, sid, [event, *args], stamp)

    def _room_joined(self, namespace: str, room: str, sid: str) -> None:
        if self.server.loop is not None:
            self._tell("room_joined", namespace, room, sid, _now())

    def _room_left(self, namespace: str, room: str, sid: str) -> None:
        if self.server.loop is not None:
            self._tell("room_left", namespace, room, sid, _now())


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it (a socket's session may hold anything): other objects as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return repr(value)
