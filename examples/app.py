"""The classic Flask-SocketIO example, running on Roomcast.

A Flask-SocketIO app moves over by changing its import (``from flask_socketio import ...`` becomes
``from roomcast import ...``); this file is such an app. The page (templates/index.html) connects to
namespace ``/test`` and offers forms to emit to itself, broadcast to every client, join, leave and close
rooms, send to a room, upload a file, and disconnect; the server answers with ``my_response`` events,
pushes one from a background thread every few seconds, answers ``my_ping`` with ``my_pong`` so the page
can show the round-trip latency, echoes an uploaded file's bytes with their size and SHA-256, and tells
every client when one connects or leaves (``presence``). Open the page with ``?transport=polling`` to
keep the client on HTTP long-polling, as a browser without WebSocket would.

Run it with ``python examples/demo.py`` (what ``make demo`` does), ``uvicorn app:asgi_app`` from this
directory, ``flask --app examples/app.py run``, or with several processes through Redis:
``MESSAGE_QUEUE=redis://127.0.0.1:6379/0 roomcast run examples/app.py:app --workers 4``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask, abort, render_template, request, send_from_directory, session

from roomcast import SocketIO, close_room, disconnect, emit, join_room, leave_room, rooms

HERE = Path(__file__).resolve().parent
#: The official client, installed by npm (package.json at the repository root); never a CDN.
CLIENT_DIST = HERE.parent / "node_modules" / "socket.io-client" / "dist"
CLIENT_FILES = {"socket.io.min.js", "socket.io.min.js.map"}
#: Seconds between two server-generated events.
TICK_SECONDS = float(os.environ.get("DEMO_TICK_SECONDS", "5"))
#: Largest file the upload form accepts; the page checks it too. Over long-polling the bytes travel
#: base64-encoded, so this keeps a packet well under the server's 1 MB max_http_buffer_size.
MAX_UPLOAD_BYTES = 512 * 1024

app = Flask(__name__)
# A fixed key is fine for a local demo; a real app reads its secret from the environment.
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "roomcast-demo-not-secret")
# With MESSAGE_QUEUE set (redis://127.0.0.1:6379/0), several processes serve it as one:
# ``MESSAGE_QUEUE=redis://127.0.0.1:6379/0 roomcast run examples/app.py:app --workers 4``.
socketio = SocketIO(app, message_queue=os.environ.get("MESSAGE_QUEUE"),
                    channel=os.environ.get("MESSAGE_QUEUE_CHANNEL"))
#: For ``uvicorn app:asgi_app`` (or ``gunicorn -k uvicorn.workers.UvicornWorker app:asgi_app``).
asgi_app = socketio.asgi_app

_ticker: threading.Thread | None = None
_ticker_lock = threading.Lock()
# Sids connected to /test, for the "online" count the page shows. Handlers run on worker threads.
_online: set[str] = set()
_online_lock = threading.Lock()


def server_events() -> None:
    """Push an event to every client of ``/test`` every TICK_SECONDS."""
    count = 0
    while True:
        socketio.sleep(TICK_SECONDS)
        count += 1
        socketio.emit("my_response", {"data": "Server generated event", "count": count}, namespace="/test")


def announce(change: str, sid: str, reason: str | None = None) -> None:
    """Tell every client of ``/test`` that ``sid`` joined or left, and how many are online."""
    with _online_lock:
        if change == "joined":
            _online.add(sid)
        else:
            _online.discard(sid)
        presence = {"change": change, "sid": sid, "reason": reason, "online": len(_online)}
        # Under the lock: the emits reach the event loop in the order of the changes, so the last
        # count a page shows is the current one. (emit only hands the message to the loop.)
        socketio.emit("presence", presence, namespace="/test")


def next_count() -> int:
    """How many events this connection has sent (kept in its Socket.IO session)."""
    session["receive_count"] = session.get("receive_count", 0) + 1
    return session["receive_count"]  # type: ignore[no-any-return]


@app.route("/")
def index() -> str:
    return render_template("index.html", async_mode=socketio.async_mode, max_upload=MAX_UPLOAD_BYTES)


@app.route("/vendor/<name>")
def client_library(name: str) -> Any:
    if name not in CLIENT_FILES:
        abort(404)
    if not (CLIENT_DIST / name).is_file():
        abort(404, description="socket.io-client is not installed: run `npm ci` at the repository root")
    return send_from_directory(CLIENT_DIST, name)


@socketio.on("connect", namespace="/test")
def on_connect() -> None:
    global _ticker
    with _ticker_lock:
        if _ticker is None:
            _ticker = socketio.start_background_task(server_events)
    emit("my_response", {"data": "Connected", "count": 0})
    announce("joined", request.sid)  # type: ignore[attr-defined]


@socketio.on("disconnect", namespace="/test")
def on_disconnect(reason: str) -> None:
    app.logger.info("client %s disconnected: %s", request.sid, reason)  # type: ignore[attr-defined]
    announce("left", request.sid, reason)  # type: ignore[attr-defined]


@socketio.on("my_event", namespace="/test")
def my_event(message: dict[str, Any]) -> None:
    emit("my_response", {"data": message["data"], "count": next_count()})


@socketio.on("my_broadcast_event", namespace="/test")
def my_broadcast_event(message: dict[str, Any]) -> None:
    emit("my_response", {"data": message["data"], "count": next_count()}, broadcast=True)


@socketio.on("join", namespace="/test")
def join(message: dict[str, Any]) -> None:
    join_room(message["room"])
    emit("my_response", {"data": "In rooms: " + ", ".join(rooms()), "count": next_count()})


@socketio.on("leave", namespace="/test")
def leave(message: dict[str, Any]) -> None:
    leave_room(message["room"])
    emit("my_response", {"data": "In rooms: " + ", ".join(rooms()), "count": next_count()})


@socketio.on("close_room", namespace="/test")
def on_close_room(message: dict[str, Any]) -> None:
    room = message["room"]
    emit("my_response", {"data": f"Room {room} is closing.", "count": next_count()}, to=room)
    close_room(room)


@socketio.on("my_room_event", namespace="/test")
def my_room_event(message: dict[str, Any]) -> None:
    emit("my_response", {"data": message["data"], "count": next_count()}, to=message["room"])


@socketio.on("disconnect_request", namespace="/test")
def disconnect_request() -> None:
    def acknowledged(*_: Any) -> None:
        disconnect()  # runs in this client's contexts, like the handler

    # Disconnect once the client has acknowledged the goodbye, so that the page shows it first.
    emit("my_response", {"data": "Disconnected!", "count": next_count()}, callback=acknowledged)


@socketio.on("upload", namespace="/test")
def upload(message: dict[str, Any]) -> None:
    # The client sends the file's ArrayBuffer, which arrives as bytes (a binary attachment); the
    # echo carries the bytes back so the page can check they survived both ways.
    name = str(message.get("name", ""))[:200]
    data = message.get("data")
    if not isinstance(data, bytes):
        emit("my_response", {"data": f"Upload {name!r} refused: no binary data", "count": next_count()})
        return
    if len(data) > MAX_UPLOAD_BYTES:
        refusal = f"Upload {name!r} refused: over {MAX_UPLOAD_BYTES} bytes"
        emit("my_response", {"data": refusal, "count": next_count()})
        return
    digest = hashlib.sha256(data).hexdigest()
    echo = {"name": name, "size": len(data), "sha256": digest, "data": data, "count": next_count()}
    emit("upload_echo", echo)


@socketio.on("my_ping", namespace="/test")
def my_ping() -> None:
    emit("my_pong")


if __name__ == "__main__":
    socketio.run(app)
