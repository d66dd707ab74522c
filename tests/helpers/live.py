"""A live ASGI server for tests: uvicorn in a daemon thread of the test process, on 127.0.0.1.

Tests that need to look inside the server (its sessions, its loop) run it in-process with this;
tests that need a separate process use tests/helpers/servers.py.

    live = LiveServer(app, lifespan="on").start()
    live.call(sio.emit("news", 1))       # a coroutine run on the server's loop
    live.stop()
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvicorn

from tests.helpers import uvicorn_http, uvicorn_ws

T = TypeVar("T")

#: Seconds uvicorn gets to start, and a call on its loop to finish, unless told otherwise.
START_TIMEOUT = 10.0
CALL_TIMEOUT = 5.0


class LiveServer:
    """``app`` under uvicorn, on a socket bound before the server starts (so the port is ours, with
    no race for a "free" one). ``options`` go to ``uvicorn.Config``; by default uvicorn logs
    warnings, runs no lifespan, waits at most 2 s for open requests at shutdown and serves
    WebSockets with the protocol the tests are set to (``tests.helpers.uvicorn_ws``)."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        options.setdefault("log_level", "warning")
        options.setdefault("lifespan", "off")
        options.setdefault("timeout_graceful_shutdown", 2)
        options.setdefault("ws", uvicorn_ws())
        options.setdefault("http", uvicorn_http())
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
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

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run_sync(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run a plain function on the server's loop (where the server's state lives)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper(), timeout)

    @property
    def asgi_tasks(self) -> int:
        """How many ASGI application calls uvicorn is running (one per open request or WebSocket)."""
        return len(self.server.server_state.tasks)
