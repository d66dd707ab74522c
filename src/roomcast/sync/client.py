"""The blocking Socket.IO client: a thin facade over :mod:`roomcast.asyncio.client`.

Each :class:`Client` (and :class:`SimpleClient`) owns an asyncio event loop running in a daemon thread;
every method hands a coroutine of the asyncio client to that loop and waits for its result. No protocol
or connection logic lives here. Plain-function handlers run on worker threads (in arrival order), so a
handler may call the blocking methods, which wait on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..asyncio.client import AsyncClient, Reason
from ..asyncio.simple_client import AsyncSimpleClient

__all__ = ["Client", "ClientNamespace", "SimpleClient", "Reason"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread, stopped when its owner is collected."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its exceptions are raised here)."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("blocking client methods can't be called from the client's own event loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the loop thread (for reads of loop-owned state)."""
        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())

    @staticmethod
    def stop(loop: asyncio.AbstractEventLoop) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)


def _start(owner: object, name: str) -> _LoopThread:
    runner = _LoopThread(name)
    weakref.finalize(owner, _LoopThread.stop, runner.loop)
    return runner


class Client:
    """A blocking Socket.IO client (python-socketio's ``Client`` API); options as :class:`AsyncClient`."""

    reason = Reason

    def __init__(self, **kwargs: Any) -> None:
        self._runner = _start(self, "roomcast-client")
        self._aio = AsyncClient(_threaded_handlers=True, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Options and read-only state (reconnection, handlers, connection_url, ...) live on the asyncio client.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._aio, name)

    # registration: plain data, shared with the asyncio client
    def on(self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """Register a handler (see :meth:`AsyncClient.on`)."""
        return self._aio.on(event, handler, namespace)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function (see :meth:`AsyncClient.event`)."""
        return self._aio.event(*args, **kwargs)

    def register_namespace(self, namespace_handler: ClientNamespace) -> None:
        """Register a class-based namespace (a :class:`ClientNamespace`)."""
        self._aio.register_namespace(namespace_handler)
        namespace_handler.client = self

    @property
    def connected(self) -> bool:
        return self._aio.connected

    @property
    def namespaces(self) -> dict[str, str]:
        return self._aio.namespaces

    @property
    def sid(self) -> str | None:
        return self._aio.sid

    def get_sid(self, namespace: str | None = None) -> str | None:
        return self._aio.get_sid(namespace)

    def recovered(self, namespace: str | None = None) -> bool:
        """Whether the last connection of ``namespace`` restored the previous session."""
        return self._aio.recovered(namespace)

    def transport(self) -> str | None:
        return self._aio.transport()

    def connect(self, url: str, headers: dict[str, str] | None = None, auth: Any = None, transports: Any = None,
                namespaces: Any = None, socketio_path: str = "socket.io", wait: bool = True,
                wait_timeout: float = 1, retry: bool = False) -> None:
        """Connect (see :meth:`AsyncClient.connect`); a callable ``auth`` may be a plain function."""
        self._runner.run(self._aio.connect(url, headers, auth, transports, namespaces, socketio_path, wait,
                                           wait_timeout, retry))

    def emit(self, event: str, data: Any = None, namespace: str | None = None,
             callback: Callable[..., Any] | None = None) -> None:
        """Emit ``event``; ``callback`` runs on a worker thread with the server's ack arguments."""
        self._runner.run(self._aio.emit(event, data, namespace, callback))

    def send(self, data: Any, namespace: str | None = None, callback: Callable[..., Any] | None = None) -> None:
        self._runner.run(self._aio.send(data, namespace, callback))

    def call(self, event: str, data: Any = None, namespace: str | None = None, timeout: float = 60) -> Any:
        """Emit ``event`` and wait for the ack (see :meth:`AsyncClient.call`)."""
        return self._runner.run(self._aio.call(event, data, namespace, timeout))

    def disconnect(self) -> None:
        self._runner.run(self._aio.disconnect())

    def shutdown(self) -> None:
        """python-socketio's name for stopping the client: disconnect, or stop reconnecting."""
        self.disconnect()

    def is_asyncio_based(self) -> bool:
        """False: this client blocks (python-socketio's test of a client class)."""
        return False

    def wait(self) -> None:
        """Block until the client is disconnected for good."""
        self._runner.run(self._aio.wait())

    def sleep(self, seconds: float = 0) -> None:
        time.sleep(seconds)

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target`` in a daemon thread (started); returns the thread."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread


class ClientNamespace:
    """A class-based client namespace for :class:`Client`: ``on_<event>`` methods handle its events."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.client: Client | None = None

    def _set_client(self, client: Any) -> None:
        pass  # the blocking Client sets itself in register_namespace

    def _cli(self) -> Client:
        if self.client is None:
            raise RuntimeError("namespace is not registered with a client")
        return self.client

    def trigger_event(self, event: str, *args: Any) -> Any:
        handler = getattr(self, f"on_{event}", None)
        return handler(*args) if handler is not None else None

    def emit(self, event: str, data: Any = None, namespace: str | None = None,
             callback: Callable[..., Any] | None = None) -> None:
        self._cli().emit(event, data, namespace or self.namespace, callback)

    def send(self, data: Any, namespace: str | None = None, callback: Callable[..., Any] | None = None) -> None:
        self._cli().send(data, namespace or self.namespace, callback)

    def call(self, event: str, data: Any = None, namespace: str | None = None, timeout: float = 60) -> Any:
        return self._cli().call(event, data, namespace or self.namespace, timeout)

    def disconnect(self) -> None:
        self._cli().disconnect()


class SimpleClient:
    """The blocking simple client (see :class:`AsyncSimpleClient`); a context manager."""

    def __init__(self, **client_options: Any) -> None:
        self._runner = _start(self, "roomcast-simple-client")
        self._aio = self._runner.call(functools.partial(AsyncSimpleClient, **client_options))

    def connect(self, url: str, headers: dict[str, str] | None = None, auth: Any = None, transports: Any = None,
                namespace: str = "/", socketio_path: str = "socket.io", wait_timeout: float = 5) -> None:
        self._runner.run(self._aio.connect(url, headers, auth, transports, namespace, socketio_path, wait_timeout))

    @property
    def sid(self) -> str | None:
        return self._aio.sid

    @property
    def transport(self) -> str | None:
        return self._aio.transport

    @property
    def connected(self) -> bool:
        return self._aio.connected

    def emit(self, event: str, data: Any = None) -> None:
        self._runner.run(self._aio.emit(event, data))

    def call(self, event: str, data: Any = None, timeout: float = 60) -> Any:
        return self._runner.run(self._aio.call(event, data, timeout))

    def receive(self, timeout: float | None = None) -> list[Any]:
        """The next event as ``[event, *args]`` (TimeoutError, DisconnectedError as the async one)."""
        return self._runner.run(self._aio.receive(timeout))

    def disconnect(self) -> None:
        self._runner.run(self._aio.disconnect())

    def __enter__(self) -> SimpleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
