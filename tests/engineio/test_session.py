"""The server-side Engine.IO session state machine, driven with a fake clock (plain floats).

No event loop: every input is a method call with ``now``; every output is read back from the session.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from roomcast.engineio.session import Reason, Session, SessionConfig, State
from roomcast.exceptions import PayloadTooLarge, ProtocolError

T0 = 1000.0


def make(transport: str = "polling", *, now: float = T0, handshake: bool = True, **config: Any) -> Session:
    cfg = SessionConfig(**{"ping_interval": 25.0, "ping_timeout": 20.0, "upgrade_timeout": 10.0, **config})
    session = Session("sid-1", transport, cfg, now)
    if handshake:
        session.handshake(["websocket"] if transport == "polling" else [])
    return session


def upgrading(now: float = T0, **config: Any) -> Session:
    """A polling session whose probing WebSocket got its ``3probe``."""
    session = make(now=now, **config)
    assert session.receive_upgrade("2probe", now) == ["3probe"]
    assert session.state is State.UPGRADING
    return session


# -- handshake ---------------------------------------------------------------------------------------


def test_handshake_packet_and_state() -> None:
    session = make(handshake=False, max_payload=12345)
    assert session.state is State.OPENING
    packet = session.handshake(["websocket"])
    assert packet[0] == "0"
    assert json.loads(packet[1:]) == {
        "sid": "sid-1",
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 12345,
    }
    assert session.state is State.OPEN
    assert not session.closed


def test_handshake_twice_is_a_local_error() -> None:
    session = make()
    with pytest.raises(RuntimeError):
        session.handshake([])


def test_handshake_milliseconds_are_rounded_not_truncated() -> None:
    # 1.005 * 1000 == 1004.9999999999999 in binary floating point.
    session = make(handshake=False, ping_interval=1.005, ping_timeout=0.2)
    fields = json.loads(session.handshake([])[1:])
    assert (fields["pingInterval"], fields["pingTimeout"], fields["upgrades"]) == (1005, 200, [])


def test_default_config_is_the_reference_servers() -> None:
    cfg = SessionConfig()
    assert (cfg.ping_interval, cfg.ping_timeout, cfg.upgrade_timeout, cfg.max_payload) == (25, 20, 10, 1_000_000)


# -- heartbeat ---------------------------------------------------------------------------------------


def test_ping_schedule() -> None:
    session = make()
    assert session.next_deadline() == T0 + 25
    session.handle_timeout(T0 + 24.9)  # early: nothing happens
    assert not session.has_packets
    session.handle_timeout(T0 + 25)
    assert session.take_packets() == ["2"]
    # Waiting for the pong now, not for the next ping.
    assert session.next_deadline() == T0 + 25 + 20
    session.handle_timeout(T0 + 30)  # pong not late yet, and no second ping
    assert not session.has_packets and session.state is State.OPEN
    assert session.receive("3", T0 + 31) is None
    assert session.next_deadline() == T0 + 31 + 25
    session.handle_timeout(T0 + 56)
    assert session.take_packets() == ["2"]


def test_ping_timeout_closes() -> None:
    session = make(ping_interval=0.2, ping_timeout=0.2)
    session.handle_timeout(T0 + 0.2)
    assert session.take_packets() == ["2"]
    pong_deadline = session.next_deadline()
    assert pong_deadline == pytest.approx(T0 + 0.4)
    session.handle_timeout(pong_deadline - 0.01)
    assert session.state is State.OPEN
    session.handle_timeout(pong_deadline)
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.PING_TIMEOUT == "ping timeout"
    assert session.next_deadline() is None
    session.handle_timeout(T0 + 100)  # closed: a late timer is harmless
    assert session.close_reason == "ping timeout"


def test_late_timer_call_sends_one_ping() -> None:
    session = make()
    session.handle_timeout(T0 + 60)
    assert session.take_packets() == ["2"]
    assert session.next_deadline() == T0 + 60 + 20


def test_pong_postpones_the_next_ping() -> None:
    session = make()
    session.receive("3", T0 + 10)  # an unsolicited pong still proves the client alive
    assert session.next_deadline() == T0 + 35
    session.handle_timeout(T0 + 25)
    assert not session.has_packets
    session.handle_timeout(T0 + 35)
    assert session.take_packets() == ["2"]


def test_client_ping_is_answered() -> None:
    # v4 clients don't ping; a v3-style "2probe" on the current transport gets its pong.
    session = make()
    assert session.receive("2probe", T0) is None
    assert session.receive("2", T0) is None
    assert session.take_packets() == ["3probe", "3"]


# -- input -------------------------------------------------------------------------------------------


def test_messages_text_and_binary() -> None:
    session = make()
    assert session.receive("4hello", T0) == "hello"
    assert session.receive("4", T0) == ""
    assert session.receive(b"\x01\x02", T0) == b"\x01\x02"
    assert session.receive("6", T0) is None  # noop
    assert session.state is State.OPEN


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        ("", "empty Engine.IO packet"),
        ("0{}", "unexpected Engine.IO packet type '0'"),
        ("5", "unexpected Engine.IO packet type '5'"),
        ("9", "unknown Engine.IO packet type '9'"),
        ("x", "unknown Engine.IO packet type 'x'"),
    ],
)
def test_forbidden_packets_close_with_parse_error(packet: str, message: str) -> None:
    session = make()
    session.send("4queued")
    with pytest.raises(ProtocolError, match=message):
        session.receive(packet, T0)
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.PARSE_ERROR == "parse error"
    assert not session.has_packets and session.buffered_bytes == 0


def test_client_close_packet() -> None:
    session = make()
    assert session.receive("1", T0) is None
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.TRANSPORT_CLOSE == "transport close"


def test_nothing_is_received_once_closed() -> None:
    session = make()
    session.abort(Reason.FORCED_CLOSE)
    assert session.receive("4late", T0) is None
    assert session.receive(b"late", T0) is None
    assert session.receive("", T0) is None  # no error either: the session is already over


def test_messages_are_dropped_once_the_server_closes() -> None:
    # CLOSING: what the server buffered still goes out, but the client's messages no longer count;
    # its close packet still ends the session.
    session = make()
    session.send("4bye")
    session.close(Reason.FORCED_CLOSE)
    assert session.state is State.CLOSING
    assert session.receive("4late", T0) is None
    assert session.receive(b"late", T0) is None
    assert session.receive_payload(b"4one\x1e4two", T0) == []
    assert session.receive("1", T0) is None
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.FORCED_CLOSE


# -- long-polling ------------------------------------------------------------------------------------


def test_poll_waits_then_takes_the_payload() -> None:
    session = make()
    session.begin_poll()
    assert session.polling_get
    assert not session.poll_ready()
    session.send("4a")
    session.send(b"\x01\x02\x03\x04")
    assert session.poll_ready()
    assert session.buffered_bytes == 2 + 4
    assert session.take_poll_payload() == "4a\x1ebAQIDBA=="
    assert not session.polling_get
    assert not session.has_packets and session.buffered_bytes == 0
    session.begin_poll()  # the next GET is fine once the previous one was answered
    assert session.polling_get


def test_overlapping_gets_close_the_session() -> None:
    session = make()
    session.begin_poll()
    with pytest.raises(ProtocolError, match="overlapping GET"):
        session.begin_poll()
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.TRANSPORT_ERROR == "transport error"
    # The first GET is released with a close packet.
    assert session.poll_ready()
    assert session.take_poll_payload() == "1"


def test_overlapping_posts_close_the_session() -> None:
    session = make()
    session.begin_post()
    assert session.polling_post
    with pytest.raises(ProtocolError, match="overlapping POST"):
        session.begin_post()
    assert session.state is State.CLOSED
    assert session.close_reason == "transport error"


def test_sequential_posts_are_fine() -> None:
    session = make()
    for body in (b"4one", b"4two\x1e4three"):
        session.begin_post()
        session.receive_payload(body, T0)
        session.end_post()
        assert not session.polling_post
    assert session.state is State.OPEN


def test_post_payload_messages_in_order() -> None:
    session = make()
    session.handle_timeout(T0 + 25)
    assert session.take_poll_payload() == "2"
    messages = session.receive_payload(b"4hello\x1e3\x1e6\x1ebAQIDBA==\x1e4world", T0 + 26)
    assert messages == ["hello", b"\x01\x02\x03\x04", "world"]
    assert session.next_deadline() == T0 + 26 + 25  # the pong in the payload counted


def test_post_payload_ending_with_close() -> None:
    session = make()
    assert session.receive_payload(b"4last words\x1e1", T0) == ["last words"]
    assert session.state is State.CLOSED and session.close_reason == "transport close"


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        (b"4" + b"x" * 100, PayloadTooLarge, "payload too large"),
        (b"\xff", ProtocolError, "parse error"),
        (b"", ProtocolError, "parse error"),
        (b"4a\x1e\x1e4b", ProtocolError, "parse error"),
        (b"bnot base64!", ProtocolError, "parse error"),
        (b"4a\x1e0{}", ProtocolError, "parse error"),
        (b"4a\x1e5", ProtocolError, "parse error"),
    ],
)
def test_bad_post_payload_closes(body: bytes, error: type[Exception], reason: str) -> None:
    session = make(max_payload=100)
    with pytest.raises(error):
        session.receive_payload(body, T0)
    assert session.state is State.CLOSED
    assert session.close_reason == reason


def test_get_client_gone_closes_with_transport_error() -> None:
    # Node's server: "poll connection closed prematurely" -> "transport error".
    session = make()
    session.begin_poll()
    session.abandon_poll()
    assert not session.polling_get
    assert session.state is State.CLOSED
    assert session.close_reason == "transport error"


def test_abandon_without_a_pending_get_changes_nothing() -> None:
    session = make()
    session.abandon_poll()
    assert session.state is State.OPEN


# -- upgrade -----------------------------------------------------------------------------------------


def test_probe_releases_the_pending_get_with_noop_then_upgrade_moves_to_websocket() -> None:
    session = make()
    session.begin_poll()
    assert not session.poll_ready()
    assert session.receive_upgrade("2probe", T0 + 1) == ["3probe"]
    assert session.state is State.UPGRADING
    assert session.poll_ready()
    assert session.take_poll_payload() == "6"
    # A message sent during the upgrade waits for the new transport.
    session.send("4during")
    assert session.take_packets() == []  # not for the WebSocket yet
    assert session.has_packets
    assert session.receive_upgrade("5", T0 + 2) == ["4during"]
    assert (session.state, session.transport) == (State.OPEN, "websocket")
    assert not session.has_packets
    assert not session.upgrade_failed
    session.send("4after")
    assert session.take_packets() == ["4after"]


def test_packets_queued_before_the_probe_go_on_the_released_get() -> None:
    session = make()
    session.begin_poll()
    session.send("4x")  # the GET is ready but the I/O layer has not answered it yet
    session.receive_upgrade("2probe", T0)
    assert session.take_poll_payload() == "4x"
    assert session.receive_upgrade("5", T0) == []


def test_a_get_after_the_upgrade_gets_noop_and_leaves_the_queue_to_the_websocket() -> None:
    session = upgrading()
    session.receive_upgrade("5", T0)
    session.send("4for-ws")
    session.begin_poll()
    assert session.poll_ready()
    assert session.take_poll_payload() == "6"
    assert session.take_packets() == ["4for-ws"]


def test_ping_due_during_upgrade_reaches_the_websocket() -> None:
    session = upgrading(ping_interval=5.0)
    session.handle_timeout(T0 + 5)
    assert session.take_packets() == []
    assert session.receive_upgrade("5", T0 + 6) == ["2"]


@pytest.mark.parametrize(
    ("packets", "message"),
    [
        (["5"], "unexpected packet during upgrade: '5'"),
        (["4hello"], "unexpected packet during upgrade"),
        (["2probe", "2probe"], "unexpected packet during upgrade: '2probe'"),
        (["2probe", "4x"], "unexpected packet during upgrade: '4x'"),
        (["2probe", b"\x01"], "unexpected packet during upgrade"),
    ],
)
def test_unexpected_packets_fail_the_upgrade_not_the_session(packets: list[str | bytes], message: str) -> None:
    session = make()
    *good, bad = packets
    for packet in good:
        session.receive_upgrade(packet, T0)
    with pytest.raises(ProtocolError, match=message):
        session.receive_upgrade(bad, T0)
    assert session.upgrade_failed
    assert (session.state, session.transport) == (State.OPEN, "polling")
    assert session.next_deadline() == T0 + 25  # no upgrade deadline left


def test_no_probe_on_a_websocket_session() -> None:
    session = make("websocket")
    with pytest.raises(ProtocolError):
        session.receive_upgrade("2probe", T0)
    assert session.transport == "websocket" and session.state is State.OPEN


def test_upgrade_timeout_falls_back_to_polling() -> None:
    session = upgrading(upgrade_timeout=3.0)
    session.send("4waiting")
    assert session.next_deadline() == T0 + 3
    session.handle_timeout(T0 + 2.9)
    assert session.state is State.UPGRADING
    session.handle_timeout(T0 + 3)
    assert session.upgrade_failed
    assert (session.state, session.transport) == (State.OPEN, "polling")
    assert session.next_deadline() == T0 + 25
    # Polling resumes where it stopped: the buffered packet goes on the next GET.
    session.begin_poll()
    assert session.poll_ready()
    assert session.take_poll_payload() == "4waiting"


def test_websocket_gone_during_upgrade() -> None:
    session = upgrading()
    session.abandon_upgrade()
    assert session.upgrade_failed
    assert (session.state, session.transport) == (State.OPEN, "polling")


def test_websocket_gone_after_the_upgrade_is_not_an_upgrade_failure() -> None:
    session = upgrading()
    session.receive_upgrade("5", T0)
    session.abandon_upgrade()
    assert not session.upgrade_failed
    assert session.transport == "websocket"


def test_a_new_probe_after_a_failed_upgrade_starts_clean() -> None:
    # upgrade_failed tells the I/O layer to close the probing WebSocket; a stale flag from an earlier
    # attempt must not condemn the next one.
    session = upgrading()
    session.abandon_upgrade()
    assert session.upgrade_failed
    assert session.receive_upgrade("2probe", T0 + 1) == ["3probe"]
    assert not session.upgrade_failed
    assert session.receive_upgrade("5", T0 + 2) == []
    assert session.transport == "websocket"


def test_get_gone_during_upgrade_is_not_a_transport_loss() -> None:
    # The client paused polling on purpose; its GET vanishing then is expected.
    session = make()
    session.begin_poll()
    session.receive_upgrade("2probe", T0)
    session.abandon_poll()
    assert not session.polling_get
    assert session.state is State.UPGRADING


def test_ping_timeout_during_upgrade() -> None:
    session = make(ping_interval=1.0, ping_timeout=1.0, upgrade_timeout=10.0)
    session.handle_timeout(T0 + 1)  # ping queued for the polling transport
    session.receive_upgrade("2probe", T0 + 1.5)
    assert session.next_deadline() == T0 + 2
    session.handle_timeout(T0 + 2)
    assert session.state is State.CLOSED and session.close_reason == "ping timeout"


# -- closing -----------------------------------------------------------------------------------------


def test_close_flushes_then_sends_close_on_polling() -> None:
    session = make()
    session.send("4bye")
    session.close()
    assert session.state is State.CLOSING
    assert not session.send("4too late")
    assert not session.send_many(["4too", "late"])
    assert session.poll_ready()
    session.begin_poll()
    assert session.take_poll_payload() == "4bye\x1e1"
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.FORCED_CLOSE == "forced close"
    assert session.next_deadline() is None


def test_close_with_nothing_buffered_sends_only_close() -> None:
    session = make()
    session.close(Reason.SERVER_SHUTTING_DOWN)
    session.begin_poll()
    assert session.take_poll_payload() == "1"
    assert session.close_reason == "server shutting down"
    # A late GET on the closed session gets another close packet.
    assert session.poll_ready()
    assert session.take_poll_payload() == "1"


def test_close_flushes_the_websocket() -> None:
    session = make("websocket")
    session.send("4bye")
    session.send(b"\x00")
    session.close("custom reason")
    assert session.state is State.CLOSING
    assert session.take_packets() == ["4bye", b"\x00"]
    assert session.state is State.CLOSED
    assert session.close_reason == "custom reason"


def test_close_is_idempotent() -> None:
    session = make()
    session.close("first")
    session.close("second")
    assert session.close_reason == "first"
    session.abort("third")
    assert session.close_reason == "third"  # abort ends a CLOSING session at once
    session.close("fourth")
    session.abort("fifth")
    assert session.close_reason == "third"


def test_closing_session_sends_no_ping() -> None:
    session = make()
    session.close()
    session.handle_timeout(T0 + 24)
    assert not session.has_packets
    assert session.state is State.CLOSING


def test_closing_polling_session_whose_client_never_returns_ends() -> None:
    # Without a GET the close packet can't be delivered; the session must not wait forever
    # (Node's polling transport gives up after its close timeout).
    session = make(ping_interval=25.0, ping_timeout=20.0)
    session.send("4undelivered")
    session.close(Reason.FORCED_CLOSE)
    deadline = session.next_deadline()
    assert deadline is not None and deadline <= T0 + 25 + 20
    session.handle_timeout(deadline)
    assert session.state is State.CLOSED
    assert session.close_reason == "forced close"
    assert not session.has_packets


def test_closing_while_waiting_for_a_pong_ends_at_the_pong_deadline() -> None:
    session = make()
    session.handle_timeout(T0 + 25)
    session.close("bye")
    assert session.next_deadline() == T0 + 45
    session.handle_timeout(T0 + 45)
    assert session.state is State.CLOSED
    assert session.close_reason == "bye"  # the server's reason, not "ping timeout"


def test_close_during_upgrade_cancels_the_upgrade_deadline() -> None:
    session = upgrading(upgrade_timeout=1.0)
    session.close()
    assert session.next_deadline() != T0 + 1
    session.handle_timeout(T0 + 1)
    assert not session.upgrade_failed
    assert session.state is State.CLOSING


def test_transport_closed_while_closing_keeps_the_servers_reason() -> None:
    session = make()
    session.close("kicked")
    session.transport_closed(Reason.TRANSPORT_CLOSE)
    assert session.state is State.CLOSED
    assert session.close_reason == "kicked"


def test_transport_closed() -> None:
    session = make("websocket")
    session.send("4lost")
    session.transport_closed()
    assert session.state is State.CLOSED
    assert session.close_reason == "transport close"
    assert session.take_packets() == []


def test_abort_drops_the_buffer() -> None:
    session = make()
    session.send("4dropped")
    session.abort(Reason.PARSE_ERROR)
    assert session.state is State.CLOSED
    assert session.close_reason == "parse error"
    assert not session.has_packets and session.buffered_bytes == 0
    assert not session.send("4more")
    assert session.next_deadline() is None


# -- the send buffer bound ---------------------------------------------------------------------------


def test_send_buffer_full() -> None:
    session = make(max_send_buffer=10)
    assert session.send("4" + "x" * 9)  # exactly at the bound
    assert session.buffered_bytes == 10
    assert not session.send("4")
    assert session.state is State.CLOSED
    assert session.close_reason == Reason.SEND_BUFFER_FULL == "send buffer full"
    assert session.buffered_bytes == 0


def test_send_buffer_counts_binary_and_drains() -> None:
    session = make("websocket", max_send_buffer=10)
    assert session.send(b"\x00" * 6)
    assert session.take_packets() == [b"\x00" * 6]
    assert session.buffered_bytes == 0
    assert session.send(b"\x00" * 10)
    assert session.state is State.OPEN


def test_send_many() -> None:
    session = make("websocket", max_send_buffer=10)
    assert session.send_many(["451-", b"\x01\x02"])
    assert session.buffered_bytes == 6
    assert session.take_packets() == ["451-", b"\x01\x02"]
    assert not session.send_many(["4" * 6, b"\x00" * 5])
    assert session.close_reason == "send buffer full"
    assert not session.send_many(["4a"])


# -- reasons -----------------------------------------------------------------------------------------


def test_reason_strings() -> None:
    assert {k: v for k, v in vars(Reason).items() if k.isupper()} == {
        "TRANSPORT_CLOSE": "transport close",
        "TRANSPORT_ERROR": "transport error",
        "PING_TIMEOUT": "ping timeout",
        "PARSE_ERROR": "parse error",
        "PAYLOAD_TOO_LARGE": "payload too large",
        "SEND_BUFFER_FULL": "send buffer full",
        "FORCED_CLOSE": "forced close",
        "SERVER_SHUTTING_DOWN": "server shutting down",
    }


def test_states() -> None:
    assert [s.value for s in State] == ["opening", "open", "upgrading", "closing", "closed"]

