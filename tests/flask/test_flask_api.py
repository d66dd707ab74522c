"""Flask-SocketIO's API on Roomcast, through the in-process test client (real protocol, no network)."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest

pytest.importorskip("flask", reason="the Flask facade needs Flask: install the test extras")
pytest.importorskip("a2wsgi", reason="the Flask facade needs a2wsgi: install the test extras")

from flask import Flask, current_app, g, request

import roomcast
from roomcast import (
    ConnectionRefusedError,
    Namespace,
    SocketIO,
    SocketIOTestClient,
    call,
    close_room,
    disconnect,
    emit,
    join_room,
    leave_room,
    rooms,
    send,
)


def names(received: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in received]


# -- exports ----------------------------------------------------------------------------------------


def test_flask_names_are_exported_lazily_from_roomcast() -> None:
    for name in ("SocketIO", "Namespace", "emit", "send", "join_room", "leave_room", "close_room", "rooms",
                 "disconnect", "call", "SocketIOTestClient"):
        assert name in roomcast.__all__
        assert getattr(roomcast, name) is getattr(roomcast.flask, name)
    assert roomcast.ConnectionRefusedError is roomcast.flask.ConnectionRefusedError
    with pytest.raises(AttributeError):
        roomcast.not_a_name  # noqa: B018


# -- connecting -------------------------------------------------------------------------------------


def test_connect_handler_gets_auth_and_its_emits_arrive_after_the_connection(app: Flask) -> None:
    socketio = SocketIO(app)
    seen: dict[str, Any] = {}

    @socketio.on("connect")
    def on_connect(auth: Any) -> None:
        seen["auth"] = auth
        seen["sid"] = request.sid  # type: ignore[attr-defined]
        seen["namespace"] = request.namespace  # type: ignore[attr-defined]
        seen["event"] = request.event  # type: ignore[attr-defined]
        emit("welcome", {"sid": request.sid})  # type: ignore[attr-defined]
        send("hello")

    client = socketio.test_client(app, auth={"token": "t"})
    assert isinstance(client, SocketIOTestClient)
    assert client.is_connected()
    assert seen["auth"] == {"token": "t"}
    assert seen["sid"] == client.sids["/"]
    assert seen["namespace"] == "/"
    assert seen["event"] == {"message": "connect", "args": ({"token": "t"},)}
    assert client.get_received() == [
        {"name": "welcome", "args": [{"sid": client.sids["/"]}], "namespace": "/"},
        {"name": "message", "args": "hello", "namespace": "/"},
    ]
    assert client.eio_sid


def test_connect_handler_without_auth_argument(app: Flask) -> None:
    socketio = SocketIO(app)
    calls = []

    @socketio.on("connect")
    def on_connect() -> None:
        calls.append("connected")

    client = socketio.test_client(app, auth={"ignored": True})
    assert client.is_connected()
    assert calls == ["connected"]


def test_refusal_by_returning_false(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("connect")
    def on_connect(auth: Any) -> bool:
        return bool(auth)

    refused = socketio.test_client(app)
    assert not refused.is_connected()
    assert refused.connect_errors["/"] == {"message": "Connection rejected by server"}
    with pytest.raises(RuntimeError, match="not connected"):
        refused.emit("anything")
    accepted = socketio.test_client(app, auth={"ok": 1})
    assert accepted.is_connected()


def test_refusal_with_connection_refused_error_and_data(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("connect", namespace="/private")
    def on_connect() -> None:
        raise ConnectionRefusedError("unauthorized", {"retry": False})

    client = socketio.test_client(app, namespace="/private")
    assert not client.is_connected("/private")
    assert client.connect_errors["/private"] == {"message": "unauthorized", "data": {"retry": False}}


def test_builtin_connection_refused_error_also_refuses(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("connect")
    def on_connect() -> None:
        raise builtins_refused("go away")

    client = socketio.test_client(app)
    assert not client.is_connected()
    assert client.connect_errors["/"] == {"message": "go away"}


builtins_refused = __builtins__["ConnectionRefusedError"] if isinstance(__builtins__, dict) else __builtins__.ConnectionRefusedError  # type: ignore[index,attr-defined]


def test_handshake_request_data_reach_the_handlers(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.event
    def inspect() -> dict[str, Any]:
        return {
            "foo": request.args.get("foo"),
            "header": request.headers.get("X-Test"),
            "remote": request.remote_addr,
            "app": current_app.name,
            "path": request.path,
        }

    client = socketio.test_client(app, query_string="?foo=bar", headers={"X-Test": "yes"})
    assert client.emit("inspect", callback=True) == {
        "foo": "bar",
        "header": "yes",
        "remote": "127.0.0.1",
        "app": app.name,
        "path": "/socket.io/",
    }


def test_several_namespaces_on_one_client(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("connect", namespace="/chat")
    def chat_connect() -> None:
        emit("chat_hello")

    @socketio.on("where", namespace="/chat")
    def where() -> str:
        return request.namespace  # type: ignore[attr-defined,no-any-return]

    client = socketio.test_client(app)
    client.connect("/chat")
    assert client.is_connected("/") and client.is_connected("/chat")
    assert client.get_received("/chat") == [{"name": "chat_hello", "args": [], "namespace": "/chat"}]
    assert client.get_received() == []
    assert client.emit("where", namespace="/chat", callback=True) == "/chat"
    client.disconnect("/chat")
    assert not client.is_connected("/chat")
    assert client.is_connected("/")


def test_unknown_namespace_is_refused(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("x", namespace="/known")
    def x() -> None:
        pass

    client = socketio.test_client(app, namespace="/unknown")
    assert not client.is_connected("/unknown")
    assert client.connect_errors["/unknown"] == {"message": "Invalid namespace"}


# -- events and acknowledgements -------------------------------------------------------------------


def test_events_acks_and_message_shapes(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("message")
    def on_message(data: Any) -> None:
        send(data)

    @socketio.on("json")
    def on_json(data: Any) -> None:
        send(data, json=True)

    @socketio.on("my event")
    def on_event(a: Any, b: Any) -> tuple[Any, ...]:
        emit("my response", (a, b))
        return "one", 2

    @socketio.on("single")
    def single(data: Any) -> Any:
        return data

    @socketio.on("bytes")
    def on_bytes(data: bytes) -> bytes:
        emit("bytes back", data[::-1])
        return data + b"!"

    client = socketio.test_client(app)
    assert client.send("hi") is None
    assert client.send({"a": 1}, json=True) is None
    assert client.emit("my event", 1, {"two": 2}, callback=True) == ["one", 2]
    assert client.emit("single", {"x": [1]}, callback=True) == {"x": [1]}
    assert client.emit("bytes", b"\x00\x01", callback=True) == b"\x00\x01!"
    assert client.get_received() == [
        {"name": "message", "args": "hi", "namespace": "/"},
        {"name": "json", "args": {"a": 1}, "namespace": "/"},
        {"name": "my response", "args": [1, {"two": 2}], "namespace": "/"},
        {"name": "bytes back", "args": [b"\x01\x00"], "namespace": "/"},
    ]
    # Like Node's server, an event nobody handles is not acknowledged.
    assert client.emit("nobody listens", callback=True) is None


def test_event_decorator_and_on_event(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.event
    def plain() -> str:
        return "plain"

    @socketio.event(namespace="/ns")
    def namespaced() -> str:
        return "namespaced"

    socketio.on_event("registered", lambda: "registered")
    client = socketio.test_client(app)
    client.connect("/ns")
    assert client.emit("plain", callback=True) == "plain"
    assert client.emit("registered", callback=True) == "registered"
    assert client.emit("namespaced", namespace="/ns", callback=True) == "namespaced"


def test_catch_all_events_and_namespaces(app: Flask) -> None:
    socketio = SocketIO(app, namespaces="*")
    seen: list[tuple[Any, ...]] = []

    @socketio.on("*")
    def any_event(event: str, *args: Any) -> str:
        seen.append(("any", event, args, request.event["message"]))  # type: ignore[attr-defined]
        return "caught"

    @socketio.on("known")
    def known() -> str:
        return "known"

    @socketio.on("ping", namespace="*")
    def ping_anywhere(value: Any) -> str:
        return f"pong from {request.namespace} with {value}"  # type: ignore[attr-defined]

    @socketio.on("*", namespace="*")
    def anything_anywhere(event: str, *args: Any) -> str:
        return f"{event} in {request.namespace}"  # type: ignore[attr-defined]

    client = socketio.test_client(app)
    assert client.emit("known", callback=True) == "known"
    assert client.emit("other", 1, 2, callback=True) == "caught"
    assert seen == [("any", "other", (1, 2), "other")]
    client.connect("/dynamic")
    assert client.emit("ping", 7, namespace="/dynamic", callback=True) == "pong from /dynamic with 7"
    assert client.emit("whatever", namespace="/dynamic", callback=True) == "whatever in /dynamic"


# -- emitting: targets -----------------------------------------------------------------------------


@pytest.fixture
def chat(app: Flask) -> tuple[Flask, SocketIO]:
    socketio = SocketIO(app)

    @socketio.on("say")
    def say(text: str) -> None:
        emit("said", text)

    @socketio.on("shout")
    def shout(text: str) -> None:
        emit("said", text, broadcast=True)

    @socketio.on("shout_to_others")
    def shout_to_others(text: str) -> None:
        emit("said", text, broadcast=True, include_self=False)

    @socketio.on("shout_skipping")
    def shout_skipping(text: str, skip: str) -> None:
        emit("said", text, broadcast=True, skip_sid=skip)

    @socketio.on("join")
    def on_join(room: str) -> list[str]:
        join_room(room)
        return sorted(rooms())

    @socketio.on("leave")
    def on_leave(room: str) -> list[str]:
        leave_room(room)
        return sorted(rooms())

    @socketio.on("to_room")
    def to_room(room: str, text: str) -> None:
        emit("said", text, to=room)

    @socketio.on("to_room_not_me")
    def to_room_not_me(room: str, text: str) -> None:
        send(text, room=room, include_self=False)

    @socketio.on("close")
    def on_close(room: str) -> None:
        close_room(room)

    @socketio.on("other_namespace")
    def other_namespace(text: str) -> None:
        emit("said", text, namespace="/other", broadcast=True)

    @socketio.on("connect", namespace="/other")
    def other_connect() -> None:
        pass

    return app, socketio


def test_emit_answers_the_sender_only(chat: tuple[Flask, SocketIO]) -> None:
    app, socketio = chat
    a, b = socketio.test_client(app), socketio.test_client(app)
    a.emit("say", "hi")
    assert a.get_received() == [{"name": "said", "args": ["hi"], "namespace": "/"}]
    assert b.get_received() == []


def test_broadcast_include_self_and_skip_sid(chat: tuple[Flask, SocketIO]) -> None:
    app, socketio = chat
    a, b, c = (socketio.test_client(app) for _ in range(3))
    a.emit("shout", "all")
    assert [x.get_received() for x in (a, b, c)] == [[{"name": "said", "args": ["all"], "namespace": "/"}]] * 3
    a.emit("shout_to_others", "others")
    assert a.get_received() == []
    assert names(b.get_received()) == names(c.get_received()) == ["said"]
    a.emit("shout_skipping", "not b", b.sids["/"])
    assert names(a.get_received()) == ["said"]
    assert b.get_received() == []
    assert names(c.get_received()) == ["said"]


def test_rooms_join_leave_send_close(chat: tuple[Flask, SocketIO]) -> None:
    app, socketio = chat
    a, b, c = (socketio.test_client(app) for _ in range(3))
    assert a.emit("join", "room1", callback=True) == sorted([a.sids["/"], "room1"])
    assert b.emit("join", "room1", callback=True) == sorted([b.sids["/"], "room1"])
    c.emit("to_room", "room1", "hello room")
    assert names(a.get_received()) == names(b.get_received()) == ["said"]
    assert c.get_received() == []
    a.emit("to_room_not_me", "room1", "from a")
    assert a.get_received() == []
    assert b.get_received() == [{"name": "message", "args": "from a", "namespace": "/"}]
    assert b.emit("leave", "room1", callback=True) == [b.sids["/"]]
    c.emit("to_room", "room1", "again")
    assert names(a.get_received()) == ["said"]
    assert b.get_received() == []
    c.emit("close", "room1")
    c.emit("to_room", "room1", "closed")
    assert a.get_received() == []
    # A sid is a room too.
    c.emit("to_room", a.sids["/"], "direct")
    assert a.get_received() == [{"name": "said", "args": ["direct"], "namespace": "/"}]


def test_emit_to_another_namespace(chat: tuple[Flask, SocketIO]) -> None:
    app, socketio = chat
    a = socketio.test_client(app)
    a.connect("/other")
    b = socketio.test_client(app, namespace="/other")
    a.emit("other_namespace", "x")
    assert a.get_received("/other") == [{"name": "said", "args": ["x"], "namespace": "/other"}]
    assert b.get_received("/other") == [{"name": "said", "args": ["x"], "namespace": "/other"}]
    assert a.get_received() == []


def test_socketio_emit_and_send_from_outside_handlers(chat: tuple[Flask, SocketIO]) -> None:
    app, socketio = chat
    a, b = socketio.test_client(app), socketio.test_client(app)
    socketio.emit("news", {"n": 1})
    socketio.emit("news", ("several", "args"), to=a.sids["/"])
    socketio.send("text", to=b.sids["/"])
    socketio.send({"j": 1}, json=True, skip_sid=a.sids["/"])
    assert a.get_received() == [
        {"name": "news", "args": [{"n": 1}], "namespace": "/"},
        {"name": "news", "args": ["several", "args"], "namespace": "/"},
    ]
    assert b.get_received() == [
        {"name": "news", "args": [{"n": 1}], "namespace": "/"},
        {"name": "message", "args": "text", "namespace": "/"},
        {"name": "json", "args": {"j": 1}, "namespace": "/"},
    ]
    socketio.close_room(a.sids["/"])
    socketio.emit("after close", to=a.sids["/"])
    assert a.get_received() == []


def test_context_functions_outside_a_handler_say_what_to_use(app: Flask) -> None:
    SocketIO(app)
    with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match=r"socketio\.emit"):
            emit("x")
        with pytest.raises(RuntimeError, match="join_room"):
            join_room("r")


# -- disconnecting ---------------------------------------------------------------------------------


def test_disconnect_from_the_client_and_from_the_server(app: Flask) -> None:
    socketio = SocketIO(app)
    reasons: list[tuple[str, Any]] = []

    @socketio.on("disconnect")
    def on_disconnect(reason: str) -> None:
        reasons.append((request.sid, reason))  # type: ignore[attr-defined]

    @socketio.on("disconnect", namespace="/bare")
    def on_bare_disconnect() -> None:
        reasons.append(("bare", None))

    @socketio.on("kick_me")
    def kick_me() -> None:
        emit("bye")
        disconnect()

    a = socketio.test_client(app)
    sid = a.sids["/"]
    a.disconnect()
    assert reasons == [(sid, SocketIO.reason.CLIENT_DISCONNECT)]
    assert not a.is_connected()

    b = socketio.test_client(app)
    b.connect("/bare")
    sid = b.sids["/"]
    b.emit("kick_me")
    assert not b.is_connected()
    assert reasons[-1] == (sid, SocketIO.reason.SERVER_DISCONNECT)
    b.disconnect("/bare")
    assert reasons[-1] == ("bare", None)
    # The closed connection can be opened again.
    b.connect()
    assert b.is_connected()


def test_the_disconnect_handler_still_sees_its_rooms(app: Flask) -> None:
    """As in Flask-SocketIO: a disconnect handler can tell the rooms of the client that left."""
    socketio = SocketIO(app)

    @socketio.on("join")
    def on_join(room: str) -> None:
        join_room(room)

    @socketio.on("disconnect")
    def on_disconnect() -> None:
        for room in rooms():
            if room != request.sid:  # type: ignore[attr-defined]
                emit("left", {"room": room, "sid": request.sid}, to=room)  # type: ignore[attr-defined]

    stays, leaves = socketio.test_client(app), socketio.test_client(app)
    for client in (stays, leaves):
        client.emit("join", "lobby")
    stays.get_received()
    sid = leaves.sids["/"]
    leaves.disconnect()
    assert [item["args"] for item in stays.get_received() if item["name"] == "left"] == [
        [{"room": "lobby", "sid": sid}]
    ]
    assert rooms_of(socketio, "lobby") == {stays.sids["/"]}  # and then it left them


def rooms_of(socketio: SocketIO, room: str) -> set[str]:
    assert socketio.server is not None
    return set(socketio.server.rooms_table.room("/", room))


def test_middlewares_run_in_the_flask_contexts_before_connect(app: Flask) -> None:
    socketio = SocketIO(app)
    calls: list[Any] = []

    @socketio.use
    def authenticate(auth: Any) -> Any:
        calls.append(("authenticate", request.sid, request.namespace, current_app.name))  # type: ignore[attr-defined]
        if (auth or {}).get("token") != "ok":
            raise ConnectionRefusedError("not authorized")
        return None

    @socketio.use(namespace="*")
    def everywhere() -> None:
        calls.append(("everywhere", request.namespace))  # type: ignore[attr-defined]

    @socketio.on("connect")
    def on_connect(auth: Any) -> None:
        calls.append(("connect", request.sid))  # type: ignore[attr-defined]

    refused = socketio.test_client(app, auth={"token": "no"})
    assert not refused.is_connected()
    assert [c[0] for c in calls] == ["authenticate"]
    calls.clear()
    client = socketio.test_client(app, auth={"token": "ok"})
    assert client.is_connected()
    sid = client.sids["/"]
    assert calls == [("authenticate", sid, "/", app.name), ("everywhere", "/"), ("connect", sid)]


def test_volatile_emits_reach_clients_that_can_take_them(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("move")
    def move(xy: list[int]) -> None:
        emit("moved", xy, broadcast=True, volatile=True)

    a, b = socketio.test_client(app), socketio.test_client(app)
    a.emit("move", [1, 2])
    for client in (a, b):
        assert [item["args"] for item in client.get_received() if item["name"] == "moved"] == [[[1, 2]]]
    with pytest.raises(ValueError):
        socketio.emit("moved", [3, 4], volatile=True, callback=lambda *args: None)


def test_the_admin_ui_on_a_flask_app(app: Flask) -> None:
    socketio = SocketIO(app)
    assert socketio.server is not None
    socketio.server.instrument(auth={"username": "admin", "password": "pw"})
    refused = socketio.test_client(app, namespace="/admin", auth={"username": "admin", "password": "no"})
    assert not refused.is_connected("/admin")
    admin = socketio.test_client(app, namespace="/admin", auth={"username": "admin", "password": "pw"})
    assert admin.is_connected("/admin")
    names = [item["name"] for item in admin.get_received("/admin")]
    assert {"session", "config", "server_stats"} <= set(names)


# -- class-based namespaces ------------------------------------------------------------------------


def test_class_based_namespace(app: Flask) -> None:
    socketio = SocketIO(app)
    events: list[Any] = []

    class Chat(Namespace):
        def on_connect(self, auth: Any) -> None:
            events.append(("connect", auth, request.namespace))  # type: ignore[attr-defined]
            self.emit("welcome", {"to": request.sid}, room=request.sid)  # type: ignore[attr-defined]

        def on_disconnect(self, reason: str) -> None:
            events.append(("disconnect", reason))

        def on_my_event(self, data: Any) -> Any:
            emit("my_response", data)
            return data

        def on_enter(self, room: str) -> list[str]:
            self.enter_room(request.sid, room)  # type: ignore[attr-defined]
            return sorted(self.rooms(request.sid))  # type: ignore[attr-defined]

        def on_exit(self, room: str) -> list[str]:
            self.leave_room(request.sid, room)  # type: ignore[attr-defined]
            return sorted(self.rooms(request.sid))  # type: ignore[attr-defined]

        def on_room_send(self, room: str, text: str) -> None:
            self.send(text, room=room)

        def on_shut(self, room: str) -> None:
            self.close_room(room)

        def on_leave_now(self) -> None:
            self.disconnect(request.sid)  # type: ignore[attr-defined]

        def on_overridden(self) -> str:
            return "method"

    socketio.on_namespace(Chat("/chat"))

    @socketio.on("overridden", namespace="/chat")
    def decorated() -> str:
        return "decorated"

    client = socketio.test_client(app, namespace="/chat", auth={"k": 1})
    sid = client.sids["/chat"]
    assert events == [("connect", {"k": 1}, "/chat")]
    assert client.get_received("/chat") == [{"name": "welcome", "args": [{"to": sid}], "namespace": "/chat"}]
    assert client.emit("my_event", {"d": 1}, namespace="/chat", callback=True) == {"d": 1}
    assert names(client.get_received("/chat")) == ["my_response"]
    assert client.emit("enter", "r", namespace="/chat", callback=True) == sorted([sid, "r"])
    client.emit("room_send", "r", "to the room", namespace="/chat")
    assert client.get_received("/chat") == [{"name": "message", "args": "to the room", "namespace": "/chat"}]
    client.emit("shut", "r", namespace="/chat")
    client.emit("room_send", "r", "nobody", namespace="/chat")
    assert client.get_received("/chat") == []
    assert client.emit("exit", "r", namespace="/chat", callback=True) == [sid]
    assert client.emit("overridden", namespace="/chat", callback=True) == "decorated"
    assert client.emit("no_such_method", namespace="/chat", callback=True) is None
    client.emit("leave_now", namespace="/chat")
    assert not client.is_connected("/chat")
    assert events[-1] == ("disconnect", SocketIO.reason.SERVER_DISCONNECT)
    with pytest.raises(ValueError):
        socketio.on_namespace(object())  # type: ignore[arg-type]


# -- contexts --------------------------------------------------------------------------------------


def test_handlers_run_in_app_and_request_contexts(app: Flask) -> None:
    socketio = SocketIO(app)
    app.config["GREETING"] = "hello"

    @app.before_request
    def not_for_sockets() -> None:
        g.from_before_request = True  # Flask runs it for HTTP requests only

    @socketio.on("ctx")
    def ctx(value: Any) -> dict[str, Any]:
        g.value = value
        return {
            "greeting": current_app.config["GREETING"],
            "g": g.value,
            "before_request": g.get("from_before_request", False),
            "event": request.event,  # type: ignore[attr-defined]
            "thread": threading.current_thread().name.startswith("roomcast-handler"),
        }

    client = socketio.test_client(app)
    assert client.emit("ctx", 5, callback=True) == {
        "greeting": "hello",
        "g": 5,
        "before_request": False,
        "event": {"message": "ctx", "args": [5]},
        "thread": True,
    }


def test_each_handler_call_gets_a_fresh_g_and_the_matched_request(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("count")
    def count() -> dict[str, Any]:
        g.calls = g.get("calls", 0) + 1
        return {"calls": g.calls, "path": request.path, "sid": request.sid}  # type: ignore[attr-defined]

    client = socketio.test_client(app)
    first = client.emit("count", callback=True)
    second = client.emit("count", callback=True)
    assert first["calls"] == second["calls"] == 1  # g does not outlive a handler call
    assert first["path"] == second["path"] == "/socket.io/"
    assert first["sid"] == second["sid"] and first["sid"]


def test_teardown_functions_and_context_signals_still_run_per_event(app: Flask) -> None:
    from flask import appcontext_pushed

    socketio = SocketIO(app)
    torn: list[str] = []
    pushed: list[str] = []

    @app.teardown_appcontext
    def close_db(exc: BaseException | None) -> None:
        torn.append(g.get("db", "none"))

    def on_pushed(sender: Flask, **extra: Any) -> None:
        pushed.append(sender.name)

    @socketio.on("work")
    def work(name: str) -> str:
        g.db = name
        return name

    with appcontext_pushed.connected_to(on_pushed, app):
        client = socketio.test_client(app)
        assert client.emit("work", "a", callback=True) == "a"
        assert client.emit("work", "b", callback=True) == "b"
    assert torn[-2:] == ["a", "b"]  # one teardown per handler call, with that call's g
    assert len(pushed) >= 2


def test_one_socketio_for_two_apps_runs_handlers_in_the_right_app(app: Flask) -> None:
    other = Flask("other")
    other.config["SECRET_KEY"] = "s"
    socketio = SocketIO()

    @socketio.on("which")
    def which() -> str:
        return current_app.name

    socketio.init_app(app)
    socketio.init_app(other)
    assert app.extensions["socketio"] is other.extensions["socketio"] is socketio
    assert socketio.test_client(app).emit("which", callback=True) == app.name
    assert socketio.test_client(other).emit("which", callback=True) == "other"


def test_json_option_with_flask_json(app: Flask) -> None:
    import datetime

    from flask import json as flask_json

    socketio = SocketIO(app, json=flask_json)

    @socketio.on("when")
    def when() -> Any:
        return datetime.date(2024, 1, 2)

    assert socketio.test_client(app).emit("when", callback=True) == "Tue, 02 Jan 2024 00:00:00 GMT"


# -- background work and plain views --------------------------------------------------------------


def test_a_background_thread_emits(app: Flask) -> None:
    socketio = SocketIO(app)
    client = socketio.test_client(app)
    done = threading.Event()

    def work(count: int) -> None:
        for i in range(count):
            socketio.emit("tick", i)
            socketio.sleep(0)
        done.set()

    task = socketio.start_background_task(work, 3)
    assert done.wait(5)
    task.join(5)
    assert client.get_received() == [{"name": "tick", "args": [i], "namespace": "/"} for i in range(3)]


def test_a_plain_flask_view_emits(app: Flask) -> None:
    socketio = SocketIO(app)

    @app.route("/notify/<sid>")
    def notify(sid: str) -> str:
        socketio.emit("notified", {"by": "view"}, to=sid)
        join_room("from-view", sid=sid)
        return "ok"

    client = socketio.test_client(app)
    http = app.test_client()
    assert http.get(f"/notify/{client.sids['/']}").data == b"ok"
    assert client.get_received() == [{"name": "notified", "args": [{"by": "view"}], "namespace": "/"}]
    socketio.emit("room news", to="from-view")
    assert names(client.get_received()) == ["room news"]


# -- options ---------------------------------------------------------------------------------------


def test_async_mode_of_another_server_warns_once(app: Flask) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        socketio = SocketIO(app, async_mode="eventlet")
        socketio.init_app(app)
    relevant = [w for w in caught if "async_mode" in str(w.message)]
    assert len(relevant) == 1
    assert relevant[0].category is RuntimeWarning
    assert socketio.async_mode == "asgi"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SocketIO(Flask("quiet"), async_mode="asgi")


def test_message_queue_takes_redis_urls_and_names_what_it_cannot_take(app: Flask) -> None:
    import roomcast

    served = SocketIO(app, message_queue="redis://127.0.0.1:6379/0", channel="room-test")
    manager = served.server.manager if served.server is not None else None
    assert isinstance(manager, roomcast.AsyncRedisManager)
    assert (manager.channel, manager.write_only) == ("room-test", False)
    emitter = SocketIO(message_queue="redis://127.0.0.1:6379/0")
    assert emitter.server is not None and emitter.server.manager is not None
    assert emitter.server.manager.write_only and emitter.server.manager.channel == "socket.io"
    for url in ("amqp://guest@localhost//", "kafka://localhost:9092", "zmq+tcp://localhost:5555"):
        with pytest.raises(NotImplementedError, match="message_queue"):
            SocketIO(Flask("other"), message_queue=url)
    with pytest.raises(TypeError, match="client_manager"):
        SocketIO(Flask("other"), client_manager=object())


def test_options_reach_the_server(app: Flask) -> None:
    socketio = SocketIO(
        app,
        path="/custom/",
        ping_interval=(10, 3),
        ping_timeout=7,
        cors_allowed_origins=["http://a.example"],
        max_http_buffer_size=1234,
        always_connect=True,
        manage_session=False,
        logger=False,
        engineio_logger=True,
    )
    server = socketio.server
    assert server is not None
    assert server.engine_config.ping_interval == 10
    assert server.engine_config.ping_timeout == 10
    assert server.engine_config.max_http_buffer_size == 1234
    assert server.always_connect
    assert not socketio.manage_session
    assert socketio.path == "custom"

    @socketio.on("where")
    def where() -> str:
        return request.path

    assert socketio.test_client(app).emit("where", callback=True) == "/custom/"


def test_call_outside_a_connection_is_an_error(app: Flask) -> None:
    socketio = SocketIO(app)
    with pytest.raises(ValueError, match="to=<sid>"):
        socketio.call("x")
    socketio.test_client(app)
    with pytest.raises(ValueError, match="no connected client"):
        socketio.call("x", to="nobody", timeout=1)
    with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="call"):
            call("x")


def test_namespace_with_its_own_dispatch_gets_every_event(app: Flask) -> None:
    socketio = SocketIO(app)

    class Dispatching(Namespace):
        def trigger_event(self, event: str, *args: Any) -> Any:
            if event in ("connect", "disconnect"):
                return None
            return f"{event}{list(args)} in {request.namespace}"  # type: ignore[attr-defined]

    socketio.on_namespace(Dispatching("/d"))
    client = socketio.test_client(app, namespace="/d")
    assert client.emit("any-name!", 1, namespace="/d", callback=True) == "any-name![1] in /d"


def test_import_roomcast_works_without_flask() -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = (
        "import sys; sys.modules['flask'] = None\n"
        "import roomcast, roomcast.cli\n"
        "try:\n    roomcast.SocketIO\nexcept ImportError as exc:\n    print('ImportError', exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError" in result.stdout and "roomcast[flask]" in result.stdout
