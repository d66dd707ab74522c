"""The servers under test, and their processes.

Every server is the same tiny app (bench/apps/) started as its own process, pinned to one core
with ``taskset`` so that it never competes with the load generator on the other core. A server
that fails to start is reported by the caller, not fatal; every process started here is killed
at the end, whatever happens.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
HOST = "127.0.0.1"

Runtime = Literal["project", "peers", "node"]
Role = Literal["roomcast", "peer", "floor"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """One server under test: how to start it, and what it can do."""

    name: str
    """Its name on the command line (``--servers``) and in the JSON."""
    label: str
    """Its name in the tables."""
    role: Role
    runtime: Runtime
    """Which interpreter runs it: the project's virtualenv, the peers' one, or node."""
    args: tuple[str, ...]
    """Script and arguments after the interpreter; ``{port}`` is replaced."""
    polling: bool = True
    """Whether it serves HTTP long-polling (the bare floor only speaks WebSocket)."""
    needs_import: str | None = None
    """A module that must import in its interpreter, else the server is skipped (work in progress)."""


def _app(name: str) -> str:
    return str(APPS / name)


SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(name="roomcast-async", label="Roomcast, async def handlers", role="roomcast", runtime="project",
               args=(_app("roomcast_async.py"), "--port", "{port}")),
    ServerSpec(name="roomcast-flask", label="Roomcast, Flask facade, def handlers", role="roomcast",
               runtime="project", args=(_app("flask_app.py"), "--impl", "roomcast", "--port", "{port}"),
               needs_import="roomcast.flask"),
    ServerSpec(name="node", label="Node socket.io", role="peer", runtime="node",
               args=(_app("node_server.js"), "{port}")),
    ServerSpec(name="python-socketio", label="python-socketio, uvicorn", role="peer", runtime="peers",
               args=(_app("python_socketio_app.py"), "--port", "{port}")),
    ServerSpec(name="fsio-gevent", label="Flask-SocketIO, gevent", role="peer", runtime="peers",
               args=(_app("flask_app.py"), "--impl", "flask-socketio", "--async-mode", "gevent",
                     "--port", "{port}")),
    ServerSpec(name="fsio-threading", label="Flask-SocketIO, threading", role="peer", runtime="peers",
               args=(_app("flask_app.py"), "--impl", "flask-socketio", "--async-mode", "threading",
                     "--port", "{port}")),
    ServerSpec(name="bare-asgi", label="bare ASGI WebSocket, uvicorn (floor)", role="floor", runtime="project",
               args=(_app("bare_asgi.py"), "--port", "{port}"), polling=False),
    ServerSpec(name="bare-asgi-thread", label="bare ASGI, via worker thread (floor)", role="floor",
               runtime="project", args=(_app("bare_asgi.py"), "--thread", "--port", "{port}"), polling=False),
)

BY_NAME = {spec.name: spec for spec in SERVERS}


class ServerFailed(RuntimeError):
    """A server did not start (or died); the message ends with the tail of its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    """``argv`` run on core ``cpu`` (no pinning when cpu is None)."""
    return argv if cpu is None else ["taskset", "-c", cpu, *argv]


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


_live: set[subprocess.Popen[bytes] | subprocess.Popen[str]] = set()


def track(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Remember ``proc`` (started in its own session) so that :func:`kill_all` ends it."""
    _live.add(proc)


def kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM to the process group we started, then SIGKILL after ``grace`` seconds."""
    _live.discard(proc)
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_all() -> None:
    for proc in list(_live):
        kill(proc, grace=2.0)


atexit.register(kill_all)


def _exit_on_signal(signum: int, _frame: object) -> None:
    kill_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _exit_on_signal)


def interpreter(runtime: Runtime, peers_python: Path | None) -> str:
    if runtime == "project":
        return sys.executable
    if runtime == "node":
        return shutil.which("node") or "node"
    if peers_python is None:
        raise ServerFailed("the peers' virtualenv is not available")
    return str(peers_python)


class ServerProcess:
    """One running server: start, wait until it accepts connections, sample it, stop."""

    def __init__(self, spec: ServerSpec, python: str, *, cpu: str | None, log_dir: Path) -> None:
        self.spec = spec
        self.cpu = cpu
        self.port = free_port()
        self.log_path = log_dir / f"{spec.name}-{self.port}.log"
        args = [arg.replace("{port}", str(self.port)) for arg in spec.args]
        self.argv = pinned(cpu, [python, *args])
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once its port accepts connections."""
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", NODE_ENV="production")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        track(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"exited with status {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"not listening after {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all threads) so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # The command name (field 2) may hold spaces: the fields we want follow its ')'.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        """Resident set size in KiB (VmRSS in /proc/<pid>/status)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise ServerFailed("no VmRSS in /proc status")

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        if self.proc is not None:
            kill(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
