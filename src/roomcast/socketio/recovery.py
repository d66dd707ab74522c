"""Connection state recovery (sans-I/O): the packet log, saved sessions, offsets and expiry.

The feature of Node's socket.io 4.6+ (``connectionStateRecovery``), on the same wire protocol, so that
the official client recovers against Roomcast as it does against Node:

* With recovery on, the server's CONNECT reply carries a private session id next to the sid:
  ``0{"sid":"...","pid":"..."}``.
* Every EVENT the server emits without asking for an acknowledgement is *recorded*: it gets an
  offset, a string appended as the event's last argument (``2["news","hello","17"]``), and the
  encoded packet goes into one log shared by all recipients. The client remembers the offset of the
  last event it processed. Events with an ack id are not recorded (the acknowledgement callback could
  not be replayed), and carry no offset.
* When a connected socket goes away for a reason that a reconnection may heal (see
  :data:`RECOVERABLE_REASONS`), its sid, rooms and session data are *saved* under its pid.
* A client that reconnects sends ``{"pid": ..., "offset": ...}`` in its CONNECT auth (merged with its
  own auth). If the session was saved less than ``max_disconnection_duration`` ago and the offset is
  still covered by the log, the session is *restored*: same sid, rooms and data, plus every logged
  packet after the offset that the session's rooms would have received, in emission order.
  Otherwise the client gets a fresh session (and a new pid).

Which logged packets a session missed follows from what the emit targeted: the packet reaches the
session if it went to everyone or to one of the session's rooms (its sid is one of them, so direct
emits count), and none of the session's rooms was excluded. The rooms are those the socket was in
when it went away.

This module keeps that state and takes the time as an argument (``now``, seconds on any monotonic
clock). The caller's obligations:

* call :meth:`Recovery.next_offset` to stamp an event, encode it with the offset as last argument,
  then :meth:`Recovery.record` the encoded packet (the log stores it as given, an opaque object, and
  hands it back on restore);
* call :meth:`Recovery.save` when a connected socket leaves for a reason in
  :data:`RECOVERABLE_REASONS`, *before* forgetting its rooms;
* call :meth:`Recovery.restore` for a CONNECT whose auth carries ``pid`` and ``offset`` strings, and
  on success rejoin the rooms, then send the missed packets after the CONNECT reply and before
  anything emitted later.

Nothing runs by itself: expired sessions and packets are dropped when the state is next touched
(:meth:`Recovery.record` drops old packets, :meth:`Recovery.save` and :meth:`Recovery.restore` drop
expired sessions), or by :meth:`Recovery.expire`.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RECOVERABLE_REASONS",
    "RecoveryConfig",
    "SavedSession",
    "Restored",
    "Recovery",
]

#: Disconnect reasons after which a session is saved: the ones Node's server lists, all meaning the
#: connection was lost rather than closed on purpose. Leaving the namespace (either side), a protocol
#: violation or a limit (``parse error``, ``payload too large``, ``send buffer full``) ends the
#: session for good: replaying a backlog to a client that could not keep up would only repeat it.
RECOVERABLE_REASONS = frozenset(
    {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
)

# An offset is the decimal sequence number of a logged packet; 20 digits hold any 64-bit count and
# bound the work a hostile value can cause.
_MAX_OFFSET_DIGITS = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryConfig:
    """The ``connection_state_recovery`` option (durations in seconds, like every Roomcast option).

    ``max_disconnection_duration`` (Node's ``maxDisconnectionDuration``, there in milliseconds):
    how long a saved session can be restored. ``skip_middlewares`` (Node's ``skipMiddlewares``):
    complete a recovered connection without waiting for the ``connect`` handler. ``max_buffered_packets``
    (Roomcast only): the log keeps at most this many packets, so that a server emitting faster than
    expected keeps bounded memory; a client whose offset fell out of the log gets a fresh session.
    """

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_buffered_packets: int = 10_000

    def __post_init__(self) -> None:
        if not self.max_disconnection_duration > 0:
            raise ValueError("max_disconnection_duration must be a positive number of seconds")
        if not (isinstance(self.max_buffered_packets, int) and self.max_buffered_packets > 0):
            raise ValueError("max_buffered_packets must be a positive integer")

    @classmethod
    def from_option(cls, value: bool | Mapping[str, Any] | RecoveryConfig | None) -> RecoveryConfig | None:
        """The config an ``AsyncServer(connection_state_recovery=...)`` value asks for (None: off).

        ``True`` means the defaults; a mapping overrides some. Node's camelCase keys are refused with a
        hint rather than silently read, since Node's durations are in milliseconds.
        """
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, RecoveryConfig):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"connection_state_recovery must be a bool or a dict, not {type(value).__name__}")
        fields = set(cls.__dataclass_fields__)
        unknown = set(value) - fields
        if unknown:
            hint = ""
            if unknown & {"maxDisconnectionDuration", "skipMiddlewares"}:
                hint = " (Roomcast spells them max_disconnection_duration, in seconds, and skip_middlewares)"
            raise TypeError(f"unknown connection_state_recovery key(s): {', '.join(sorted(unknown))}{hint}")
        return cls(**value)


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedSession:
    """What a socket that went away leaves behind for its reconnection."""

    sid: str
    pid: str
    namespace: str
    rooms: tuple[str, ...]
    data: Any
    disconnected_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Restored:
    """A successful :meth:`Recovery.restore`: the session, and the packets it missed, oldest first."""

    session: SavedSession
    missed: list[Any]


class Recovery:
    """The recovery state of one server: the packet log and the saved sessions.

    ``grace`` extends how long packets stay in the log beyond ``max_disconnection_duration``: a lost
    connection is noticed only after a while (up to ping interval + ping timeout), and the packets
    written to it in that time were emitted *before* the session was saved, yet are the ones its
    client missed first.
    """

    __slots__ = ("config", "retention", "_log", "_next", "_sessions")

    def __init__(self, config: RecoveryConfig | None = None, *, grace: float = 0.0) -> None:
        self.config = config or RecoveryConfig()
        self.retention = self.config.max_disconnection_duration + max(grace, 0.0)
        # One entry per recorded packet: (namespace, rooms or None for everyone, excluded rooms,
        # packet, emitted_at). Tuples, not dataclasses: this is appended to on every emit.
        self._log: deque[tuple[str, tuple[str, ...] | None, tuple[str, ...], Any, float]] = deque(
            maxlen=self.config.max_buffered_packets
        )
        # Sequence number of the next recorded packet; the log holds
        # _next - len(_log) .. _next - 1. Starts at 1 so that "0" is never a real offset.
        self._next = 1
        # pid -> session, in the order they were saved (so expiry pops from the front).
        self._sessions: dict[str, SavedSession] = {}

    # -- recording ------------------------------------------------------------------------------------

    @staticmethod
    def new_pid() -> str:
        """A private session id for a new socket: as unguessable as a sid, and never shown to others."""
        return secrets.token_urlsafe(15)

    def next_offset(self) -> str:
        """The offset the next :meth:`record` will log under (the same until it is called)."""
        return str(self._next)

    def record(
        self,
        packet: Any,
        *,
        namespace: str,
        rooms: Iterable[str] | None,
        excluded: Iterable[str] = (),
        now: float,
    ) -> None:
        """Log ``packet`` (already encoded with :meth:`next_offset` as its last argument).

        ``rooms`` are the rooms the emit targeted (None: the whole namespace); ``excluded`` the rooms
        and sids it left out.
        """
        log = self._log
        limit = now - self.retention
        while log and log[0][4] < limit:
            log.popleft()
        log.append((namespace, None if rooms is None else tuple(rooms), tuple(excluded), packet, now))
        self._next += 1

    def __len__(self) -> int:
        """How many packets the log holds."""
        return len(self._log)

    # -- sessions -------------------------------------------------------------------------------------

    def save(
        self, *, sid: str, pid: str, namespace: str, rooms: Iterable[str], data: Any, now: float
    ) -> SavedSession:
        """Keep a departed socket's state for ``max_disconnection_duration`` seconds."""
        self._expire_sessions(now)
        session = SavedSession(
            sid=sid, pid=pid, namespace=namespace, rooms=tuple(rooms), data=data, disconnected_at=now
        )
        # Re-insert at the end: a recovered socket that drops again keeps its pid.
        self._sessions.pop(pid, None)
        self._sessions[pid] = session
        return session

    def restore(self, pid: Any, offset: Any, *, namespace: str, now: float) -> Restored | None:
        """The session saved under ``pid`` and the packets it missed after ``offset``, or None.

        None when the pid is unknown or expired, belongs to another namespace, or the offset is not
        one this log issued or is no longer covered by it. A session is restored at most once.
        """
        self._expire_sessions(now)
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None
        session = self._sessions.get(pid)
        if session is None or session.namespace != namespace:
            return None
        del self._sessions[pid]
        seq = _parse_offset(offset)
        first = self._next - len(self._log)
        # The client processed packet ``seq``; it needs seq+1 onwards, all of which must still be
        # logged (seq itself may have been dropped), and seq must be an offset we gave out.
        if seq is None or seq + 1 < first or seq >= self._next:
            return None
        rooms = frozenset(session.rooms)
        missed: list[Any] = []
        log = self._log
        for index in range(seq + 1 - first, len(log)):
            ns, targets, excluded, packet, _ = log[index]
            if ns != namespace:
                continue
            if targets is not None and rooms.isdisjoint(targets):
                continue
            if excluded and not rooms.isdisjoint(excluded):
                continue
            missed.append(packet)
        return Restored(session=session, missed=missed)

    def pending(self) -> Collection[str]:
        """The pids of the saved sessions (expired ones included until the next expiry)."""
        return self._sessions.keys()

    # -- expiry ---------------------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Drop the sessions and packets that can no longer be used."""
        self._expire_sessions(now)
        log = self._log
        limit = now - self.retention
        while log and log[0][4] < limit:
            log.popleft()

    def _expire_sessions(self, now: float) -> None:
        # Saved in time order, so the expired ones are at the front. Like Node, a session is usable
        # up to and including max_disconnection_duration after it was saved.
        limit = now - self.config.max_disconnection_duration
        sessions = self._sessions
        while sessions:
            pid = next(iter(sessions))
            if sessions[pid].disconnected_at >= limit:
                break
            del sessions[pid]


def _parse_offset(offset: str) -> int | None:
    if not offset or len(offset) > _MAX_OFFSET_DIGITS or not (offset.isascii() and offset.isdigit()):
        return None
    return int(offset)
