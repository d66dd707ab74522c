"""A live Roomcast server under uvicorn, in a thread of the test process, so tests can look inside."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

import roomcast
from tests.helpers import uvicorn_ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """Runs an ASGI app with uvicorn on a free port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                ws=uvicorn_ws())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def run(self, coro: Any, timeout: float = 5) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        loop = self.server_loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    @property
    def server_loop(self) -> asyncio.AbstractEventLoop:
        for server in self.server.servers:
            return server.get_loop()  # type: ignore[no-any-return]
        raise RuntimeError("no loop")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(interval)


def make_server(**options: Any) -> roomcast.AsyncServer:
    return roomcast.AsyncServer(**options)
