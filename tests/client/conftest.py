"""Fixtures of the client suite: the peer servers (Roomcast under uvicorn, Node's socket.io 4.8) and the
transport paths, so that every test runs against both servers over every path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from tests.helpers import ROOT
from tests.helpers.require import require_node, require_roomcast_server
from tests.helpers.servers import NodeServer, RoomcastServer, ServerProcess

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}


def make_server(kind: str) -> ServerProcess:
    """A stopped server of ``kind`` ("roomcast" or "node") running the client suite's app."""
    if kind == "node":
        require_node()
        return NodeServer(ROOT / "tests" / "client" / "node_server.js", name="node-client-suite")
    require_roomcast_server()
    # A held long-poll GET would make uvicorn's graceful shutdown wait for it: restarts must be quick.
    return RoomcastServer(
        "tests.client.app:app",
        impl="roomcast",
        name="uvicorn-client-suite",
        extra_args=["--timeout-graceful-shutdown", "1"],
    )


@pytest.fixture(scope="module", params=["roomcast", "node"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """One server per kind for the whole module."""
    with make_server(request.param) as proc:
        yield proc


@pytest.fixture(params=list(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


def run(coro: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
    """Run an async test body with a deadline, so that no test can hang."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(condition: Callable[[], bool], timeout: float = 5, what: str = "condition") -> None:
    """Wait until ``condition()`` holds, checking every 10 ms, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
