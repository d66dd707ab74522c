"""Cluster messages (roomcast.adapters.messages): Node's own bytes both ways, channels, hostile input.

Roomcast shares one Redis with Node servers and emitters, so the wire tables hold bytes that
``@socket.io/redis-adapter`` 8.3 and ``@socket.io/redis-emitter`` 5.1 (``notepack.io`` 3.0) published,
captured once by a Node script with fake Redis clients (uids and requestIds forced) and pasted here.
Each row must decode to the expected dataclass, and where Roomcast sends the same message, its
encoding must read as Node reads it (JSON if it starts with ``{``, else msgpack) to what Node sent;
byte for byte where the key order is the same. Every decoder returns its dataclass or raises
ProtocolError whatever arrives: anything else would end the subscription of the node receiving it.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomcast import ProtocolError
from roomcast.adapters.messages import EMITTER_UID, Broadcast, Channels, Request, RequestType, Response
from roomcast.adapters.messages import decode_broadcast, decode_request, decode_response
from roomcast.adapters.messages import encode_broadcast, encode_request, encode_response

RT = RequestType


def node_view(raw: bytes) -> Any:
    """What Node's adapter reads from ``raw`` (``msg[0] === 0x7b`` ? JSON.parse : notepack.decode)."""
    if raw[:1] == b"{":
        return json.loads(raw)
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


# -- broadcasts --------------------------------------------------------------------------------------

# Pieces of the adapter's broadcasts: [uid "node01", {type: 2, data: ...; nsp: "/"; {rooms: [], except: [], flags: {}}.
_NODE01, _ROOT = "93a66e6f6465303183a47479706502a464617461", "a36e7370a12f"
_NO_OPTS = "83a5726f6f6d7390a665786365707490a5666c61677380"
# (Node call, channel, hex, message, exact): io with createAdapter(pub, sub) (uid "node01") or new Emitter(client);
# exact: encode_broadcast gives the same bytes.
BROADCASTS: list[tuple[str, str, str, Broadcast, bool]] = [
    ('io.emit("hello", "world", 1)', "socket.io#/#", _NODE01 + "93a568656c6c6fa5776f726c6401" + _ROOT + _NO_OPTS,
     Broadcast(uid="node01", namespace="/", data=["hello", "world", 1]), True),
    ('io.of("/chat").to("room1").except(["a", "b"]).emit("msg", {text: "hi"})', "socket.io#/chat#room1#",
     _NODE01 + "92a36d736781a474657874a26869a36e7370a52f6368617483a5726f6f6d7391a5726f6f6d31a665786365707492a161a162"
     "a5666c61677380",
     Broadcast(uid="node01", namespace="/chat", data=["msg", {"text": "hi"}], rooms=("room1",),
               except_rooms=("a", "b")), True),
    ('io.emit("file", Buffer.from([1, 2, 3, 255]), {nested: Buffer.from("ab")})', "socket.io#/#",
     _NODE01 + "93a466696c65c404010203ff81a66e6573746564c4026162" + _ROOT + _NO_OPTS,
     Broadcast(uid="node01", namespace="/", data=["file", b"\x01\x02\x03\xff", {"nested": b"ab"}]), True),
    ('io.volatile.compress(false).to(["r1", "r2"]).emit("tick")', "socket.io#/#",
     _NODE01 + "91a47469636b" + _ROOT + "83a5726f6f6d7392a27231a27232a665786365707490a5666c61677382"
     "a8766f6c6174696c65c3a8636f6d7072657373c2",
     Broadcast(uid="node01", namespace="/", data=["tick"], rooms=("r1", "r2"),
               flags={"volatile": True, "compress": False}), True),
    ('io.emit("n", 0, -1, 127, 128, -33, 65535, 65536, 2**32, 2**40, -(2**40), MAX_SAFE_INTEGER, 1.5, -0.25, 0.1, '
     "-1e-7, null, true, false)", "socket.io#/#",
     _NODE01 + "dc0013a16e00ff7fcc80d0dfcdffffce00010000cf0000000100000000cf0000010000000000d3ffffff0000000000"
     "cf001fffffffffffffcb3ff8000000000000cbbfd0000000000000cb3fb999999999999acbbe7ad7f29abcaf48c0c3c2"
     + _ROOT + _NO_OPTS,
     Broadcast(uid="node01", namespace="/", data=["n", 0, -1, 127, 128, -33, 65535, 65536, 2**32, 2**40, -(2**40),
                                                    2**53 - 1, 1.5, -0.25, 0.1, -1e-7, None, True, False]), True),
    ('io.of("/ünï").emit("é", "日本語 🎉", {clé: ["ß", {deep: {deeper: [[], {}]}}]})', "socket.io#/ünï#",
     _NODE01 + "93a2c3a9aee697a5e69cace8aa9e20f09f8e8981a4636cc3a992a2c39f81a46465657081a6646565706572929080"
     "a36e7370a62fc3bc6ec3af" + _NO_OPTS,
     Broadcast(uid="node01", namespace="/ünï", data=["é", "日本語 🎉", {"clé": ["ß", {"deep": {"deeper": [[], {}]}}]}]),
     True),
    ('io.emit("s", "x".repeat(40), "y".repeat(300))', "socket.io#/#",  # (str 8 and str 16; runs written as repeats)
     _NODE01 + "93a173d928" + "78" * 40 + "da012c" + "79" * 300 + _ROOT + _NO_OPTS,
     Broadcast(uid="node01", namespace="/", data=["s", "x" * 40, "y" * 300]), True),
    # the emitter writes opts as {rooms, flags, except}: the same value in other bytes
    ('emitter.to("room1").emit("e", 1)', "socket.io#/#room1#",
     "93a7656d697474657283a47479706502a46461746192a16501a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380"
     "a665786365707490",
     Broadcast(uid=EMITTER_UID, namespace="/", data=["e", 1], rooms=("room1",)), False),
    ('emitter.of("/chat").volatile.except("x").emit("e")', "socket.io#/chat#",
     "93a7656d697474657283a47479706502a46461746191a165a36e7370a52f6368617483a5726f6f6d7390a5666c61677381"
     "a8766f6c6174696c65c3a665786365707491a178",
     Broadcast(uid=EMITTER_UID, namespace="/chat", data=["e"], except_rooms=("x",), flags={"volatile": True}), False),
]


