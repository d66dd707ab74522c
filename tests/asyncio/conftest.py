"""Live ASGI apps under uvicorn for tests/asyncio: a server thread per app, on a free 127.0.0.1 port.

The server runs in a thread of the test process, so tests can record handler calls in plain lists and
run coroutines on the server's loop (``live.call(eio.send(sid, "x"))``). Tests drive it with real
sockets from the test thread (httpx, the websockets sync client).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import uvicorn

from tests.helpers import uvicorn_ws

T = TypeVar("T")

START_TIMEOUT = 10.0


class LiveServer:
    """An ASGI app served by uvicorn in a background thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.app = app
        # Bind first and hand the socket to uvicorn: the port is ours, no race for a "free" port.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            **{"ws": uvicorn_ws(), **options},
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name=f"uvicorn-{self.port}", daemon=True
        )

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {START_TIMEOUT} s")
            time.sleep(0.005)  # uvicorn gives no other readiness signal; polled under a deadline
        return self

    def request_stop(self) -> None:
        """Ask uvicorn to exit (it takes a few of its 0.1 s ticks); :meth:`join` waits for it."""
        self.server.should_exit = True

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        self.sock.close()
        if self.thread.is_alive():  # pragma: no cover - a hung server is a test failure
            raise RuntimeError(f"uvicorn did not stop within {timeout} s")

    def stop(self) -> None:
        self.request_stop()
        self.join()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        for server in self.server.servers:
            return server.get_loop()
        raise RuntimeError("the server is not running")

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run_sync(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run a plain function on the server's loop (where the I/O layer's state lives)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper(), timeout)


_stopping: list[LiveServer] = []


@pytest.fixture(scope="session", autouse=True)
def _join_stopped_servers() -> Iterator[None]:
    """Servers stop in the background while later tests run; all must be gone by the end."""
    yield
    for live in _stopping:
        live.join()


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """``serve(app, **uvicorn_options)`` starts ``app``; every server is told to stop at the end of
    the test (uvicorn's shutdown takes ~0.2 s, so the test does not wait for it)."""
    servers: list[LiveServer] = []

    def start(app: Any, **options: Any) -> LiveServer:
        live = LiveServer(app, **options)
        servers.append(live)
        return live.start()

    yield start
    for live in servers:
        live.request_stop()
        _stopping.append(live)
