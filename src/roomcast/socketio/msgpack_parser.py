"""Socket.IO packets encoded with MessagePack, as the ``socket.io-msgpack-parser`` npm package (the
official client's ``parser`` option) and python-socketio's ``serializer='msgpack'`` encode them
(sans-I/O).

Each packet is one binary Engine.IO message: a MessagePack map ``{"type", "nsp", "data", "id"?}``.
Binary values travel inside it as MessagePack ``bin``, so there are no attachments and no binary
packet types. The functions mirror :mod:`roomcast.socketio.packets` (same arguments, the
``serializer`` ignored), so the server switches parsers by switching functions (and decoders).
"""

from __future__ import annotations

from typing import Any

from ..exceptions import PayloadTooLarge, ProtocolError
from .packets import Packet, PacketType

__all__ = ["encode", "encode_event", "event_packets", "encode_ack", "Decoder", "require"]

try:
    import msgpack  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - an optional dependency
    msgpack = None


def require() -> None:
    """Raise :class:`ImportError`, saying what to install, when the ``msgpack`` package is missing."""
    if msgpack is None:
        raise ImportError("serializer='msgpack' needs the msgpack package: pip install 'roomcast[msgpack]'")


_NO_DATA = frozenset({PacketType.DISCONNECT})


def _ext(code: int, data: bytes) -> Any:
    """The JavaScript client's encoder (notepack.io) writes ``undefined`` (a CONNECT without auth) as
    extension type 0: read it as None. Other extension types are not Socket.IO's."""
    if code == 0:
        return None
    raise ProtocolError(f"MessagePack extension type {code} is not part of the protocol")


def _pack(obj: dict[str, Any]) -> bytes:
    try:
        packed: bytes = msgpack.packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"a value MessagePack cannot hold: {exc}") from None
    return packed


def encode(packet: Packet, serializer: Any = None) -> list[str | bytes]:
    """One packet as one binary message."""
    ptype = PacketType.EVENT if packet.type is PacketType.BINARY_EVENT else (
        PacketType.ACK if packet.type is PacketType.BINARY_ACK else packet.type
    )
    obj: dict[str, Any] = {"type": int(ptype), "nsp": packet.namespace}
    if ptype not in _NO_DATA and packet.data is not None:  # (Node's parser refuses a CONNECT with nil data)
        obj["data"] = packet.data
    if packet.id is not None:
        obj["id"] = packet.id
    return [_pack(obj)]


def encode_event(namespace: str, event: str, args: Any, ack_id: int | None, serializer: Any = None) -> list[str | bytes]:
    obj: dict[str, Any] = {"type": 2, "nsp": namespace, "data": [event, *args]}
    if ack_id is not None:
        obj["id"] = ack_id
    return [_pack(obj)]


def event_packets(namespace: str, event: str, args: Any, serializer: Any = None) -> list[str | bytes]:
    """An event without ack id: the server's ``_event_packets`` for this format."""
    return encode_event(namespace, event, args, None)


def encode_ack(namespace: str, ack_id: int, args: Any, serializer: Any = None) -> list[str | bytes]:
    return [_pack({"type": 3, "nsp": namespace, "data": list(args), "id": ack_id})]


class Decoder:
    """Binary messages to :class:`Packet` objects, checked as strictly as the text parser checks
    its own (anything else is a :class:`ProtocolError`)."""

    __slots__ = ("_limit", "_types")

    #: Always "pending" for the server, which parses text events on a fast path while its decoder has
    #: no partial packet: here every message, a text one too (refused), goes through :meth:`receive`.
    pending = True

    def __init__(
        self, *, serializer: Any = None, max_attachments: int = 10, max_size: int = 10_000_000, from_server: bool = False
    ) -> None:
        self._limit = max_size
        # A server receives types 0 to 3; a client (``from_server``) CONNECT_ERROR (4) too.
        self._types = (0, 1, 2, 3, 4) if from_server else (0, 1, 2, 3)

    def receive(self, data: str | bytes) -> Packet:
        if isinstance(data, str):
            raise ProtocolError("a text message on a connection that speaks MessagePack")
        if len(data) > self._limit:
            raise PayloadTooLarge(f"a MessagePack packet of {len(data)} bytes")
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext)
        except Exception as exc:  # (msgpack raises several types for bad input)
            raise ProtocolError(f"not a MessagePack packet: {exc}") from None
        if not isinstance(obj, dict):
            raise ProtocolError(f"a MessagePack packet must be a map, not {type(obj).__name__}")
        kind = obj.get("type")
        if type(kind) is not int or kind not in self._types:
            raise ProtocolError(f"invalid packet type {kind!r} (expected one of {self._types})")
        ptype = PacketType(kind)
        namespace = obj.get("nsp", "/")
        if not isinstance(namespace, str) or not namespace.startswith("/"):
            raise ProtocolError(f"invalid namespace {namespace!r}")
        ack_id = obj.get("id")
        if ack_id is not None and (type(ack_id) is not int or ack_id < 0):
            raise ProtocolError(f"invalid ack id {ack_id!r}")
        payload = obj.get("data")
        if ptype is PacketType.EVENT:
            if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
                raise ProtocolError("an EVENT's data must be a list starting with the event name")
        elif ptype is PacketType.ACK:
            if ack_id is None or not isinstance(payload, list):
                raise ProtocolError("an ACK needs an id and a list of arguments")
        elif ptype is PacketType.CONNECT:
            if payload is not None and not isinstance(payload, dict):
                raise ProtocolError("a CONNECT's data must be a map (the auth or the sid) or absent")
            ack_id = None
        elif ptype is PacketType.CONNECT_ERROR:
            if not isinstance(payload, (dict, str)):
                raise ProtocolError("a CONNECT_ERROR's data must be a map (message, data)")
            ack_id = None
        else:
            payload, ack_id = None, None
        return Packet(type=ptype, namespace=namespace, data=payload, id=ack_id)
