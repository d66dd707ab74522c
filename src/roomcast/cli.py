"""Command line: ``roomcast run module:app``, and ``flask run`` for apps that use Roomcast.

``roomcast run TARGET`` serves TARGET with uvicorn. TARGET is ``module:attribute`` or
``path/to/file.py:attribute`` (attribute ``app`` by default) naming a Flask app that has a Roomcast
``SocketIO`` (served with ``socketio.run``), a ``SocketIO`` object, or any ASGI application.

:data:`flask_run_command` replaces Flask's ``run`` command, the way Flask-SocketIO's users expect
``flask run`` to start the Socket.IO server too. It is installed as a ``flask.commands`` entry point
named ``run``; for apps without a Roomcast ``SocketIO`` it hands over to Flask's own command.

Imports stay inside functions: Flask loads every ``flask.commands`` plugin on each ``flask`` call.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "load_target", "serve", "flask_run_command", "websocket_protocol"]


def load_target(target: str) -> Any:
    """Import ``module:attribute`` (or ``file.py:attribute``); the attribute defaults to ``app``."""
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"roomcast: can't load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    obj = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"roomcast: {module_name} has no attribute {attribute!r}") from None
    return obj


def serve(
    obj: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    debug: bool | None = None,
    reload: bool | None = None,
    log_output: bool | None = None,
) -> None:
    """Serve a Flask app (through its SocketIO), a SocketIO object, or an ASGI app, until stopped."""
    socketio, app = _socketio_of(obj)
    if socketio is not None:
        socketio.run(app, host=host, port=port, debug=debug, use_reloader=reload, log_output=log_output)
        return
    if hasattr(obj, "wsgi_app"):
        raise SystemExit("roomcast: this Flask app has no roomcast.SocketIO (create one: SocketIO(app))")
    import uvicorn

    from .supervisor import make_server, warn_without_queue

    warn_without_queue(getattr(obj, "server", None))
    tune_gc()
    config = uvicorn.Config(obj, host=host, port=port, log_level="info" if log_output else "warning",
                            access_log=bool(log_output), ws_per_message_deflate=False, ws=websocket_protocol(),
                            http=http_protocol())
    make_server(config).run()


#: The cyclic garbage collector's first threshold under :func:`tune_gc` (Python's default: 700).
GC_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make Python's cyclic garbage collector cheap for a long-running server (what ``roomcast run``
    and ``socketio.run`` do before serving; set ``ROOMCAST_GC=default`` to keep Python's settings).

    Every connection keeps a few hundred objects alive, and by default the collector runs after every
    700 allocations and now and then walks all of them: with 2000 connections open, a fifth of the
    CPU of accepting more. Here what exists at startup (modules, the app) is frozen out of its walks,
    and it runs after :data:`GC_THRESHOLD` allocations. Reference counting still frees nearly
    everything at once; only garbage in reference cycles waits a little longer.
    """
    if os.environ.get("ROOMCAST_GC", "").lower() == "default":
        return
    gc.collect()
    gc.freeze()
    threshold, *older = gc.get_threshold()
    gc.set_threshold(max(threshold, GC_THRESHOLD), *older)


def websocket_protocol() -> Any:
    """The ``ws`` for uvicorn: Roomcast's WebSocket protocol (a direct lane for messages, see
    :mod:`roomcast.asyncio.uvicorn_ws`), or uvicorn's choice if this uvicorn lacks what it extends."""
    try:
        from .asyncio.uvicorn_ws import WebSocketProtocol
    except ImportError:
        return "auto"
    return WebSocketProtocol


def http_protocol() -> Any:
    """The ``http`` for uvicorn: Roomcast's (uvicorn's ``httptools`` protocol with corked writes, see
    :mod:`roomcast.asyncio.uvicorn_http`), or uvicorn's choice without httptools."""
    try:
        from .asyncio.uvicorn_http import HttpProtocol
    except ImportError:
        return "auto"
    return HttpProtocol


def _socketio_of(obj: Any) -> tuple[Any, Any]:
    """(SocketIO, Flask app) for a Flask app with Roomcast or a SocketIO object; (None, None) otherwise."""
    try:
        from .flask import SocketIO
    except ImportError:
        return None, None
    if isinstance(obj, SocketIO):
        return obj, obj.app
    extensions = getattr(obj, "extensions", None)
    if isinstance(extensions, dict) and isinstance(extensions.get("socketio"), SocketIO):
        return extensions["socketio"], obj
    return None, None


