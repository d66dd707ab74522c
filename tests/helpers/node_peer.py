"""A Python driver for the official socket.io-client, running under node.

One ``NodePeer`` is one node process (tests/interop/node/client_runner.js)
holding any number of client sockets. Commands go as JSON lines on its stdin;
everything the sockets see comes back as JSON lines (reports) and is kept, in
order, in ``peer.transcript``. Binary values are ``bytes`` on the Python side
and ``{"$bin": base64}`` on the pipe.

    peer = NodePeer(); peer.start()
    c = peer.connect(server.url, transports=["websocket"])
    assert peer.call(c, "echo", 1, b"\\x00") == [1, b"\\x00"]
    peer.emit(c, "echo", "hi")
    peer.wait_for((c, "event", "echo"))

Every wait has a deadline (default 5 s) and raises ``PeerError`` with the
client's recent transcript when it passes.

Report types (all carry "client"): open {transport}, connect {sid, engine, transport},
upgrade {transport}, connect_error {message, data}, disconnect {reason},
event {event, args, with_ack}, replied {event, args}, ack {req, args},
reconnect_attempt {attempt}, reconnect {attempt}.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Union

from tests.helpers import ROOT
from tests.helpers.servers import LogSource, register_log, unregister_log

RUNNER = ROOT / "tests" / "interop" / "node" / "client_runner.js"

Report = dict[str, Any]
Match = Union[Callable[[Report], bool], tuple[str, ...], Mapping[str, Any]]


class PeerError(AssertionError):
    """A command failed, a wait timed out, or the node process died."""


def encode(value: Any) -> Any:
    """bytes -> {"$bin": base64}, recursively (what client_runner.js decodes)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bin": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    """{"$bin": base64} -> bytes, recursively."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and "$bin" in value:
            return base64.b64decode(value["$bin"])
        return {k: decode(v) for k, v in value.items()}
    return value


def _matcher(match: Match) -> Callable[[Report], bool]:
    """Turn a match spec into a predicate.

    A tuple is (client, type) or (client, type, event) where the third item is
    the event name for "event"/"replied" reports; a mapping must be a subset of
    the report; a callable is used as is.
    """
    if callable(match):
        return match
    if isinstance(match, tuple):
        if not 2 <= len(match) <= 3:
            raise ValueError(f"tuple match must be (client, type[, event]), not {match!r}")
        expected: dict[str, Any] = {"client": match[0], "type": match[1]}
        if len(match) == 3:
            expected["event"] = match[2]
        match = expected
    items = dict(match).items()
    return lambda report: all(report.get(k, _MISSING) == v for k, v in items)


_MISSING = object()


