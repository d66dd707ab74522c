"""Socket.IO v5 packets: the data model, the encoder and the (stateful) decoder. Sans-I/O.

Each Socket.IO packet travels as one Engine.IO ``message``, followed by one binary Engine.IO message
per attachment. The text part is, in the words of the spec ("Packet encoding")::

    <packet type>[<# of binary attachments>-][<namespace>,][<acknowledgment id>][JSON-stringified payload without binary]

"the namespace is only included if it is different from the main namespace (``/``)". Examples::

    2["foo"]                          EVENT "foo" on "/"
    2/admin,12["foo"]                 the same on "/admin", asking for acknowledgement 12
    3/admin,12["bar"]                 the acknowledgement
    51-["baz",{"_placeholder":true,"num":0}]  + one binary message: BINARY_EVENT with a buffer
    0/admin,{"token":"123"}           CONNECT to "/admin" with auth data
    4{"message":"Not authorized"}     CONNECT_ERROR
    1/admin,                          DISCONNECT from "/admin"

:func:`encode` turns a :class:`Packet` into that list of messages; :func:`encode_event` does the same
for the hottest case (an emit) with less work. A :class:`Decoder` takes messages one at a time, since
attachments arrive separately, and checks everything the spec forbids: whatever a peer sends, decoding
either returns packets or raises :class:`~roomcast.exceptions.ProtocolError`, whose message says what
was wrong (quoting at most 40 characters of the input).

Encoding checks local packets with the same rules and raises :class:`ValueError` (or the serializer's
``TypeError`` for data JSON can't hold): a bug in the application should fail at the emit, not make the
peer drop the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..exceptions import PayloadTooLarge, ProtocolError
from ..serializer import Serializer, default_serializer
from .binary import Slot, deconstruct, locate_placeholders, reconstruct

__all__ = [
    "MAX_ACK_ID",
    "PacketType",
    "Packet",
    "encode",
    "encode_event",
    "encode_ack",
    "Decoder",
    "decode",
    "parse_event",
]

#: Largest ack id: decoding accepts at most 15 digits, which stays below 2**53 so JavaScript peers
#: keep ids exact.
MAX_ACK_ID = 10**15 - 1
_MAX_ACK_DIGITS = 15


class PacketType(IntEnum):
    """The packet types of the spec's "Exchange protocol" table."""

    CONNECT = 0  #: join a namespace (client, with optional auth) / accepted (server, with the sid)
    DISCONNECT = 1  #: leave a namespace; no payload
    EVENT = 2  #: an event: ``[name, *args]``, optionally with an ack id
    ACK = 3  #: the answer to an event that had an ack id: ``[*args]``
    CONNECT_ERROR = 4  #: the server refuses a CONNECT: ``{"message": ..., "data"?: ...}``
    BINARY_EVENT = 5  #: an EVENT whose arguments hold binary attachments
    BINARY_ACK = 6  #: an ACK whose arguments hold binary attachments


@dataclass(frozen=True, slots=True, kw_only=True)
class Packet:
    """One Socket.IO packet.

    ``data`` depends on ``type``: EVENT and BINARY_EVENT take a list, event name first; ACK and
    BINARY_ACK a list of arguments; CONNECT a dict or None (client to server: auth; server to client:
    ``{"sid": ...}``); CONNECT_ERROR a dict ``{"message": str, "data"?: any}`` (old servers sent a plain
    string); DISCONNECT None. Binary values (``bytes``, ``bytearray``, ``memoryview``) may sit anywhere
    in event and ack data; decoding gives them back as ``bytes``. ``id`` is the ack id: optional for
    events, required for acks, absent otherwise.
    """

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