def main(argv: list[str] | None = None) -> None:
    """``roomcast run [--host H] [--port P] [--debug] [--reload] [--workers N] TARGET``."""
    parser = argparse.ArgumentParser(prog="roomcast", description="Roomcast: Socket.IO on ASGI.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve an app with uvicorn (WebSocket included)")
    run.add_argument("target", help="module:app or path/to/file.py:app (a Flask app, a SocketIO or an ASGI app)")
    run.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    run.add_argument("--debug", action="store_true", help="Flask debug mode: debugger, reloader, request log")
    run.add_argument("--reload", action=argparse.BooleanOptionalAction, default=None,
                     help="restart when a source file changes (default: with --debug)")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="serve with N processes on one port, each client kept on one (see docs/scaling.md)")
    args = parser.parse_args(argv)
    if args.workers > 1:
        if args.reload:
            parser.error("--reload serves one process: leave out --workers")
        from .supervisor import Supervisor

        worker_argv = ["run", args.target, "--host", args.host, "--port", str(args.port), "--no-reload"]
        if args.debug:
            worker_argv.append("--debug")
        raise SystemExit(Supervisor(worker_argv, args.host, args.port, args.workers).run())
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    obj = load_target(args.target)
    serve(obj, host=args.host, port=args.port, debug=args.debug or None, reload=args.reload,
          log_output=args.debug or None)


def _make_flask_run_command() -> Any:
    import click
    from flask.cli import ScriptInfo, pass_script_info
    from flask.helpers import get_debug_flag
    from flask.cli import run_command as flask_run

    def set_debug(ctx: Any, param: Any, value: bool | None) -> None:
        if value is not None:
            os.environ["FLASK_DEBUG"] = "1" if value else "0"

    @click.command("run", short_help="Run a development server (Socket.IO included, with Roomcast).")
    @click.option("--debug/--no-debug", default=None, expose_value=False, is_eager=True, callback=set_debug,
                  help="Debug mode: debugger and reloader.")
    @click.option("--host", "-h", default="127.0.0.1", help="The interface to bind to.")
    @click.option("--port", "-p", default=5000, help="The port to bind to.")
    @click.option("--reload/--no-reload", default=None, help="Reload on code changes (default: in debug mode).")
    @click.option("--debugger/--no-debugger", default=None, help="Werkzeug's debugger (default: in debug mode).")
    @click.option("--with-threads/--without-threads", default=True, help="Ignored by Roomcast (always threaded).")
    @click.option("--extra-files", default=None, help="Extra files that trigger a reload, separated by the path separator.")
    @click.option("--cert", default=None, help="A certificate file for HTTPS.")
    @click.option("--key", default=None, help="The key file of --cert.")
    @pass_script_info
    @click.pass_context
    def run_command(
        ctx: Any,
        info: ScriptInfo,
        host: str,
        port: int,
        reload: bool | None,
        debugger: bool | None,
        with_threads: bool,
        extra_files: str | None,
        cert: str | None,
        key: str | None,
    ) -> None:
        """Serve the app with uvicorn: HTTP views and Socket.IO (WebSocket included) on one port."""
        app = info.load_app()
        socketio, app = _socketio_of(app)
        if socketio is None:
            # Not a Roomcast app: Flask's own development server, as usual.
            params = {"host": host, "port": port, "reload": reload, "debugger": debugger,
                      "with_threads": with_threads, "cert": (cert, key) if cert and key else cert,
                      "extra_files": extra_files.split(os.pathsep) if extra_files else None,
                      "exclude_patterns": None}
            ctx.invoke(flask_run, **params)
            return
        debug = get_debug_flag()
        options: dict[str, Any] = {}
        if cert:
            options["ssl_certfile"] = cert
            if key:
                options["ssl_keyfile"] = key
        app.debug = bool(debugger if debugger is not None else debug)
        socketio.run(
            app,
            host=host,
            port=port,
            debug=app.debug,
            use_reloader=reload if reload is not None else debug,
            log_output=debug,
            extra_files=extra_files.split(os.pathsep) if extra_files else None,
            **options,
        )

    return run_command


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing this module needs neither click nor Flask.
    if name == "flask_run_command":
        command = _make_flask_run_command()
        globals()[name] = command
        return command
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
