"""``roomcast run --workers N``: one port, N worker processes, each client's connections routed to
the worker that holds its session (roomcast.supervisor), and the workers linked through the real
Redis (tests/apps/cluster_app.py).

Clients of every kind must keep working whatever connection their requests come on: long-polling
only (each request is routed by its sid), the official client's default polling-then-WebSocket
upgrade, and WebSocket only. A worker killed mid-run is replaced, and SIGTERM stops them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import roomcast
from roomcast.supervisor import owner_of, route
from tests.helpers.cluster import REDIS_URL, cluster_key, wait_for_nodes
from tests.helpers.node_peer import NodePeer
from tests.helpers.require import require_node, require_redis
from tests.helpers.servers import HOST, ServerProcess, _python_path_for_children, free_port

TIMEOUT = 5.0
WORKERS = 2


class WorkersServer(ServerProcess):
    """``python -m roomcast run APP --workers N`` on a free port."""

    impl = "roomcast"

    def __init__(self, app: str, workers: int, env: dict[str, str]) -> None:
        self.app = app
        self.workers = workers
        super().__init__(name=f"roomcast-workers-{workers}",
                         env={**env, "PYTHONPATH": _python_path_for_children()}, stop_timeout=15.0)

    def argv(self) -> Sequence[str]:
        return [sys.executable, "-m", "roomcast", "run", self.app, "--host", HOST, "--port", str(self.port),
                "--workers", str(self.workers)]


@pytest.fixture(scope="module")
def server() -> Iterator[WorkersServer]:
    require_redis()
    key = cluster_key()
    with WorkersServer("tests.apps.cluster_app:app", WORKERS, {"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL}) as srv:
        wait_for_nodes(key, WORKERS)
        yield srv


def python_client(server: WorkersServer, transports: list[str] | None) -> roomcast.Client:
    client = roomcast.Client(reconnection=False)
    news: list[Any] = []
    client.on("news", news.append)
    client.news = news  # type: ignore[attr-defined]
    client.connect(server.url, transports=transports, wait_timeout=TIMEOUT)
    return client


def wait_until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # (a list filled by the client's thread: polled under a deadline)


def test_route_reads_the_sid_of_the_request_line() -> None:
    assert route(b"GET /socket.io/?EIO=4&transport=polling&sid=1.abcDEF HTTP/1.1\r\nHost: x\r\n", 2) == 1
    assert route(b"POST /socket.io/?sid=0.x-y_z&EIO=4&transport=polling HTTP/1.1\r\n", 2) == 0
    assert route(b"GET /socket.io/?EIO=4&transport=websocket&sid=1.q HTTP/1.1\r\n", 2) == 1
    assert route(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n", 2) is None  # a new session
    assert route(b"GET / HTTP/1.1\r\n", 2) is None  # a page
    assert route(b"GET /socket.io/?sid=7.x HTTP/1.1\r\n", 2) is None  # no such worker
    assert route(b"garbage", 2) is None
    assert owner_of("3.abc", 4) == 3 and owner_of("abc", 4) is None and owner_of("x.abc", 4) is None


def test_every_kind_of_client_is_served_across_workers(server: WorkersServer) -> None:
    kinds: list[list[str] | None] = [["polling"], None, ["websocket"]] * 3
    clients = [python_client(server, kinds[i]) for i in range(len(kinds))]
    try:
        pids = set()
        for client in clients:
            for _ in range(3):  # several requests each: on polling, each one is routed by its sid
                pids.add(client.call("pid", timeout=TIMEOUT))
        assert len(pids) == WORKERS, f"clients landed on {pids}"
        clients[0].emit("shout", "to everyone")
        for client in clients:
            wait_until(lambda c=client: "to everyone" in c.news, "the broadcast on every worker")
    finally:
        for client in clients:
            client.disconnect()


def test_the_official_client_upgrades_on_its_own_worker(server: WorkersServer) -> None:
    require_node()
    with NodePeer() as peer:
        clients = [peer.connect(server.url) for _ in range(4)]
        for client in clients:
            peer.wait_for((client, "upgrade"), timeout=TIMEOUT)
        pids = {peer.call(client, "pid")[0] for client in clients}
        assert len(pids) == WORKERS, f"clients landed on {pids}"
        polling = peer.connect(server.url, transports=["polling"])
        assert peer.call(polling, "shout", "from polling") == ["sent"]
        for client in clients:
            peer.wait_for({"client": client, "type": "event", "event": "news", "args": ["from polling"]},
                          timeout=TIMEOUT)


def test_a_flask_app_on_workers() -> None:
    """``roomcast run`` of a Flask app with ``SocketIO(app, message_queue=...)``: its handlers on
    both workers, its views too, whose responses close their connection (a page names no session:
    the next request on its connection may belong to another worker)."""
    require_redis()
    key = cluster_key()
    env = {"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL}
    with WorkersServer("tests.apps.flask_cluster_app:app", WORKERS, env) as srv:
        wait_for_nodes(key, WORKERS)
        clients = [python_client(srv, ["polling"] if i % 2 else None) for i in range(6)]
        try:
            assert len({client.call("pid", timeout=TIMEOUT) for client in clients}) == WORKERS
            assert clients[1].call("shout", "hello flask", timeout=TIMEOUT) == "sent"
            for client in clients:
                wait_until(lambda c=client: "hello flask" in c.news, "the broadcast on every worker")
        finally:
            for client in clients:
                client.disconnect()
        response = httpx.get(f"{srv.url}/health", timeout=TIMEOUT)
        assert response.text == "flask"
        assert response.headers["connection"] == "close"


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (framed by content-length) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(4096)
    return int(lines[0].split()[1]), headers, body


def test_a_request_on_another_workers_connection_is_redirected(server: WorkersServer) -> None:
    """A browser may send a request for its session on a connection kept alive for another tab's
    session, on another worker: that worker answers 307 to the same URL and closes the connection,
    and the repeated request (a POST with its body) reaches the session's worker."""
    sid = ""
    for _ in range(2 * WORKERS):  # new sessions go to the workers in turn
        opened = httpx.get(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=TIMEOUT)
        assert opened.headers["connection"] == "close"  # (no session named: never kept alive)
        sid = json.loads(opened.text[1:])["sid"]
        if sid.startswith("1."):
            break
    assert sid.startswith("1."), sid
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as conn:
        # The connection is routed by its first request, for a session of worker 0...
        conn.sendall(b"GET /socket.io/?EIO=4&transport=polling&sid=0.gone HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(conn)
        assert status == 400 and b"Session ID unknown" in body and headers.get("connection") != "close"
        # ...then carries worker 1's session, with a Socket.IO CONNECT in a POST.
        path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: 2\r\n\r\n40".encode())
        status, headers, _ = read_response(conn)
        assert status == 307 and headers["location"] == path and headers["connection"] == "close"
        assert conn.recv(1) == b""  # closed
    assert httpx.post(f"{server.url}{path}", content=b"40", timeout=TIMEOUT).text == "ok"
    reply = httpx.get(f"{server.url}{path}", timeout=TIMEOUT)
    assert reply.status_code == 200 and reply.text.startswith("40{"), reply.text  # the CONNECT arrived
    assert reply.headers.get("connection") != "close"  # a request of the worker's own session: kept alive


def test_slow_and_silent_connections_hold_nothing_up(server: WorkersServer) -> None:
    """A connection whose request line comes in pieces is routed once it is whole; one that sends
    nothing is handed on after the supervisor's deadline (5 s), and neither delays anyone else."""
    assert server.proc is not None
    fds = Path(f"/proc/{server.proc.pid}/fd")
    baseline = len(list(fds.iterdir()))
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as silent, \
            socket.create_connection((HOST, server.port), timeout=TIMEOUT) as slow:
        slow.sendall(b"GET /socket.io/?EIO=4&transport=polling&sid=")
        client = python_client(server, ["polling"])  # served meanwhile
        try:
            assert client.call("pid", timeout=TIMEOUT) > 0
        finally:
            client.disconnect()
        slow.sendall(b"1.no-such-session HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"}" not in reply:
            chunk = slow.recv(4096)
            assert chunk, f"closed after {reply!r}"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400") and b'"Session ID unknown"' in reply
        wait_until(lambda: len(list(fds.iterdir())) <= baseline, "the silent connection to be handed on",
                   timeout=15)
        assert silent.fileno() >= 0


def test_a_dead_worker_is_replaced(server: WorkersServer) -> None:
    clients = [python_client(server, ["websocket"]) for _ in range(4)]
    try:
        by_pid: dict[int, list[roomcast.Client]] = {}
        for client in clients:
            by_pid.setdefault(client.call("pid", timeout=TIMEOUT), []).append(client)
        assert len(by_pid) == WORKERS
        victim, survivor = sorted(by_pid)
        os.kill(victim, signal.SIGKILL)
        for client in by_pid[survivor]:  # the other worker's clients go on
            assert client.call("pid", timeout=TIMEOUT) == survivor
        seen: set[int] = set()

        def replaced() -> bool:
            fresh = python_client(server, ["polling"])
            try:
                seen.add(fresh.call("pid", timeout=TIMEOUT))
            finally:
                fresh.disconnect()
            return len(seen - {victim, survivor}) > 0

        wait_until(replaced, "a new worker in place of the killed one", timeout=20)
        assert victim not in seen
    finally:
        for client in clients:
            client.disconnect()


def test_sigterm_stops_the_workers() -> None:
    require_redis()
    key = cluster_key()
    srv = WorkersServer("tests.apps.cluster_app:app", WORKERS, {"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL})
    with srv:
        wait_for_nodes(key, WORKERS)
        clients = [python_client(srv, ["websocket"]) for _ in range(4)]
        try:
            workers = {client.call("pid", timeout=TIMEOUT) for client in clients}
            assert len(workers) == WORKERS
            srv.stop()
            assert srv.returncode == 0
            for pid in workers:
                wait_until(lambda p=pid: not _alive(p), f"worker {pid} to exit")
            for client in clients:  # told by their worker as it shut down
                wait_until(lambda c=client: not c.connected, "the clients to be disconnected")
        finally:
            for client in clients:
                client.disconnect()


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    """Workers live in sessions of their own (a terminal's Ctrl+C reaches the supervisor alone), so
    a supervisor killed outright must not leave them running: their channel closes and they stop."""
    require_redis()
    key = cluster_key()
    with WorkersServer("tests.apps.cluster_app:app", WORKERS, {"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL}) as srv:
        wait_for_nodes(key, WORKERS)
        clients = [python_client(srv, ["websocket"]) for _ in range(4)]
        try:
            workers = {client.call("pid", timeout=TIMEOUT) for client in clients}
            assert len(workers) == WORKERS
            srv.stop(kill=True)
            for pid in workers:
                wait_until(lambda p=pid: not _alive(p), f"worker {pid} to exit", timeout=15)
        finally:
            for client in clients:
                client.disconnect()


def test_workers_without_a_message_queue_warn() -> None:
    with WorkersServer("tests.apps.interop_app:app", WORKERS, {}) as srv:
        wait_until(lambda: "without a message queue" in srv.log_text(), "the warning")
        client = python_client(srv, ["polling"])
        try:
            assert client.connected
        finally:
            client.disconnect()


def test_an_app_that_fails_to_load_stops_the_supervisor() -> None:
    """Workers that die as they start are restarted twice, then ``roomcast`` gives up with status 1
    instead of restarting them forever."""
    port = free_port()
    argv = [sys.executable, "-m", "roomcast", "run", "tests.apps.no_such_module:app", "--host", HOST,
            "--port", str(port), "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": _python_path_for_children()}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "failed 3 times in a row as it started" in done.stderr
    assert "No module named 'tests.apps.no_such_module'" in done.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
