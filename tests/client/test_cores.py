"""The client's sans-I/O cores, driven directly with a fake clock: no event loop, no sockets."""

from __future__ import annotations

import pytest

from roomcast.engineio.client import EngineClient, Reason, State, engine_url, parse_handshake
from roomcast.exceptions import BadNamespaceError, ProtocolError
from roomcast.socketio.client import (
    AckReceived,
    ClientSession,
    Connected,
    ConnectRefused,
    EventReceived,
    ServerDisconnected,
)

OPEN = '0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000}'


def opened(transport: str = "polling") -> EngineClient:
    engine = EngineClient(transport)
    engine.receive_open(OPEN, now=10.0)
    return engine


def test_handshake_and_heartbeat() -> None:
    engine = opened()
    assert engine.state is State.OPEN and engine.sid == "abc"
    assert engine.next_deadline() == pytest.approx(10.5)  # pingInterval + pingTimeout
    assert engine.receive("2", now=10.2) == []
    assert engine.take_outgoing() == ["3"] and engine.take_outgoing() == []
    assert engine.next_deadline() == pytest.approx(10.7)
    assert not engine.handle_timeout(10.69)
    assert engine.handle_timeout(10.7)
    assert engine.state is State.CLOSED and engine.close_reason == Reason.PING_TIMEOUT
    assert engine.next_deadline() is None


def test_messages_close_and_garbage() -> None:
    engine = opened()
    assert engine.receive('42["a"]', 11) == ['2["a"]']
    assert engine.receive(b"\x01", 11) == [b"\x01"]
    assert engine.receive("6", 11) == []
    engine.receive("1", 11)
    assert engine.close_reason == Reason.TRANSPORT_CLOSE
    assert engine.receive('42["late"]', 11) == []

    broken = opened()
    with pytest.raises(ProtocolError):
        broken.receive("9x", 11)
    assert broken.close_reason == Reason.PARSE_ERROR


@pytest.mark.parametrize(
    "packet",
    ["", "1", "0not json", '0{"upgrades":[]}', '0{"sid":"a","pingInterval":"1","pingTimeout":1}', b"\x00"],
)
def test_bad_handshakes(packet: str | bytes) -> None:
    engine = EngineClient("websocket")
    with pytest.raises(ProtocolError):
        engine.receive_open(packet, 0)
    assert engine.state is State.CLOSED and engine.close_reason == Reason.PARSE_ERROR


def test_upgrade_states() -> None:
    engine = opened()
    assert engine.can_upgrade(["polling", "websocket"]) and not engine.can_upgrade(["polling"])
    assert not engine.probe_answered("3nope")
    assert engine.probe_answered("3probe") and engine.state is State.UPGRADING
    engine.upgrade_done()
    assert engine.state is State.OPEN and engine.transport == "websocket"
    assert not engine.can_upgrade(["polling", "websocket"])
    assert engine.close() == ["1"] and engine.close() == []
    assert engine.close_reason == Reason.CLIENT_DISCONNECT


def test_parse_handshake_and_url() -> None:
    hs = parse_handshake('{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":5}')
    assert (hs.ping_interval, hs.ping_timeout, hs.max_payload) == (25.0, 20.0, 5)
    assert engine_url("https://h:1/x?a=1&EIO=3", "socket.io", "websocket", "S") == (
        "wss://h:1/socket.io/?a=1&EIO=4&transport=websocket&sid=S"
    )
    assert engine_url("http://h", "/custom/", "polling") == "http://h/custom/?EIO=4&transport=polling"
    with pytest.raises(ValueError):
        engine_url("ftp://h", "socket.io", "polling")


def test_namespaces_events_and_acks() -> None:
    session = ClientSession()
    assert session.connect("/", {"token": 1}) == ['0{"token":1}']
    assert session.connect("/admin") == ["0/admin,"]
    with pytest.raises(BadNamespaceError):
        session.emit("/", "early", (), False)
    assert session.receive('0{"sid":"s1"}') == [Connected(namespace="/", sid="s1")]
    assert session.receive('4/admin,{"message":"no","data":{"why":1}}') == [
        ConnectRefused(namespace="/admin", message="no", data={"why": 1})
    ]
    assert session.sids == {"/": "s1"}

    messages, ack_id = session.emit("/", "hi", (b"\x01", 2), True)
    assert ack_id == 0 and messages == ['51-0["hi",{"_placeholder":true,"num":0},2]', b"\x01"]
    assert session.emit("/", "x", (), True)[1] == 1
    # Unknown and repeated ack ids are dropped; known ones come back once.
    assert session.receive("37[]") == []
    assert session.receive('30["ok"]') == [AckReceived(namespace="/", ack_id=0, args=["ok"])]
    assert session.receive('30["again"]') == []
    session.forget_ack(1)
    assert session.receive("31[]") == []

    assert session.receive('25["ev",1]') == [EventReceived(namespace="/", name="ev", args=[1], ack_id=5)]
    assert session.ack("/", 5, ("r", b"\x02")) == ['61-5["r",{"_placeholder":true,"num":0}]', b"\x02"]
    assert session.receive('2/other,["ignored"]') == []
    assert session.receive("1") == [ServerDisconnected(namespace="/")]
    assert session.connection_lost() == []


def test_bad_server_packets() -> None:
    session = ClientSession()
    session.connect("/")
    with pytest.raises(ProtocolError):
        session.receive("0{}")  # CONNECT without a sid
    with pytest.raises(ProtocolError):
        session.receive("2not json")
    session.receive('0{"sid":"x"}')
    assert session.connection_lost() == ["/"] and session.namespaces == {}
    with pytest.raises(ValueError):
        session.connect("/", auth="not a dict")  # type: ignore[arg-type]
