"""The client side of one Engine.IO session, as an explicit state machine (sans-I/O).

Theory
------
A client session starts with the server's ``open`` packet (the handshake), may move from long-polling
to a WebSocket (the *upgrade*), and ends once, with one reason. Its states:

``OPENING``
    Waiting for the ``open`` packet: the answer to the first polling GET, or the first WebSocket frame.
``OPEN``
    Handshake done; packets flow on the current transport. The server pings every ``pingInterval``;
    "If the client does not receive a ping packet within pingInterval + pingTimeout, then it SHOULD
    consider that the connection is closed" (engine.io-protocol.md, "Heartbeat").
``UPGRADING``
    A WebSocket sent ``2probe`` and got ``3probe``; polling is being paused, then ``5`` moves the
    session to the WebSocket (back to ``OPEN``). A failed probe goes back to ``OPEN`` on polling.
``CLOSED``
    Over; :attr:`close_reason` says why. Nothing is sent or received any more.

The caller (the I/O layer) owns the transports and the clock. Its obligations:

* feed the handshake to :meth:`receive_open`, then every received packet (a WebSocket frame, or one item
  of a polling payload) to :meth:`receive`; it returns the Engine.IO messages for the application;
* after any call, write what :meth:`take_outgoing` returns, and check :attr:`state` for ``CLOSED``;
* call :meth:`handle_timeout` at (or after) :meth:`next_deadline`;
* for an upgrade, send :data:`PROBE` on the new WebSocket, hand its answer to :meth:`probe_answered`,
  pause polling, then send :data:`UPGRADE` on the WebSocket and call :meth:`upgrade_done`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..exceptions import ProtocolError
from .packets import PacketType, decode_packet

__all__ = ["State", "Reason", "Handshake", "EngineClient", "PROBE", "UPGRADE", "engine_url"]

PROBE = "2probe"
PROBE_ANSWER = "3probe"
UPGRADE = "5"
_PONG = "3"
_CLOSE = "1"


class State(Enum):
    """Where a client Engine.IO session is in its life (see the module docstring)."""

    OPENING = "opening"
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSED = "closed"


class Reason:
    """Why a client session ended: the strings Node's socket.io-client gives its ``disconnect`` handler."""

    CLIENT_DISCONNECT = "io client disconnect"
    SERVER_DISCONNECT = "io server disconnect"
    PING_TIMEOUT = "ping timeout"
    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"
    PARSE_ERROR = "parse error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Handshake:
    """The server's ``open`` packet (engine.io-protocol.md, "Handshake"); durations in seconds."""

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: float
    ping_timeout: float
    max_payload: int


