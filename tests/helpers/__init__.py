"""Shared test helpers: requirement checks, server processes, the Node client peer."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (tests/helpers/ is two levels below it)."""


def uvicorn_ws() -> str:
    """The ``ws`` option the tests give uvicorn: ``ROOMCAST_TEST_WS`` if set (``websockets-sansio``
    runs the suite over plain ASGI, as under a bare ``uvicorn app:app``), else Roomcast's protocol
    with the direct lane, as ``roomcast run`` and ``socketio.run`` serve."""
    import os

    return os.environ.get("ROOMCAST_TEST_WS") or "roomcast.asyncio.uvicorn_ws:WebSocketProtocol"
