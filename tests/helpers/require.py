"""Checks for components a test needs (node, npm peers, Redis, Roomcast's server).

A missing component skips the test with a clear reason, except under CI=true,
where it fails it: CI must not turn green by silently skipping. conftest.py also
turns any other skip into a failure under CI.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import socket

import pytest

from tests.helpers import ROOT


def in_ci() -> bool:
    """Whether we run under CI (env CI=true), where missing components are failures."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip (or under CI fail) the current test unless ``condition`` holds."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"missing requirement under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def node_path() -> str | None:
    """The node executable, or None."""
    return shutil.which("node")


def require_node() -> str:
    """Node.js plus the npm peers (socket.io, socket.io-client) in node_modules."""
    node = node_path()
    require(node is not None, "node is not installed (Debian: apt-get install nodejs)")
    for package in ("socket.io", "socket.io-client"):
        require(
            (ROOT / "node_modules" / package / "package.json").is_file(),
            f"npm package {package} is missing: run `npm ci` (or `make test`) at the repository root",
        )
    assert node is not None
    return node


def redis_available(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """Whether a Redis server answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def require_redis(host: str = "127.0.0.1", port: int = 6379) -> None:
    """A Redis server at host:port (.ci/run starts one)."""
    require(
        redis_available(host, port),
        f"no Redis server answers at {host}:{port} (start one with redis-server, or use .ci/run)",
    )


def require_module(name: str, hint: str = "") -> None:
    """An importable Python module."""
    try:
        importlib.import_module(name)
    except ImportError as exc:
        require(False, f"Python module {name} is not importable ({exc}){'; ' + hint if hint else ''}")


def roomcast_server_available() -> bool:
    """Whether Roomcast's asyncio server exists yet (roomcast.AsyncServer and ASGIApp)."""
    try:
        roomcast = importlib.import_module("roomcast")
    except ImportError:
        return False
    return hasattr(roomcast, "AsyncServer") and hasattr(roomcast, "ASGIApp")


def interop_impl() -> str:
    """Which Python server tests/apps/interop_app.py runs (env INTEROP_IMPL)."""
    return os.environ.get("INTEROP_IMPL", "roomcast")


def require_roomcast_server() -> None:
    """The Python server under test: Roomcast's, or python-socketio's when INTEROP_IMPL says so."""
    impl = interop_impl()
    if impl == "python-socketio":
        require_module("socketio", "install python-socketio (test extras)")
        return
    require(
        roomcast_server_available(),
        "roomcast.AsyncServer / roomcast.ASGIApp do not exist yet "
        "(set INTEROP_IMPL=python-socketio to run the interop suite against python-socketio)",
    )
