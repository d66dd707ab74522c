"""The handler thread pool (roomcast.asyncio.workers): calls run soon, quick calls share a thread
instead of waking one each, and a call that blocks never holds back the calls queued behind it."""

from __future__ import annotations

import threading
import time

import pytest

from roomcast.asyncio.workers import Workers

TIMEOUT = 5.0


def test_every_call_runs_once() -> None:
    pool = Workers(max_threads=4)
    done: list[int] = []
    finished = threading.Event()

    def call(n: int) -> None:
        done.append(n)
        if len(done) == 1000:
            finished.set()

    for n in range(1000):
        pool.submit(call, n)
    assert finished.wait(TIMEOUT)
    assert sorted(done) == list(range(1000))
    pool.shutdown(wait=True)


def test_quick_calls_share_one_thread() -> None:
    """Calls submitted while a worker runs go to it: no thread is woken (or started) for each."""
    pool = Workers(max_threads=8, stall=1.0)
    names: set[str] = set()
    finished = threading.Event()
    count = 0

    def call() -> None:
        nonlocal count
        names.add(threading.current_thread().name)
        count += 1
        if count == 500:
            finished.set()

    for _ in range(500):
        pool.submit(call)
    assert finished.wait(TIMEOUT)
    assert len(names) == 1, names
    assert pool.threads == 1
    pool.shutdown(wait=True)


@pytest.mark.parametrize("gap", [0.0, 0.05])
def test_a_blocking_call_does_not_hold_back_the_next(gap: float) -> None:
    """Submitted right behind a call that blocks (gap 0: the monitor must notice; 0.05 s: the submit
    sees that no call started for a while), the quick call still runs while the first one blocks."""
    pool = Workers(max_threads=4, stall=0.002)
    release = threading.Event()
    blocked = threading.Event()
    quick_done = threading.Event()

    def blocker() -> None:
        blocked.set()
        release.wait(TIMEOUT)

    pool.submit(blocker)
    if gap:
        assert blocked.wait(TIMEOUT)
        time.sleep(gap)  # the condition under test: a call has been running for longer than ``stall``
    pool.submit(quick_done.set)
    try:
        assert quick_done.wait(1.0), "the quick call waited behind the blocked one"
        assert not release.is_set()
    finally:
        release.set()
    pool.shutdown(wait=True)


def test_many_blocked_calls_get_threads_up_to_the_bound() -> None:
    pool = Workers(max_threads=3, stall=0.002)
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocker() -> None:
        started.release()
        release.wait(TIMEOUT)

    for _ in range(5):
        pool.submit(blocker)
    try:
        for _ in range(3):
            assert started.acquire(timeout=TIMEOUT)
        assert not started.acquire(timeout=0.1), "more threads than max_threads"
        assert pool.threads == 3
    finally:
        release.set()
    for _ in range(2):
        assert started.acquire(timeout=TIMEOUT)  # the last two run once threads free up
    pool.shutdown(wait=True)


def test_an_exception_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = Workers(max_threads=1)
    after = threading.Event()

    def fail() -> None:
        raise ValueError("boom")

    pool.submit(fail)
    pool.submit(after.set)
    assert after.wait(TIMEOUT)
    assert any("worker thread failed" in r.getMessage() for r in caplog.records)
    pool.shutdown(wait=True)
