"""A live Roomcast server under uvicorn, in a thread of the test process, so tests can look inside."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import roomcast
from tests.helpers.live import LiveServer

__all__ = ["LiveServer", "wait_until", "make_server"]


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
