"""Handlers that raise: error handlers per namespace and by default, and the log line without one."""

from __future__ import annotations

import logging
from typing import Any

import pytest

pytest.importorskip("flask", reason="the Flask facade needs Flask: install the test extras")
pytest.importorskip("a2wsgi", reason="the Flask facade needs a2wsgi: install the test extras")

from flask import Flask, request

from roomcast import SocketIO, emit


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_handler_that_raises_is_logged_once_and_breaks_nothing(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    socketio = SocketIO(app)

    @socketio.on("explode")
    def explode(value: Any) -> None:
        emit("before the error")
        raise ValueError(f"bad value {value}")

    @socketio.on("fine")
    def fine() -> str:
        return "still fine"

    client = socketio.test_client(app)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        # No acknowledgement (the handler produced no answer), and no exception in the client.
        assert client.emit("explode", 42, callback=True) is None
    errors = error_records(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "'explode'" in message and "bad value 42" in message
    assert errors[0].exc_info is not None
    # What the handler emitted before failing arrived; the connection works on.
    assert client.get_received() == [{"name": "before the error", "args": [], "namespace": "/"}]
    assert client.is_connected()
    assert client.emit("fine", callback=True) == "still fine"
    assert error_records(caplog) == errors


def test_error_handler_per_namespace_and_default(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    socketio = SocketIO(app)
    handled: list[tuple[str, Any, Any, Any]] = []

    @socketio.on("fail")
    def fail_root() -> None:
        raise KeyError("root")

    @socketio.on("fail", namespace="/chat")
    def fail_chat(value: Any) -> None:
        raise RuntimeError("chat")

    @socketio.on("fail", namespace="/other")
    def fail_other() -> None:
        raise ZeroDivisionError("other")

    @socketio.on_error()
    def root_errors(exc: Exception) -> str:
        handled.append(("root", type(exc), request.event["message"], request.namespace))  # type: ignore[attr-defined]
        return "handled in /"

    @socketio.on_error("/chat")
    def chat_errors(exc: Exception) -> str:
        handled.append(("chat", type(exc), request.event, request.sid))  # type: ignore[attr-defined]
        emit("error_report", str(exc))
        return "handled in /chat"

    @socketio.on_error_default
    def default_errors(exc: Exception) -> str:
        handled.append(("default", type(exc), request.event["message"], request.namespace))  # type: ignore[attr-defined]
        return "handled by default"

    client = socketio.test_client(app)
    client.connect("/chat")
    client.connect("/other")
    caplog.clear()
    assert client.emit("fail", callback=True) == "handled in /"
    assert client.emit("fail", 7, namespace="/chat", callback=True) == "handled in /chat"
    assert client.emit("fail", namespace="/other", callback=True) == "handled by default"
    assert handled == [
        ("root", KeyError, "fail", "/"),
        ("chat", RuntimeError, {"message": "fail", "args": (7,)}, client.sids["/chat"]),
        ("default", ZeroDivisionError, "fail", "/other"),
    ]
    assert client.get_received("/chat") == [{"name": "error_report", "args": ["chat"], "namespace": "/chat"}]
    assert error_records(caplog) == []


def test_emitting_what_json_cannot_hold_raises_in_the_handler(app: Flask) -> None:
    # As in Flask-SocketIO, emit() encodes at once: the handler (and its error handler) sees the
    # TypeError, and nothing half-encoded reaches the client.
    socketio = SocketIO(app)
    seen: list[type[BaseException]] = []

    @socketio.on("send a set")
    def send_a_set() -> None:
        emit("a set", {1, 2})

    @socketio.on_error()
    def on_error(exc: Exception) -> str:
        seen.append(type(exc))
        return "refused"

    client = socketio.test_client(app)
    assert client.emit("send a set", callback=True) == "refused"
    assert seen == [TypeError]
    assert client.get_received() == []
    assert client.is_connected()


def test_error_handlers_must_be_callable(app: Flask) -> None:
    socketio = SocketIO(app)
    with pytest.raises(ValueError):
        socketio.on_error("/x")("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        socketio.on_error_default("not callable")  # type: ignore[arg-type]


def test_connect_handler_that_raises_refuses_and_logs(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    socketio = SocketIO(app)

    @socketio.on("connect")
    def on_connect() -> None:
        raise RuntimeError("database down")

    caplog.clear()
    client = socketio.test_client(app)
    assert not client.is_connected()
    assert client.connect_errors["/"] == {"message": "Internal server error"}
    errors = error_records(caplog)
    assert len(errors) == 1 and "database down" in errors[0].getMessage()


def test_error_handler_sees_connect_errors_too(app: Flask) -> None:
    socketio = SocketIO(app)

    @socketio.on("connect", namespace="/x")
    def on_connect() -> None:
        raise RuntimeError("oops")

    @socketio.on_error("/x")
    def on_error(exc: Exception) -> bool:
        return False  # refuse

    client = socketio.test_client(app, namespace="/x")
    assert client.connect_errors["/x"] == {"message": "Connection rejected by server"}
