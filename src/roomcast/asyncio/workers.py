"""The worker threads that run plain ``def`` handlers.

Handing a call to a thread costs little; waking a thread for it costs a lot (a futex wake, a context
switch, a GIL hand-off, each time), and under load most calls arrive while a worker is already
running. So a call is only handed to a running worker's queue, without waking anyone, while that
worker is making progress; a parked worker is woken (or a new thread started, up to ``max_threads``)
only when no worker is running, or when the running ones have stopped making progress:

- at submit, when no worker has started a call for ``stall`` seconds (all of them are busy in long
  calls, a ``time.sleep`` or a slow query), and
- by a monitor thread, awake only while calls wait, which adds a worker whenever a whole ``stall``
  interval passes with calls waiting and none finished.

So a handler that blocks delays the calls queued behind it by a few milliseconds, never by its own
duration, and a busy server runs its handlers in batches on one thread, with one wake-up per batch.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Workers"]

logger = logging.getLogger("roomcast")

_monotonic = time.monotonic


class Workers:
    """Up to ``max_threads`` daemon threads taking calls from one queue, woken only when needed."""

    def __init__(self, max_threads: int = 64, name: str = "roomcast-handler", stall: float = 0.002) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.name = name
        self.stall = stall
        self._pending: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # One lock per parked thread, held while it sleeps: releasing it wakes that thread.
        self._parked: list[threading.Lock] = []
        self._running = 0  # threads not parked
        self._done = 0  # calls finished, the monitor's measure of progress
        self._last_start = 0.0  # when a worker last started a call, or was woken for one
        self._watching = threading.Event()  # set while calls wait behind running workers
        self._monitor: threading.Thread | None = None
        self._closed = False

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread. Exceptions are the caller's to catch inside ``fn``;
        one that escapes is logged."""
        self.submit_many([(fn, args)])

    def submit_many(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        """:meth:`submit` for several calls at once: one wake-up at most for all of them."""
        with self._lock:
            self._pending.extend(calls)
            if self._running == 0 or _monotonic() - self._last_start > self.stall:
                self._wake()
            elif not self._watching.is_set():
                self._watch()

    def _wake(self) -> None:
        """Get one more thread running (the lock is held); it counts as a call just started."""
        self._last_start = _monotonic()
        if self._parked:
            self._running += 1
            self._parked.pop().release()
        elif len(self._threads) < self.max_threads and not self._closed:
            self._running += 1
            thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _watch(self) -> None:
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._monitor_loop, name=f"{self.name}-monitor", daemon=True)
            self._monitor.start()
        self._watching.set()

    def _work(self) -> None:
        pending = self._pending
        lock = self._lock
        wake = threading.Lock()
        wake.acquire()
        while True:
            try:
                fn, args = pending.popleft()
            except IndexError:
                with lock:
                    if pending:
                        continue
                    if self._closed:
                        self._running -= 1
                        return
                    self._running -= 1
                    self._parked.append(wake)
                wake.acquire()  # until a submit (or shutdown) releases it
                continue
            self._last_start = _monotonic()
            try:
                fn(*args)
            except BaseException:
                logger.exception("a call on a worker thread failed")
            self._done += 1

    def _monitor_loop(self) -> None:
        """While calls wait, add a worker each ``stall`` interval in which no call finished."""
        seen = -1
        while True:
            self._watching.wait()
            if self._closed:
                return
            time.sleep(self.stall)
            with self._lock:
                if not self._pending:
                    self._watching.clear()
                    seen = -1
                    continue
                if self._done == seen or self._running == 0:
                    self._wake()
                seen = self._done

    def shutdown(self, wait: bool = False) -> None:
        """Stop every thread once the calls already queued have run."""
        with self._lock:
            self._closed = True
            while self._parked:
                self._parked.pop().release()
        self._watching.set()
        threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
        self._threads.clear()
