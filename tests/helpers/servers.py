"""Servers in subprocesses on free 127.0.0.1 ports, for tests that need a real socket.

``RoomcastServer`` runs an ASGI app under uvicorn, ``NodeServer`` runs Node's
official socket.io server with the interop app (tests/interop/node/server.js).
Both wait until the port accepts connections (with a deadline), can stop and
start again on the same port (reconnection tests), and keep their output in a
log file that conftest.py attaches to the report of any failing test.

    with NodeServer() as server:
        ...  # server.url == "http://127.0.0.1:<port>"
        server.restart()
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.helpers import ROOT, uvicorn_http, uvicorn_ws

HOST = "127.0.0.1"

# Processes currently running, so a failing test can show their output.
_live: dict[int, LogSource] = {}


class LogSource:
    """Something whose output a failing test's report should include."""

    name: str

    def log_size(self) -> int:
        """Current size of the output, to show only what a test produced."""
        raise NotImplementedError

    def log_text(self, since: int = 0) -> str:
        """Output from offset ``since`` on."""
        raise NotImplementedError


def register_log(source: LogSource) -> None:
    """Make ``source`` part of failure reports until ``unregister_log``."""
    _live[id(source)] = source


def unregister_log(source: LogSource) -> None:
    _live.pop(id(source), None)


def live_logs() -> list[LogSource]:
    """Log sources of everything currently running."""
    return list(_live.values())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ServerStartError(RuntimeError):
    """The server process exited or did not accept connections before the deadline."""


class ServerProcess(LogSource):
    """A server subprocess listening on ``port``; output goes to a log file.

    Subclasses provide ``argv()``. ``start()`` returns once the port accepts
    connections; ``stop()`` terminates, then kills after ``stop_timeout``.
    """

    impl: str = ""
    """Which server implementation runs: "node", "roomcast" or "python-socketio"."""

    def __init__(
        self,
        *,
        name: str,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.port = port if port is not None else free_port()
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        """Exit status of the last run (negative: killed by that signal)."""
        # One log file across restarts, so a report shows every run.
        self._log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        """Base URL for clients, e.g. http://127.0.0.1:8123."""
        return f"http://{HOST}:{self.port}"

    def argv(self) -> Sequence[str]:
        raise NotImplementedError

    def full_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process and wait until it accepts connections."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if port_accepts(self.port):
            raise ServerStartError(f"{self.name}: port {self.port} is already taken by another process")
        self._log.write(f"--- {self.name}: {' '.join(self.argv())}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            list(self.argv()),
            cwd=ROOT,
            env=self.full_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        register_log(self)
        deadline = time.monotonic() + self.start_timeout
        while not port_accepts(self.port):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                unregister_log(self)
                raise ServerStartError(f"{self.name} exited with {code} before listening:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} did not accept connections on port {self.port} "
                    f"within {self.start_timeout}s:\n{self.log_text()}"
                )
            # Polling a condition under a deadline: the child gives no other signal.
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Terminate the process (SIGTERM), kill it if it outlives ``stop_timeout``.

        ``kill=True`` sends SIGKILL at once: a crash, no goodbye to clients.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(self.stop_timeout)
        self.returncode = proc.returncode
        self._log.write(f"--- {self.name} exited with {proc.returncode}\n".encode())
        self._log.flush()
        unregister_log(self)

    def restart(self, *, kill: bool = False) -> None:
        """Stop (see ``stop``), then start again on the same port."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        """Stop and remove the log file."""
        self.stop()
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log_text(self, since: int = 0) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {self.url} {state}>"


def _python_path_for_children() -> str:
    """PYTHONPATH for child Pythons: the repo root (for ``tests.apps``) and ``src``.

    ``src`` is what an editable install points at anyway; adding it makes the
    child work even before ``pip install -e .`` ran.
    """
    parts = [str(ROOT), str(ROOT / "src")]
    existing = os.environ.get("PYTHONPATH")
    if existing:
        parts.append(existing)
    return os.pathsep.join(parts)


class RoomcastServer(ServerProcess):
    """An ASGI app under uvicorn: ``python -m uvicorn <app> --host 127.0.0.1 --port P``.

    ``graceful_shutdown`` bounds how long a stop waits for open requests.

    ``impl`` sets INTEROP_IMPL for tests/apps/interop_app.py ("roomcast" or
    "python-socketio"); by default the environment's value (or "roomcast") is kept.
    """

    def __init__(
        self,
        app: str = "tests.apps.interop_app:app",
        *,
        impl: str | None = None,
        name: str | None = None,
        extra_args: Sequence[str] = (),
        graceful_shutdown: int = 1,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.graceful_shutdown = graceful_shutdown
        self.extra_args = list(extra_args)
        child_env = dict(env or {})
        if impl is not None:
            child_env["INTEROP_IMPL"] = impl
        self.impl = child_env.get("INTEROP_IMPL", os.environ.get("INTEROP_IMPL", "roomcast"))
        child_env["PYTHONPATH"] = _python_path_for_children()
        super().__init__(
            name=name or f"uvicorn-{self.impl}",
            port=port,
            env=child_env,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )

    def argv(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            # A pending long-poll would otherwise hold a graceful shutdown
            # until the poll ends (up to pingInterval, 25 s).
            "--timeout-graceful-shutdown",
            str(self.graceful_shutdown),
            "--ws",
            uvicorn_ws(),
            "--http",
            uvicorn_http(),
            *self.extra_args,
        ]


class NodeServer(ServerProcess):
    """Node's socket.io 4.8 server running ``script`` (the interop app by default)."""

    def __init__(
        self,
        script: str | os.PathLike[str] = ROOT / "tests" / "interop" / "node" / "server.js",
        *,
        node: str = "node",
        name: str = "node-socket.io",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.script = str(script)
        self.node = node
        self.impl = "node"
        super().__init__(name=name, port=port, env=env, start_timeout=start_timeout, stop_timeout=stop_timeout)

    def argv(self) -> Sequence[str]:
        return [self.node, self.script, str(self.port)]
