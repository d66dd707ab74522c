"""Fixtures for the server tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from livesrv import LiveServer


@pytest.fixture
def live() -> Iterator[Callable[[Any], LiveServer]]:
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app, lifespan="on").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