@pytest.mark.parametrize(("call", "channel", "wire", "message", "exact"), BROADCASTS, ids=[r[0] for r in BROADCASTS])
def test_broadcast_wire(call: str, channel: str, wire: str, message: Broadcast, exact: bool) -> None:
    raw = bytes.fromhex(wire)
    assert decode_broadcast(raw) == message
    assert Channels().broadcast(message.namespace, message.rooms) == channel
    encoded = encode_broadcast(message)
    assert node_view(encoded) == node_view(raw)
    assert (encoded == raw) is exact


def test_broadcast_decode_only_forms() -> None:
    # No nsp means "/" (as in the adapter's onmessage); numeric rooms are the rooms of their string.
    raw = msgpack.packb(["u", {"type": 5, "data": ["e", b"\x00"]}, {"rooms": [7, 1.5]}])
    assert decode_broadcast(raw) == Broadcast(uid="u", namespace="/", data=["e", b"\x00"], rooms=("7", "1.5"))
    # notepack 2 wrote undefined as fixext 0 (d4 00 00); by hand: [u, {..., data: ["e", undefined]}, {flags: undefined}]
    undefined = "93a175" "83a47479706502a46461746192a165d40000a36e7370a12f" "82a5726f6f6d7390a5666c616773d40000"
    assert decode_broadcast(bytes.fromhex(undefined)) == Broadcast(uid="u", namespace="/", data=["e", None])


# -- requests and responses ------------------------------------------------------------------------

