"""The worker threads that run plain ``def`` handlers.

A thread pool lighter than ``concurrent.futures.ThreadPoolExecutor`` for the one thing the server asks
of it, many times a second: run ``fn(*args)`` on some thread, soon. No future is allocated per call (the
caller reports the result itself), and a call never waits behind a busy thread: each submitted call
either reserves a thread that is waiting for work or starts a new one, up to ``max_threads``. Past that
bound, calls queue until a thread frees up.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Workers"]

logger = logging.getLogger("roomcast")


class Workers:
    """Up to ``max_threads`` daemon threads taking calls from one queue, started on demand."""

    def __init__(self, max_threads: int = 64, name: str = "roomcast-handler") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Threads blocked waiting for work that no submitted call has reserved yet.
        self._idle = 0

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread. Exceptions are the caller's to catch inside ``fn``;
        one that escapes is logged."""
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        get = self._queue.get
        lock = self._lock
        while True:
            item = get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:
                logger.exception("a call on a worker thread failed")
            with lock:
                self._idle += 1

    def shutdown(self, wait: bool = False) -> None:
        """Stop every thread once the calls already queued have run."""
        threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()
        self._threads.clear()
