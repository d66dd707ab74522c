"""Engine.IO packets and long-polling payloads: wire tables from engine.io-protocol.md, both ways,
hostile input, and hypothesis properties (pure, no event loop)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.engineio.packets import (
    SEPARATOR,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from roomcast.exceptions import PayloadTooLarge, ProtocolError

# -- wire tables -------------------------------------------------------------------------------------

# One WebSocket frame <-> one packet (engine.io-protocol.md, "Packet encoding" > "WebSocket" and the
# "Protocol" table of packet types).
FRAMES: list[tuple[str | bytes, Packet]] = [
    ("4hello", Packet(type=PacketType.MESSAGE, data="hello")),
    ("2probe", Packet(type=PacketType.PING, data="probe")),
    ("3probe", Packet(type=PacketType.PONG, data="probe")),
    ("2", Packet(type=PacketType.PING)),
    ("3", Packet(type=PacketType.PONG)),
    ("1", Packet(type=PacketType.CLOSE)),
    ("5", Packet(type=PacketType.UPGRADE)),
    ("6", Packet(type=PacketType.NOOP)),
    ("4", Packet(type=PacketType.MESSAGE, data="")),
    ("4€ ünïcödé \U0001f600", Packet(type=PacketType.MESSAGE, data="€ ünïcödé \U0001f600")),
    (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":1000000}',
        Packet(
            type=PacketType.OPEN,
            data='{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,'
            '"pingTimeout":20000,"maxPayload":1000000}',
        ),
    ),
    # "Binary payloads are sent as is, without modification."
    (b"\x01\x02\x03\x04", Packet(type=PacketType.MESSAGE, data=b"\x01\x02\x03\x04")),
    (b"", Packet(type=PacketType.MESSAGE, data=b"")),
]


@pytest.mark.parametrize(("frame", "packet"), FRAMES)
def test_frame_decodes_to_packet(frame: str | bytes, packet: Packet) -> None:
    assert decode_packet(frame) == packet


@pytest.mark.parametrize(("frame", "packet"), FRAMES)
def test_packet_encodes_to_frame(frame: str | bytes, packet: Packet) -> None:
    encoded = encode_packet(packet)
    assert encoded == frame
    assert type(encoded) is type(frame)


@pytest.mark.parametrize("view", [bytearray, memoryview])
def test_binary_frame_views_decode_to_bytes(view: type) -> None:
    packet = decode_packet(view(b"\x00\xff"))
    assert packet == Packet(type=PacketType.MESSAGE, data=b"\x00\xff")
    assert type(packet.data) is bytes


def test_binary_data_only_in_message_packets() -> None:
    with pytest.raises(ValueError, match="only message packets"):
        encode_packet(Packet(type=PacketType.PING, data=b"\x01"))


def test_packet_types_are_the_spec_numbers() -> None:
    assert [(t.name, int(t)) for t in PacketType] == [
        ("OPEN", 0),
        ("CLOSE", 1),
        ("PING", 2),
        ("PONG", 3),
        ("MESSAGE", 4),
        ("UPGRADE", 5),
        ("NOOP", 6),
    ]


# A long-polling payload <-> its encoded packets (engine.io-protocol.md, "Packet encoding" >
# "HTTP long-polling").
PAYLOADS: list[tuple[str, list[str | bytes]]] = [
    ("4hello", ["4hello"]),
    ("4hello\x1e2\x1e4world", ["4hello", "2", "4world"]),
    # "b => binary prefix, AQIDBA== => buffer <01 02 03 04> encoded as base64"
    ("4hello\x1ebAQIDBA==", ["4hello", b"\x01\x02\x03\x04"]),
    ("2probe", ["2probe"]),
    ("3probe", ["3probe"]),
    ("6", ["6"]),
    ("b", [b""]),
    ("4€\x1e4\U0001f600", ["4€", "4\U0001f600"]),
    ("1", ["1"]),
]


@pytest.mark.parametrize(("wire", "packets"), PAYLOADS)
def test_payload_decodes(wire: str, packets: list[str | bytes]) -> None:
    assert decode_payload(wire.encode()) == packets
    assert decode_payload(wire) == packets


@pytest.mark.parametrize(("wire", "packets"), PAYLOADS)
def test_payload_encodes(wire: str, packets: list[str | bytes]) -> None:
    assert encode_payload(packets) == wire


def test_payload_from_a_generator() -> None:
    packets: list[str | bytes] = ["4a", b"\xff"]
    assert encode_payload(p for p in packets) == "4a\x1eb/w=="


def test_empty_packet_list_encodes_to_empty_payload() -> None:
    assert encode_payload([]) == ""


def test_payload_under_the_limit_passes() -> None:
    body = b"4" + b"x" * 9
    assert decode_payload(body, max_size=10) == ["4" + "x" * 9]


# -- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("", "empty Engine.IO packet"),
        ("7", "unknown Engine.IO packet type '7'"),
        ("x", "unknown Engine.IO packet type 'x'"),
        ("b", "unknown Engine.IO packet type 'b'"),  # no base64 in WebSocket text frames
        ("\x1e", "unknown Engine.IO packet type"),
    ],
)
def test_bad_frames(frame: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        decode_packet(frame)
    assert info.value.close_reason == "parse error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty payload"),
        ("", "empty payload"),
        (b"\x1e", "empty packet in payload"),
        (b"4a\x1e", "empty packet in payload"),
        (b"\x1e4a", "empty packet in payload"),
        (b"4a\x1e\x1e4b", "empty packet in payload"),
        (b"9hello", "unknown Engine.IO packet type '9'"),
        (b"4ok\x1ezzz", "unknown Engine.IO packet type 'z'"),
        (b"bAQIDBA=", "invalid base64"),  # bad padding
        (b"bAQ!DBA==", "invalid base64"),  # not in the alphabet
        (b"bAQ IDBA==", "invalid base64"),  # whitespace is not skipped
        ("b€€€€".encode(), "invalid base64"),  # non-ASCII
        (b"\xff\xfe", r"not valid UTF-8 \(byte 0\)"),
        (b"4ok\xc3", r"not valid UTF-8 \(byte 3\)"),
        (b"4\xed\xa0\x80", "not valid UTF-8"),  # an encoded surrogate
    ],
)
def test_bad_payloads(body: bytes | str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        decode_payload(body)
    assert type(info.value) is ProtocolError
    assert info.value.close_reason == "parse error"


def test_oversize_payload() -> None:
    with pytest.raises(PayloadTooLarge, match="11 bytes exceeds the limit of 10") as info:
        decode_payload(b"4" + b"x" * 10, max_size=10)
    assert info.value.close_reason == "payload too large"
    assert isinstance(info.value, ProtocolError)


def test_oversize_is_checked_before_decoding() -> None:
    # An oversized body is refused for its size even when it is also malformed.
    with pytest.raises(PayloadTooLarge):
        decode_payload(b"\xff" * 11, max_size=10)


# -- properties --------------------------------------------------------------------------------------

# Text packets: a type character, then any text without the record separator ("this assumes the record
# separator is not used in the data").
text_packets = st.builds(
    lambda kind, data: kind + data,
    st.sampled_from("0123456"),
    st.text(alphabet=st.characters(blacklist_characters=SEPARATOR, blacklist_categories=("Cs",))),
)
encoded_packets = st.lists(st.one_of(text_packets, st.binary()), min_size=1)


@given(encoded_packets)
def test_payload_round_trip(packets: list[str | bytes]) -> None:
    wire = encode_payload(packets)
    assert decode_payload(wire) == packets
    assert decode_payload(wire.encode("utf-8")) == packets


@given(st.one_of(text_packets, st.binary()))
def test_frame_round_trip(frame: str | bytes) -> None:
    assert encode_packet(decode_packet(frame)) == frame


@given(st.binary(max_size=300))
def test_decode_payload_of_any_bytes_raises_only_protocol_error(body: bytes) -> None:
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert packets and all(isinstance(p, (str, bytes)) for p in packets)


@given(st.text(max_size=300))
def test_decode_payload_of_any_text_raises_only_protocol_error(body: str) -> None:
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert packets and all(isinstance(p, (str, bytes)) for p in packets)


@given(st.text(alphabet="0123456789b4=/+AQIDBA\x1e", max_size=60))
def test_decode_payload_of_near_valid_text_raises_only_protocol_error(body: str) -> None:
    # A narrow alphabet reaches the base64 and separator branches far more often than random text.
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert encode_payload(packets).split(SEPARATOR)[0][0] in "0123456b"


@given(st.one_of(st.text(max_size=50), st.binary(max_size=50)))
def test_decode_packet_of_anything_raises_only_protocol_error(frame: str | bytes) -> None:
    try:
        packet = decode_packet(frame)
    except ProtocolError:
        assert isinstance(frame, str)
        return
    assert isinstance(packet.type, PacketType)
