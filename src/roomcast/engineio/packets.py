"""Engine.IO v4 packets and the long-polling payload format (sans-I/O).

A packet on the wire is one character for its type followed by its data (``4hello``). Binary messages
travel as raw bytes in a WebSocket frame, and as ``b`` + base64 inside a long-polling payload, where
packets are joined by the record separator ``\\x1e`` (engine.io-protocol.md, "Packet encoding").

Throughout Roomcast an *encoded packet* is either a ``str`` (a text packet, type character included) or
``bytes`` (a binary message packet, whose type is implicitly "message"). Broadcasts build that value once
and hand the same object to every recipient.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ..exceptions import PayloadTooLarge, ProtocolError

__all__ = [
    "PacketType",
    "Packet",
    "SEPARATOR",
    "encode_packet",
    "decode_packet",
    "encode_payload",
    "decode_payload",
]

SEPARATOR = "\x1e"


class PacketType(IntEnum):
    """Engine.IO packet types (engine.io-protocol.md, "Protocol")."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPE_CHARS = {str(int(t)): t for t in PacketType}


@dataclass(frozen=True, slots=True, kw_only=True)
class Packet:
    """One decoded Engine.IO packet; ``data`` is ``bytes`` only for binary messages."""

    type: PacketType
    data: str | bytes = ""


def encode_packet(packet: Packet) -> str | bytes:
    """Encode a packet for a WebSocket frame: ``str`` for text, the raw ``bytes`` for a binary message."""
    if isinstance(packet.data, bytes):
        if packet.type is not PacketType.MESSAGE:
            raise ValueError("only message packets carry binary data")
        return packet.data
    return f"{int(packet.type)}{packet.data}"


def decode_packet(frame: str | bytes) -> Packet:
    """Decode one WebSocket frame (or one item of a decoded polling payload).

    Raises :class:`ProtocolError` when the frame is empty or its type character is unknown.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return Packet(type=PacketType.MESSAGE, data=bytes(frame))
    if not frame:
        raise ProtocolError("empty Engine.IO packet")
    ptype = _TYPE_CHARS.get(frame[0])
    if ptype is None:
        raise ProtocolError(f"unknown Engine.IO packet type {frame[0]!r}")
    return Packet(type=ptype, data=frame[1:])


def encode_payload(packets: Iterable[str | bytes]) -> str:
    """Join encoded packets into one long-polling payload (binary as ``b`` + base64)."""
    return SEPARATOR.join(
        p if isinstance(p, str) else "b" + base64.b64encode(p).decode("ascii") for p in packets
    )


def decode_payload(body: bytes | str, *, max_size: int | None = None) -> list[str | bytes]:
    """Split a long-polling request body into encoded packets.

    Text packets come back as ``str`` (type character included, not yet validated beyond being
    non-empty with a known type); ``b``-prefixed items come back as decoded ``bytes``.
    Raises :class:`PayloadTooLarge` past ``max_size`` bytes, :class:`ProtocolError` on invalid UTF-8,
    empty packets, unknown types and bad base64.
    """
    if max_size is not None and len(body) > max_size:
        raise PayloadTooLarge(f"payload of {len(body)} bytes exceeds the limit of {max_size}")
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"payload is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = body
    if not text:
        raise ProtocolError("empty payload")
    packets: list[str | bytes] = []
    for item in text.split(SEPARATOR):
        if not item:
            raise ProtocolError("empty packet in payload")
        first = item[0]
        if first == "b":
            try:
                packets.append(base64.b64decode(item[1:], validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError("invalid base64 in binary packet") from None
        elif first in _TYPE_CHARS:
            packets.append(item)
        else:
            raise ProtocolError(f"unknown Engine.IO packet type {first!r}")
    return packets
