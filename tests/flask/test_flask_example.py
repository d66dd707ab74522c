"""examples/app.py over real sockets, started the three ways a user starts it.

``examples/demo.py`` (``socketio.run``, what ``make demo`` runs), ``flask run`` (Roomcast's replacement
of Flask's command) and ``roomcast run``, each in a subprocess on a free port; clients are
python-socketio's and the official ``socket.io-client`` under node.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("flask", reason="the Flask facade needs Flask: install the test extras")
pytest.importorskip("a2wsgi", reason="the Flask facade needs a2wsgi: install the test extras")


from tests.flask.conftest import wait_until
from tests.helpers import ROOT
from tests.helpers.require import require_node
from tests.helpers.servers import ServerProcess

pytest.importorskip("socketio", reason="needs python-socketio's client: install the test extras")
pytest.importorskip("httpx", reason="needs httpx: install the test extras")

import httpx  # noqa: E402
import socketio as python_socketio  # noqa: E402

EXAMPLE = ROOT / "examples" / "app.py"
TICK = "0.2"

# `flask run` with Roomcast's command in place of Flask's (the flask.commands entry point does this
# in an installed Roomcast; here the group gets it explicitly).
FLASK_RUN = (
    "import sys; from flask.cli import FlaskGroup; from roomcast.cli import flask_run_command; "
    "group = FlaskGroup(); group.add_command(flask_run_command, 'run'); "
    "group.main(sys.argv[1:], prog_name='flask')"
)


class PythonServer(ServerProcess):
    """``python <args>`` with ``{port}`` in the arguments replaced by the chosen port."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        full_env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "DEMO_TICK_SECONDS": TICK}
        full_env.update(env or {})
        super().__init__(name=name, env=full_env)

    def argv(self) -> Sequence[str]:
        return [sys.executable, *(a.replace("{port}", str(self.port)) for a in self.args)]


@pytest.fixture(scope="module")
def demo() -> Iterator[PythonServer]:
    with PythonServer("demo", [str(ROOT / "examples" / "demo.py"), "--port", "{port}"]) as server:
        yield server  # type: ignore[misc]


