"""Fixtures for the Flask facade's tests: fresh apps, a live uvicorn server in a thread, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.live import LiveServer


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


@pytest.fixture
def live() -> Iterator[Callable[[Any], LiveServer]]:
    """``live(asgi_app)`` serves the app until the end of the test; returns the LiveServer."""
    started: list[LiveServer] = []

    def start(asgi_app: Any) -> LiveServer:
        server = LiveServer(asgi_app, lifespan="on").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
