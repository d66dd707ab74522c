"""The user session in Socket.IO handlers (both of Flask-SocketIO's modes) and Flask-Login."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest

pytest.importorskip("flask", reason="the Flask facade needs Flask: install the test extras")
pytest.importorskip("a2wsgi", reason="the Flask facade needs a2wsgi: install the test extras")

from flask import Flask, jsonify, request, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from roomcast import ConnectionRefusedError, SocketIO, emit
from tests.helpers.require import require_module


def test_managed_session_is_a_copy_taken_from_the_http_session(app: Flask) -> None:
    socketio = SocketIO(app)

    @app.route("/login/<name>")
    def login(name: str) -> str:
        session["user"] = name
        return "ok"

    @app.route("/whoami")
    def whoami() -> str:
        return str(session.get("user")) + "/" + str(session.get("socket_note"))

    @socketio.on("whoami")
    def socket_whoami() -> Any:
        return session.get("user")

    @socketio.on("note")
    def note(value: str) -> None:
        session["socket_note"] = value

    @socketio.on("read_note")
    def read_note() -> Any:
        return session.get("socket_note")

    http = app.test_client()
    http.get("/login/ada")
    client = socketio.test_client(app, flask_test_client=http)
    assert client.emit("whoami", callback=True) == "ada"
    # Written in a handler: kept for the connection's later handlers...
    client.emit("note", "from the socket")
    assert client.emit("read_note", callback=True) == "from the socket"
    # ... but not in the HTTP session (a WebSocket can't set the browser's cookie), as in Flask-SocketIO.
    assert http.get("/whoami").data == b"ada/None"
    # A later HTTP login does not change a connection's copy; a new connection sees it.
    http.get("/login/grace")
    assert client.emit("whoami", callback=True) == "ada"
    assert socketio.test_client(app, flask_test_client=http).emit("whoami", callback=True) == "grace"
    # Without the Flask test client's cookies, the session is empty.
    assert socketio.test_client(app).emit("whoami", callback=True) == []  # no ack arguments


class DictSessionInterface(SessionInterface):
    """A server-side session store in a dict, keyed by a cookie: what Flask-Session does with Redis."""

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    class Session(CallbackDict, SessionMixin):  # type: ignore[misc,type-arg]
        def __init__(self, initial: dict[str, Any], sid: str) -> None:
            def on_update(_: Any) -> None:
                self.modified = True

            super().__init__(initial, on_update)
            self.sid = sid
            self.modified = False

    def open_session(self, app: Flask, request: Any) -> SessionMixin:
        sid = request.cookies.get("sid") or secrets.token_hex(8)
        with self.lock:
            return self.Session(dict(self.store.get(sid, {})), sid)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        with self.lock:
            self.store[session.sid] = dict(session)
        response.set_cookie("sid", session.sid)


def test_unmanaged_session_is_shared_with_http_both_ways(app: Flask) -> None:
    app.session_interface = DictSessionInterface()
    socketio = SocketIO(app, manage_session=False)

    @app.route("/set/<value>")
    def set_value(value: str) -> str:
        session["value"] = value
        return "ok"

    @app.route("/get")
    def get_value() -> str:
        return str(session.get("value"))

    @socketio.on("get")
    def socket_get() -> Any:
        return session.get("value")

    @socketio.on("set")
    def socket_set(value: str) -> None:
        session["value"] = value

    http = app.test_client()
    http.get("/set/from-http")
    client = socketio.test_client(app, flask_test_client=http)
    # Written over HTTP, read in a handler.
    assert client.emit("get", callback=True) == "from-http"
    # Written in a handler, read over HTTP.
    client.emit("set", "from-socket")
    assert http.get("/get").data == b"from-socket"
    # And HTTP again, seen by the same connection's next handler.
    http.get("/set/again")
    assert client.emit("get", callback=True) == "again"


# -- Flask-Login -----------------------------------------------------------------------------------


@pytest.fixture
def login_app(app: Flask) -> tuple[Flask, SocketIO]:
    require_module("flask_login", "install the test extras (flask-login)")
    from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

    class User(UserMixin):
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    manager = LoginManager(app)

    @manager.user_loader
    def load_user(user_id: str) -> User:
        return User(user_id)

    @app.route("/login", methods=["POST"])
    def login() -> Any:
        login_user(User(request.form["user"]))
        return jsonify(ok=True)

    @app.route("/logout")
    def logout() -> str:
        logout_user()
        return "bye"

    socketio = SocketIO(app)

    @socketio.on("connect", namespace="/private")
    def private_connect() -> None:
        if not current_user.is_authenticated:
            raise ConnectionRefusedError("unauthorized", {"login": "/login"})
        emit("welcome", current_user.id)

    @socketio.on("whoami", namespace="/private")
    def whoami() -> Any:
        return current_user.id

    @socketio.on("whoami")
    def public_whoami() -> Any:
        return current_user.id if current_user.is_authenticated else "anonymous"

    return app, socketio


def test_flask_login_protects_a_namespace(login_app: tuple[Flask, SocketIO]) -> None:
    app, socketio = login_app
    http = app.test_client()
    anonymous = socketio.test_client(app, namespace="/private", flask_test_client=http)
    assert not anonymous.is_connected("/private")
    assert anonymous.connect_errors["/private"] == {"message": "unauthorized", "data": {"login": "/login"}}

    http.post("/login", data={"user": "ada"})
    client = socketio.test_client(app, namespace="/private", flask_test_client=http)
    assert client.is_connected("/private")
    assert client.get_received("/private") == [{"name": "welcome", "args": ["ada"], "namespace": "/private"}]
    assert client.emit("whoami", namespace="/private", callback=True) == "ada"
    client.connect("/")
    assert client.emit("whoami", callback=True) == "ada"


def test_flask_login_anonymous_on_the_public_namespace(login_app: tuple[Flask, SocketIO]) -> None:
    app, socketio = login_app
    assert socketio.test_client(app).emit("whoami", callback=True) == "anonymous"
