"""A Flask node of a Roomcast cluster for tests/cluster/test_cluster_reliability.py: the Flask facade
with ``SocketIO(app, message_queue=..., channel=...)`` and plain ``def`` handlers, Flask-SocketIO style.

Environment: ``REDIS_URL`` (redis://127.0.0.1:6379/0), ``CLUSTER_KEY`` (the channel key) and
``NODE_NAME``. Served by uvicorn like tests/apps/cluster_app.py:
``CLUSTER_KEY=k python -m uvicorn tests.apps.flask_cluster_app:asgi_app``.

The event names and acknowledgements are those of tests/apps/cluster_app.py (``shout`` answers
``"sent"``, ``join`` answers ``"joined"``, ...), so the same test client drives either node. Every
handler runs on a worker thread, in the socket's Flask request context.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from roomcast.flask import SocketIO, disconnect, emit, join_room, leave_room

NAME = os.environ.get("NODE_NAME", "flask")

app = Flask(__name__)
app.config["SECRET_KEY"] = "flask-cluster-test"
socketio = SocketIO(
    app,
    message_queue=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    channel=os.environ.get("CLUSTER_KEY", "socket.io"),
    cors_allowed_origins="*",
)
asgi_app = socketio.get_asgi_app(app)


@app.route("/health")
def health() -> str:
    return NAME


@socketio.on("pid")
def pid() -> int:
    """Which process serves this client (``roomcast run --workers N`` runs several)."""
    return os.getpid()


@socketio.on("shout")
def shout(payload: Any) -> str:
    emit("news", payload, broadcast=True)
    return "sent"


@socketio.on("shout_others")
def shout_others(payload: Any) -> str:
    emit("news", payload, broadcast=True, include_self=False)
    return "sent"


@socketio.on("join")
def join(room: str) -> str:
    join_room(room)
    return "joined"


@socketio.on("leave")
def leave(room: str) -> str:
    leave_room(room)
    return "left"


@socketio.on("to_room")
def to_room(room: str, payload: Any) -> str:
    emit("news", payload, to=room)
    return "sent"


@socketio.on("put")
def put(target: str, room: str) -> str:
    """Put ``target`` (a client of any node) in ``room``."""
    join_room(room, sid=target)
    return "put"


@socketio.on("kick")
def kick(target: str) -> str:
    """Disconnect ``target`` (a client of any node)."""
    disconnect(sid=target)
    return "kicked"


@socketio.on("from_thread")
def from_thread(payload: Any) -> str:
    """Broadcast ``payload`` from a background thread (``socketio.emit``, outside any handler)."""

    def run() -> None:
        socketio.emit("news", payload)

    socketio.start_background_task(run)
    return "started"


@socketio.on("whoami")
def whoami() -> list[str]:
    return [request.sid, NAME]  # type: ignore[attr-defined]
