"""Socket.IO packet codec: wire tables from the spec both ways, the decoder's states, hostile input."""

from __future__ import annotations

import functools
import json
import os
from types import SimpleNamespace
from typing import Any

import pytest

from roomcast.exceptions import PayloadTooLarge, ProtocolError
from roomcast.serializer import from_module, orjson_serializer, stdlib_serializer
from roomcast.socketio.packets import MAX_ACK_ID, Decoder, Packet, PacketType, decode, encode, encode_event

CONNECT = PacketType.CONNECT
DISCONNECT = PacketType.DISCONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK
CONNECT_ERROR = PacketType.CONNECT_ERROR
BINARY_EVENT = PacketType.BINARY_EVENT
BINARY_ACK = PacketType.BINARY_ACK


@pytest.fixture(params=["orjson", "stdlib", "module"])
def ser(request: pytest.FixtureRequest) -> Any:
    if request.param == "orjson":
        if orjson_serializer is None:
            if os.environ.get("CI") == "true":
                pytest.fail("orjson is not installed (it is in the test extras)")
            pytest.skip("orjson is not installed")
        return orjson_serializer
    if request.param == "stdlib":
        return stdlib_serializer
    return from_module(
        SimpleNamespace(dumps=functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False), loads=json.loads)
    )


def feed(messages: list[str | bytes], ser: Any = stdlib_serializer, max_attachments: int = 10) -> Packet:
    """Feed messages to a fresh Decoder; only the last may (and must) complete a packet."""
    decoder = Decoder(serializer=ser, max_attachments=max_attachments)
    for message in messages[:-1]:
        assert decoder.receive(message) is None
        assert decoder.pending
    packet = decoder.receive(messages[-1])
    assert packet is not None
    assert not decoder.pending
    return packet


PH0 = '{"_placeholder":true,"num":0}'
PH1 = '{"_placeholder":true,"num":1}'

