"""Running a coroutine eagerly: step it by hand, and only if it suspends, finish it in a task.

Most handlers (and uvicorn's ``send()`` when the socket is writable) complete without ever
suspending; stepping them by hand saves the task, and the task switch, that awaiting them in a new
task would cost on every message.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any

__all__ = ["resume", "HandlerTask", "AVAILABLE"]


async def resume(coro: Any, yielded: Any, context: contextvars.Context | None = None) -> Any:
    """Finish a coroutine that was started by hand (``coro.send(None)``) and suspended on ``yielded``;
    each step runs in ``context`` when given.

    This is what a Task does for its coroutine: wait for the future it yielded, then step it again;
    the coroutine reads the future's result (or exception) itself when it resumes. A cancellation of
    the running task cancels that future and is thrown into the coroutine.
    """
    send, throw = coro.send, coro.throw
    if context is not None:
        send, throw = functools.partial(context.run, send), functools.partial(context.run, throw)
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
            if asyncio.isfuture(yielded) and not yielded.done():
                yielded.cancel()
            try:
                yielded = throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = send(None)
        except StopIteration as stop:
            return stop.value


# -- handlers inside a task of their own, stepped eagerly ---------------------------------------------

try:  # (private, and the same from Python 3.7 to 3.13: what eager tasks use to make a task current)
    from asyncio.tasks import _current_tasks, _enter_task, _leave_task  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - another Python
    _current_tasks = _enter_task = _leave_task = None  # type: ignore[assignment]

#: Whether :class:`HandlerTask` can work on this Python.
AVAILABLE = _enter_task is not None


class HandlerTask:
    """A long-lived task in which one socket's ``async def`` handlers run, one at a time.

    asyncio code expects to run inside a task: ``asyncio.timeout()``, ``wait_for`` (3.12+), anyio's
    cancel scopes and the database drivers built on them ask ``current_task()`` for the task to
    cancel, and keep it until they are done. A new task per message would cost a pass of the loop
    and more than the rest of a message's handling; so each socket keeps one task, parked between
    handlers. :meth:`step` runs a handler's first step right away with that task made current; a
    handler that completes there (most do) costs nothing more, and one that suspends goes on inside
    the same task (:meth:`drive`), so ``current_task()`` stays the same from start to end and a
    cancellation of that task reaches the handler. Each handler runs in a copy of the caller's
    contextvars context, as a task would.
    """

    __slots__ = ("loop", "task", "_wake", "_work", "_stopped")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._wake: asyncio.Future[None] | None = None
        self._work: tuple[Any, Any, Any, Any] | None = None
        self._stopped = False
        self.task: asyncio.Task[None] = loop.create_task(self._main())

    def step(self, coro: Any, context: Any) -> Any:
        """Run ``coro``'s first step inside this task; return what it yielded (StopIteration when it
        finished). The task current until now (the caller's, if any) is current again afterwards."""
        loop = self.loop
        task = self.task
        current = _current_tasks.get(loop)
        if current is None:  # (a protocol callback: the common case on Roomcast's direct lane)
            _current_tasks[loop] = task
            try:
                return context.run(coro.send, None)
            finally:
                del _current_tasks[loop]
        _leave_task(loop, current)
        _enter_task(loop, task)
        try:
            return context.run(coro.send, None)
        finally:
            _leave_task(loop, task)
            _enter_task(loop, current)

    def drive(self, coro: Any, yielded: Any, context: Any, after: Any) -> None:
        """Finish, inside this task, a coroutine :meth:`step` left suspended on ``yielded``; then call
        ``after(True, result)`` or ``after(False, exception)``. One at a time: the caller runs a
        socket's handlers in turn."""
        self._work = (coro, yielded, context, after)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def stop(self) -> None:
        """End the task once it is idle (the socket is gone)."""
        self._stopped = True
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _main(self) -> None:
        while True:
            work, self._work = self._work, None
            if work is None:
                if self._stopped:
                    return
                self._wake = self.loop.create_future()
                try:
                    await self._wake
                finally:  # (cancelled while idle: the task ends, and the socket makes another when needed)
                    self._wake = None
                continue
            coro, yielded, context, after = work
            try:
                value = await resume(coro, yielded, context)
            except BaseException as exc:  # (the handler's outcome: nothing of it may end the task)
                after(False, exc)
            else:
                after(True, value)
