"""The sans-I/O recovery state (roomcast.socketio.recovery) on a fake clock: offsets, replay, expiry."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.socketio.recovery import RECOVERABLE_REASONS, Recovery, RecoveryConfig


def emit(rec: Recovery, label: str, *, now: float, ns: str = "/", rooms: Any = None, excluded: Any = ()) -> str:
    """Record one packet the way the server does: stamp, then log; return its offset."""
    offset = rec.next_offset()
    rec.record(f"{label}@{offset}", namespace=ns, rooms=rooms, excluded=excluded, now=now)
    return offset


def save(rec: Recovery, *, now: float, pid: str = "p1", sid: str = "s1", rooms: Any = ("s1",), ns: str = "/",
         data: Any = None) -> None:
    rec.save(sid=sid, pid=pid, namespace=ns, rooms=rooms, data=data if data is not None else {}, now=now)


def test_offsets_are_distinct_increasing_strings_stable_until_recorded() -> None:
    rec = Recovery(RecoveryConfig())
    first = rec.next_offset()
    assert rec.next_offset() == first  # stamping twice (an encode that failed) does not burn an offset
    offsets = [emit(rec, "e", now=0.0) for _ in range(5)]
    assert offsets[0] == first
    assert len(set(offsets)) == 5
    assert [int(o) for o in offsets] == sorted(int(o) for o in offsets)
    assert all(isinstance(o, str) and o.isdigit() for o in offsets)
    assert len(rec) == 5


def test_replays_in_order_what_the_session_missed_after_its_offset() -> None:
    rec = Recovery(RecoveryConfig())
    a = emit(rec, "a", now=1.0)
    emit(rec, "b", now=1.1)
    emit(rec, "c", now=1.2)
    save(rec, now=1.3, data={"user": "ann"})
    emit(rec, "d", now=1.4)
    restored = rec.restore("p1", a, namespace="/", now=2.0)
    assert restored is not None
    assert restored.session.sid == "s1"
    assert restored.session.data == {"user": "ann"}
    # b and c were sent before the loss was noticed, d while away: all after the client's offset
    assert restored.missed == ["b@2", "c@3", "d@4"]


def test_the_last_offset_means_nothing_missed() -> None:
    rec = Recovery(RecoveryConfig())
    last = emit(rec, "a", now=0.0)
    save(rec, now=0.1)
    restored = rec.restore("p1", last, namespace="/", now=0.2)
    assert restored is not None and restored.missed == []


def test_only_packets_for_the_sessions_rooms_and_namespace() -> None:
    rec = Recovery(RecoveryConfig())
    start = emit(rec, "start", now=0.0)
    emit(rec, "all", now=0.1)  # whole namespace
    emit(rec, "direct", rooms=["s1"], now=0.1)  # to its sid
    emit(rec, "other-direct", rooms=["s2"], now=0.1)
    emit(rec, "room", rooms=["news"], now=0.1)
    emit(rec, "rooms", rooms=["sport", "news"], now=0.1)
    emit(rec, "not-my-room", rooms=["sport"], now=0.1)
    emit(rec, "skipped-me", excluded=["s1"], now=0.1)  # skip_sid
    emit(rec, "excluded-room", rooms=["news"], excluded=["news"], now=0.1)
    emit(rec, "excluded-other", excluded=["sport"], now=0.1)
    emit(rec, "other-ns", ns="/admin", now=0.1)
    save(rec, rooms=("s1", "news"), now=0.2)
    restored = rec.restore("p1", start, namespace="/", now=0.3)
    assert restored is not None
    assert [p.split("@")[0] for p in restored.missed] == ["all", "direct", "room", "rooms", "excluded-other"]


def test_a_session_is_restored_once() -> None:
    rec = Recovery(RecoveryConfig())
    offset = emit(rec, "a", now=0.0)
    save(rec, now=0.1)
    assert rec.restore("p1", offset, namespace="/", now=0.2) is not None
    assert rec.restore("p1", offset, namespace="/", now=0.2) is None


def test_expires_after_the_window_and_not_before() -> None:
    rec = Recovery(RecoveryConfig(max_disconnection_duration=10))
    offset = emit(rec, "a", now=0.0)
    save(rec, now=5.0)
    save(rec, pid="p2", sid="s2", rooms=("s2",), now=5.0)
    assert rec.restore("p2", offset, namespace="/", now=15.0) is not None  # exactly the window: still valid
    assert rec.restore("p1", offset, namespace="/", now=15.001) is None
    assert "p1" not in rec.pending()


def test_expired_sessions_are_dropped_when_the_state_is_touched() -> None:
    rec = Recovery(RecoveryConfig(max_disconnection_duration=10))
    save(rec, pid="old", now=0.0)
    save(rec, pid="new", now=8.0)
    rec.expire(now=12.0)
    assert set(rec.pending()) == {"new"}
    save(rec, pid="newer", now=30.0)  # saving expires too
    assert set(rec.pending()) == {"newer"}


def test_packets_are_kept_for_the_window_plus_grace() -> None:
    rec = Recovery(RecoveryConfig(max_disconnection_duration=10), grace=5)
    first = emit(rec, "old", now=0.0)
    second = emit(rec, "newer", now=4.0)
    emit(rec, "late", now=15.0)  # "old" is exactly 15 s old: kept
    assert len(rec) == 3
    emit(rec, "later", now=15.5)  # now "old" is older than 15 s: dropped
    assert len(rec) == 3
    # offset "first" is gone but everything after it is still there: recoverable
    save(rec, now=15.6)
    restored = rec.restore("p1", first, namespace="/", now=16.0)
    assert restored is not None and [p.split("@")[0] for p in restored.missed] == ["newer", "late", "later"]
    # an offset before a dropped packet is not: the client would miss "old"
    rec.expire(now=19.5)  # drops "newer" (emitted at 4.0)
    save(rec, now=19.5)
    assert rec.restore("p1", first, namespace="/", now=19.6) is None
    save(rec, now=19.6)
    assert rec.restore("p1", second, namespace="/", now=19.7) is not None


def test_the_log_is_bounded_by_count() -> None:
    rec = Recovery(RecoveryConfig(max_buffered_packets=3))
    offsets = [emit(rec, str(i), now=0.0) for i in range(6)]
    assert len(rec) == 3
    save(rec, now=0.0)
    assert rec.restore("p1", offsets[1], namespace="/", now=0.0) is None  # "2" fell out: a gap
    save(rec, now=0.0)
    restored = rec.restore("p1", offsets[2], namespace="/", now=0.0)
    assert restored is not None and [p.split("@")[0] for p in restored.missed] == ["3", "4", "5"]


@pytest.mark.parametrize(
    "pid, offset",
    [
        ("unknown", "1"),
        (None, "1"),
        ("p1", None),
        ("p1", 1),
        ("p1", ""),
        ("p1", "x"),
        ("p1", "-1"),
        ("p1", "１"),  # a non-ASCII digit
        ("p1", "1" * 21),
        ("p1", "99"),  # never issued
        (["p1"], "1"),
    ],
)
def test_unknown_pid_or_bad_offset_means_a_fresh_session(pid: Any, offset: Any) -> None:
    rec = Recovery(RecoveryConfig())
    emit(rec, "a", now=0.0)
    emit(rec, "b", now=0.0)
    save(rec, now=0.0)
    assert rec.restore(pid, offset, namespace="/", now=1.0) is None


def test_another_namespace_cannot_take_the_session() -> None:
    rec = Recovery(RecoveryConfig())
    offset = emit(rec, "a", now=0.0)
    save(rec, ns="/admin", now=0.0)
    assert rec.restore("p1", offset, namespace="/", now=0.1) is None
    assert rec.restore("p1", offset, namespace="/admin", now=0.1) is not None


def test_saving_again_replaces_and_refreshes() -> None:
    rec = Recovery(RecoveryConfig(max_disconnection_duration=10))
    offset = emit(rec, "a", now=0.0)
    save(rec, pid="p1", now=0.0, data={"v": 1})
    save(rec, pid="p2", sid="s2", rooms=("s2",), now=1.0)
    save(rec, pid="p1", now=9.0, data={"v": 2})  # recovered, then lost again
    rec.expire(now=10.5)
    assert set(rec.pending()) == {"p2", "p1"}
    restored = rec.restore("p1", offset, namespace="/", now=18.0)
    assert restored is not None and restored.session.data == {"v": 2}


def test_pids_are_unguessable_and_distinct() -> None:
    pids = {Recovery.new_pid() for _ in range(100)}
    assert len(pids) == 100
    assert all(len(p) >= 20 for p in pids)


def test_recoverable_reasons_are_nodes() -> None:
    assert RECOVERABLE_REASONS == {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
    assert "client namespace disconnect" not in RECOVERABLE_REASONS
    assert "server namespace disconnect" not in RECOVERABLE_REASONS
    assert "send buffer full" not in RECOVERABLE_REASONS


def test_option_parsing() -> None:
    assert RecoveryConfig.from_option(None) is None
    assert RecoveryConfig.from_option(False) is None
    assert RecoveryConfig.from_option(True) == RecoveryConfig()
    config = RecoveryConfig.from_option({"max_disconnection_duration": 5, "skip_middlewares": False})
    assert config == RecoveryConfig(max_disconnection_duration=5, skip_middlewares=False)
    with pytest.raises(TypeError, match="max_disconnection_duration, in seconds"):
        RecoveryConfig.from_option({"maxDisconnectionDuration": 120000})
    with pytest.raises(TypeError):
        RecoveryConfig.from_option("yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RecoveryConfig(max_disconnection_duration=0)
    with pytest.raises(ValueError):
        RecoveryConfig(max_buffered_packets=0)
