"""Property tests of the Socket.IO packet codec: round trips, and hostile input of every shape."""

from __future__ import annotations

import functools
import json
import os
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomcast.exceptions import ProtocolError
from roomcast.serializer import Serializer, from_module, orjson_serializer, stdlib_serializer
from roomcast.socketio.packets import MAX_ACK_ID, Decoder, Packet, PacketType, decode, encode, encode_event

SERIALIZER_NAMES = ["orjson", "stdlib", "module"]


def get_serializer(name: str) -> Serializer:
    if name == "orjson":
        if orjson_serializer is None:
            if os.environ.get("CI") == "true":
                pytest.fail("orjson is not installed (it is in the test extras)")
            pytest.skip("orjson is not installed")
        return orjson_serializer
    if name == "stdlib":
        return stdlib_serializer
    return from_module(
        SimpleNamespace(
            dumps=functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False), loads=json.loads
        )
    )


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
# "_placeholder" is the one key the binary encoding reserves (as in the reference implementation).
keys = st.text().filter(lambda key: key != "_placeholder")


def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)


json_values = st.recursive(scalars, containers, max_leaves=12)
binary_values = st.recursive(scalars | st.binary(max_size=16), containers, max_leaves=12)
json_objects = st.dictionaries(keys, json_values, max_size=4)
namespaces = st.just("/") | st.text().filter(lambda name: "," not in name).map(lambda name: "/" + name)
ack_ids = st.integers(min_value=0, max_value=MAX_ACK_ID)


def has_binary(value: Any) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(has_binary(item) for item in value)
    if isinstance(value, dict):
        return any(has_binary(item) for item in value.values())
    return False


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    ptype = draw(st.sampled_from(PacketType))
    namespace = draw(namespaces)
    if ptype is PacketType.CONNECT:
        return Packet(type=ptype, namespace=namespace, data=draw(st.none() | json_objects))
    if ptype is PacketType.DISCONNECT:
        return Packet(type=ptype, namespace=namespace)
    if ptype is PacketType.CONNECT_ERROR:
        data = draw(st.text() | st.fixed_dictionaries({"message": st.text()}, optional={"data": json_values}))
        return Packet(type=ptype, namespace=namespace, data=data)
    args = draw(st.lists(binary_values, max_size=4))
    if ptype in (PacketType.EVENT, PacketType.BINARY_EVENT):
        return Packet(type=ptype, namespace=namespace, data=[draw(st.text()), *args], id=draw(st.none() | ack_ids))
    return Packet(type=ptype, namespace=namespace, data=args, id=draw(ack_ids))


def expected_after_round_trip(packet: Packet) -> Packet:
    """What decoding gives back: an EVENT or ACK that holds binary goes as BINARY_EVENT/BINARY_ACK."""
    if has_binary(packet.data) and packet.type in (PacketType.EVENT, PacketType.ACK):
        binary_type = PacketType.BINARY_EVENT if packet.type is PacketType.EVENT else PacketType.BINARY_ACK
        return Packet(type=binary_type, namespace=packet.namespace, data=packet.data, id=packet.id)
    return packet


def feed_all(decoder: Decoder, messages: list[str | bytes]) -> Packet:
    results = [decoder.receive(message) for message in messages]
    assert results[:-1] == [None] * (len(messages) - 1)
    assert results[-1] is not None
    assert not decoder.pending
    return results[-1]


# -- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
@PROPERTY
@given(packet=packets())
def test_round_trip(name: str, packet: Packet) -> None:
    ser = get_serializer(name)
    messages = encode(packet, ser)
    assert isinstance(messages[0], str)
    assert all(isinstance(message, bytes) for message in messages[1:])
    assert feed_all(Decoder(serializer=ser, max_attachments=1000), messages) == expected_after_round_trip(packet)
    if len(messages) == 1:
        assert decode(messages[0], ser) == expected_after_round_trip(packet)


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
@PROPERTY
@given(namespace=namespaces, event=st.text(), args=st.lists(binary_values, max_size=4), ack_id=st.none() | ack_ids)
def test_encode_event_is_encode(name: str, namespace: str, event: str, args: list[Any], ack_id: int | None) -> None:
    ser = get_serializer(name)
    packet = Packet(type=PacketType.EVENT, namespace=namespace, data=[event, *args], id=ack_id)
    assert encode_event(namespace, event, tuple(args), ack_id, ser) == encode(packet, ser)


