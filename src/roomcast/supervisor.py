"""``roomcast run --workers N``: N server processes on one port, each client kept on one of them.

A Socket.IO client over HTTP long-polling sends each request on a connection of its own choosing,
and the upgrade to WebSocket on yet another; every one of them must reach the process that holds its
session. Behind one port shared by N processes (uvicorn's ``--workers``, gunicorn's ``-w``) the
kernel spreads connections at random, so a load balancer with sticky sessions was needed in front.

Here the supervisor process itself is that front, for one machine:

- it owns the listening socket and accepts every connection;
- it peeks at the first request line of each (without reading it: the bytes stay in the socket),
  takes the ``sid`` from its query string, and passes the connection's file descriptor to the worker
  that owns that session (``SCM_RIGHTS`` over a Unix socket pair), or, without a ``sid`` (a new
  session, a page, any other request), to the next worker in turn;
- each worker serves the connections it is handed with uvicorn, as ``roomcast run`` does; its
  session ids start with its index (``"2.Xw..."``), which is how the supervisor routes them;
- a worker closes the connection of a request that named no session (the next request on it may
  be any worker's), and answers a request for another worker's session, which a browser may send
  on a connection kept alive for another tab, with a 307 to the same URL and a close (see
  ``EngineIOApp._route_in_worker``). A session's own connections stay alive; a WebSocket, once
  routed, stays with its worker.

The supervisor restarts a worker that dies (its sessions are gone: their clients reconnect, and the
new sessions are routed to a live worker), and passes SIGINT/SIGTERM on to the workers, which close
their sessions as a single server does. Emits, rooms and broadcasts reach the clients of every worker
only through a message queue (``client_manager=AsyncRedisManager(...)``, Flask-SocketIO's
``message_queue=``): a worker warns at startup when its server has none.

TLS can't be routed this way (the request line is encrypted): terminate it in front (nginx, a
cloud load balancer), or run one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from .asyncio.asgi import query_dict

__all__ = [
    "Supervisor", "WORKER_ENV", "worker_index", "sid_prefix", "owner_of", "route", "channel_fd", "make_server",
    "warn_without_queue",
]

logger = logging.getLogger("roomcast")

#: Set in each worker's environment: ``"INDEX:FD"``, its index and the descriptor of its end of the
#: Unix socket pair on which the supervisor passes it connections.
WORKER_ENV = "ROOMCAST_WORKER"

#: How long the supervisor waits for a connection's request line before handing it on unrouted.
_PEEK_TIMEOUT = 5.0
#: The most bytes peeked at: a request line longer than this goes to the next worker in turn.
_PEEK_BYTES = 8192
#: Seconds the workers get to close their sessions after SIGTERM before they are killed.
_STOP_GRACE = 10.0
#: A worker that dies within this many seconds of its start is restarted after a pause, not at once...
_QUICK_DEATH = 1.0
#: ...and after this many such deaths in a row, the supervisor gives up (the app fails to load, say).
_GIVE_UP = 3


def worker_index() -> int | None:
    """This process's worker index under ``roomcast run --workers N``; None otherwise."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return None
    try:
        return int(value.partition(":")[0])
    except ValueError:
        return None


def sid_prefix() -> str:
    """What this process's Engine.IO session ids start with: ``"INDEX."`` in a worker, else nothing."""
    index = worker_index()
    return "" if index is None else f"{index}."


def owner_of(sid: str, workers: int) -> int | None:
    """The index of the worker whose session ``sid`` is (see :func:`sid_prefix`); None if none is."""
    head, dot, _ = sid.partition(".")
    if not dot or not head.isdigit():
        return None
    index = int(head)
    return index if index < workers else None


def route(head: bytes, workers: int) -> int | None:
    """The worker a connection goes to, from the first bytes of its first request; None when they
    name no session (the caller picks the next worker in turn)."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    target = parts[1]
    _, mark, query = target.partition(b"?")
    if not mark or b"sid=" not in query:
        return None
    sid = query_dict({"query_string": query}).get("sid")  # (as the worker's engine will read it)
    return None if sid is None else owner_of(sid, workers)


class _Worker:
    """One worker process and the supervisor's end of its Unix socket pair."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: socket.socket | None = None
        self.started = 0.0
        self.quick_deaths = 0  # deaths in a row within _QUICK_DEATH of starting


