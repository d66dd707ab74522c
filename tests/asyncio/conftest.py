"""Live ASGI apps under uvicorn for tests/asyncio: a server thread per app, on a free 127.0.0.1 port.

The server runs in a thread of the test process, so tests can record handler calls in plain lists and
run coroutines on the server's loop (``live.call(eio.send(sid, "x"))``). Tests drive it with real
sockets from the test thread (httpx, the websockets sync client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.live import LiveServer

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