# (packet, wire): from socket.io-protocol.md, "Packet encoding" > "Examples", then the "Sample session"
# (without the Engine.IO "4" prefix), then the other examples of "Exchange protocol".
WIRE_TABLE: list[tuple[Packet, list[str | bytes]]] = [
    # Examples: connection to a namespace
    (Packet(type=CONNECT), ["0"]),
    (Packet(type=CONNECT, namespace="/admin", data={"sid": "oSO0OpakMV_3jnilAAAA"}),
     ['0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}']),
    (Packet(type=CONNECT_ERROR, data={"message": "Not authorized"}), ['4{"message":"Not authorized"}']),
    # Examples: sending and receiving data
    (Packet(type=EVENT, data=["foo"]), ['2["foo"]']),
    (Packet(type=EVENT, namespace="/admin", data=["bar"]), ['2/admin,["bar"]']),
    (Packet(type=BINARY_EVENT, data=["baz", b"\x01\x02\x03\x04"]),
     [f'51-["baz",{PH0}]', b"\x01\x02\x03\x04"]),
    (Packet(type=BINARY_EVENT, namespace="/admin", data=["baz", b"\x01\x02", b"\x03\x04"]),
     [f'52-/admin,["baz",{PH0},{PH1}]', b"\x01\x02", b"\x03\x04"]),
    # Examples: acknowledgement
    (Packet(type=EVENT, data=["foo"], id=12), ['212["foo"]']),
    (Packet(type=ACK, namespace="/admin", data=["bar"], id=13), ['3/admin,13["bar"]']),
    (Packet(type=BINARY_ACK, data=["bar", b"\x01\x02\x03\x04"], id=15),
     [f'61-15["bar",{PH0}]', b"\x01\x02\x03\x04"]),
    # Examples: disconnection from a namespace
    (Packet(type=DISCONNECT), ["1"]),
    (Packet(type=DISCONNECT, namespace="/admin"), ["1/admin,"]),
    # Sample session
    (Packet(type=CONNECT, data={"sid": "wZX3oN0bSVIhsaknAAAI"}), ['0{"sid":"wZX3oN0bSVIhsaknAAAI"}']),
    (Packet(type=EVENT, data=["hey", "Jude"]), ['2["hey","Jude"]']),
    (Packet(type=EVENT, data=["hello"]), ['2["hello"]']),
    (Packet(type=CONNECT, namespace="/admin"), ["0/admin,"]),
    (Packet(type=CONNECT, namespace="/admin", data={"sid": "-G5j-67EZFp-q59rADQM"}),
     ['0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}']),
    (Packet(type=EVENT, namespace="/admin", data=["tellme"], id=1), ['2/admin,1["tellme"]']),
    (Packet(type=BINARY_ACK, namespace="/admin", data=[b"\xff\x00"], id=1),
     [f"61-/admin,1[{PH0}]", b"\xff\x00"]),
    # Exchange protocol: more examples
    (Packet(type=CONNECT, namespace="/admin", data={"token": "123"}), ['0/admin,{"token":"123"}']),
    (Packet(type=ACK, data=[], id=12), ["312[]"]),
    (Packet(type=EVENT, namespace="/admin", data=["foo"], id=13), ['2/admin,13["foo"]']),
    (Packet(type=BINARY_EVENT, data=["hello", b"\x01\x02\x03"]), [f'51-["hello",{PH0}]', b"\x01\x02\x03"]),
    (Packet(type=EVENT, namespace="/admin", data=["foo"], id=12), ['2/admin,12["foo"]']),
    # Beyond the spec's examples: things both ways that the encoder must keep exact.
    (Packet(type=CONNECT_ERROR, namespace="/admin", data={"message": "no", "data": {"code": 4}}),
     ['4/admin,{"message":"no","data":{"code":4}}']),
    (Packet(type=CONNECT_ERROR, data="Not authorized"), ['4"Not authorized"']),  # protocol v4 servers
    (Packet(type=BINARY_EVENT, data=["no buffers after all"]), ['50-["no buffers after all"]']),
    (Packet(type=EVENT, namespace="/ünï cödé", data=["é", {"k": [None, True, 1.5]}], id=MAX_ACK_ID),
     [f'2/ünï cödé,{MAX_ACK_ID}["é",{{"k":[null,true,1.5]}}]']),
    (Packet(type=BINARY_EVENT, data=["deep", {"a": [b"0", {"b": b"1"}], "c": b"2"}, b"3"]),
     ['54-["deep",{"a":[{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}],'
      '"c":{"_placeholder":true,"num":2}},{"_placeholder":true,"num":3}]', b"0", b"1", b"2", b"3"]),
]


@pytest.mark.parametrize(("packet", "wire"), WIRE_TABLE)
def test_encode(ser: Any, packet: Packet, wire: list[str | bytes]) -> None:
    assert encode(packet, ser) == wire


@pytest.mark.parametrize(("packet", "wire"), WIRE_TABLE)
def test_decode(ser: Any, packet: Packet, wire: list[str | bytes]) -> None:
    decoded = feed(wire, ser)
    assert decoded == packet
    assert type(decoded.type) is PacketType
    if len(wire) == 1:
        assert decode(wire[0], ser) == packet  # type: ignore[arg-type]


def test_event_with_binary_becomes_binary_event(ser: Any) -> None:
    # The application emits EVENT/ACK; buffers in the data make them BINARY_EVENT/BINARY_ACK.
    for ptype, binary_type in ((EVENT, BINARY_EVENT), (ACK, BINARY_ACK)):
        packet = Packet(type=ptype, namespace="/admin", data=["x", bytearray(b"\x01"), memoryview(b"\x02")], id=7)
        wire = encode(packet, ser)
        assert wire[1:] == [b"\x01", b"\x02"]
        assert all(type(part) is bytes for part in wire[1:])
        decoded = feed(wire, ser)
        assert decoded == Packet(type=binary_type, namespace="/admin", data=["x", b"\x01", b"\x02"], id=7)


