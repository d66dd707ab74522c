"""Rooms as plain data (sans-I/O): which sockets are in which room, per namespace.

Every socket is in the room named after its own sid, so that "emit to a sid" and "emit to a room"
are one operation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

__all__ = ["Rooms"]


class Rooms:
    """Room membership for every namespace of one server (or one node of a cluster)."""

    __slots__ = ("_members", "_joined")

    def __init__(self) -> None:
        # namespace -> room -> sids (dicts keep join order, so deliveries are deterministic)
        self._members: dict[str, dict[str, dict[str, None]]] = {}
        # namespace -> sid -> rooms
        self._joined: dict[str, dict[str, dict[str, None]]] = {}

    def enter(self, namespace: str, sid: str, room: str) -> None:
        self._members.setdefault(namespace, {}).setdefault(room, {})[sid] = None
        self._joined.setdefault(namespace, {}).setdefault(sid, {})[room] = None

    def leave(self, namespace: str, sid: str, room: str) -> None:
        rooms = self._members.get(namespace)
        if rooms is not None:
            members = rooms.get(room)
            if members is not None:
                members.pop(sid, None)
                if not members:
                    del rooms[room]
        sockets = self._joined.get(namespace)
        if sockets is not None:
            joined = sockets.get(sid)
            if joined is not None:
                joined.pop(room, None)
                if not joined:
                    del sockets[sid]

    def leave_all(self, namespace: str, sid: str) -> None:
        for room in list(self._joined.get(namespace, {}).get(sid, ())):
            self.leave(namespace, sid, room)

    def close(self, namespace: str, room: str) -> None:
        for sid in list(self._members.get(namespace, {}).get(room, ())):
            self.leave(namespace, sid, room)

    def rooms_of(self, namespace: str, sid: str) -> list[str]:
        return list(self._joined.get(namespace, {}).get(sid, ()))

    def room(self, namespace: str, room: str) -> Collection[str]:
        """The sids in ``room`` (empty when none), as held: read it, don't keep it, and don't join
        or leave rooms while iterating over it (:meth:`members` gives a copy)."""
        table = self._members.get(namespace)
        if table is None:
            return ()
        return table.get(room, ())

    def members(self, namespace: str, room: str) -> list[str]:
        return list(self._members.get(namespace, {}).get(room, ()))

    def all_rooms(self, namespace: str) -> list[str]:
        return list(self._members.get(namespace, {}))

    def select(
        self,
        namespace: str,
        rooms: Sequence[str] | None = None,
        *,
        except_rooms: Iterable[str] = (),
        skip_sids: Iterable[str] = (),
    ) -> list[str]:
        """The sids an emit reaches: members of any of ``rooms`` (everyone when None), minus the
        members of ``except_rooms`` and the ``skip_sids``; each sid once, in join order."""
        table = self._members.get(namespace)
        if not table:
            return []
        if rooms is not None and len(rooms) == 1 and not except_rooms and not skip_sids:
            # the hot case: one room (often a sid), no exclusions
            return list(table.get(rooms[0], ()))
        excluded: set[str] = set(skip_sids)
        for room in except_rooms:
            excluded.update(table.get(room, ()))
        if rooms is None:
            # every socket is in its own sid room; the sid rooms enumerate the namespace
            sockets = self._joined.get(namespace, {})
            return [sid for sid in sockets if sid not in excluded] if excluded else list(sockets)
        result: dict[str, None] = {}
        for room in rooms:
            for sid in table.get(room, ()):
                if sid not in excluded:
                    result[sid] = None
        return list(result)
