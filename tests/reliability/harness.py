"""Helpers for the reliability tests: a live server in a thread, clean-log checks, hand-driven clients.

Everything here talks to a real uvicorn over 127.0.0.1. The server runs in a thread of the test
process, so tests can look inside it (``live.run_sync``) and its log records reach ``caplog``: uvicorn
is started with ``log_config=None`` and its loggers are made to propagate, so an "Exception in ASGI
application" from uvicorn itself counts as much as one of ours.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

import roomcast
from tests.helpers import live, wait_until

T = TypeVar("T")
TIMEOUT = 5.0


# -- the live server -------------------------------------------------------------------------------


class LiveServer(live.LiveServer):
    """The shared live server, with uvicorn's log records left to propagate (``log_config=None``),
    so that tests see them through caplog and ``propagating_uvicorn_logs``."""

    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(app, log_config=None, **options)


class Recorder:
    """Events from server handlers (called on the server's thread), awaited from the test thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[tuple[Any, ...]] = []

    def add(self, *event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return [e for e in self.events if e[0] == kind]

    def wait(self, kind: str, count: int = 1, timeout: float = TIMEOUT, **match: Any) -> list[tuple[Any, ...]]:
        """Wait for ``count`` events of ``kind`` (``sid=``/``reason=`` narrow them down)."""
        fields = {"sid": 1, "reason": 2}

        def found() -> list[tuple[Any, ...]]:
            return [
                e for e in self.events
                if e[0] == kind and all(len(e) > fields[k] and e[fields[k]] == v for k, v in match.items())
            ]

        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count} {kind!r} {match} within {timeout} s: {self.events[-20:]}")
                self._cond.wait(left)
            return found()


class App:
    """An AsyncServer with an echo handler, recording connects and disconnects, under uvicorn."""

    def __init__(self, live: LiveServer, sio: roomcast.AsyncServer, rec: Recorder) -> None:
        self.live = live
        self.sio = sio
        self.rec = rec
        self.url = live.url + "/socket.io/"

    def ws_url(self, **query: str) -> str:
        params = {"EIO": "4", "transport": "websocket", **query}
        return self.live.ws_url + "/socket.io/?" + "&".join(f"{k}={v}" for k, v in params.items())

    @property
    def engine(self) -> Any:
        assert self.sio.engine is not None
        return self.sio.engine

    def connection_count(self) -> int:
        return int(self.live.run_sync(lambda: len(self.engine.connections)))


def echo_server(**options: Any) -> tuple[roomcast.AsyncServer, Recorder]:
    """A server whose ``echo`` event answers with its arguments; connects and disconnects recorded."""
    sio = roomcast.AsyncServer(**options)
    rec = Recorder()

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        rec.add("connect", sid, environ)

    @sio.event
    async def disconnect(sid: str, reason: str) -> None:
        rec.add("disconnect", sid, reason)

    @sio.on("echo")
    async def echo(sid: str, *args: Any) -> Any:
        return args

    return sio, rec


# -- logs ------------------------------------------------------------------------------------------


@contextmanager
def propagating_uvicorn_logs() -> Iterator[None]:
    """Let uvicorn's records reach the root logger (another test's dictConfig may have stopped them)."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
    saved = {name: logging.getLogger(name).propagate for name in names}
    for name in names:
        logging.getLogger(name).propagate = True
    try:
        yield
    finally:
        for name, value in saved.items():
            logging.getLogger(name).propagate = value


def log_problems(records: list[logging.LogRecord]) -> list[str]:
    """What is wrong with a run's log: tracebacks, errors, or long or multi-line roomcast lines."""
    problems = []
    for r in records:
        text = r.getMessage()
        if r.exc_info or r.exc_text or r.stack_info:
            problems.append(f"traceback from {r.name}: {text}")
        elif r.levelno >= logging.ERROR:
            problems.append(f"error from {r.name}: {text}")
        elif r.name.startswith("roomcast") and ("\n" in text or len(text) > 240):
            problems.append(f"not one concise line: {text!r}")
    return problems


def roomcast_lines(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name.startswith("roomcast") and r.levelno >= logging.INFO]


# -- hand-driven Socket.IO clients -----------------------------------------------------------------


def ws_open(app: App, namespace: str | None = "/", **query: str) -> ClientConnection:
    """A WebSocket session, through its Engine.IO handshake and (unless None) a namespace CONNECT."""
    ws = ws_connect(app.ws_url(**query), open_timeout=TIMEOUT, max_size=None, max_queue=None).__enter__()
    frame = ws.recv(TIMEOUT)
    assert isinstance(frame, str) and frame.startswith("0"), frame
    if namespace is not None:
        ws.send("40" if namespace == "/" else f"40{namespace},")
        reply = ws_recv_message(ws)
        assert reply.startswith("0"), reply
    return ws


def ws_recv_message(ws: ClientConnection, timeout: float = TIMEOUT) -> str:
    """The next Engine.IO message (``4...``) as its Socket.IO text, answering pings meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        frame = ws.recv(max(0.01, deadline - time.monotonic()))
        if frame == "2":
            ws.send("3")
            continue
        assert isinstance(frame, str) and frame.startswith("4"), frame
        return frame[1:]


def ws_closed(ws: ClientConnection, timeout: float = TIMEOUT, into: list[Any] | None = None) -> int | None:
    """Read until the server closes the WebSocket (frames read go to ``into``); return its close code.
    Fails on a timeout."""
    return ws_close_frame(ws, timeout, into)[0]


def ws_close_frame(
    ws: ClientConnection, timeout: float = TIMEOUT, into: list[Any] | None = None
) -> tuple[int | None, str]:
    """Like :func:`ws_closed`, returning the close frame's code and reason."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the server did not close the WebSocket")
            try:
                frame = ws.recv(left)
            except TimeoutError:
                raise AssertionError("the server did not close the WebSocket") from None
            if frame == "2":
                ws.send("3")
            elif into is not None:
                into.append(frame)
    except ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, "")


