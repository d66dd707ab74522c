"""A live Roomcast server under uvicorn, in a thread of the test process, so tests can look inside."""

from __future__ import annotations

from typing import Any

import roomcast
from tests.helpers import wait_until
from tests.helpers.live import LiveServer

__all__ = ["LiveServer", "wait_until", "make_server"]


def make_server(**options: Any) -> roomcast.AsyncServer:
    return roomcast.AsyncServer(**options)
