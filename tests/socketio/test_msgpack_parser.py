"""The MessagePack parser (``serializer='msgpack'``): what it encodes, and what it refuses."""

from __future__ import annotations

import msgpack
import pytest

from roomcast.exceptions import ProtocolError
from roomcast.socketio import msgpack_parser
from roomcast.socketio.packets import Packet, PacketType


def test_packets_round_trip_with_binary_inside() -> None:
    [event] = msgpack_parser.encode_event("/chat", "file", (b"\x00\xff", {"n": 1}), 7)
    assert msgpack.unpackb(event) == {"type": 2, "nsp": "/chat", "data": ["file", b"\x00\xff", {"n": 1}], "id": 7}
    [ack] = msgpack_parser.encode_ack("/", 3, [b"ok"])
    assert msgpack.unpackb(ack) == {"type": 3, "nsp": "/", "data": [b"ok"], "id": 3}
    [connect] = msgpack_parser.encode(Packet(type=PacketType.CONNECT, namespace="/", data={"sid": "x"}))
    assert msgpack.unpackb(connect) == {"type": 0, "nsp": "/", "data": {"sid": "x"}}
    decoder = msgpack_parser.Decoder()
    packet = decoder.receive(msgpack.packb({"type": 2, "nsp": "/", "data": ["hi", b"\x01"], "id": 4}))
    assert packet == Packet(type=PacketType.EVENT, namespace="/", data=["hi", b"\x01"], id=4)
    # The JavaScript encoder's undefined (extension type 0): a CONNECT without auth.
    undefined = msgpack.ExtType(0, b"\x00")
    assert decoder.receive(msgpack.packb({"type": 0, "nsp": "/", "data": undefined})).data is None


@pytest.mark.parametrize("bad", [
    "40",  # text
    b"\xc1",  # not MessagePack
    msgpack.packb([2, "/", ["x"]]),  # not a map
    msgpack.packb({"type": 9, "nsp": "/"}),  # no such type
    msgpack.packb({"type": 4, "nsp": "/", "data": {"message": "x"}}),  # a server's packet
    msgpack.packb({"type": 2, "nsp": "chat", "data": ["x"]}),  # namespace without its slash
    msgpack.packb({"type": 2, "nsp": "/", "data": []}),  # no event name
    msgpack.packb({"type": 2, "nsp": "/", "data": [1]}),  # a name that is not a string
    msgpack.packb({"type": 3, "nsp": "/", "data": ["x"]}),  # an ACK without id
    msgpack.packb({"type": 2, "nsp": "/", "data": ["x"], "id": -1}),  # a negative id
    msgpack.packb({"type": 0, "nsp": "/", "data": [1]}),  # auth that is not a map
    msgpack.packb({"type": 2, "nsp": "/", "data": ["x", msgpack.ExtType(5, b"")]}),  # a foreign extension
])
def test_malformed_input_is_a_protocol_error(bad: bytes | str) -> None:
    with pytest.raises(ProtocolError):
        msgpack_parser.Decoder().receive(bad)
