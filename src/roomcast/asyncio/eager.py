"""Running a coroutine eagerly: step it by hand, and only if it suspends, finish it in a task.

Most handlers (and uvicorn's ``send()`` when the socket is writable) complete without ever
suspending; stepping them by hand saves the task, and the task switch, that awaiting them in a new
task would cost on every message.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["resume"]


async def resume(coro: Any, yielded: Any) -> Any:
    """Finish a coroutine that was started by hand (``coro.send(None)``) and suspended on ``yielded``.

    This is what a Task does for its coroutine: wait for the future it yielded, then step it again;
    the coroutine reads the future's result (or exception) itself when it resumes.
    """
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            elif asyncio.isfuture(yielded):
                yielded._asyncio_future_blocking = False
                await asyncio.wait((yielded,))
            else:
                raise RuntimeError(f"coroutine yielded {yielded!r}, which asyncio cannot wait for")
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value
