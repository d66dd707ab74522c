"""One Flask-SocketIO app, run on Roomcast's facade or on Flask-SocketIO itself.

The only difference between the two is the import, which is the point: this is what a
Flask-SocketIO user gets after swapping ``flask_socketio`` for ``roomcast``. Handlers are plain
``def`` functions, as in every Flask-SocketIO app.

    python flask_app.py --impl roomcast --port 5000
    python flask_app.py --impl flask-socketio --async-mode gevent --port 5000
    python flask_app.py --impl flask-socketio --async-mode threading --port 5000
"""

from __future__ import annotations

import argparse
from typing import Any

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--impl", choices=["roomcast", "flask-socketio"], required=True)
parser.add_argument("--async-mode", choices=["gevent", "threading"], default=None)
args = parser.parse_args()

if args.async_mode == "gevent":
    # What Flask-SocketIO's documentation asks of a gevent deployment: patch before anything else.
    from gevent import monkey

    monkey.patch_all()

from flask import Flask  # noqa: E402

if args.impl == "roomcast":
    from roomcast import SocketIO, emit
else:
    from flask_socketio import SocketIO, emit  # type: ignore[no-redef]

app = Flask(__name__)
options: dict[str, Any] = {}
if args.async_mode:
    options["async_mode"] = args.async_mode
socketio = SocketIO(app, **options)


@socketio.on("echo")
def echo(data: Any) -> None:
    emit("echo", data)


@socketio.on("echoack")
def echoack(data: Any) -> Any:
    return data


@socketio.on("bcast")
def bcast(data: Any) -> None:
    emit("bcast", data, broadcast=True)


if __name__ == "__main__":
    run_options: dict[str, Any] = {}
    if args.impl == "flask-socketio" and args.async_mode == "threading":
        # Flask-SocketIO refuses Werkzeug outside debug mode unless told this is deliberate.
        run_options["allow_unsafe_werkzeug"] = True
    socketio.run(app, host="127.0.0.1", port=args.port, debug=False, use_reloader=False, log_output=False,
                 **run_options)