class Supervisor:
    """Run ``argv`` (a ``roomcast run`` command line without ``--workers``) as ``workers``
    processes behind one listening socket on ``host``:``port``, routing connections by session."""

    def __init__(self, argv: list[str], host: str, port: int, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.argv = argv
        self.host = host
        self.port = port
        self.workers = [_Worker(index) for index in range(workers)]
        self._turn = itertools.cycle(range(workers))
        self._stopping = False
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Connections whose request line is awaited, each with the timer of its deadline.
        self._peeking: dict[socket.socket, asyncio.TimerHandle] = {}
        self._stop: asyncio.Future[None] | None = None
        #: Set when a worker kept failing at startup: the exit status is then 1.
        self.failed = False

    # -- processes --------------------------------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env[WORKER_ENV] = f"{worker.index}:{theirs.fileno()}"
        env["ROOMCAST_WORKERS"] = str(len(self.workers))
        # In a session of its own: a Ctrl+C in the terminal reaches the supervisor alone, which then
        # stops each worker once (a second signal would make uvicorn skip its graceful shutdown).
        # A worker whose supervisor is gone sees its channel close, and stops too.
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "roomcast", *self.argv], env=env, pass_fds=(theirs.fileno(),),
            start_new_session=True,
        )
        theirs.close()
        ours.setblocking(False)
        worker.channel = ours
        worker.started = time.monotonic()
        assert self._loop is not None
        # The worker never writes: its end becomes readable (end of file) when it exits.
        self._loop.add_reader(ours.fileno(), self._lost, worker)

    def _lost(self, worker: _Worker) -> None:
        """A worker's channel closed (it exited): stop handing it connections, and replace it."""
        self._drop_channel(worker)
        self._reap()

    def _drop_channel(self, worker: _Worker) -> None:
        channel, worker.channel = worker.channel, None
        if channel is not None:
            assert self._loop is not None
            self._loop.remove_reader(channel.fileno())
            channel.close()

    def _reap(self) -> None:
        """Restart the workers that died (unless stopping)."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            self._drop_channel(worker)
            worker.process = None
            if self._stopping:
                continue
            quick = time.monotonic() - worker.started < _QUICK_DEATH
            worker.quick_deaths = worker.quick_deaths + 1 if quick else 0
            if worker.quick_deaths >= _GIVE_UP:
                print(f"roomcast: worker {worker.index} failed {_GIVE_UP} times in a row as it started "
                      "(see its output above); stopping", file=sys.stderr, flush=True)
                self.failed = True
                self._stop_soon()
                continue
            print(f"roomcast: worker {worker.index} exited with status {process.returncode}; restarting it",
                  file=sys.stderr, flush=True)
            if quick:
                assert self._loop is not None
                self._loop.call_later(_QUICK_DEATH, self._restart, worker)
            else:
                self._start(worker)

    def _restart(self, worker: _Worker) -> None:
        if not self._stopping and worker.process is None:
            self._start(worker)

    # -- routing ----------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the connection stays in the backlog
                logger.error("roomcast: accept failed: %s", exc)
                return
            conn.setblocking(False)
            self._peek(conn, time.monotonic() + _PEEK_TIMEOUT)

    def _peek(self, conn: socket.socket, deadline: float) -> None:
        """Hand ``conn`` on once its request line is in (or it never comes: then to the next worker)."""
        assert self._loop is not None
        try:
            head = conn.recv(_PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            head = None
        except OSError:
            conn.close()
            return
        if head == b"":  # closed before sending anything
            conn.close()
            return
        if head is not None and (b"\r\n" in head or len(head) >= _PEEK_BYTES or time.monotonic() > deadline):
            self._hand_on(conn, route(head, len(self.workers)))
            return
        if time.monotonic() > deadline:
            self._hand_on(conn, None)
            return
        if head is None:  # nothing yet: wait until readable, or the deadline
            self._peeking[conn] = self._loop.call_later(deadline - time.monotonic(), self._expire, conn)
            self._loop.add_reader(conn.fileno(), self._readable, conn, deadline)
        else:  # part of a line: peeking again at once would spin, so look again shortly
            self._loop.call_later(0.005, self._peek, conn, deadline)

    def _unwatch(self, conn: socket.socket) -> None:
        assert self._loop is not None
        self._loop.remove_reader(conn.fileno())
        timer = self._peeking.pop(conn, None)
        if timer is not None:
            timer.cancel()

    def _readable(self, conn: socket.socket, deadline: float) -> None:
        self._unwatch(conn)
        self._peek(conn, deadline)

    def _expire(self, conn: socket.socket) -> None:
        """A connection that sent nothing by its deadline goes to the next worker, whose server
        deals with it as with any idle connection: the supervisor holds nothing for long."""
        self._unwatch(conn)
        self._hand_on(conn, None)

    def _hand_on(self, conn: socket.socket, index: int | None) -> None:
        """Pass ``conn`` to worker ``index``, or the next live one when it names none or a dead one
        (whose sessions are gone: a live worker answers "unknown session" and the client reconnects);
        then close the supervisor's copy."""
        workers = self.workers
        try:
            for _ in range(len(workers) + 1):
                if index is None or workers[index].channel is None:
                    index = next((i for i in (next(self._turn) for _ in workers) if workers[i].channel), None)
                    if index is None:
                        return  # no worker alive: the client sees the connection close
                channel = workers[index].channel
                assert channel is not None
                try:
                    socket.send_fds(channel, [b"c"], [conn.fileno()])
                    return
                except BlockingIOError:  # the worker is not taking connections: shed this one
                    logger.warning("roomcast: worker %d is not taking connections; one dropped", index)
                    return
                except OSError:  # it exited: try another, and let the reaper replace it
                    self._drop_channel(workers[index])
                    index = None
        finally:
            conn.close()

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; then stop the workers. Returns the exit status."""
        listener = socket.create_server((self.host, self.port), backlog=2048,
                                        family=socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.setblocking(False)
        self._listener = listener
        print(f"roomcast: {len(self.workers)} workers serving http://{self.host}:{self.port} "
              "(Press CTRL+C to quit)", file=sys.stderr, flush=True)
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        stop = self._stop = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop_soon)
        for worker in self.workers:
            self._start(worker)
        assert self._listener is not None
        loop.add_reader(self._listener.fileno(), self._accept)
        try:
            while not stop.done():
                self._reap()
                await asyncio.wait([stop], timeout=0.2)
        finally:
            self._stopping = True
            loop.remove_reader(self._listener.fileno())
            self._listener.close()
            for conn in list(self._peeking):
                self._unwatch(conn)
                conn.close()
            await self._stop_workers()
        return 1 if self.failed else 0

    def _stop_soon(self) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    async def _stop_workers(self) -> None:
        running = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
        for worker in self.workers:
            self._drop_channel(worker)


# -- the worker's side ------------------------------------------------------------------------------


def channel_fd() -> int | None:
    """The descriptor on which this worker receives connections; None outside a worker."""
    value = os.environ.get(WORKER_ENV)
    if not value or ":" not in value:
        return None
    return int(value.partition(":")[2])


def make_server(config: Any) -> Any:
    """A ``uvicorn.Server`` for ``config``: one that serves the connections the supervisor hands
    over when this process is a worker, uvicorn's own otherwise."""
    import uvicorn

    fd = channel_fd()
    if fd is None:
        return uvicorn.Server(config)

    class WorkerServer(uvicorn.Server):
        """uvicorn's server, listening on nothing: it takes connections from the supervisor."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            loop = asyncio.get_running_loop()
            channel = socket.socket(fileno=fd)
            channel.setblocking(False)
            self._roomcast_channel = channel
            cfg = self.config

            def protocol() -> asyncio.Protocol:
                return cfg.http_protocol_class(  # type: ignore[call-arg]
                    config=cfg, server_state=self.server_state, app_state=self.lifespan.state
                )

            def take() -> None:
                while True:
                    try:
                        msg, fds, _, _ = socket.recv_fds(channel, 64, 64)
                    except (BlockingIOError, InterruptedError):
                        return
                    except OSError:
                        msg, fds = b"", []
                    if not msg and not fds:  # the supervisor is gone: stop
                        loop.remove_reader(channel.fileno())
                        self.should_exit = True
                        return
                    for conn_fd in fds:
                        conn = socket.socket(fileno=conn_fd)
                        conn.setblocking(False)
                        loop.create_task(_adopt(loop, protocol, conn))

            loop.add_reader(channel.fileno(), take)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            channel = getattr(self, "_roomcast_channel", None)
            if channel is not None:
                asyncio.get_running_loop().remove_reader(channel.fileno())
                channel.close()
            await super().shutdown(sockets)

    return WorkerServer(config)


async def _adopt(loop: asyncio.AbstractEventLoop, protocol: Any, conn: socket.socket) -> None:
    try:
        await loop.connect_accepted_socket(protocol, conn)
    except OSError:
        conn.close()


def warn_without_queue(server: Any) -> None:
    """In a worker, say once that emits stay within it when ``server`` (an AsyncServer) has no
    message queue."""
    if worker_index() == 0 and getattr(server, "manager", None) is None:
        logger.warning(
            "roomcast: %s workers run without a message queue: an emit, a room or a broadcast reaches "
            "only the clients of the worker that makes it. Give the server a client_manager "
            "(roomcast.AsyncRedisManager) or, with Flask, SocketIO(app, message_queue='redis://...').",
            os.environ.get("ROOMCAST_WORKERS", "several"),
        )
