"""The server side of one Engine.IO session, as an explicit state machine (sans-I/O).

Theory
------
A session outlives its transports: it starts on long-polling or on a WebSocket, may move from polling
to a WebSocket (the *upgrade*), and ends once, with one reason. Its states:

``OPENING``
    Created; the ``open`` packet has not been handed to a transport yet.
``OPEN``
    Handshake delivered; packets flow on the current transport; the server pings every
    ``ping_interval`` and expects a pong within ``ping_timeout``.
``UPGRADING``
    A second transport (a WebSocket) sent ``2probe`` and got ``3probe``; polling is paused (a pending
    GET is released with a ``noop``), outgoing packets wait in the buffer until the client's ``upgrade``
    packet moves the session to the WebSocket (back to ``OPEN``), or ``upgrade_timeout`` gives up on the
    upgrade (back to ``OPEN`` on polling).
``CLOSING``
    The server decided to close; what is buffered is still flushed, then the session is ``CLOSED``
    (on polling, at the latest at the next heartbeat deadline, should the client stop polling).
``CLOSED``
    Over; ``close_reason`` says why. Nothing is sent or received any more.

The caller (the I/O layer) owns the transports and the clock. Its obligations:

* feed every packet that arrives with :meth:`receive` (or :meth:`receive_upgrade` for the WebSocket that
  is probing), and every polling POST body with :meth:`receive_payload`;
* after any call, write what :meth:`take_packets` (WebSocket) or :meth:`take_poll_payload` (a waiting
  GET, once :meth:`poll_ready` says so) returns, and check :attr:`state` for ``CLOSED``;
* call :meth:`handle_timeout` at (or after) :meth:`next_deadline`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from ..exceptions import ProtocolError
from .packets import SEPARATOR, decode_payload, encode_payload

__all__ = ["State", "SessionConfig", "Session", "Reason"]


class State(Enum):
    """Where an Engine.IO session is in its life (see the module docstring)."""

    OPENING = "opening"
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSING = "closing"
    CLOSED = "closed"


class Reason:
    """Disconnect reasons, with the strings Node's server uses."""

    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"
    PING_TIMEOUT = "ping timeout"
    PARSE_ERROR = "parse error"
    PAYLOAD_TOO_LARGE = "payload too large"
    SEND_BUFFER_FULL = "send buffer full"
    FORCED_CLOSE = "forced close"
    SERVER_SHUTTING_DOWN = "server shutting down"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Per-session limits and timers, in seconds and bytes."""

    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_payload: int = 1_000_000
    max_send_buffer: int = 16_000_000


_PING = "2"
_NOOP = "6"
_CLOSE = "1"


class Session:
    """One Engine.IO session, server side. See the module docstring for the caller's obligations."""

    __slots__ = (
        "sid",
        "config",
        "transport",
        "state",
        "close_reason",
        "_queue",
        "_queued_bytes",
        "_held_bytes",
        "_next_ping",
        "_pong_deadline",
        "_upgrade_deadline",
        "polling_get",
        "polling_post",
        "upgrade_failed",
    )

    def __init__(self, sid: str, transport: str, config: SessionConfig, now: float) -> None:
        self.sid = sid
        self.config = config
        #: ``"polling"`` or ``"websocket"``: where packets go now.
        self.transport = transport
        self.state = State.OPENING
        self.close_reason: str | None = None
        # A list, not a deque: an idle session holds an empty one, and a deque costs ~700 bytes.
        self._queue: list[str | bytes] = []
        self._queued_bytes = 0
        #: Of ``_queued_bytes``, what a WebSocket writer took and has not yet written (see take_packets).
        self._held_bytes = 0
        self._next_ping: float | None = now + config.ping_interval
        self._pong_deadline: float | None = None
        self._upgrade_deadline: float | None = None
        #: A long-polling GET is waiting for packets.
        self.polling_get = False
        #: A long-polling POST is being read.
        self.polling_post = False
        #: Set when an upgrade was abandoned; the caller closes the probing WebSocket.
        self.upgrade_failed = False

    # -- output ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def buffered_bytes(self) -> int:
        """Bytes waiting for the transport, including those a writer holds (see :meth:`take_packets`);
        bounded by ``max_send_buffer``."""
        return self._queued_bytes

    def handshake(self, upgrades: list[str]) -> str:
        """Return the ``open`` packet and move to ``OPEN``; the caller sends it first."""
        if self.state is not State.OPENING:
            raise RuntimeError("handshake already taken")
        self.state = State.OPEN
        cfg = self.config
        return "0" + json.dumps(
            {
                "sid": self.sid,
                "upgrades": upgrades,
                # round(), not int(): 1.005 * 1000 is 1004.999... in binary floating point.
                "pingInterval": round(cfg.ping_interval * 1000),
                "pingTimeout": round(cfg.ping_timeout * 1000),
                "maxPayload": cfg.max_payload,
            },
            separators=(",", ":"),
        )

    def send(self, packet: str | bytes) -> bool:
        """Queue one encoded packet (``"4..."`` text or binary ``bytes``); False if it was dropped.

        A session that cannot take more (its reader stopped reading) is closed with
        ``"send buffer full"`` rather than allowed to grow without bound.
        """
        if self.state is State.CLOSED or self.state is State.CLOSING:
            return False
        self._queue.append(packet)
        self._queued_bytes += len(packet)
        if self._queued_bytes > self.config.max_send_buffer:
            self.abort(Reason.SEND_BUFFER_FULL)
            return False
        return True

    def send_many(self, packets: list[str | bytes]) -> bool:
        """Queue several encoded packets that belong together (a packet and its attachments)."""
        if self.state is State.CLOSED or self.state is State.CLOSING:
            return False
        self._queue.extend(packets)
        self._queued_bytes += sum(len(p) for p in packets)
        if self._queued_bytes > self.config.max_send_buffer:
            self.abort(Reason.SEND_BUFFER_FULL)
            return False
        return True

    def take_packets(self, *, hold: bool = False) -> list[str | bytes]:
        """Drain the buffer for a WebSocket (one frame each). Finishes a ``CLOSING`` session.

        With ``hold``, the packets still count against ``max_send_buffer`` until :meth:`written` says
        they went out. A WebSocket writer passes it: its ``send`` blocks while the peer does not read,
        holding the batch, and a bound that forgot that batch would let the memory of one client that
        stopped reading grow to twice the limit and more.
        """
        if self.state is State.UPGRADING:
            return []
        packets = self._queue
        self._queue = []
        if hold:
            self._held_bytes = self._queued_bytes
        else:
            self._queued_bytes = self._held_bytes = 0
        if self.state is State.CLOSING:
            self._finish(self.close_reason or Reason.FORCED_CLOSE)
        return packets

    def written(self) -> None:
        """The batch the last ``take_packets(hold=True)`` returned has been written: stop counting it."""
        self._queued_bytes = max(0, self._queued_bytes - self._held_bytes)
        self._held_bytes = 0

    @property
    def has_packets(self) -> bool:
        return bool(self._queue)

    def idle_open(self) -> bool:
        """OPEN with nothing queued: a packet may go to the transport at once, ahead of nothing."""
        return self.state is State.OPEN and not self._queue

    # -- long-polling ---------------------------------------------------------------------------

    def begin_poll(self) -> None:
        """A GET arrived. A second concurrent GET breaks the protocol and closes the session."""
        if self.polling_get:
            self.abort(Reason.TRANSPORT_ERROR)
            raise ProtocolError("overlapping GET requests on one session")
        self.polling_get = True

    def poll_ready(self) -> bool:
        """True when a waiting GET should be answered now."""
        return bool(self._queue) or self.state in (State.CLOSING, State.CLOSED, State.UPGRADING) or (
            self.transport != "polling"
        )

    def take_poll_payload(self) -> str:
        """Answer the waiting GET: buffered packets, else ``noop`` (upgrading) or ``close``."""
        self.polling_get = False
        if self.transport != "polling" or self.state is State.UPGRADING:
            # "send a noop packet to any pending GET request ... to cleanly close HTTP long-polling"
            if self.transport == "polling" and self._queue:
                return self._drain_payload()
            return _NOOP
        if self.state is State.CLOSED:
            return _CLOSE
        payload = self._drain_payload()
        if self.state is State.CLOSING:
            self._finish(self.close_reason or Reason.FORCED_CLOSE)
            return payload + SEPARATOR + _CLOSE if payload else _CLOSE
        return payload

    def _drain_payload(self) -> str:
        payload = encode_payload(self._queue)
        self._queue = []
        self._queued_bytes = 0
        return payload

    def abandon_poll(self) -> None:
        """The waiting GET's client went away before it was answered: the transport is lost.

        Node's server calls this "poll connection closed prematurely", a ``"transport error"``.
        """
        if self.polling_get:
            self.polling_get = False
            if self.transport == "polling" and self.state is not State.UPGRADING:
                self.transport_closed(Reason.TRANSPORT_ERROR)

    def begin_post(self) -> None:
        """A POST arrived. A second concurrent POST breaks the protocol and closes the session."""
        if self.polling_post:
            self.abort(Reason.TRANSPORT_ERROR)
            raise ProtocolError("overlapping POST requests on one session")
        self.polling_post = True

    def end_post(self) -> None:
        self.polling_post = False

    def receive_payload(self, body: bytes, now: float) -> list[str | bytes]:
        """Handle a POST body; return the messages it carried, in order.

        Raises :class:`ProtocolError` (or :class:`PayloadTooLarge`) for a malformed or oversized body;
        the session is then closed with the matching reason.
        """
        try:
            packets = decode_payload(body, max_size=self.config.max_payload)
        except ProtocolError as exc:
            self.abort(exc.close_reason)
            raise
        messages: list[str | bytes] = []
        for packet in packets:
            message = self.receive(packet, now)
            if message is not None:
                messages.append(message)
        return messages

    # -- input ----------------------------------------------------------------------------------

    def receive(self, packet: str | bytes, now: float) -> str | bytes | None:
        """Handle one packet from the current transport; return its data if it is a message.

        Raises :class:`ProtocolError` for packets the client must not send (the session is closed
        with ``"parse error"``).
        """
        state = self.state
        if state is State.CLOSED:
            return None
        if type(packet) is not str:
            return packet if state is not State.CLOSING else None
        if not packet:
            self.abort(Reason.PARSE_ERROR)
            raise ProtocolError("empty Engine.IO packet")
        kind = packet[0]
        if kind == "4":
            # Once the server closes the session, messages still in flight from the client are dropped
            # (as Node's engine.io does); a close or pong still counts.
            return packet[1:] if state is not State.CLOSING else None
        if kind == "3":
            self._pong_deadline = None
            self._next_ping = now + self.config.ping_interval
            return None
        if kind == "1":
            self.transport_closed(Reason.TRANSPORT_CLOSE)
            return None
        if kind == "2":
            # Engine.IO v4 clients don't ping; answering is harmless and helps v3-style probes.
            self.send("3" + packet[1:])
            return None
        if kind == "6":
            return None
        self.abort(Reason.PARSE_ERROR)
        if kind in "05":
            raise ProtocolError(f"unexpected Engine.IO packet type {kind!r} from the client")
        raise ProtocolError(f"unknown Engine.IO packet type {kind!r}")

    def receive_upgrade(self, packet: str | bytes, now: float) -> list[str | bytes]:
        """Handle a packet from the WebSocket that is probing this polling session.

        Returns what to write on that WebSocket. ``2probe`` → ``3probe`` and ``UPGRADING`` (a waiting
        GET becomes ready with a ``noop``); ``5`` → the session moves to the WebSocket and the
        buffered packets are returned for it. Anything else fails the upgrade with
        :class:`ProtocolError` (the session itself goes on over polling).
        """
        if packet == "2probe" and self.state is State.OPEN and self.transport == "polling":
            self.state = State.UPGRADING
            self._upgrade_deadline = now + self.config.upgrade_timeout
            # A flag left by an earlier, failed attempt must not condemn this probe.
            self.upgrade_failed = False
            return ["3probe"]
        if packet == "5" and self.state is State.UPGRADING:
            self.state = State.OPEN
            self.transport = "websocket"
            self._upgrade_deadline = None
            packets = self._queue
            self._queue = []
            self._queued_bytes = 0
            return packets
        self._fail_upgrade()
        raise ProtocolError(f"unexpected packet during upgrade: {str(packet)[:20]!r}")

    def abandon_upgrade(self) -> None:
        """The probing WebSocket went away before the upgrade finished: stay on polling."""
        if self.transport == "polling":
            self._fail_upgrade()

    def _fail_upgrade(self) -> None:
        if self.state is State.UPGRADING:
            self.state = State.OPEN
        self._upgrade_deadline = None
        self.upgrade_failed = True

    # -- timers ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called (None: nothing pending)."""
        if self.state is State.CLOSED:
            return None
        candidates = [
            t
            for t in (
                self._pong_deadline if self._pong_deadline is not None else self._next_ping,
                self._upgrade_deadline,
            )
            if t is not None
        ]
        return min(candidates) if candidates else None

    def handle_timeout(self, now: float) -> None:
        """Send a due ping, close a session whose pong is late, give up a stalled upgrade."""
        if self.state is State.CLOSED:
            return
        if self._upgrade_deadline is not None and now >= self._upgrade_deadline:
            self._fail_upgrade()
        if self._pong_deadline is not None:
            if now >= self._pong_deadline:
                self.transport_closed(Reason.PING_TIMEOUT)  # CLOSING keeps its own reason
            return
        if self._next_ping is not None and now >= self._next_ping:
            if self.state is State.CLOSING:
                # The close packet is still undelivered (a polling client that stopped polling): stop
                # waiting for it, as Node's polling transport does after its close timeout.
                self._finish(self.close_reason or Reason.FORCED_CLOSE)
                return
            self._next_ping = None
            self._pong_deadline = now + self.config.ping_timeout
            self.send(_PING)

    # -- closing --------------------------------------------------------------------------------

    def close(self, reason: str = Reason.FORCED_CLOSE) -> None:
        """Close from the server side, flushing what is buffered first (``CLOSING``).

        No more pings are sent, but the heartbeat deadline stays: a polling client that never comes
        back for the ``close`` packet ends the session at the next ping time (or its pong deadline).
        """
        if self.state in (State.CLOSING, State.CLOSED):
            return
        self.close_reason = reason
        self.state = State.CLOSING
        self._upgrade_deadline = None

    def abort(self, reason: str) -> None:
        """Close at once, dropping what is buffered (a broken or hostile peer)."""
        self._finish(reason)

    def transport_closed(self, reason: str = Reason.TRANSPORT_CLOSE) -> None:
        """The current transport is gone (or the client said ``close``): the session ends."""
        if self.state is State.CLOSING:
            reason = self.close_reason or reason
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.close_reason = reason
        self._queue.clear()
        self._queued_bytes = self._held_bytes = 0
        self._next_ping = self._pong_deadline = self._upgrade_deadline = None
