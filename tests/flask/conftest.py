"""Fixtures for the Flask facade's tests: fresh apps, a live uvicorn server in a thread, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import uvicorn_ws
from tests.helpers.servers import free_port


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "a condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds.

    For conditions that no event announces (a message reaching a network client); the interval is
    short and the deadline is the only bound.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def app() -> Any:
    """A fresh Flask app with a secret key (sessions work)."""
    from flask import Flask

    flask_app = Flask(__name__)
    flask_app.config["SECRET_KEY"] = "test-secret"
    flask_app.config["TESTING"] = True
    return flask_app


class LiveServer:
    """An ASGI app under uvicorn on a free 127.0.0.1 port, in a daemon thread of the test process."""

    def __init__(self, asgi_app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(asgi_app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                ws=uvicorn_ws())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 10, "uvicorn to start")
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live() -> Iterator[Callable[[Any], LiveServer]]:
    """``live(asgi_app)`` serves the app until the end of the test; returns the LiveServer."""
    started: list[LiveServer] = []

    def start(asgi_app: Any) -> LiveServer:
        server = LiveServer(asgi_app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