def test_encode_does_not_modify_data() -> None:
    data = ["x", {"buf": b"\x01"}, (b"\x02",)]
    encode(Packet(type=EVENT, data=data))
    assert data == ["x", {"buf": b"\x01"}, (b"\x02",)]


def test_encode_copies_mutable_buffers() -> None:
    buffer = bytearray(b"\x01")
    wire = encode(Packet(type=EVENT, data=["x", buffer]))
    buffer[0] = 9
    assert wire[1] == b"\x01"


def test_decode_only_forms() -> None:
    # Spellings other encoders may produce, which decode to the canonical packet.
    assert decode('2/,["x"]') == Packet(type=EVENT, data=["x"])
    assert decode('2007["x"]') == Packet(type=EVENT, data=["x"], id=7)
    assert decode('2 ["x"] ') == Packet(type=EVENT, data=["x"])
    assert feed(["501-[\"x\",{\"_placeholder\":true,\"num\":0}]", b"a"]).data == ["x", b"a"]


def test_encode_accepts_a_plain_int_type() -> None:
    assert encode(Packet(type=2, data=["x"])) == ['2["x"]']  # type: ignore[arg-type]
    assert encode(Packet(type=5, data=["x", b"1"])) == [f'51-["x",{PH0}]', b"1"]  # type: ignore[arg-type]


