"""The client side of Socket.IO over one Engine.IO session: namespaces and acks (sans-I/O).

Theory
------
Each namespace the client joins goes ``CONNECTING`` (a CONNECT sent, with its auth) → ``CONNECTED``
(the server's CONNECT, carrying the namespace's sid) → gone, either refused (CONNECT_ERROR), disconnected
by the server (DISCONNECT) or by the client. Events and acks only flow on a connected namespace.

Ack ids are per session, increasing from 0; the core remembers which ids it handed out so that an ACK
for an id it never used (or already answered) is dropped instead of reaching the application.

The caller (the I/O layer) feeds each Engine.IO message to :meth:`ClientSession.receive` and acts on the
returned events; it sends what :meth:`connect`, :meth:`emit`, :meth:`ack` and :meth:`disconnect` return.
When the Engine.IO session ends it calls :meth:`connection_lost`, which forgets every namespace and
pending ack, so that a new session can start clean (auth is kept for reconnection by the caller).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..exceptions import BadNamespaceError, ProtocolError
from ..serializer import Serializer, default_serializer
from .packets import MAX_ACK_ID, Decoder, Packet, PacketType, encode, encode_event

__all__ = [
    "NamespaceState",
    "Connected",
    "ConnectRefused",
    "ServerDisconnected",
    "EventReceived",
    "AckReceived",
    "ClientSession",
]


class NamespaceState(Enum):
    """Where one namespace of the client is."""

    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """The server accepted the namespace; ``recovered`` when it restored the previous session."""

    namespace: str
    sid: str
    recovered: bool = False


class RecoveryState:
    """What connection state recovery needs remembered across Engine.IO sessions, per namespace.

    A server that offers recovery sends a private session id (``pid``) in its CONNECT reply and
    appends an offset to every event it may replay. After a lost connection the client sends both back
    in its CONNECT auth, and the server restores the session and replays what was missed. The caller
    keeps one of these for the life of the client and hands it to each new :class:`ClientSession`.
    """

    __slots__ = ("pids", "offsets")

    def __init__(self) -> None:
        self.pids: dict[str, str] = {}
        self.offsets: dict[str, str] = {}

    def forget(self, namespace: str) -> None:
        self.pids.pop(namespace, None)
        self.offsets.pop(namespace, None)

    def auth(self, namespace: str, auth: dict[str, Any] | None) -> dict[str, Any] | None:
        """The CONNECT payload: ``auth`` plus the pid and offset to recover with, if any."""
        pid = self.pids.get(namespace)
        if pid is None:
            return auth
        return {"pid": pid, "offset": self.offsets.get(namespace), **(auth or {})}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRefused:
    """The server refused the namespace: ``message`` and the optional ``data`` of its CONNECT_ERROR."""

    namespace: str
    message: str
    data: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerDisconnected:
    """The server disconnected the namespace (reason ``io server disconnect``)."""

    namespace: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EventReceived:
    """An event from the server; ``ack_id`` is set when the server waits for an answer."""

    namespace: str
    name: str
    args: list[Any]
    ack_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """The answer to one of our events that asked for an ack."""

    namespace: str
    ack_id: int
    args: list[Any]


ClientEvent = Connected | ConnectRefused | ServerDisconnected | EventReceived | AckReceived


class ClientSession:
    """Socket.IO client state for one Engine.IO session (see the module docstring)."""

    __slots__ = (
        "serializer",
        "namespaces",
        "sids",
        "recovery",
        "_max_attachments",
        "_decoder",
        "_next_ack",
        "_pending_acks",
        "_encode",
        "_encode_event",
        "_new_decoder",
    )

    def __init__(
        self,
        *,
        serializer: Serializer = default_serializer,
        max_attachments: int = 10,
        recovery: RecoveryState | None = None,
        msgpack: bool = False,
    ) -> None:
        self.serializer = serializer
        if msgpack:  # socket.io-msgpack-parser's format (see roomcast.socketio.msgpack_parser)
            from . import msgpack_parser

            self._encode: Callable[..., list[str | bytes]] = msgpack_parser.encode
            self._encode_event: Callable[..., list[str | bytes]] = msgpack_parser.encode_event
            self._new_decoder: Callable[[], Any] = lambda: msgpack_parser.Decoder(from_server=True)
        else:
            self._encode = encode
            self._encode_event = encode_event
            self._new_decoder = lambda: Decoder(serializer=serializer, max_attachments=max_attachments)
        self.recovery = recovery if recovery is not None else RecoveryState()
        self.namespaces: dict[str, NamespaceState] = {}
        #: The sid the server gave each connected namespace.
        self.sids: dict[str, str] = {}
        self._max_attachments = max_attachments
        self._decoder = self._new_decoder()
        self._next_ack = 0
        self._pending_acks: dict[int, str] = {}

    def connected(self, namespace: str) -> bool:
        """Whether ``namespace`` is connected."""
        return self.namespaces.get(namespace) is NamespaceState.CONNECTED

    def connect(self, namespace: str, auth: Any = None) -> list[str | bytes]:
        """Start joining ``namespace``: the CONNECT packet (with ``auth``, a dict, if given)."""
        if auth is not None and not isinstance(auth, dict):
            raise ValueError("auth must be a dict (the protocol sends it as a JSON object)")
        self.namespaces[namespace] = NamespaceState.CONNECTING
        data = self.recovery.auth(namespace, auth)
        return self._encode(Packet(type=PacketType.CONNECT, namespace=namespace, data=data), self.serializer)

    def emit(
        self, namespace: str, event: str, args: tuple[Any, ...] | list[Any], want_ack: bool
    ) -> tuple[list[str | bytes], int | None]:
        """Encode an event on a connected namespace; returns the messages and the ack id (if wanted)."""
        if not self.connected(namespace):
            raise BadNamespaceError(f"{namespace} is not a connected namespace")
        ack_id = None
        if want_ack:
            ack_id = self._next_ack
            self._next_ack = 0 if self._next_ack >= MAX_ACK_ID else self._next_ack + 1
            self._pending_acks[ack_id] = namespace
        return self._encode_event(namespace, event, args, ack_id, self.serializer), ack_id

    def forget_ack(self, ack_id: int) -> None:
        """Stop waiting for ``ack_id`` (a ``call`` timed out); a late answer is then dropped."""
        self._pending_acks.pop(ack_id, None)

    def ack(self, namespace: str, ack_id: int, args: tuple[Any, ...] | list[Any]) -> list[str | bytes]:
        """Encode the answer to an event the server sent with ``ack_id``."""
        return self._encode(Packet(type=PacketType.ACK, namespace=namespace, data=list(args), id=ack_id), self.serializer)

    def disconnect(self, namespace: str) -> list[str | bytes]:
        """Leave ``namespace``: the DISCONNECT packet (nothing if it was not joined)."""
        state = self.namespaces.pop(namespace, None)
        self.sids.pop(namespace, None)
        self.recovery.forget(namespace)  # leaving on purpose: nothing to recover
        if state is None:
            return []
        return self._encode(Packet(type=PacketType.DISCONNECT, namespace=namespace), self.serializer)

    def connection_lost(self) -> list[str]:
        """The Engine.IO session ended: forget everything; returns the namespaces that were connected."""
        gone = [ns for ns, state in self.namespaces.items() if state is NamespaceState.CONNECTED]
        self.namespaces.clear()
        self.sids.clear()
        self._pending_acks.clear()
        self._decoder = self._new_decoder()
        return gone

    def receive(self, message: str | bytes) -> list[ClientEvent]:
        """Take one Engine.IO message; returns the resulting events (none while attachments are due).

        Raises :class:`ProtocolError` for malformed packets and for a CONNECT without a sid.
        Packets for namespaces that are not joined are dropped, as socket.io-client does.
        """
        packet = self._decoder.receive(message)
        if packet is None:
            return []
        ns = packet.namespace
        state = self.namespaces.get(ns)
        ptype = packet.type
        if ptype is PacketType.CONNECT:
            data = packet.data
            if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
                raise ProtocolError("CONNECT from the server must carry {'sid': ...}")
            if state is None:
                return []
            self.namespaces[ns] = NamespaceState.CONNECTED
            self.sids[ns] = data["sid"]
            pid = data.get("pid")
            recovered = isinstance(pid, str) and self.recovery.pids.get(ns) == pid
            if not recovered:
                self.recovery.forget(ns)
            if isinstance(pid, str):
                self.recovery.pids[ns] = pid
            return [Connected(namespace=ns, sid=data["sid"], recovered=recovered)]
        if ptype is PacketType.CONNECT_ERROR:
            if state is None:
                return []
            del self.namespaces[ns]
            data = packet.data
            if isinstance(data, dict):
                return [ConnectRefused(namespace=ns, message=str(data.get("message", "")), data=data.get("data"))]
            return [ConnectRefused(namespace=ns, message=str(data))]
        if state is not NamespaceState.CONNECTED:
            return []
        if ptype is PacketType.DISCONNECT:
            del self.namespaces[ns]
            self.sids.pop(ns, None)
            self.recovery.forget(ns)
            return [ServerDisconnected(namespace=ns)]
        if ptype is PacketType.EVENT or ptype is PacketType.BINARY_EVENT:
            args = packet.data[1:]
            if packet.id is None and args and ns in self.recovery.pids and isinstance(args[-1], str):
                # a server offering recovery appends its offset to every replayable event; keep it
                # for the next CONNECT and hand the handler the event's own arguments only
                self.recovery.offsets[ns] = args[-1]
                args = args[:-1]
            return [EventReceived(namespace=ns, name=packet.data[0], args=list(args), ack_id=packet.id)]
        # ACK / BINARY_ACK: the decoder guarantees an id.
        assert packet.id is not None
        if self._pending_acks.get(packet.id) != ns:
            return []
        del self._pending_acks[packet.id]
        return [AckReceived(namespace=ns, ack_id=packet.id, args=list(packet.data))]
