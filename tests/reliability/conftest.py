"""Fixtures for the reliability tests (see harness.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import roomcast
from tests.reliability.harness import App, LiveServer, Recorder, echo_server, propagating_uvicorn_logs


class ServerLogs:
    """The log records of this test's servers.

    Servers of other test modules may still be running in this process (they stop in the background)
    and log too: only records made on this test's server threads, its handler threads or the test's
    own thread count.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture, threads: set[str]) -> None:
        self.caplog = caplog
        self.threads = threads

    @property
    def records(self) -> list[logging.LogRecord]:
        return [
            r for r in self.caplog.records
            if r.threadName in self.threads or r.threadName == threading.main_thread().name
            or r.threadName.startswith("roomcast-handler")
        ]


@pytest.fixture
def _server_threads() -> set[str]:
    return set()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, _server_threads: set[str]) -> Iterator[ServerLogs]:
    """Every record of the test: roomcast's from INFO, everybody's (uvicorn, asyncio) from WARNING."""
    caplog.set_level(logging.INFO, logger="roomcast")
    with propagating_uvicorn_logs():
        yield ServerLogs(caplog, _server_threads)


@pytest.fixture
def serve(_server_threads: set[str]) -> Iterator[Callable[..., App]]:
    """``serve(sio=None, uvicorn=None, wrap=None, **server_options)``: an echo server (or ``sio``) under
    uvicorn; ``wrap`` wraps the ASGI app (a middleware), ``uvicorn`` are uvicorn's options."""
    started: list[LiveServer] = []

    def start(
        sio: roomcast.AsyncServer | None = None,
        uvicorn: dict[str, Any] | None = None,
        wrap: Callable[[Any], Any] | None = None,
        **options: Any,
    ) -> App:
        if sio is None:
            sio, rec = echo_server(**options)
        else:
            rec = Recorder()
        asgi: Any = roomcast.ASGIApp(sio)
        live = LiveServer(wrap(asgi) if wrap is not None else asgi, **(uvicorn or {}))
        _server_threads.add(live.thread.name)
        live.start()
        started.append(live)
        return App(live, sio, rec)

    yield start
    for live in started:
        live.stop()