# -- encode_event -----------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["/", "/admin"])
@pytest.mark.parametrize("ack_id", [None, 0, 12])
@pytest.mark.parametrize("args", [(), ("Jude",), [1, {"a": None}], ("bin", b"\x01", [b"\x02"])])
def test_encode_event_matches_encode(ser: Any, namespace: str, ack_id: int | None, args: Any) -> None:
    packet = Packet(type=EVENT, namespace=namespace, data=["hey", *args], id=ack_id)
    assert encode_event(namespace, "hey", args, ack_id, ser) == encode(packet, ser)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: encode_event("/", 1, ()), ValueError, "event name must be a string"),  # type: ignore[arg-type]
        (lambda: encode_event("admin", "x", ()), ValueError, "namespace must be a string starting with '/'"),
        (lambda: encode_event("/a,b", "x", ()), ValueError, "without ','"),
        (lambda: encode_event("/", "x", (), -1), ValueError, "ack id must be an integer"),
        (lambda: encode_event("/", "x", (), MAX_ACK_ID + 1), ValueError, "ack id must be an integer"),
        (lambda: encode_event("/", "x", ({1, 2},)), TypeError, "set"),
        (lambda: encode_event("/", "x", (float("nan"),)), ValueError, "float"),
    ],
)
def test_encode_event_refuses(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# -- encode refuses packets the spec forbids --------------------------------------------------------

ENCODE_ERRORS: list[tuple[Packet, type[Exception], str]] = [
    (Packet(type=9, data=["x"]), ValueError, "unknown packet type 9"),  # type: ignore[arg-type]
    (Packet(type=EVENT, namespace="admin", data=["x"]), ValueError, "starting with '/'"),
    (Packet(type=EVENT, namespace="", data=["x"]), ValueError, "starting with '/'"),
    (Packet(type=EVENT, namespace="/a,b", data=["x"]), ValueError, "without ','"),
    (Packet(type=EVENT, namespace=None, data=["x"]), ValueError, "namespace"),  # type: ignore[arg-type]
    (Packet(type=CONNECT, id=1), ValueError, "CONNECT packets carry no ack id"),
    (Packet(type=DISCONNECT, id=1), ValueError, "DISCONNECT packets carry no ack id"),
    (Packet(type=CONNECT_ERROR, data={"message": "x"}, id=1), ValueError, "CONNECT_ERROR packets carry no ack id"),
    (Packet(type=ACK, data=[]), ValueError, "ACK packets need an ack id"),
    (Packet(type=BINARY_ACK, data=[b"x"]), ValueError, "BINARY_ACK packets need an ack id"),
    (Packet(type=EVENT, data=["x"], id=-1), ValueError, "ack id must be an integer"),
    (Packet(type=EVENT, data=["x"], id=10**15), ValueError, "ack id must be an integer"),
    (Packet(type=EVENT, data=["x"], id=True), ValueError, "ack id must be an integer"),
    (Packet(type=EVENT, data=["x"], id="1"), ValueError, "ack id must be an integer"),  # type: ignore[arg-type]
    (Packet(type=EVENT), ValueError, "EVENT payload must be a non-empty array"),
    (Packet(type=EVENT, data=[]), ValueError, "EVENT payload must be a non-empty array"),
    (Packet(type=EVENT, data="x"), ValueError, "EVENT payload must be a non-empty array"),
    (Packet(type=EVENT, data=[1, "x"]), ValueError, "first element is the event name"),
    (Packet(type=BINARY_EVENT, data=[b"x"]), ValueError, "BINARY_EVENT payload must be a non-empty array"),
    (Packet(type=ACK, data={"a": 1}, id=1), ValueError, "ACK payload must be an array"),
    (Packet(type=CONNECT, data=["x"]), ValueError, "CONNECT payload must be an object"),
    (Packet(type=DISCONNECT, data={}), ValueError, "DISCONNECT packets carry no payload"),
    (Packet(type=CONNECT_ERROR), ValueError, "CONNECT_ERROR payload must be an object"),
    (Packet(type=CONNECT_ERROR, data=[1]), ValueError, "CONNECT_ERROR payload must be an object"),
    (Packet(type=CONNECT, data={"token": b"x"}), ValueError, "CONNECT packets can't carry binary data"),
    (Packet(type=CONNECT_ERROR, data={"message": b"x"}), ValueError, "can't carry binary data"),
    (Packet(type=EVENT, data=["x", {1, 2}]), TypeError, "set"),
    (Packet(type=EVENT, data=["x", b"1", {1, 2}]), TypeError, "set"),
    (Packet(type=EVENT, data=["x", float("inf")]), ValueError, "float"),
]


@pytest.mark.parametrize(("packet", "error", "match"), ENCODE_ERRORS)
def test_encode_refuses(ser: Any, packet: Packet, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        encode(packet, ser)


# -- the decoder's states ---------------------------------------------------------------------------


def test_decoder_reassembles_attachments_in_order(ser: Any) -> None:
    decoder = Decoder(serializer=ser)
    assert not decoder.pending
    assert decoder.receive(f'62-/admin,9[{PH1},"mid",{PH0}]') is None
    assert decoder.pending
    assert decoder.receive(b"first") is None
    assert decoder.pending
    packet = decoder.receive(bytearray(b"second"))
    assert packet == Packet(type=BINARY_ACK, namespace="/admin", data=[b"second", "mid", b"first"], id=9)
    assert not decoder.pending
    assert isinstance(packet.data[0], bytes)
    # and it goes on with the next packets
    assert decoder.receive('2["next"]') == Packet(type=EVENT, data=["next"])
    assert decoder.receive(f'51-["m",{PH0}]') is None
    assert decoder.receive(memoryview(b"mv")) == Packet(type=BINARY_EVENT, data=["m", b"mv"])


def test_decoder_max_attachments() -> None:
    wire: list[str | bytes] = ["53-[\"x\"," + ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(3)) + "]"]
    wire += [b"a", b"b", b"c"]
    assert feed(wire, max_attachments=3).data == ["x", b"a", b"b", b"c"]
    with pytest.raises(PayloadTooLarge, match="BINARY_EVENT packet announces 3 attachments, more than the limit of 2"):
        Decoder(max_attachments=2).receive(wire[0])
    with pytest.raises(PayloadTooLarge, match="too many attachments"):
        Decoder().receive("5" + "9" * 30 + '-["x"]')


def test_decoder_forgets_the_partial_packet_after_an_error() -> None:
    decoder = Decoder()
    assert decoder.receive(f'51-["x",{PH0}]') is None
    with pytest.raises(ProtocolError, match="text packet received while 1 more binary attachment was expected"):
        decoder.receive('2["y"]')
    assert not decoder.pending
    with pytest.raises(ProtocolError, match="no binary packet is waiting"):
        decoder.receive(b"late")
    assert decoder.receive('2["y"]') == Packet(type=EVENT, data=["y"])
    assert decoder.receive(f'52-["x",{PH0},{PH1}]') is None
    with pytest.raises(ProtocolError, match="2 more binary attachments were expected"):
        decoder.receive("")


def test_decoder_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="takes str or bytes, not int"):
        Decoder().receive(42)  # type: ignore[arg-type]


