"""Messages between the nodes of a cluster (sans-I/O), in the wire format of Node's
``@socket.io/redis-adapter`` 8 and ``@socket.io/redis-emitter`` 5, so that Roomcast servers, Node
servers and emitters (Celery tasks, scripts) can share one Redis.

Three kinds of message travel on publish/subscribe channels named after a *key* (``"socket.io"`` by
default) and a namespace:

``<key>#<nsp>#`` or ``<key>#<nsp>#<room>#``
    A **broadcast**: msgpack of ``[uid, packet, opts]``, where ``packet`` is the Socket.IO packet as an
    object (``{"type": 2, "data": [event, *args], "nsp": nsp}``, binary arguments as msgpack ``bin``)
    and ``opts`` is ``{"rooms": [...], "except": [...], "flags": {...}}``. An emit to exactly one room
    goes to that room's channel, so that a node without the room can drop it unread. The sender's
    ``uid`` lets it ignore its own message (emitters use ``"emitter"``).
``<key>-request#<nsp>#``
    A **request** to every node: JSON (msgpack when it carries binary, and always for an emit that
    wants acknowledgements), ``{"uid", "type", "requestId"?, ...}`` with a :class:`RequestType`.
    ``PUBSUB NUMSUB`` of this channel counts the nodes serving the namespace.
``<key>-response#<nsp>#`` (and ``<key>-response#<nsp>#<uid>#``)
    A **response** to a request, matched by ``requestId``.

The caller publishes what :func:`encode_broadcast`, :func:`encode_request` and
:func:`encode_response` return and hands what arrives to :func:`decode_broadcast`,
:func:`decode_request` and :func:`decode_response`, which raise :class:`roomcast.ProtocolError` on
anything malformed (the message is then dropped; the subscription goes on).
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ProtocolError
from ..serializer import default_serializer

__all__ = [
    "DEFAULT_KEY",
    "EMITTER_UID",
    "Broadcast",
    "Channels",
    "Request",
    "RequestType",
    "Response",
    "decode_broadcast",
    "decode_request",
    "decode_response",
    "encode_broadcast",
    "encode_request",
    "encode_response",
]

DEFAULT_KEY = "socket.io"
#: The uid that Node's redis-emitter (and Roomcast's emitters) publish with.
EMITTER_UID = "emitter"

_EVENT = 2
_BINARY_EVENT = 5


class RequestType(enum.IntEnum):
    """What a request asks of the other nodes (the numbers are the wire values)."""

    SOCKETS = 0  #: the sids in some rooms
    ALL_ROOMS = 1  #: every room of the namespace
    REMOTE_JOIN = 2  #: make the sockets matching ``opts`` join ``rooms``
    REMOTE_LEAVE = 3  #: make them leave ``rooms``
    REMOTE_DISCONNECT = 4  #: disconnect them (``close``: the whole connection)
    REMOTE_FETCH = 5  #: describe them (id, handshake, rooms, data)
    SERVER_SIDE_EMIT = 6  #: an event for the other servers themselves
    BROADCAST = 7  #: an emit whose recipients acknowledge it
    BROADCAST_CLIENT_COUNT = 8  #: response: how many clients a node sent the emit to
    BROADCAST_ACK = 9  #: response: one client's acknowledgement


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern (PSUBSCRIBE)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class Channels:
    """The channel names of one key (see the module doc)."""

    __slots__ = ("key", "_broadcast", "_request", "_response")

    def __init__(self, key: str = DEFAULT_KEY) -> None:
        self.key = key
        self._broadcast = key + "#"
        self._request = key + "-request#"
        self._response = key + "-response#"

    def broadcast(self, namespace: str, rooms: tuple[str, ...] | list[str] = ()) -> str:
        """Where an emit to ``rooms`` of ``namespace`` is published."""
        channel = f"{self._broadcast}{namespace}#"
        if len(rooms) == 1:
            channel += f"{rooms[0]}#"
        return channel

    def request(self, namespace: str) -> str:
        return f"{self._request}{namespace}#"

    def response(self, namespace: str, uid: str | None = None) -> str:
        """The namespace's response channel; with ``uid``, the one of that node alone."""
        channel = f"{self._response}{namespace}#"
        return channel + f"{uid}#" if uid is not None else channel

    @property
    def broadcast_pattern(self) -> str:
        """The PSUBSCRIBE pattern of every broadcast channel, of every namespace."""
        return _glob_escape(self._broadcast) + "*"

    @property
    def response_pattern(self) -> str:
        """The PSUBSCRIBE pattern of every response channel."""
        return _glob_escape(self._response) + "*"

    def parse(self, channel: str) -> tuple[str, str, str | None] | None:
        """``(kind, namespace, room)`` of a channel of this key: kind ``"broadcast"`` (room: the
        room of a one-room channel, else None), ``"request"`` or ``"response"``; None for another
        key's channel or a malformed name."""
        for kind, prefix in (("broadcast", self._broadcast), ("request", self._request), ("response", self._response)):
            if channel.startswith(prefix):
                rest = channel[len(prefix):]
                namespace, sep, tail = rest.partition("#")
                if not sep or not namespace.startswith("/"):
                    return None
                if kind == "broadcast" and tail:
                    if not tail.endswith("#"):
                        return None
                    return kind, namespace, tail[:-1]
                return kind, namespace, None
        return None


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ProtocolError(f"{what} is not a list")
    # Node allows numeric rooms; they travel as numbers and name the same room as their string.
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(str(item))
        else:
            raise ProtocolError(f"{what} holds a {type(item).__name__}")
    return tuple(out)