class NodePeer(LogSource):
    """One node process running socket.io-client sockets on command."""

    def __init__(self, *, node: str | None = None, default_timeout: float = 5.0) -> None:
        self.name = "node-client"
        self.node = node or shutil.which("node") or "node"
        self.default_timeout = default_timeout
        self.transcript: list[Report] = []
        self.versions: dict[str, str] = {}
        self._cond = threading.Condition()
        self._results: dict[int, Report] = {}
        self._req = itertools.count(1)
        self._client_numbers = itertools.count(1)
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._dead = False
        self._stderr = tempfile.TemporaryFile()
        self._tracked: list[str] = []

    # -- process ------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> NodePeer:
        """Start node and wait for the runner's "ready" report."""
        self._proc = subprocess.Popen(
            [self.node, str(RUNNER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="node-peer-reader", daemon=True)
        self._reader.start()
        register_log(self)
        ready = self.wait_for({"type": "ready"}, timeout=timeout)
        self.versions = ready.get("versions", {})
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                report = decode(json.loads(line))
            except ValueError:
                report = {"type": "garbage", "line": line}
            with self._cond:
                if report.get("type") == "result":
                    self._results[report.get("req") or 0] = report
                else:
                    report["n"] = len(self.transcript)
                    self.transcript.append(report)
                self._cond.notify_all()
        with self._cond:
            self._dead = True
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect everything and stop the node process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.close()  # the runner exits when its stdin ends
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout)
        finally:
            if self._reader is not None:
                self._reader.join(timeout)
            unregister_log(self)

    def __enter__(self) -> NodePeer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    # LogSource: failure reports show the transcript (and node's stderr).
    def log_size(self) -> int:
        return len(self.transcript)

    def log_text(self, since: int = 0) -> str:
        lines = [json.dumps(encode(r), default=repr) for r in self.transcript[since:]]
        if len(lines) > 300:
            lines = [f"... {len(lines) - 300} earlier reports omitted"] + lines[-300:]
        stderr = self.stderr_text()
        return "\n".join(lines) + (f"\n--- node stderr:\n{stderr}" if stderr else "")

    # -- commands -----------------------------------------------------------

    def command(self, cmd: str, timeout: float | None = None, **fields: Any) -> Report:
        """Send one command and wait for its result; raise PeerError if it failed."""
        if self._proc is None or self._proc.stdin is None:
            raise PeerError("node peer is not running")
        req = next(self._req)
        line = json.dumps({"cmd": cmd, "req": req, **encode(fields)})
        # Write without holding the lock: the reader thread must stay free to
        # drain node's stdout, or a large exchange could block both pipes.
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        with self._cond:
            deadline = time.monotonic() + (timeout or self.default_timeout)
            while req not in self._results:
                self._wait_until(deadline, f"result of {cmd} (req {req})")
            result = self._results.pop(req)
        if not result.get("ok"):
            raise PeerError(f"{cmd} failed: {result.get('error')}")
        result["req"] = req
        return result

    def connect(
        self,
        url: str | None = None,
        namespace: str = "/",
        *,
        transports: Iterable[str] | None = None,
        auth: Any = None,
        query: Mapping[str, str] | None = None,
        reconnection: bool = False,
        share: str | None = None,
        name: str = "c",
        client: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        **opts: Any,
    ) -> str:
        """Open a client socket and return its id (``client``, or ``<name>-<n>``).

        ``share`` multiplexes the namespace on an existing client's connection
        (``url`` and manager options are then ignored). Other keyword options go
        to socket.io-client's Manager as given (e.g. ``reconnectionDelay=50``).
        With ``wait`` (default), return once connected and raise PeerError on
        connect_error; otherwise return at once and let the test wait.
        """
        client = client or f"{name}-{next(self._client_numbers)}"
        options: dict[str, Any] = {"reconnection": reconnection, **opts}
        if transports is not None:
            options["transports"] = list(transports)
        if query is not None:
            options["query"] = dict(query)
        if auth is not None:
            options["auth"] = auth
        if share is None and url is None:
            raise ValueError("connect needs a url unless it shares another client's connection")
        mark = self.mark()
        self.command("connect", client=client, url=url, namespace=namespace, opts=options, share=share)
        self._tracked.append(client)
        if wait:
            first = self.wait_for(
                lambda r: r.get("client") == client and r["type"] in ("connect", "connect_error"),
                timeout=timeout,
                after=mark,
                what=f"{client} to connect to {namespace}",
            )
            if first["type"] == "connect_error":
                raise PeerError(f"{client} could not connect to {namespace}: {first}")
        return client

    def emit(self, client: str, event: str, *args: Any) -> None:
        """Emit an event without ack."""
        self.command("emit", client=client, event=event, args=list(args), ack=False)

    def call(self, client: str, event: str, *args: Any, timeout: float | None = None) -> list[Any]:
        """Emit an event with an ack callback and return the ack's arguments."""
        req = self.command("emit", client=client, event=event, args=list(args), ack=True)["req"]
        report = self.wait_for({"type": "ack", "client": client, "req": req}, timeout=timeout)
        return list(report["args"])

    def auto_reply(self, client: str, event: str, *args: Any) -> None:
        """Answer the server's acked ``event`` with ``args`` from now on."""
        self.command("auto_reply", client=client, event=event, args=list(args))

    def disconnect(self, client: str, *, wait: bool = True, timeout: float | None = None) -> None:
        """socket.disconnect(); with ``wait``, until the disconnect is reported."""
        mark = self.mark()
        connected = self.state(client)["connected"]
        self.command("disconnect", client=client)
        if wait and connected:
            self.wait_for((client, "disconnect"), timeout=timeout, after=mark)

    def open(self, client: str) -> None:
        """socket.connect() again, e.g. after a disconnect."""
        self.command("open", client=client)

    def close_engine(self, client: str) -> None:
        """Close the Engine.IO connection under the client (the Manager may reconnect)."""
        self.command("close_engine", client=client)

    def state(self, client: str) -> Report:
        """{"connected": bool, "id": sid or None, "transport": name or None}."""
        return self.command("state", client=client)

    def close_clients(self) -> None:
        """Disconnect every client opened since the last call (per-test cleanup)."""
        tracked, self._tracked = self._tracked, []
        for client in tracked:
            if self._proc is None or self._dead:
                return
            self.command("disconnect", client=client)

    # -- transcript ---------------------------------------------------------

    def mark(self) -> int:
        """A position in the transcript, for ``wait_for(after=...)``."""
        with self._cond:
            return len(self.transcript)

    def events(self, client: str | None = None, type: str | None = None, after: int = 0) -> list[Report]:
        """The transcript, optionally for one client and/or one report type."""
        with self._cond:
            reports = self.transcript[after:]
        return [
            r for r in reports if (client is None or r.get("client") == client) and (type is None or r["type"] == type)
        ]

    def received(self, client: str, event: str, after: int = 0) -> list[list[Any]]:
        """Argument lists of every ``event`` the client received."""
        return [r["args"] for r in self.events(client, "event", after) if r["event"] == event]

    def wait_for(
        self, match: Match, *, timeout: float | None = None, after: int = 0, what: str | None = None
    ) -> Report:
        """The first report (at or after position ``after``) matching ``match``.

        Waits until one arrives; raises PeerError after ``timeout`` seconds
        (``what`` describes the wait in that error).
        """
        predicate = _matcher(match)
        deadline = time.monotonic() + (timeout or self.default_timeout)
        with self._cond:
            position = after
            while True:
                for report in self.transcript[position:]:
                    if predicate(report):
                        return report
                position = len(self.transcript)
                self._wait_until(deadline, what or f"a report matching {match!r}")

    def wait_for_count(
        self, match: Match, count: int, *, timeout: float | None = None, after: int = 0
    ) -> list[Report]:
        """Wait until ``count`` reports match; return them."""
        predicate = _matcher(match)
        deadline = time.monotonic() + (timeout or self.default_timeout)
        with self._cond:
            while True:
                found = [r for r in self.transcript[after:] if predicate(r)]
                if len(found) >= count:
                    return found
                self._wait_until(deadline, f"{count} reports matching {match!r} (have {len(found)})")

    def _wait_until(self, deadline: float, what: str) -> None:
        """Wait on the condition (lock held) for news, or raise at the deadline."""
        if self._dead:
            raise PeerError(f"node peer exited while waiting for {what}:\n{self.stderr_text()}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            recent = "\n".join(json.dumps(encode(r), default=repr) for r in self.transcript[-30:])
            raise PeerError(f"timed out waiting for {what}; last reports:\n{recent}")
        self._cond.wait(remaining)