def parse_handshake(data: str) -> Handshake:
    """Parse the JSON of an ``open`` packet (without its ``0``), raising :class:`ProtocolError` if invalid."""
    try:
        obj = json.loads(data)
    except ValueError:
        raise ProtocolError(f"handshake is not JSON: {data[:40]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("handshake must be a JSON object")
    sid = obj.get("sid")
    upgrades = obj.get("upgrades", [])
    interval = obj.get("pingInterval")
    timeout = obj.get("pingTimeout")
    max_payload = obj.get("maxPayload", 1_000_000)
    if not isinstance(sid, str) or not sid:
        raise ProtocolError("handshake has no sid")
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise ProtocolError("handshake 'upgrades' must be a list of strings")
    for name, value in (("pingInterval", interval), ("pingTimeout", timeout), ("maxPayload", max_payload)):
        if type(value) is not int or value < 0:
            raise ProtocolError(f"handshake {name!r} must be a non-negative integer")
    assert isinstance(interval, int) and isinstance(timeout, int) and isinstance(max_payload, int)
    return Handshake(
        sid=sid,
        upgrades=tuple(upgrades),
        ping_interval=interval / 1000,
        ping_timeout=timeout / 1000,
        max_payload=max_payload,
    )


def engine_url(url: str, path: str, transport: str, sid: str | None = None) -> str:
    """The Engine.IO endpoint for ``url``: its path replaced by ``/<path>/``, ``EIO=4`` and the transport
    added to its query (which is kept: it is how a client passes query parameters), ``ws(s)`` for WebSocket.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"URL scheme must be http, https, ws or wss: {url!r}")
    secure = scheme in ("https", "wss")
    if transport == "websocket":
        scheme = "wss" if secure else "ws"
    else:
        scheme = "https" if secure else "http"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("EIO", "transport", "sid")]
    query += [("EIO", "4"), ("transport", transport)]
    if sid is not None:
        query.append(("sid", sid))
    return urlunsplit((scheme, parts.netloc, "/" + path.strip("/") + "/", urlencode(query), ""))


class EngineClient:
    """One client Engine.IO session (see the module docstring for the caller's obligations)."""

    __slots__ = ("state", "handshake", "close_reason", "transport", "_outgoing", "_ping_deadline")

    def __init__(self, transport: str) -> None:
        self.state = State.OPENING
        self.handshake: Handshake | None = None
        self.close_reason: str | None = None
        #: The transport packets currently flow on: "polling" or "websocket".
        self.transport = transport
        self._outgoing: list[str | bytes] = []
        self._ping_deadline: float | None = None

    @property
    def sid(self) -> str | None:
        """The Engine.IO session id, once the handshake arrived."""
        return self.handshake.sid if self.handshake else None

    def receive_open(self, packet: str | bytes, now: float) -> Handshake:
        """Take the first packet of the session, which must be ``open``; starts the heartbeat deadline."""
        if self.state is not State.OPENING:
            raise RuntimeError(f"receive_open() in state {self.state.name}")
        try:
            decoded = decode_packet(packet)
        except ProtocolError as exc:
            self._close(Reason.PARSE_ERROR)
            raise ProtocolError(f"invalid handshake: {exc}") from None
        if decoded.type is not PacketType.OPEN or not isinstance(decoded.data, str):
            self._close(Reason.PARSE_ERROR)
            raise ProtocolError(f"expected the open packet, got {str(packet)[:40]!r}")
        try:
            self.handshake = parse_handshake(decoded.data)
        except ProtocolError:
            self._close(Reason.PARSE_ERROR)
            raise
        self.state = State.OPEN
        self._arm(now)
        return self.handshake

    def _arm(self, now: float) -> None:
        assert self.handshake is not None
        self._ping_deadline = now + self.handshake.ping_interval + self.handshake.ping_timeout

    def receive(self, packet: str | bytes, now: float) -> list[str | bytes]:
        """Take one received packet; return the Engine.IO ``message`` payloads it carries (0 or 1).

        A ``ping`` queues a ``pong`` and pushes the heartbeat deadline back; ``close`` ends the session
        (reason ``transport close``, as socket.io-client says); ``noop`` and stray probe answers are
        ignored. Raises :class:`ProtocolError` (and closes, reason ``parse error``) on anything invalid.
        """
        if self.state is State.CLOSED or self.state is State.OPENING:
            return []
        try:
            decoded = decode_packet(packet)
        except ProtocolError:
            self._close(Reason.PARSE_ERROR)
            raise
        ptype = decoded.type
        if ptype is PacketType.MESSAGE:
            return [decoded.data]
        if ptype is PacketType.PING:
            self._outgoing.append(_PONG + str(decoded.data))
            self._arm(now)
        elif ptype is PacketType.CLOSE:
            self._close(Reason.TRANSPORT_CLOSE)
        elif ptype is PacketType.OPEN:
            self._close(Reason.PARSE_ERROR)
            raise ProtocolError("second open packet in one session")
        # NOOP (ends a poll during an upgrade), PONG and UPGRADE carry nothing for the client.
        return []

    def take_outgoing(self) -> list[str | bytes]:
        """The packets to write on the current transport (pongs), emptying the list."""
        out, self._outgoing = self._outgoing, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must be called: the heartbeat deadline, or None once closed."""
        return None if self.state is State.CLOSED else self._ping_deadline

    def handle_timeout(self, now: float) -> bool:
        """Close with ``ping timeout`` if the server went silent past the deadline; True if it did."""
        if self._ping_deadline is not None and self.state is not State.CLOSED and now >= self._ping_deadline:
            self._close(Reason.PING_TIMEOUT)
            return True
        return False

    def can_upgrade(self, transports: tuple[str, ...] | list[str]) -> bool:
        """Whether to probe a WebSocket: on polling, allowed by the caller and offered by the server."""
        return (
            self.state is State.OPEN
            and self.transport == "polling"
            and "websocket" in transports
            and self.handshake is not None
            and "websocket" in self.handshake.upgrades
        )

    def probe_answered(self, packet: str | bytes) -> bool:
        """Take the probing WebSocket's first answer: True (and ``UPGRADING``) if it is ``3probe``."""
        if self.state is State.OPEN and packet == PROBE_ANSWER:
            self.state = State.UPGRADING
            return True
        return False

    def upgrade_done(self) -> None:
        """``5`` was sent on the WebSocket: packets now flow there."""
        if self.state is State.UPGRADING:
            self.state = State.OPEN
            self.transport = "websocket"

    def upgrade_failed(self) -> None:
        """The probe failed or timed out: stay on polling."""
        if self.state is State.UPGRADING:
            self.state = State.OPEN

    def close(self, reason: str = Reason.CLIENT_DISCONNECT) -> list[str | bytes]:
        """Close from this side; returns the ``close`` packet to send (nothing if already closed)."""
        if self.state is State.CLOSED:
            return []
        opened = self.state is not State.OPENING
        self._close(reason)
        return [_CLOSE] if opened else []

    def lost(self, reason: str) -> None:
        """The transport failed (``transport error``/``transport close``); no-op if already closed."""
        if self.state is not State.CLOSED:
            self._close(reason)

    def _close(self, reason: str) -> None:
        self.state = State.CLOSED
        self.close_reason = reason
        self._ping_deadline = None
        self._outgoing = []
