"""Fixtures for the Flask facade's tests: fresh apps, a live uvicorn server in a thread, waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.helpers.live import LiveServer

__all__ = ["wait_until"]


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