_TYPE_CHAR = {ptype: str(int(ptype)) for ptype in PacketType}
_TYPE_BY_CHAR = {char: ptype for ptype, char in _TYPE_CHAR.items()}
_EVENTS = frozenset({PacketType.EVENT, PacketType.BINARY_EVENT})
_ACKS = frozenset({PacketType.ACK, PacketType.BINARY_ACK})
_BINARY = frozenset({PacketType.BINARY_EVENT, PacketType.BINARY_ACK})
_NO_ACK_ID = frozenset({PacketType.CONNECT, PacketType.DISCONNECT, PacketType.CONNECT_ERROR})
#: Which type a packet takes when its data turns out to hold binary values.
_AS_BINARY = {
    PacketType.EVENT: PacketType.BINARY_EVENT,
    PacketType.ACK: PacketType.BINARY_ACK,
    PacketType.BINARY_EVENT: PacketType.BINARY_EVENT,
    PacketType.BINARY_ACK: PacketType.BINARY_ACK,
}


def _excerpt(text: str, limit: int = 40) -> str:
    """Quote at most ``limit`` characters of peer input, so that a log line stays short and safe."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


def _shape_problem(ptype: PacketType, data: Any, present: bool) -> str | None:
    """What is wrong with ``data`` as the payload of a ``ptype`` packet, or None if it is fine.

    ``present`` tells an absent payload from an explicit JSON ``null``. The rules are the spec's:
    "The payload is mandatory and MUST be a non-empty array" (events, whose first element is the name),
    "The payload is mandatory and MUST be an array (possibly empty)" (acks), and the object payloads of
    the connection packets.
    """
    if ptype in _EVENTS:
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], str):
            return None
        return f"{ptype.name} payload must be a non-empty array whose first element is the event name (a string)"
    if ptype in _ACKS:
        if isinstance(data, (list, tuple)):
            return None
        return f"{ptype.name} payload must be an array"
    if ptype is PacketType.CONNECT:
        if not present or isinstance(data, dict):
            return None
        return "CONNECT payload must be an object, or absent"
    if ptype is PacketType.DISCONNECT:
        if not present:
            return None
        return "DISCONNECT packets carry no payload"
    # CONNECT_ERROR: an object since protocol v5; a plain string from older servers.
    if isinstance(data, (dict, str)):
        return None
    return "CONNECT_ERROR payload must be an object (or a string)"


# -- encoding -------------------------------------------------------------------------------------


def _check_namespace(namespace: str) -> None:
    # The decoder reads the namespace up to the first ',', so a ',' inside one can't be represented.
    if not isinstance(namespace, str) or not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"namespace must be a string starting with '/' and without ',': {namespace!r}")


def _check_ack_id(ack_id: int) -> None:
    if type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID:
        raise ValueError(f"ack id must be an integer from 0 to {MAX_ACK_ID}: {ack_id!r}")


def _prefix(type_char: str, count: int | None, namespace: str, ack_id: int | None) -> str:
    """The text before the JSON payload: ``<type>[<count>-][<namespace>,][<ack id>]``."""
    header = type_char if count is None else f"{type_char}{count}-"
    if namespace != "/":
        header = f"{header}{namespace},"
    if ack_id is not None:
        header = f"{header}{ack_id}"
    return header


def _encode_binary(
    ptype: PacketType, namespace: str, ack_id: int | None, data: Any, serializer: Serializer
) -> list[str | bytes] | None:
    """Encode ``data`` with its buffers taken out as attachments; None if it holds no buffer."""
    stripped, buffers = deconstruct(data)
    if not buffers:
        return None
    binary_type = _AS_BINARY.get(ptype)
    if binary_type is None:
        raise ValueError(f"{ptype.name} packets can't carry binary data (only events and acks can)")
    header = _prefix(_TYPE_CHAR[binary_type], len(buffers), namespace, ack_id)
    messages: list[str | bytes] = [header + serializer.dumps(stripped)]
    messages.extend(buffers)
    return messages


def encode(packet: Packet, serializer: Serializer = default_serializer) -> list[str | bytes]:
    """Encode ``packet`` into Engine.IO message payloads: the text part, then one ``bytes`` per attachment.

    An EVENT or ACK whose data holds binary values goes out as BINARY_EVENT or BINARY_ACK, each buffer
    replaced by ``{"_placeholder":true,"num":N}`` in depth-first order. The data is first handed to the
    serializer as it is; only if that raises ``TypeError`` is it searched for buffers, so text-only
    packets cost one ``dumps`` call.

    Raises :class:`ValueError` for a packet the spec does not allow (see :class:`Packet`), and the
    serializer's ``TypeError``/``ValueError`` for data JSON can't represent.
    """
    ptype = packet.type
    type_char = _TYPE_CHAR.get(ptype)
    if type_char is None:
        raise ValueError(f"unknown packet type {ptype!r}")
    ptype = _TYPE_BY_CHAR[type_char]  # a plain int becomes the PacketType member
    namespace = packet.namespace
    if namespace != "/":
        _check_namespace(namespace)
    ack_id = packet.id
    if ack_id is not None:
        if ptype in _NO_ACK_ID:
            raise ValueError(f"{ptype.name} packets carry no ack id")
        _check_ack_id(ack_id)
    elif ptype in _ACKS:
        raise ValueError(f"{ptype.name} packets need an ack id")
    data = packet.data
    problem = _shape_problem(ptype, data, data is not None)
    if problem is not None:
        raise ValueError(problem)
    count = 0 if ptype in _BINARY else None
    prefix = _prefix(type_char, count, namespace, ack_id)
    if data is None:
        return [prefix]
    try:
        return [prefix + serializer.dumps(data)]
    except TypeError:
        messages = _encode_binary(ptype, namespace, ack_id, data, serializer)
        if messages is None:
            raise
    return messages


def encode_event(
    namespace: str,
    event: str,
    args: tuple[Any, ...] | list[Any],
    ack_id: int | None = None,
    serializer: Serializer = default_serializer,
) -> list[str | bytes]:
    """``encode(Packet(type=EVENT, namespace=namespace, data=[event, *args], id=ack_id))``, faster.

    The hot path of every emit: one list, one ``dumps``, one string concatenation.
    """
    if not isinstance(event, str):
        raise ValueError(f"event name must be a string: {event!r}")
    if namespace != "/":
        _check_namespace(namespace)
    if ack_id is not None:
        _check_ack_id(ack_id)
    data = [event, *args]
    try:
        payload = serializer.dumps(data)
    except TypeError:
        messages = _encode_binary(PacketType.EVENT, namespace, ack_id, data, serializer)
        if messages is None:
            raise
        return messages
    if namespace == "/":
        return ["2" + payload if ack_id is None else f"2{ack_id}{payload}"]
    return [f"2{namespace},{payload}" if ack_id is None else f"2{namespace},{ack_id}{payload}"]


def encode_ack(
    namespace: str, ack_id: int, args: list[Any], serializer: Serializer = default_serializer
) -> list[str | bytes]:
    """``encode(Packet(type=ACK, namespace=namespace, data=args, id=ack_id))``, faster (every
    handler that answers an ack goes through here)."""
    if namespace != "/":
        _check_namespace(namespace)
    _check_ack_id(ack_id)
    try:
        payload = serializer.dumps(args)
    except TypeError:
        messages = _encode_binary(PacketType.ACK, namespace, ack_id, args, serializer)
        if messages is None:
            raise
        return messages
    if namespace == "/":
        return [f"3{ack_id}{payload}"]
    return [f"3{namespace},{ack_id}{payload}"]


# -- decoding -------------------------------------------------------------------------------------

_ATTACHMENTS = re.compile(r"([0-9]+)-")
# Namespace (up to the first ','), then ack id. Both optional, so this always matches.
_NAMESPACE_AND_ID = re.compile(r"(?:(/[^,]*),)?([0-9]*)")
# Characters a JSON value (with optional leading whitespace) can start with.
_JSON_START = frozenset('[{"-0123456789tfn \t\r\n')


def _parse(
    text: str, serializer: Serializer, max_attachments: int
) -> tuple[PacketType, str, int | None, Any, int]:
    """Parse the text part of a packet: (type, namespace, ack id, data, number of attachments)."""
    if not text:
        raise ProtocolError("empty Socket.IO packet")
    ptype = _TYPE_BY_CHAR.get(text[0])
    if ptype is None:
        raise ProtocolError(f"unknown Socket.IO packet type {text[0]!r} in {_excerpt(text)}")
    pos = 1
    count = 0
    if ptype in _BINARY:
        match = _ATTACHMENTS.match(text, pos)
        if match is None:
            raise ProtocolError(
                f"{ptype.name} packet must give its number of attachments as '<count>-' after the type: "
                f"{_excerpt(text)}"
            )
        digits = match.group(1)
        # Check the length first: int() of a long digit string is slow (and limited) in Python.
        if len(digits) > 18 or int(digits) > max_attachments:
            raise PayloadTooLarge(
                f"{ptype.name} packet announces {digits if len(digits) <= 20 else 'too many'} attachments, "
                f"more than the limit of {max_attachments}"
            )
        count = int(digits)
        pos = match.end()
    namespace = "/"
    ack_id = None
    # Fast path: most packets have neither namespace nor ack id, and their payload starts right here.
    if not text.startswith("[", pos):
        match = _NAMESPACE_AND_ID.match(text, pos)
        assert match is not None  # every group is optional
        namespace = match.group(1) or "/"
        digits = match.group(2)
        pos = match.end()
        if match.group(1) is None and text.startswith("/", pos):
            raise ProtocolError(f"namespace must end with ',': {_excerpt(text[pos:])}")
        if digits:
            if len(digits) > _MAX_ACK_DIGITS:
                raise ProtocolError(
                    f"ack id has {len(digits)} digits, more than {_MAX_ACK_DIGITS}: {_excerpt(text)}"
                )
            if ptype in _NO_ACK_ID:
                raise ProtocolError(f"{ptype.name} packets carry no ack id: {_excerpt(text)}")
            ack_id = int(digits)
    if ack_id is None and ptype in _ACKS:
        raise ProtocolError(f"{ptype.name} packet has no ack id: {_excerpt(text)}")
    data = None
    present = pos < len(text)
    if present:
        try:
            data = serializer.loads(text[pos:])
        except (ValueError, TypeError, RecursionError) as exc:
            raise _payload_error(ptype, text, pos, exc) from None
    if ptype is not PacketType.EVENT or type(data) is not list or not data or type(data[0]) is not str:
        problem = _shape_problem(ptype, data, present)  # (the test above is its fast path for events)
        if problem is not None:
            raise ProtocolError(f"{problem}: {_excerpt(text)}")
    return ptype, namespace, ack_id, data, count


def _payload_error(ptype: PacketType, text: str, pos: int, exc: BaseException) -> ProtocolError:
    """Say why the payload of ``text`` (from ``pos``) failed to parse, as precisely as we can."""
    first = text[pos]
    if first.isdigit():
        # ASCII digits went into the ack id, so this is one of the other Unicode digits.
        what = f"ack id must be made of ASCII digits, found {first!r}"
    elif first not in _JSON_START:
        what = f"expected a namespace ('/'), an ack id or a JSON payload, found {first!r}"
    else:
        reason = str(exc)
        what = f"invalid JSON payload ({reason[:100]})"
    return ProtocolError(f"{ptype.name} packet: {what}: {_excerpt(text)}")


_EVENT_WITH_ACK = re.compile(r"2([0-9]{1,15})\[")


def parse_event(text: str, serializer: Serializer = default_serializer) -> tuple[list[Any], int | None] | None:
    """The decoder's fast path for the commonest packet: an EVENT on the main namespace, without
    attachments (``2[...]``, or ``2<ack id>[...]``). Returns ``(data, ack id)``, ``data`` being the
    ``[name, *args]`` list; None for any other packet and for anything malformed, which
    :class:`Decoder` then decodes (and reports) in full.
    """
    if text[1:2] == "[":
        if text[:1] != "2":
            return None
        ack_id = None
        pos = 1
    else:
        match = _EVENT_WITH_ACK.match(text)
        if match is None:
            return None
        ack_id = int(match.group(1))
        pos = match.end() - 1
    try:
        data = serializer.loads(text[pos:])
    except (ValueError, TypeError, RecursionError):
        return None
    if type(data) is list and data and type(data[0]) is str:
        return data, ack_id
    return None


class Decoder:
    """Turns received Engine.IO messages into :class:`Packet` objects, one connection's worth.

    Feed every message of the connection, in order, to :meth:`receive`. A binary packet comes as a text
    message that announces N attachments and then N binary messages; the packet is returned with the
    last of them, its placeholders replaced by the ``bytes`` received. In between, :attr:`pending` is
    true and only binary messages are acceptable.

    :meth:`receive` raises :class:`~roomcast.exceptions.ProtocolError` (or its subclass
    :class:`~roomcast.exceptions.PayloadTooLarge`) for anything malformed, and no other exception for
    any input. The caller should then close the connection; the decoder forgets any partial packet,
    so it is in a clean state if the caller chooses to continue.
    """

    __slots__ = ("_serializer", "_max_attachments", "_partial", "_slots", "_buffers")

    def __init__(self, *, serializer: Serializer = default_serializer, max_attachments: int = 10) -> None:
        self._serializer = serializer
        self._max_attachments = max_attachments
        self._partial: Packet | None = None
        self._slots: list[Slot] = []
        self._buffers: list[bytes] = []

    @property
    def pending(self) -> bool:
        """Whether a binary packet is waiting for more attachments."""
        return self._partial is not None

    def _reset(self) -> None:
        self._partial = None
        self._slots = []
        self._buffers = []

    def receive(self, data: str | bytes) -> Packet | None:
        """Take one Engine.IO message: ``str`` for a packet's text part, ``bytes`` for an attachment.

        Returns the packet once complete, or None while attachments are still expected.
        """
        if isinstance(data, str):
            if self._partial is not None:
                missing = len(self._slots) - len(self._buffers)
                self._reset()
                raise ProtocolError(
                    f"text packet received while {missing} more binary attachment"
                    f"{'s were' if missing > 1 else ' was'} expected: {_excerpt(data)}"
                )
            ptype, namespace, ack_id, payload, count = _parse(data, self._serializer, self._max_attachments)
            packet = Packet(type=ptype, namespace=namespace, data=payload, id=ack_id)
            if ptype in _BINARY:
                slots = locate_placeholders(payload, count)
                if slots:
                    self._partial = packet
                    self._slots = slots
                    return None
            return packet
        if isinstance(data, (bytes, bytearray, memoryview)):
            if self._partial is None:
                raise ProtocolError(
                    f"binary message ({len(data)} bytes) received, but no binary packet is waiting for attachments"
                )
            self._buffers.append(bytes(data))
            if len(self._buffers) < len(self._slots):
                return None
            packet = self._partial
            reconstruct(self._slots, self._buffers)
            self._reset()
            return packet
        raise TypeError(f"Decoder.receive() takes str or bytes, not {type(data).__name__}")


def decode(text: str, serializer: Serializer = default_serializer) -> Packet:
    """Decode a packet that has no attachments (raises :class:`ProtocolError` if it announces any)."""
    ptype, namespace, ack_id, payload, count = _parse(text, serializer, 2**31)
    if count:
        raise ProtocolError(
            f"{ptype.name} packet announces {count} binary attachment{'' if count == 1 else 's'}; "
            "decode() takes text-only packets, "
            "a Decoder reassembles binary ones"
        )
    if ptype in _BINARY:
        locate_placeholders(payload, 0)  # any placeholder is out of range
    return Packet(type=ptype, namespace=namespace, data=payload, id=ack_id)