def test_decode_refuses_attachments() -> None:
    with pytest.raises(ProtocolError, match="announces 1 binary attachment; decode"):
        decode(f'51-["x",{PH0}]')
    with pytest.raises(ProtocolError, match="announces 2 binary attachments; decode"):
        decode(f'52-["x",{PH0},{PH1}]')
    with pytest.raises(ProtocolError, match="out of range"):
        decode(f'50-["x",{PH0}]')


# -- hostile input ----------------------------------------------------------------------------------

HOSTILE: list[tuple[list[str | bytes], str]] = [
    ([""], "empty Socket.IO packet"),
    (["7"], "unknown Socket.IO packet type '7'"),
    (['x["foo"]'], "unknown Socket.IO packet type 'x'"),
    (["\u0662"], "unknown Socket.IO packet type"),
    ([b"\x01"], "binary message (1 bytes) received, but no binary packet is waiting"),
    (['5["x"]'], "BINARY_EVENT packet must give its number of attachments as '<count>-'"),
    (['61["x"]'], "BINARY_ACK packet must give its number of attachments as '<count>-'"),
    (['5-["x"]'], "must give its number of attachments"),
    (['5x-["x"]'], "must give its number of attachments"),
    ([f'51-["x",{PH0}]', '2["y"]'], "text packet received while 1 more binary attachment was expected"),
    (['2/admin["x"]'], "namespace must end with ','"),
    (["1/admin"], "namespace must end with ','"),
    (['2admin,["x"]'], "expected a namespace ('/'), an ack id or a JSON payload, found 'a'"),
    (['21a["x"]'], "found 'a'"),
    (['2/admin,1x2["x"]'], "found 'x'"),
    (['2\u0661\u0662["x"]'], "ack id must be made of ASCII digits"),
    (['2²["x"]'], "ack id must be made of ASCII digits"),
    (['21234567890123456["x"]'], "ack id has 16 digits, more than 15"),
    (["0123"], "CONNECT packets carry no ack id"),
    (['0/admin,1{"a":1}'], "CONNECT packets carry no ack id"),
    (["11"], "DISCONNECT packets carry no ack id"),
    (['41{"message":"x"}'], "CONNECT_ERROR packets carry no ack id"),
    (['3["x"]'], "ACK packet has no ack id"),
    ([f"61-[{PH0}]"], "BINARY_ACK packet has no ack id"),
    (['2["x"'], "EVENT packet: invalid JSON payload"),
    (["2[NaN]"], "invalid JSON payload"),
    (['2["x",Infinity]'], "invalid JSON payload"),
    (['2["x",-Infinity]'], "invalid JSON payload"),
    (['2["x",1e99999]'], "invalid JSON payload"),
    (['2["x","\x00"]'], "invalid JSON payload"),
    (["2" + "[" * 513 + "]" * 513], "invalid JSON payload"),
    (['2["x"' + ",[]" * 600 + "," + "[" * 600 + "]" * 600 + "]"], "invalid JSON payload"),
    (["2" + "[" * 100_000], "invalid JSON payload"),
    (['2["x"]]'], "invalid JSON payload"),
    (["2"], "EVENT payload must be a non-empty array whose first element is the event name"),
    (["2[]"], "EVENT payload must be a non-empty array"),
    (['2{"a":1}'], "EVENT payload must be a non-empty array"),
    (['2"x"'], "EVENT payload must be a non-empty array"),
    (["2[1]"], "first element is the event name (a string)"),
    (["2[null]"], "first element is the event name (a string)"),
    (["212"], "EVENT payload must be a non-empty array"),
    (["50-[]"], "BINARY_EVENT payload must be a non-empty array"),
    ([f"51-[{PH0}]"], "first element is the event name"),
    (["312"], "ACK payload must be an array"),
    (['312{"a":1}'], "ACK payload must be an array"),
    (["312null"], "ACK payload must be an array"),
    (["0[]"], "CONNECT payload must be an object, or absent"),
    (['0"x"'], "CONNECT payload must be an object"),
    (["0null"], "CONNECT payload must be an object"),
    (["1{}"], "DISCONNECT packets carry no payload"),
    (["1null"], "DISCONNECT packets carry no payload"),
    (["1/admin,{}"], "DISCONNECT packets carry no payload"),
    (["4"], "CONNECT_ERROR payload must be an object (or a string)"),
    (["4[1]"], "CONNECT_ERROR payload must be an object"),
    (["4null"], "CONNECT_ERROR payload must be an object"),
    # placeholders
    (['51-["x",{"_placeholder":true}]'], "malformed attachment placeholder"),
    (['51-["x",{"_placeholder":true,"num":"0"}]'], "malformed attachment placeholder"),
    (['51-["x",{"_placeholder":true,"num":0.0}]'], "num of type float"),
    (['51-["x",{"_placeholder":true,"num":true}]'], "num of type bool"),
    (['51-["x",{"_placeholder":true,"num":0,"extra":1}]'], "malformed attachment placeholder"),
    (['51-["x",{"num":0,"_placeholder":true,"more":[]}]'], "keys _placeholder, more, num"),
    (['51-["x",{"_placeholder":true,"num":1}]'], "num 1 is out of range: the packet announced 1 attachment"),
    (['52-["x",{"_placeholder":true,"num":-1}]'], "num -1 is out of range: the packet announced 2 attachments"),
    (['51-["x",{"_placeholder":true,"num":12345678901234567}]'], "num (huge) is out of range"),
    ([f'52-["x",{PH0},{{"k":{PH0}}}]'], "attachment 0 is referenced by more than one placeholder"),
    ([f'52-["x",{PH1}]'], "attachment 0 of 2 has no placeholder"),
    (['51-["x",{"_placeholder":1,"num":0}]'], "attachment 0 of 1 has no placeholder"),  # not a placeholder
    ([f'50-["x",{PH0}]'], "out of range: the packet announced 0 attachments"),
    ([f'51-["x",{PH0}]', b"a", b"b"], "no binary packet is waiting"),
]


@pytest.mark.parametrize(("messages", "match"), HOSTILE)
def test_hostile_input(ser: Any, messages: list[str | bytes], match: str) -> None:
    decoder = Decoder(serializer=ser)
    for message in messages[:-1]:
        decoder.receive(message)
    with pytest.raises(ProtocolError) as info:
        decoder.receive(messages[-1])
    assert match in str(info.value)
    assert not decoder.pending


def test_error_messages_quote_little_input(ser: Any) -> None:
    secret = "s3cr3t" * 1000
    for text in ("2" + secret, f"2/{secret}", f'2["x",{secret}]', f'0/{secret},"x"', f"21{secret}"):
        with pytest.raises(ProtocolError) as info:
            Decoder(serializer=ser).receive(text)
        message = str(info.value)
        assert message.count("s3cr3t") <= 40 // len("s3cr3t") + 1, message
        assert len(message) < 300, message