_ACK_REQUEST = bytes.fromhex(
    "85a3756964a66e6f64653031a9726571756573744964a6726571303034a47479706507a67061636b657483a47479706502"
    "a46461746192a171c40107a36e7370a12fa46f70747383a5726f6f6d7391a172a665786365707491a178a5666c61677381"
    "a774696d656f7574cd03e8"
)
# (Node call, bytes, request, Roomcast sends it too): the adapter's and the emitter's; the one-socket
# form and SOCKETS (adapter 8 answers them, older adapters sent them) written with JSON.stringify.
REQUESTS: list[tuple[str, bytes, Request, bool]] = [
    ('adapter.addSockets({rooms: ["r"], except: ["x"]}, ["t1", "t2"])',
     b'{"uid":"node01","type":2,"opts":{"rooms":["r"],"except":["x"]},"rooms":["t1","t2"]}',
     Request(type=RT.REMOTE_JOIN, uid="node01", rooms=("r",), except_rooms=("x",), targets=("t1", "t2")), True),
    ('adapter.delSockets({rooms: [], except: []}, ["t1"])',
     b'{"uid":"node01","type":3,"opts":{"rooms":[],"except":[]},"rooms":["t1"]}',
     Request(type=RT.REMOTE_LEAVE, uid="node01", targets=("t1",)), True),
    ('adapter.disconnectSockets({rooms: ["r"], except: []}, true)',
     b'{"uid":"node01","type":4,"opts":{"rooms":["r"],"except":[]},"close":true}',
     Request(type=RT.REMOTE_DISCONNECT, uid="node01", rooms=("r",), close=True), True),
    ('emitter.in("r").socketsJoin("t")', b'{"type":2,"opts":{"rooms":["r"],"except":[]},"rooms":["t"]}',
     Request(type=RT.REMOTE_JOIN, uid="", rooms=("r",), targets=("t",)), False),
    ("emitter.disconnectSockets()", b'{"type":4,"opts":{"rooms":[],"except":[]},"close":false}',
     Request(type=RT.REMOTE_DISCONNECT, uid=""), False),
    ("remoteJoin(sid, room)", b'{"uid":"node01","requestId":"req005","type":2,"sid":"sid1","room":"r"}',
     Request(type=RT.REMOTE_JOIN, uid="node01", request_id="req005", sid="sid1", room="r"), False),
    ("remoteDisconnect(sid, true)", b'{"uid":"node01","requestId":"req006","type":4,"sid":"sid1","close":true}',
     Request(type=RT.REMOTE_DISCONNECT, uid="node01", request_id="req006", sid="sid1", close=True), False),
    ('sockets(["r"])', b'{"uid":"node01","requestId":"req007","type":0,"rooms":["r"]}',
     Request(type=RT.SOCKETS, uid="node01", request_id="req007", rooms=("r",)), True),
    ('io.of("/chat").fetchSockets() of opts {rooms: ["r"], except: ["x"]}',
     b'{"uid":"node01","requestId":"req001","type":5,"opts":{"rooms":["r"],"except":["x"]}}',
     Request(type=RT.REMOTE_FETCH, uid="node01", request_id="req001", rooms=("r",), except_rooms=("x",)), True),
    ("adapter.allRooms()", b'{"uid":"node01","requestId":"req002","type":1}',
     Request(type=RT.ALL_ROOMS, uid="node01", request_id="req002"), True),
    ('io.serverSideEmit("ping", 1, {a: [2]})', b'{"uid":"node01","type":6,"data":["ping",1,{"a":[2]}]}',
     Request(type=RT.SERVER_SIDE_EMIT, uid="node01", data=["ping", 1, {"a": [2]}]), True),
    ('io.serverSideEmit("ping", "x", cb)', b'{"uid":"node01","requestId":"req003","type":6,"data":["ping","x"]}',
     Request(type=RT.SERVER_SIDE_EMIT, uid="node01", request_id="req003", data=["ping", "x"]), True),
    ('emitter.serverSideEmit("hello", "there")', b'{"uid":"emitter","type":6,"data":["hello","there"]}',
     Request(type=RT.SERVER_SIDE_EMIT, uid=EMITTER_UID, data=["hello", "there"]), True),
    ('io.to("r").except("x").timeout(1000).emit("q", Buffer.from([7]), cb)', _ACK_REQUEST,
     Request(type=RT.BROADCAST, uid="node01", request_id="req004", rooms=("r",), except_rooms=("x",), timeout=1000,
             packet={"type": 2, "data": ["q", b"\x07"], "nsp": "/"}), True),
]


