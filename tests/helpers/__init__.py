"""Shared test helpers: requirement checks, server processes, the Node client peer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (tests/helpers/ is two levels below it)."""


def uvicorn_ws() -> str:
    """The ``ws`` option the tests give uvicorn: ``ROOMCAST_TEST_WS`` if set (``websockets-sansio``
    runs the suite over plain ASGI, as under a bare ``uvicorn app:app``), else Roomcast's protocol
    with the direct lane, as ``roomcast run`` and ``socketio.run`` serve."""
    import os

    return os.environ.get("ROOMCAST_TEST_WS") or "roomcast.asyncio.uvicorn_ws:WebSocketProtocol"


def uvicorn_http() -> str:
    """The ``http`` option the tests give uvicorn: with ``ROOMCAST_TEST_WS`` set, uvicorn's own (a bare
    ``uvicorn app:app``), else Roomcast's corked httptools protocol, as ``roomcast run`` serves."""
    import os

    return "auto" if os.environ.get("ROOMCAST_TEST_WS") else "roomcast.asyncio.uvicorn_http:HttpProtocol"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s.

    For conditions that no event announces (a message reaching a network client, a server's
    internal state); the interval is short and the deadline is the only bound.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.005)
