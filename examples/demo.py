"""Serve the example (examples/app.py) at http://localhost:5000: what ``make demo`` runs.

    python examples/demo.py [--host 127.0.0.1] [--port 5000] [--debug]

It calls ``socketio.run(app)``, as a Flask-SocketIO app does: uvicorn serves the page, the JS client
and Socket.IO (WebSocket included) in one process. Open the page in two browsers: "Echo" reaches one,
"Broadcast" reaches both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import app, socketio  # noqa: E402  (the example lives next to this file)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Roomcast Flask example.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--debug", action="store_true", help="debugger, reloader and request log")
    args = parser.parse_args(argv)
    shown = "localhost" if args.host in ("127.0.0.1", "localhost") else args.host
    print(f"Roomcast demo: open http://{shown}:{args.port}/ (Ctrl+C to stop)", flush=True)
    socketio.run(app, host=args.host, port=args.port, debug=args.debug, log_output=args.debug)


if __name__ == "__main__":
    main()