class Client:
    """A python-socketio client on /test that records every my_response (and my_pong)."""

    def __init__(self, url: str, transport: str = "websocket") -> None:
        self.responses: list[dict[str, Any]] = []
        self.pongs = 0
        self.lock = threading.Lock()
        self.sio = python_socketio.Client()
        self.sio.on("my_response", self._response, namespace="/test")
        self.sio.on("my_pong", self._pong, namespace="/test")
        self.sio.connect(url, namespaces=["/test"], transports=[transport])

    def _response(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.responses.append(message)

    def _pong(self) -> None:
        with self.lock:
            self.pongs += 1

    def data(self) -> list[str]:
        with self.lock:
            return [m["data"] for m in self.responses]

    def emit(self, event: str, data: Any = None) -> None:
        self.sio.emit(event, data, namespace="/test")

    def wait_data(self, text: str, timeout: float = 5.0) -> None:
        wait_until(lambda: text in self.data(), timeout, f"my_response {text!r}")

    def marker(self, other: Client, text: str) -> None:
        """Broadcast ``text`` and wait until both clients have it: everything sent before is in."""
        self.emit("my_broadcast_event", {"data": text})
        self.wait_data(text)
        other.wait_data(text)

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def two(demo: PythonServer, request: pytest.FixtureRequest) -> Iterator[tuple[Client, Client]]:
    transport = getattr(request, "param", "websocket")
    a, b = Client(demo.url, transport), Client(demo.url, transport)
    yield a, b
    a.close()
    b.close()


def test_the_page_loads_the_local_client_library(demo: PythonServer) -> None:
    page = httpx.get(demo.url + "/", timeout=5)
    assert page.status_code == 200
    html = page.text
    for form in ("emit", "broadcast", "join", "leave", "send-room", "close", "disconnect"):
        assert f'<form id="{form}">' in html
    # Every text input has its label.
    inputs = re.findall(r'<input type="text" id="([^"]+)"', html)
    assert inputs and all(f'<label for="{i}">' in html for i in inputs)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["/vendor/socket.io.min.js"]
    library = httpx.get(demo.url + scripts[0], timeout=5)
    assert library.status_code == 200
    assert "javascript" in library.headers["content-type"]
    assert len(library.content) > 10_000
    assert httpx.get(demo.url + "/vendor/../app.py", timeout=5).status_code == 404


@pytest.mark.parametrize("two", ["websocket", "polling"], indirect=True)
def test_the_example_with_python_clients(two: tuple[Client, Client]) -> None:
    a, b = two
    a.wait_data("Connected")
    b.wait_data("Connected")
    # "emit" reaches the sender alone, "broadcast" everyone.
    a.emit("my_event", {"data": "just me"})
    a.wait_data("just me")
    a.marker(b, "everyone")
    assert "just me" not in b.data()
    # Rooms: join, send to the room, leave, close.
    def rooms_of(client: Client) -> list[str]:
        return [d for d in client.data() if d.startswith("In rooms:")]

    # Each room change is confirmed before another client relies on it (the two clients' handlers
    # run concurrently on the server).
    b.emit("join", {"room": "lobby"})
    wait_until(lambda: len(rooms_of(b)) == 1, 5, "the join")
    assert "lobby" in rooms_of(b)[0]
    a.emit("my_room_event", {"room": "lobby", "data": "to the lobby"})
    b.wait_data("to the lobby")
    a.marker(b, "after room event")
    assert "to the lobby" not in a.data()
    b.emit("leave", {"room": "lobby"})
    wait_until(lambda: len(rooms_of(b)) == 2, 5, "the leave")
    assert "lobby" not in rooms_of(b)[1]
    a.emit("my_room_event", {"room": "lobby", "data": "lobby again"})
    a.marker(b, "after leave")
    assert "lobby again" not in b.data()
    b.emit("join", {"room": "doomed"})
    wait_until(lambda: len(rooms_of(b)) == 3, 5, "the second join")
    a.emit("close_room", {"room": "doomed"})
    b.wait_data("Room doomed is closing.")
    a.emit("my_room_event", {"room": "doomed", "data": "into the void"})
    a.marker(b, "after close")
    assert "into the void" not in b.data()
    # The session counts this connection's events.
    counts = [m["count"] for m in a.responses if m["data"] in ("just me", "everyone")]
    assert counts == sorted(counts) and counts[0] >= 1
    # Latency probe, and the events the background thread pushes every TICK seconds.
    a.emit("my_ping")
    wait_until(lambda: a.pongs, 5, "my_pong")
    a.wait_data("Server generated event")
    # The disconnect button: a goodbye, acknowledged by the client, then the server disconnects it.
    a.emit("disconnect_request")
    a.wait_data("Disconnected!")
    wait_until(lambda: not a.sio.namespaces, 5, "the server to disconnect the client")


def test_the_example_with_the_official_js_client(demo: PythonServer) -> None:
    require_node()
    from tests.helpers.node_peer import NodePeer

    with NodePeer() as peer:
        browser = peer.connect(demo.url, "/test")  # polling first, then the upgrade, as in a browser
        peer.wait_for((browser, "upgrade"))
        assert peer.state(browser)["transport"] == "websocket"

        def responses() -> list[str]:
            return [r["args"][0]["data"] for r in peer.events(browser, "event") if r["event"] == "my_response"]

        wait_until(lambda: "Connected" in responses(), 5, "Connected")
        peer.emit(browser, "my_event", {"data": "from node"})
        wait_until(lambda: "from node" in responses(), 5, "the echo")
        # A broadcast from a Python client reaches the JS client.
        python_client = Client(demo.url)
        try:
            python_client.emit("my_broadcast_event", {"data": "python says hi"})
            wait_until(lambda: "python says hi" in responses(), 5, "the broadcast")
            python_client.wait_data("python says hi")
        finally:
            python_client.close()
        peer.emit(browser, "my_ping")
        peer.wait_for((browser, "event", "my_pong"))
        wait_until(lambda: "Server generated event" in responses(), 5, "a server-generated event")
        peer.auto_reply(browser, "my_response")
        peer.emit(browser, "disconnect_request")
        report = peer.wait_for((browser, "disconnect"))
        assert report["reason"] == "io server disconnect"
        assert "Disconnected!" in responses()


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(["-c", FLASK_RUN, "run", "--port", "{port}"], id="flask-run"),
        pytest.param(["-m", "roomcast.cli", "run", str(EXAMPLE), "--port", "{port}"], id="roomcast-run"),
    ],
)
def test_flask_run_and_roomcast_run_serve_socketio(how: list[str]) -> None:
    with PythonServer("example", how, env={"FLASK_APP": str(EXAMPLE)}) as server:
        client = Client(server.url)
        try:
            client.wait_data("Connected")
            assert client.sio.transport() == "websocket"
            client.emit("my_event", {"data": "served"})
            client.wait_data("served")
        finally:
            client.close()
        assert httpx.get(server.url + "/", timeout=5).status_code == 200