def _msgpack() -> Any:
    try:
        import msgpack  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("cluster messages need msgpack: pip install 'roomcast[redis]'") from exc
    return msgpack


def _unpack(raw: bytes) -> Any:
    msgpack = _msgpack()
    try:
        # Node's msgpack encodes ``undefined`` as an extension: it reads as None here.
        return msgpack.unpackb(raw, raw=False, strict_map_key=False, ext_hook=lambda code, data: None)
    except Exception as exc:  # msgpack raises several unrelated types on malformed input
        raise ProtocolError(f"malformed msgpack: {exc}") from None


def _pack(value: Any) -> bytes:
    packed: bytes = _msgpack().packb(value, use_bin_type=True)
    return packed


def _has_binary(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_binary(v) for v in value)
    if isinstance(value, dict):
        return any(_has_binary(v) for v in value.values())
    return False


# -- broadcasts --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Broadcast:
    """An emit to the clients of other nodes: ``data`` is ``[event, *args]``."""

    uid: str
    namespace: str
    data: list[Any]
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    flags: dict[str, Any] = field(default_factory=dict)


def encode_broadcast(message: Broadcast) -> bytes:
    packet = {"type": _EVENT, "data": message.data, "nsp": message.namespace}
    opts = {"rooms": list(message.rooms), "except": list(message.except_rooms), "flags": message.flags}
    return _pack([message.uid, packet, opts])


def decode_broadcast(raw: bytes) -> Broadcast:
    value = _unpack(raw)
    if not isinstance(value, list) or len(value) < 3:
        raise ProtocolError("a broadcast is not [uid, packet, opts]")
    uid, packet, opts = value[0], value[1], value[2]
    if not isinstance(packet, dict) or not isinstance(opts, dict):
        raise ProtocolError("a broadcast's packet or opts is not a map")
    if packet.get("type") not in (_EVENT, _BINARY_EVENT):
        raise ProtocolError(f"a broadcast carries a packet of type {packet.get('type')!r}, not an event")
    data = packet.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ProtocolError("a broadcast's data is not [event, ...]")
    namespace = packet.get("nsp")
    if namespace is None:
        namespace = "/"
    if not isinstance(namespace, str) or not isinstance(uid, (str, type(None))):
        raise ProtocolError("a broadcast's namespace or uid is not a string")
    flags = opts.get("flags")
    return Broadcast(
        uid=uid or "",
        namespace=namespace,
        data=data,
        rooms=_strings(opts.get("rooms"), "rooms"),
        except_rooms=_strings(opts.get("except"), "except"),
        flags=flags if isinstance(flags, dict) else {},
    )


# -- requests and responses ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Request:
    """A request from one node to the others (the fields a type does not use stay empty).

    ``rooms``/``except_rooms`` select the sockets (Node's ``opts``); ``targets`` are the rooms that
    REMOTE_JOIN/REMOTE_LEAVE add or remove; ``data`` is a SERVER_SIDE_EMIT's ``[event, *args]``;
    ``packet`` a BROADCAST's Socket.IO packet object; ``timeout`` its flags' timeout (ms).
    """

    type: RequestType
    uid: str
    request_id: str | None = None
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    close: bool = False
    data: list[Any] | None = None
    packet: dict[str, Any] | None = None
    timeout: int | None = None
    #: The older form of REMOTE_JOIN/LEAVE/DISCONNECT: one socket by sid and one room.
    sid: str | None = None
    room: str | None = None


def encode_request(request: Request) -> bytes:
    body: dict[str, Any] = {"uid": request.uid, "type": int(request.type)}
    if request.request_id is not None:
        body["requestId"] = request.request_id
    kind = request.type
    opts = {"rooms": list(request.rooms), "except": list(request.except_rooms)}
    if kind in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE):
        body["opts"] = opts
        body["rooms"] = list(request.targets)
    elif kind == RequestType.REMOTE_DISCONNECT:
        body["opts"] = opts
        body["close"] = request.close
    elif kind == RequestType.REMOTE_FETCH:
        body["opts"] = opts
    elif kind == RequestType.SOCKETS:
        body["rooms"] = list(request.rooms)
    elif kind == RequestType.SERVER_SIDE_EMIT:
        body["data"] = request.data or []
    elif kind == RequestType.BROADCAST:
        body["packet"] = request.packet
        body["opts"] = {**opts, "flags": {"timeout": request.timeout} if request.timeout is not None else {}}
        return _pack(body)  # (as Node sends it: the packet may hold binary)
    if _has_binary(body):
        return _pack(body)
    return _dumps(body)


