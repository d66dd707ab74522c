"""Fixtures for the connection state recovery tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.server.livesrv import LiveServer


@pytest.fixture
def live() -> Iterator[Callable[[Any], LiveServer]]:
    """Start ASGI apps under uvicorn in this process (tests/server/livesrv.py); stopped afterwards."""
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app, lifespan="on").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
