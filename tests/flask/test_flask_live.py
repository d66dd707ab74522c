"""The Flask facade over real sockets: uvicorn in a thread, python-socketio's client, real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("flask", reason="the Flask facade needs Flask: install the test extras")
pytest.importorskip("a2wsgi", reason="the Flask facade needs a2wsgi: install the test extras")

from flask import Flask, request

from roomcast import SocketIO, call, emit, join_room
from tests.flask.conftest import LiveServer, wait_until

pytest.importorskip("socketio", reason="needs python-socketio's client: install the test extras")
pytest.importorskip("httpx", reason="needs httpx: install the test extras")

import httpx  # noqa: E402
import socketio as python_socketio  # noqa: E402


class Recorder:
    """Events a python-socketio client received, in order (filled by its reader thread)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, name: str, data: Any) -> None:
        with self.lock:
            self.events.append((name, data))

    def wait_for(self, name: str, data: Any = None, timeout: float = 5.0) -> None:
        def seen() -> bool:
            with self.lock:
                return any(n == name and (data is None or d == data) for n, d in self.events)

        wait_until(seen, timeout, f"{name} {data!r}")


@pytest.fixture
def clients() -> Iterator[list[python_socketio.Client]]:
    made: list[python_socketio.Client] = []
    yield made
    for client in made:
        client.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_call_callbacks_and_emits_from_views_over_real_sockets(
    app: Flask, live: Any, clients: list[python_socketio.Client], transport: str
) -> None:
    socketio = SocketIO(app)
    acks: list[tuple[str, str, tuple[Any, ...]]] = []

    @socketio.on("ask")
    def ask(question: str) -> Any:
        # Ask the client back and wait for its answer, from a handler thread.
        return call("question", question, timeout=5)

    @socketio.on("ask_me_to_ack")
    def ask_me_to_ack() -> None:
        def got(*args: Any) -> None:
            acks.append((request.sid, request.namespace, args))  # type: ignore[attr-defined]

        emit("please_ack", "x", callback=got)

    @app.route("/announce")
    def announce() -> str:
        socketio.emit("from_view", {"via": "http"})
        return "sent"

    server: LiveServer = live(socketio.asgi_app)
    recorder = Recorder()
    client = python_socketio.Client()
    clients.append(client)
    client.on("question", lambda q: f"answer to {q}")
    client.on("please_ack", lambda x: "acked")
    client.on("from_view", lambda data: recorder.add("from_view", data))
    client.connect(server.url, transports=[transport])
    assert client.transport() == transport

    assert client.call("ask", "life", timeout=5) == "answer to life"
    client.call("ask_me_to_ack", timeout=5)
    wait_until(lambda: acks, 5, "the ack callback")
    assert acks == [(client.get_sid(), "/", ("acked",))]

    response = httpx.get(server.url + "/announce", timeout=5)
    assert response.text == "sent"
    recorder.wait_for("from_view", {"via": "http"})


def test_emit_with_ack_gathers_the_answers_of_a_room(app: Flask, live: Any, clients: list[Any]) -> None:
    """``socketio.emit_with_ack`` from a handler thread: every member's answer in one list."""
    socketio = SocketIO(app)

    @socketio.on("join")
    def join(room: str) -> str:
        join_room(room)
        return "joined"

    @socketio.on("ask_room")
    def ask_room(room: str) -> list[Any]:
        return sorted(socketio.emit_with_ack("question", room, to=room, timeout=5), key=str)

    server: LiveServer = live(socketio.asgi_app)
    for name, room in (("ada", "red"), ("bob", "red"), ("cy", "blue")):
        client = python_socketio.Client()
        clients.append(client)
        client.on("question", lambda room, name=name: {"room": room, "who": name})
        client.connect(server.url, transports=["websocket"])
        assert client.call("join", room, timeout=5) == "joined"
    assert clients[2].call("ask_room", "red", timeout=10) == [
        {"room": "red", "who": "ada"}, {"room": "red", "who": "bob"}
    ]


def test_a_background_thread_emits_to_real_clients(app: Flask, live: Any, clients: list[Any]) -> None:
    socketio = SocketIO(app)
    go = threading.Event()

    def ticker() -> None:
        go.wait(5)
        for n in range(3):
            socketio.emit("tick", n, namespace="/feed")
            socketio.sleep(0.01)

    @socketio.on("connect", namespace="/feed")
    def feed_connect() -> None:
        pass

    server: LiveServer = live(socketio.asgi_app)
    recorder = Recorder()
    client = python_socketio.Client()
    clients.append(client)
    client.on("tick", lambda n: recorder.add("tick", n), namespace="/feed")
    client.connect(server.url, namespaces=["/feed"])
    socketio.start_background_task(ticker)
    go.set()
    recorder.wait_for("tick", 2)
    assert [d for n, d in recorder.events if n == "tick"] == [0, 1, 2]


def test_run_serves_until_stop(app: Flask, clients: list[Any]) -> None:
    from tests.helpers.servers import free_port, port_accepts

    socketio = SocketIO(app)

    @socketio.on("shutdown")
    def shutdown() -> str:
        socketio.stop()
        return "stopping"

    @app.route("/")
    def index() -> str:
        return "flask view"

    port = free_port()
    runner = threading.Thread(target=socketio.run, args=(app,), kwargs={"port": port}, daemon=True)
    runner.start()
    wait_until(lambda: port_accepts(port), 10, "socketio.run to listen")
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "flask view"
    client = python_socketio.Client()
    clients.append(client)
    client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    assert client.call("shutdown", timeout=5) == "stopping"
    runner.join(10)
    assert not runner.is_alive()
    assert not port_accepts(port)