def _dumps(body: dict[str, Any]) -> bytes:
    # allow_nan=False: Node's JSON.parse refuses NaN/Infinity, so the message would be dropped unread.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _load(raw: bytes) -> Any:
    if raw[:1] == b"{":
        try:  # (strict: json.loads raised RecursionError on deep nesting, and read NaN/Infinity)
            return default_serializer.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"malformed JSON: {exc}") from None
    return _unpack(raw)


def decode_request(raw: bytes) -> Request:
    body = _load(raw)
    if not isinstance(body, dict):
        raise ProtocolError("a request is not a map")
    kind_value: Any = body.get("type")
    try:
        kind = RequestType(kind_value)
    except (ValueError, TypeError):
        raise ProtocolError(f"unknown request type {body.get('type')!r}") from None
    uid = body.get("uid")
    request_id = body.get("requestId")
    if not isinstance(uid, (str, type(None))) or not isinstance(request_id, (str, int, type(None))):
        raise ProtocolError("a request's uid or requestId is not a string")
    opts = body.get("opts")
    if opts is not None and not isinstance(opts, dict):
        raise ProtocolError("a request's opts is not a map")
    # As Node's ``if (request.opts)``: any map, even empty, is the opts form (all sockets).
    has_opts = opts is not None
    opts = opts or {}
    fields: dict[str, Any] = {
        "type": kind,
        "uid": uid or "",
        "request_id": None if request_id is None else str(request_id),
        "rooms": _strings(opts.get("rooms"), "opts.rooms"),
        "except_rooms": _strings(opts.get("except"), "opts.except"),
    }
    if kind in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT) and not has_opts:
        sid, room = body.get("sid"), body.get("room")
        if not isinstance(sid, str):
            raise ProtocolError("a request names no sockets")
        fields["sid"] = sid
        fields["room"] = room if isinstance(room, str) else None
    if kind in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE):
        fields["targets"] = _strings(body.get("rooms"), "rooms") if has_opts else ()
    elif kind == RequestType.REMOTE_DISCONNECT:
        fields["close"] = bool(body.get("close"))
    elif kind == RequestType.SOCKETS:
        fields["rooms"] = _strings(body.get("rooms"), "rooms")
    elif kind == RequestType.SERVER_SIDE_EMIT:
        data = body.get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise ProtocolError("a server-side emit's data is not [event, ...]")
        fields["data"] = data
    elif kind == RequestType.BROADCAST:
        packet = body.get("packet")
        if not isinstance(packet, dict) or not isinstance(packet.get("data"), list) or not packet["data"]:
            raise ProtocolError("a broadcast request's packet is not an event")
        fields["packet"] = packet
        flags = opts.get("flags")
        timeout: Any = flags.get("timeout") if isinstance(flags, dict) else None
        number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and math.isfinite(timeout)
        fields["timeout"] = int(timeout) if number else None  # (int() of inf/NaN raised)
    return Request(**fields)


@dataclass(frozen=True, kw_only=True)
class Response:
    """A node's answer to a request, matched by ``request_id``; ``type`` is set for the answers to a
    BROADCAST (BROADCAST_CLIENT_COUNT, BROADCAST_ACK) and to a SERVER_SIDE_EMIT, None otherwise."""

    request_id: str
    type: RequestType | None = None
    sockets: list[Any] | None = None
    rooms: list[Any] | None = None
    data: Any = None
    client_count: int | None = None
    packet: Any = None


def encode_response(response: Response) -> bytes:
    body: dict[str, Any] = {}
    if response.type is not None:
        body["type"] = int(response.type)
    body["requestId"] = response.request_id
    if response.sockets is not None:
        body["sockets"] = response.sockets
    if response.rooms is not None:
        body["rooms"] = response.rooms
    if response.type == RequestType.SERVER_SIDE_EMIT:
        body["data"] = response.data
    if response.client_count is not None:
        body["clientCount"] = response.client_count
    if response.type == RequestType.BROADCAST_ACK:
        body["packet"] = response.packet
        return _pack(body)  # (as Node sends it: an acknowledgement may hold binary)
    if _has_binary(body):
        return _pack(body)
    return _dumps(body)


def decode_response(raw: bytes) -> Response:
    body = _load(raw)
    if not isinstance(body, dict):
        raise ProtocolError("a response is not a map")
    request_id = body.get("requestId")
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        raise ProtocolError("a response has no requestId")
    kind: RequestType | None = None
    if body.get("type") is not None:
        try:
            kind = RequestType(body["type"])
        except ValueError:
            raise ProtocolError(f"unknown response type {body.get('type')!r}") from None
    sockets, rooms, count = body.get("sockets"), body.get("rooms"), body.get("clientCount")
    return Response(
        request_id=str(request_id),
        type=kind,
        sockets=sockets if isinstance(sockets, list) else None,
        rooms=rooms if isinstance(rooms, list) else None,
        data=body.get("data"),
        client_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        packet=body.get("packet"),
    )