@pytest.mark.parametrize(("call", "wire", "request_", "sent"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_wire(call: str, wire: bytes, request_: Request, sent: bool) -> None:
    decoded = decode_request(wire)
    assert decoded == request_
    assert type(decoded.type) is RequestType
    if sent:
        encoded = encode_request(request_)
        assert encoded[:1] == wire[:1]  # JSON where Node writes JSON, msgpack where it writes msgpack
        assert node_view(encoded) == node_view(wire)


# (answer, bytes, response): onrequest() answering those requests; the non-empty lists and the
# BROADCAST_ACK (which need connected clients) with the JSON.stringify / parser.encode calls it makes.
_SOCKET = {"id": "sid1", "handshake": {"headers": {"host": "h"}, "time": "t", "address": "::1", "xdomain": False,
           "secure": False, "issued": 1700000000000, "url": "/socket.io/?EIO=4", "query": {"EIO": "4"}, "auth": {}},
           "rooms": ["sid1", "r"], "data": {"user": "ann"}}
RESPONSES: list[tuple[str, bytes, Response]] = [
    ("SOCKETS, none here", b'{"requestId":"req007","sockets":[]}', Response(request_id="req007", sockets=[])),
    ("SOCKETS", b'{"requestId":"req007","sockets":["sid1","sid2"]}',
     Response(request_id="req007", sockets=["sid1", "sid2"])),
    ("ALL_ROOMS", b'{"requestId":"req008","rooms":["sid1","r","sid2"]}',
     Response(request_id="req008", rooms=["sid1", "r", "sid2"])),
    ("REMOTE_FETCH",
     b'{"requestId":"req001","sockets":[{"id":"sid1","handshake":{"headers":{"host":"h"},"time":"t","address":"::1",'
     b'"xdomain":false,"secure":false,"issued":1700000000000,"url":"/socket.io/?EIO=4","query":{"EIO":"4"},"auth":{}},'
     b'"rooms":["sid1","r"],"data":{"user":"ann"}}]}',
     Response(request_id="req001", sockets=[_SOCKET])),
    ("SERVER_SIDE_EMIT: cb({pong: [1, 2.5, 'é']})",
     b'{"type":6,"requestId":"req009","data":{"pong":[1,2.5,"\xc3\xa9"]}}',
     Response(request_id="req009", type=RT.SERVER_SIDE_EMIT, data={"pong": [1, 2.5, "é"]})),
    ("BROADCAST_CLIENT_COUNT", b'{"type":8,"requestId":"req010","clientCount":0}',
     Response(request_id="req010", type=RT.BROADCAST_CLIENT_COUNT, client_count=0)),
    ("BROADCAST_ACK: ack('ok', Buffer.from([0, 1]))",
     bytes.fromhex("83a47479706509a9726571756573744964a6726571303130a67061636b657492a26f6bc4020001"),
     Response(request_id="req010", type=RT.BROADCAST_ACK, packet=["ok", b"\x00\x01"])),
]


@pytest.mark.parametrize(("call", "wire", "response"), RESPONSES, ids=[r[0] for r in RESPONSES])
def test_response_wire(call: str, wire: bytes, response: Response) -> None:
    assert decode_response(wire) == response
    encoded = encode_response(response)
    assert encoded[:1] == wire[:1]
    assert node_view(encoded) == node_view(wire)
    if wire[:1] != b"{":
        assert encoded == wire  # the same key order: the same bytes


def test_request_decode_only_forms() -> None:
    # Node's `if (request.opts)`: an empty map still selects (all) sockets, not the one-socket form.
    all_sockets = Request(type=RT.REMOTE_DISCONNECT, uid="", close=True)
    assert decode_request(b'{"type":4,"opts":{},"close":true}') == all_sockets
    assert decode_request(b'{"type":0,"requestId":7,"rooms":[1,"a"]}') == Request(
        type=RT.SOCKETS, uid="", request_id="7", rooms=("1", "a"))
    # a timeout that is not a finite number is no timeout (int() of it raised)
    infinite = {"type": 7, "requestId": "r", "packet": {"data": ["q"]}, "opts": {"flags": {"timeout": float("inf")}}}
    assert decode_request(msgpack.packb(infinite)).timeout is None
    assert decode_response(b'{"requestId":42}') == Response(request_id="42")


def test_json_encodings_refuse_what_node_cannot_parse() -> None:
    with pytest.raises(ValueError):  # (JSON.parse refuses NaN, and the message would be dropped unread)
        encode_request(Request(type=RT.SERVER_SIDE_EMIT, uid="u", data=["x", float("nan")]))
    with pytest.raises(ValueError):
        encode_response(Response(request_id="r", type=RT.SERVER_SIDE_EMIT, data=float("inf")))
    with_binary = encode_request(Request(type=RT.SERVER_SIDE_EMIT, uid="u", data=["x", b"", float("inf")]))
    assert node_view(with_binary)["data"] == ["x", b"", float("inf")]  # msgpack carries any float


# -- channels ----------------------------------------------------------------------------------------


def test_channel_names() -> None:
    channels, app = Channels(), Channels("app")
    assert (channels.broadcast("/"), channels.broadcast("/chat")) == ("socket.io#/#", "socket.io#/chat#")
    assert channels.broadcast("/chat", ["room1"]) == "socket.io#/chat#room1#"
    assert channels.broadcast("/chat", ("a", "b")) == "socket.io#/chat#"
    assert (channels.request("/chat"), app.request("/")) == ("socket.io-request#/chat#", "app-request#/#")
    assert channels.response("/") == "socket.io-response#/#"
    assert channels.response("/", "node01") == "socket.io-response#/#node01#"
    assert app.parse("app#/x#r#") == ("broadcast", "/x", "r")
    assert app.parse("app-response#/x#u#") == ("response", "/x", None)
    assert app.parse("socket.io#/#") is None and channels.parse(app.request("/")) is None
    assert (channels.broadcast_pattern, channels.response_pattern) == ("socket.io#*", "socket.io-response#*")
    odd = Channels("a*b?[c]\\d")
    assert (odd.broadcast_pattern, odd.response_pattern) == (r"a\*b\?\[c\]\\d#*", r"a\*b\?\[c\]\\d-response#*")


PARSE: list[tuple[str, tuple[str, str, str | None] | None]] = [
    ("socket.io#/#", ("broadcast", "/", None)), ("socket.io#/chat#", ("broadcast", "/chat", None)),
    ("socket.io#/chat#room1#", ("broadcast", "/chat", "room1")),
    ("socket.io#/chat#a#b#", ("broadcast", "/chat", "a#b")),
    ("socket.io-request#/chat#", ("request", "/chat", None)), ("socket.io-response#/#", ("response", "/", None)),
    ("socket.io-response#/#node01#", ("response", "/", None)),
    # another key's
    ("app#/#", None), ("app-request#/#", None), ("app-response#/#", None), ("socket.io.x#/#", None),
    # malformed
    ("socket.io#/chat", None), ("socket.io#/chat#room1", None), ("socket.io#chat#", None),
    ("socket.io-request#", None), ("socket.io-response##", None), ("", None),
]


@pytest.mark.parametrize(("channel", "parsed"), PARSE)
def test_channel_parse(channel: str, parsed: tuple[str, str, str | None] | None) -> None:
    assert Channels().parse(channel) == parsed


# -- hostile input -----------------------------------------------------------------------------------

_EV = {"type": 2, "data": ["e"]}
HOSTILE: list[tuple[Any, Any, str]] = [
    (decode_broadcast, {"uid": "u"}, "not [uid, packet, opts]"), (decode_broadcast, ["u", _EV], "not [uid, packet"),
    (decode_broadcast, ["u", [2, ["e"]], {}], "packet or opts is not a map"),
    (decode_broadcast, ["u", {"type": 3, "data": ["e"]}, {}], "packet of type 3"),
    (decode_broadcast, ["u", {"type": 2, "data": []}, {}], "data is not [event"),
    (decode_broadcast, ["u", {"type": 2, "data": [1]}, {}], "data is not [event"),
    (decode_broadcast, ["u", {"type": 2, "data": "e"}, {}], "data is not [event"),
    (decode_broadcast, ["u", {**_EV, "nsp": 1}, {}], "namespace or uid"), (decode_broadcast, [1, _EV, {}], "uid"),
    (decode_broadcast, ["u", _EV, {"rooms": [{"a": 1}]}], "rooms holds a dict"),
    (decode_broadcast, ["u", _EV, {"except": "a"}], "except is not a list"),
    (decode_request, [1], "a request is not a map"), (decode_request, {"type": 42}, "unknown request type 42"),
    (decode_request, {"uid": "u"}, "unknown request type None"), (decode_request, {"type": 1, "uid": 5}, "uid or"),
    (decode_request, {"type": 5, "opts": []}, "opts is not a map"), (decode_request, {"type": 2}, "names no sockets"),
    (decode_request, {"type": 2, "opts": {}, "rooms": "r"}, "rooms is not a list"),
    (decode_request, {"type": 6, "data": []}, "server-side emit's data"),
    (decode_request, {"type": 7, "packet": {"data": []}}, "packet is not an event"),
    (decode_response, ["r"], "a response is not a map"), (decode_response, {"sockets": []}, "has no requestId"),
    (decode_response, {"requestId": True}, "has no requestId"),
    (decode_response, {"requestId": "r", "type": 42}, "unknown response type 42"),
]


@pytest.mark.parametrize(("decode", "value", "match"), HOSTILE)
def test_hostile_values(decode: Any, value: Any, match: str) -> None:
    wires = [msgpack.packb(value)]
    if decode is not decode_broadcast and isinstance(value, dict):
        wires.append(json.dumps(value).encode())  # requests and responses come as JSON too
    for raw in wires:
        with pytest.raises(ProtocolError, match=match.replace("[", r"\[")):
            decode(raw)


@pytest.mark.parametrize("decode", [decode_broadcast, decode_request, decode_response])
@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x93\xa1u", b"{", b'{"type":1,"uid":NaN}', b'{"type":1,"x":1e999}',
                                 b'{"\xff":1}', b'{"a":' + b"[" * 100_000, b"\x91" * 100_000])
def test_malformed_bytes(decode: Any, raw: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"malformed|not \[uid"):  # (b"{" is the msgpack int 123)
        decode(raw)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=300, deadline=None)

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
any_values = st.recursive(
    scalars | st.binary(max_size=8) | st.floats() | st.integers(min_value=-(2**63), max_value=2**64 - 1),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3) | ints, inner, max_size=4),
    max_leaves=12,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as Node writes it (two times in three), or anything at all."""
    return st.one_of(valid, valid, any_values)


def maps(fields: dict[str, st.SearchStrategy[Any]], *required: str) -> st.SearchStrategy[dict[str, Any]]:
    """Maps of these fields, each maybe() valid: the ``required`` ones always there, the others at times."""
    optional = {name: maybe(valid) for name, valid in fields.items()}
    return st.fixed_dictionaries({name: optional.pop(name) for name in required}, optional=optional)


# Messages that often get past the first checks, so that every later check meets bad fields too.
names, short = st.lists(st.text(max_size=3) | st.integers(0, 9), max_size=3), st.text(max_size=3)
events = st.lists(any_values, max_size=3).map(lambda args: ["ev", *args])
flags = maps({"timeout": st.integers(0, 9) | st.floats(), "volatile": st.booleans()})
opts = maps({"rooms": names, "except": names, "flags": flags})
packets = maps({"type": st.sampled_from([2, 5]), "data": events, "nsp": st.just("/")}, "type", "data")
broadcast_like = st.tuples(maybe(short), maybe(packets), maybe(opts)).map(list)
request_like = maps({"uid": short, "type": st.integers(0, 9), "requestId": short, "opts": opts, "rooms": names,
                     "sid": short, "room": short, "close": st.booleans(), "data": events, "packet": packets}, "type")
response_like = maps({"requestId": short, "type": st.integers(0, 9), "sockets": st.lists(any_values), "rooms": names,
                      "data": any_values, "clientCount": st.integers(0, 9), "packet": any_values}, "requestId")


def check_outcome(decode: Any, raw: bytes) -> None:
    """Returns its dataclass, with the field types it promises, or raises ProtocolError; nothing else."""
    try:
        result = decode(raw)
    except ProtocolError as exc:
        assert str(exc)
        return
    assert isinstance(result, {decode_broadcast: Broadcast, decode_request: Request, decode_response: Response}[decode])
    if isinstance(result, Response):
        assert isinstance(result.request_id, str)
    else:
        assert all(isinstance(room, str) for room in (*result.rooms, *result.except_rooms))
        assert isinstance(result.data[0], str) if isinstance(result, Broadcast) else type(result.type) is RequestType


@FUZZ
@given(raw=st.binary(max_size=64) | st.binary(max_size=16).map(lambda b: b"{" + b))
def test_random_bytes(raw: bytes) -> None:
    for decode in (decode_broadcast, decode_request, decode_response):
        check_outcome(decode, raw)


@FUZZ
@given(value=any_values | broadcast_like | request_like | response_like)
def test_random_values(value: Any) -> None:
    for decode in (decode_broadcast, decode_request, decode_response):
        check_outcome(decode, msgpack.packb(value, use_bin_type=True))
    text = json.dumps(value, default=lambda b: b.hex()).encode()  # NaN too, which JSON.parse refuses
    for decode in (decode_request, decode_response):
        check_outcome(decode, text)


# -- round trips -------------------------------------------------------------------------------------

namespaces = st.just("/") | st.text(max_size=6).map(lambda name: "/" + name)
rooms = st.lists(st.text(max_size=6), max_size=3).map(tuple)
data_values = st.recursive(
    scalars | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
event_data = st.builds(lambda event, args: [event, *args], st.text(max_size=6), st.lists(data_values, max_size=3))
flag_maps = st.dictionaries(st.sampled_from(["volatile", "compress"]), st.booleans())
broadcasts = st.builds(Broadcast, uid=st.text(max_size=6), namespace=namespaces, data=event_data, rooms=rooms,
                       except_rooms=rooms, flags=flag_maps)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A request as Roomcast sends it: only the fields its type uses."""
    kind = draw(st.sampled_from([t for t in RequestType if t < RT.BROADCAST_CLIENT_COUNT]))
    fields: dict[str, Any] = {"type": kind, "uid": draw(st.text(max_size=6))}
    fields["request_id"] = draw(st.text(min_size=1, max_size=6) if kind == RT.BROADCAST else st.none() | st.text())
    if kind in (RT.REMOTE_JOIN, RT.REMOTE_LEAVE, RT.REMOTE_DISCONNECT, RT.REMOTE_FETCH, RT.BROADCAST, RT.SOCKETS):
        fields.update(rooms=draw(rooms), except_rooms=draw(rooms) if kind != RT.SOCKETS else ())
    if kind in (RT.REMOTE_JOIN, RT.REMOTE_LEAVE):
        fields["targets"] = draw(rooms)
    fields["close"] = kind == RT.REMOTE_DISCONNECT and draw(st.booleans())
    fields["data"] = draw(event_data) if kind == RT.SERVER_SIDE_EMIT else None
    if kind == RT.BROADCAST:
        fields["packet"] = {"type": 2, "data": draw(event_data), "nsp": draw(namespaces)}
        fields["timeout"] = draw(st.none() | st.integers(min_value=0, max_value=2**31))
    return Request(**fields)


rid = st.text(max_size=6)
responses = st.one_of(
    st.builds(Response, request_id=rid),
    st.builds(Response, request_id=rid, sockets=st.lists(data_values, max_size=3)),
    st.builds(Response, request_id=rid, rooms=st.lists(st.text(max_size=4), max_size=3)),
    st.builds(Response, request_id=rid, type=st.just(RT.SERVER_SIDE_EMIT), data=data_values),
    st.builds(Response, request_id=rid, type=st.just(RT.BROADCAST_CLIENT_COUNT), client_count=st.integers(0, 2**31)),
    st.builds(Response, request_id=rid, type=st.just(RT.BROADCAST_ACK), packet=data_values),
)


CODECS: dict[type, tuple[Any, Any]] = {Broadcast: (encode_broadcast, decode_broadcast),
                                       Request: (encode_request, decode_request),
                                       Response: (encode_response, decode_response)}


@ROUND_TRIP
@given(message=broadcasts | requests() | responses)
def test_round_trip(message: Broadcast | Request | Response) -> None:
    encode, decode = CODECS[type(message)]
    assert decode(encode(message)) == message
