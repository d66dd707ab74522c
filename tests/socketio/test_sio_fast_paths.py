"""The encoder's and decoder's fast paths give exactly what the general ones give."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.socketio.packets import Decoder, Packet, PacketType, encode, encode_ack, parse_event

PLAIN = [
    '2["echo"]',
    '2["echo",1,{"a":[2,3]},"x"]',
    '212["echo",null]',
    '2999999999999999["e",true]',
    '2["ünï",{"k":"\\u00e9"}]',
]
NOT_PLAIN = [
    '2/admin,["echo"]',  # another namespace: the Decoder's job
    '3["echo"]',  # an ack
    '21-["e",{"_placeholder":true,"num":0}]',  # binary (type 5 really, but any non-plain text)
    '51-["e",{"_placeholder":true,"num":0}]',
    "2",  # no payload
    "2[]",  # empty event: malformed
    "2[1]",  # name not a string: malformed
    '2["echo"',  # bad JSON
    '2{"a":1}',  # not an array
    '21234567890123456["e"]',  # ack id too long
    '2x["e"]',
    "",
]


@pytest.mark.parametrize("text", PLAIN)
def test_parse_event_agrees_with_the_decoder(text: str) -> None:
    fast = parse_event(text)
    assert fast is not None
    packet = Decoder().receive(text)
    assert packet is not None and packet.type is PacketType.EVENT and packet.namespace == "/"
    assert fast == (packet.data, packet.id)


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_parse_event_leaves_everything_else_to_the_decoder(text: str) -> None:
    assert parse_event(text) is None


@pytest.mark.parametrize(
    ("namespace", "ack_id", "args"),
    [
        ("/", 0, []),
        ("/", 7, [1, "two", {"three": [3]}]),
        ("/admin", 12, [None]),
        ("/", 3, [b"\x00\x01", {"nested": bytearray(b"x")}]),
        ("/chat", 10**15 - 1, ["é"]),
    ],
)
def test_encode_ack_agrees_with_encode(namespace: str, ack_id: int, args: list[Any]) -> None:
    expected = encode(Packet(type=PacketType.ACK, namespace=namespace, data=args, id=ack_id))
    assert encode_ack(namespace, ack_id, args) == expected


def test_encode_ack_checks_like_encode() -> None:
    with pytest.raises(ValueError):
        encode_ack("/", -1, [])
    with pytest.raises(ValueError):
        encode_ack("no-slash", 1, [])
    with pytest.raises((TypeError, ValueError)):
        encode_ack("/", 1, [object()])