class Polling:
    """A hand-driven long-polling session."""

    def __init__(self, app: App, **headers: str) -> None:
        self.app = app
        self.http = httpx.Client(timeout=TIMEOUT, headers=headers)
        self.sid = ""

    def __enter__(self) -> Polling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def handshake(self) -> dict[str, Any]:
        r = self.http.get(self.app.url, params={"EIO": "4", "transport": "polling"})
        assert r.status_code == 200 and r.text.startswith("0"), (r.status_code, r.text)
        info: dict[str, Any] = json.loads(r.text[1:])
        self.sid = info["sid"]
        return info

    def params(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    def get(self, timeout: float = TIMEOUT) -> httpx.Response:
        return self.http.get(self.app.url, params=self.params(), timeout=timeout)

    def post(self, body: str | bytes) -> httpx.Response:
        content = body.encode() if isinstance(body, str) else body
        return self.http.post(self.app.url, params=self.params(), content=content)

    def connect(self, namespace: str = "/") -> None:
        """Handshake, then join ``namespace``."""
        self.handshake()
        r = self.post("40" if namespace == "/" else f"40{namespace},")
        assert r.status_code == 200 and r.text == "ok", r.text
        packets = self.get().text.split("\x1e")
        assert any(p.startswith("40") for p in packets), packets


class Canary(threading.Thread):
    """A well-behaved client that echoes throughout a test and measures every round trip.

    Over ``transport`` ("websocket" or "polling") it emits ``echo`` with an ack, numbered, one after
    the other, and answers pings; a missing or late answer (``max_gap``) is a failure.
    """

    def __init__(self, app: App, transport: str = "websocket", max_gap: float = 1.0, interval: float = 0.02) -> None:
        super().__init__(name=f"canary-{transport}", daemon=True)
        self.app = app
        #: Seconds between round trips.
        self.interval = interval
        self.transport = transport
        self.max_gap = max_gap
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.round_trips: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            if self.transport == "websocket":
                self._run_websocket()
            else:
                self._run_polling()
        except Exception as exc:  # reported by check()
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.ready.set()

    def _run_websocket(self) -> None:
        ws = ws_open(self.app)
        self.ready.set()
        n = 0
        with ws:
            while not self.stopping.is_set():
                n += 1
                start = time.monotonic()
                ws.send(f'42{n}["echo",{n}]')
                reply = ws_recv_message(ws, self.max_gap)
                while reply.startswith("2"):  # a broadcast the test sends everyone: not ours to check
                    reply = ws_recv_message(ws, self.max_gap - (time.monotonic() - start))
                if reply != f"3{n}[{n}]":
                    self.errors.append(f"round trip {n}: unexpected {reply!r}")
                    return
                self.round_trips.append(time.monotonic() - start)
                self.stopping.wait(self.interval)

    def _run_polling(self) -> None:
        with Polling(self.app) as p:
            p.connect()
            self.ready.set()
            n = 0
            while not self.stopping.is_set():
                n += 1
                start = time.monotonic()
                r = p.post(f'42{n}["echo",{n}]')
                if r.status_code != 200:
                    self.errors.append(f"round trip {n}: POST {r.status_code} {r.text}")
                    return
                answer = None
                while answer is None:
                    got = p.get(timeout=self.max_gap)
                    for packet in got.text.split("\x1e"):
                        if packet == "2":
                            p.post("3")
                        elif packet == f"43{n}[{n}]":
                            answer = packet
                        elif packet != "6" and not packet.startswith("42"):
                            self.errors.append(f"round trip {n}: unexpected {packet!r}")
                            return
                    if time.monotonic() - start > self.max_gap:
                        self.errors.append(f"round trip {n}: no answer within {self.max_gap} s")
                        return
                self.round_trips.append(time.monotonic() - start)
                self.stopping.wait(self.interval)
            p.post("1")  # leave as a client should, so the server can count its sessions

    def __enter__(self) -> Canary:
        self.start()
        assert self.ready.wait(TIMEOUT), "the canary did not connect"
        assert not self.errors, self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(TIMEOUT)

    def check(self, more: int = 3) -> None:
        """The canary saw no gap: every round trip answered in order and in time, and ``more`` round
        trips complete after this call (the server still serves it after whatever the test did)."""
        target = len(self.round_trips) + more
        wait_until(lambda: len(self.round_trips) >= target or self.errors or not self.is_alive(),
                   what="canary round trips")
        self.stopping.set()
        self.join(TIMEOUT)
        assert not self.is_alive(), "the canary hung"
        assert not self.errors, f"{self.transport} canary: {self.errors}"
        assert len(self.round_trips) >= target, f"{self.transport} canary: only {len(self.round_trips)} round trips"
        assert max(self.round_trips) < self.max_gap


# -- raw WebSocket over a TCP socket ---------------------------------------------------------------


def raw_ws(port: int, path: str, *, rcvbuf: int | None = None, headers: dict[str, str] | None = None) -> socket.socket:
    """Open a WebSocket by hand (HTTP upgrade over a plain socket); returns the socket after the 101.

    ``rcvbuf`` shrinks the socket's receive buffer (set before connecting, so the kernel honours it):
    a client that stops reading then fills quickly.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed during the handshake: {head!r}")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status:
        sock.close()
        raise ConnectionError(status.decode("latin-1"))
    return sock


def ws_frame(payload: bytes, opcode: int = 0x1, *, fin: bool = True, length: int | None = None) -> bytes:
    """One masked client frame; ``length`` overrides the declared length (for truncated frames)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one unmasked server frame: (opcode, payload)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    return b0 & 0x0F, exactly(n)


def read_until_closed(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Read everything until the server closes the TCP connection (fails on a timeout)."""
    sock.settimeout(timeout)
    data = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise AssertionError("the server did not close the connection")
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return bytes(data)
        except TimeoutError:
            raise AssertionError(f"the server did not close the connection (got {bytes(data[-60:])!r})") from None
        if not chunk:
            return bytes(data)
        data += chunk


# -- a server in its own process -------------------------------------------------------------------


class ServerProcess:
    """tests/reliability/server_proc.py in a subprocess; its stdout lines collected as they come."""

    def __init__(self, **options: Any) -> None:
        import subprocess
        import sys
        from pathlib import Path

        script = Path(__file__).with_name("server_proc.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._cond = threading.Condition()
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        port_line = self.wait_line("port ", timeout=15)
        self.port = int(port_line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, prefix: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line {prefix!r} from the server: {self.lines[-30:]}")
                self._cond.wait(min(left, 0.1))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)


def await_close(sock: socket.socket, timeout: float = TIMEOUT) -> int | None:
    """Read server frames until a close frame (answered, as a client must; its code is returned) or
    the end of the connection (None). Fails on a timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            opcode, payload = read_frame(sock)
            if opcode == 0x8:
                try:
                    sock.sendall(ws_frame(payload[:2], opcode=0x8))
                except OSError:
                    pass
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    except (ConnectionError, OSError) as exc:
        if isinstance(exc, TimeoutError):
            raise AssertionError("the server neither sent a close frame nor closed the connection") from None
        return None