def as_sent(value: Any, draw: Any) -> Any:
    """``value`` with some lists turned into tuples and some bytes into bytearray/memoryview."""
    if isinstance(value, bytes):
        return draw(st.sampled_from([bytes, bytearray, memoryview]))(value)
    if isinstance(value, list):
        items = [as_sent(item, draw) for item in value]
        return tuple(items) if draw(st.booleans()) else items
    if isinstance(value, dict):
        return {key: as_sent(item, draw) for key, item in value.items()}
    return value


@PROPERTY
@given(data=st.data(), args=st.lists(binary_values, min_size=1, max_size=4))
def test_other_sequence_and_buffer_types_arrive_as_list_and_bytes(data: st.DataObject, args: list[Any]) -> None:
    sent = as_sent(args, data.draw)
    for ser in (stdlib_serializer, get_serializer("orjson")):
        packet = feed_all(Decoder(serializer=ser, max_attachments=1000), encode_event("/", "ev", sent, 3, ser))
        assert packet.data == ["ev", *args]
        assert packet.id == 3


# -- hostile input ----------------------------------------------------------------------------------


def check_decoder_outcome(decoder: Decoder, message: str | bytes, ser: Serializer) -> None:
    """Receiving gives None, a packet that survives re-encoding, or ProtocolError; nothing else."""
    try:
        packet = decoder.receive(message)
    except ProtocolError as exc:
        assert str(exc)
        assert not decoder.pending
        return
    if packet is not None:
        # Whatever is accepted is a valid packet: it encodes, and decodes back to itself.
        assert feed_all(Decoder(serializer=ser, max_attachments=1000), encode(packet, ser)) == packet


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
@FUZZ
@given(text=st.text())
def test_arbitrary_text(name: str, text: str) -> None:
    ser = get_serializer(name)
    check_decoder_outcome(Decoder(serializer=ser), text, ser)
    try:
        decode(text, ser)
    except ProtocolError:
        pass


placeholder_texts = st.builds(
    lambda num, extra: json.dumps({"_placeholder": True, "num": num, **extra}, separators=(",", ":")),
    st.integers(min_value=-1, max_value=4) | st.sampled_from([None, "0", 0.0, True]),
    st.sampled_from([{}, {}, {}, {"x": 1}]),
)
json_texts = json_values.map(lambda value: json.dumps(value, separators=(",", ":")))


@st.composite
def packet_like_texts(draw: st.DrawFn) -> str:
    """Text that looks like a packet, piece by piece, with every piece sometimes wrong."""
    parts = [draw(st.sampled_from("0123456789x") | st.text(max_size=1))]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["0-", "1-", "2-", "3-", "11-", "-", "1", "999999999999-"])))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["/", "/admin,", "/a", "admin,", "/,", "/é,"])))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["0", "12", "1234567890123456", "1x", "\u0661"])))
    payload = draw(
        st.lists(st.sampled_from(['"ev"', "1", "null", "[]", "{}"]) | placeholder_texts | json_texts, max_size=4).map(
            lambda items: "[" + ",".join(items) + "]"
        )
        | json_texts
        | st.text(max_size=8)
        | st.just("")
    )
    parts.append(payload)
    return "".join(parts)


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
@FUZZ
@given(messages=st.lists(packet_like_texts() | st.binary(max_size=8), max_size=8))
def test_random_mix_of_messages(name: str, messages: list[str | bytes]) -> None:
    ser = get_serializer(name)
    decoder = Decoder(serializer=ser, max_attachments=3)
    for message in messages:
        check_decoder_outcome(decoder, message, ser)


@pytest.mark.parametrize("name", SERIALIZER_NAMES)
@FUZZ
@given(packet=packets(), data=st.data())
def test_mutated_valid_packets(name: str, packet: Packet, data: st.DataObject) -> None:
    ser = get_serializer(name)
    messages = encode(packet, ser)
    text = messages[0]
    assert isinstance(text, str)
    start = data.draw(st.integers(min_value=0, max_value=len(text)))
    end = data.draw(st.integers(min_value=start, max_value=min(len(text), start + 4)))
    mutated = text[:start] + data.draw(st.text(max_size=3)) + text[end:]
    extra = data.draw(st.lists(st.binary(max_size=4), max_size=len(messages) + 1))
    decoder = Decoder(serializer=ser, max_attachments=1000)
    sequence: list[str | bytes] = [mutated, *extra]
    for message in sequence:
        check_decoder_outcome(decoder, message, ser)
