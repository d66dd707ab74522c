"""The :class:`SocketIO` Flask extension: Flask-SocketIO's API on Roomcast's asyncio server.

The extension holds no protocol logic. It registers a thin wrapper with the
:class:`~roomcast.asyncio.server.AsyncServer` for each Flask handler; the server runs those wrappers on
its worker threads (one socket's handlers in arrival order), and each wrapper runs the handler in the
Flask contexts built by :mod:`roomcast.flask.context`.

Everything that changes the server's state (emits, rooms, disconnects) is handed to the event loop
with :meth:`AsyncServer.submit`, in order, from whichever thread calls it: a handler, a background
thread, a Flask view.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import concurrent.futures
import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

import flask

from ..adapters.base import PubSubManager
from ..adapters.redis import AsyncRedisManager, RedisManager
from ..asyncio.server import AsyncServer, Reason
from ..exceptions import ConnectionRefusedError
from . import context
from ._util import as_data, emit_args, trim_args
from .asgi import FlaskApps, FlaskASGIApp, app_of
from .namespace import Namespace

__all__ = ["SocketIO"]

logger = logging.getLogger("roomcast")

_OUR_ASYNC_MODES = (None, "asgi", "uvicorn")
_LIFECYCLE = ("connect", "disconnect")


class _NoApp(RuntimeError):
    pass


class SocketIO:
    """Socket.IO for a Flask application (Flask-SocketIO's ``SocketIO``).

    ``SocketIO(app, **options)``, or ``SocketIO(**options)`` then ``init_app(app)``. Options are
    Flask-SocketIO's: ``manage_session`` (True), ``path`` (``'socket.io'``), ``cors_allowed_origins``,
    ``cors_credentials``, ``ping_interval``, ``ping_timeout``, ``max_http_buffer_size``, ``json``,
    ``logger``, ``engineio_logger``, ``async_handlers``, ``always_connect``, ``namespaces``,
    ``transports``, ``cookie``, ``allow_upgrades``, ``http_compression``, ``compression_threshold``,
    plus the other :class:`~roomcast.asyncio.server.AsyncServer` options. ``async_mode`` is accepted
    for compatibility: Roomcast always runs on ASGI (uvicorn), so other values only warn.
    ``message_queue`` (a ``redis://``, ``rediss://`` or ``unix://`` URL) links the servers of a
    cluster through Redis, ``channel`` naming the key of their channels (``"socket.io"``); without an
    app, ``SocketIO(message_queue=url)`` is an emitter for processes that serve no clients (Celery
    workers, scripts). See docs/scaling.md.
    """

    reason = Reason

    def __init__(self, app: flask.Flask | None = None, **kwargs: Any) -> None:
        self.server: AsyncServer | None = None
        self.server_options: dict[str, Any] = {}
        self.app: flask.Flask | None = None
        self.handlers: list[tuple[str, Callable[..., Any], Any]] = []
        #: Connection middlewares registered before the server exists (see :meth:`use`).
        self._middlewares: list[tuple[Callable[..., Any], Any]] = []
        self.namespace_handlers: list[Namespace] = []
        self.exception_handlers: dict[str, Callable[[BaseException], Any]] = {}
        self.default_exception_handler: Callable[[BaseException], Any] | None = None
        self.manage_session = True
        self.async_mode = "asgi"
        self.path = "socket.io"
        self._flask_apps = FlaskApps()
        self._asgi_apps: dict[int, FlaskASGIApp] = {}
        self._environs: dict[str, dict[str, Any]] = {}
        self._registered: set[tuple[Any, str]] = set()
        self._defaults: set[tuple[Any, str]] = set()
        self._lock = threading.Lock()
        self._warned_async_mode = False
        self._loop_thread: threading.Thread | None = None
        self._lifespan: asyncio.Task[Any] | None = None
        self._uvicorn: Any = None
        #: The blocking emitter used while this process serves no clients (``message_queue`` set).
        self._emitter: RedisManager | None = None
        if app is not None or kwargs.get("message_queue"):
            self.init_app(app, **kwargs)
        else:
            self.server_options.update(kwargs)

    # -- setup ------------------------------------------------------------------------------------

    def init_app(self, app: flask.Flask | None, **kwargs: Any) -> None:
        """Attach to ``app`` (``app.extensions['socketio']``); may be called for several apps."""
        self.server_options.update(kwargs)
        options = dict(self.server_options)
        self.manage_session = options.pop("manage_session", self.manage_session)
        queue = options.pop("message_queue", None)
        channel = options.pop("channel", None) or "socket.io"
        if queue and self.server is None and options.get("client_manager") is None:
            options["client_manager"] = _redis_manager(queue, channel, write_only=app is None)
        manager = options.get("client_manager")
        if manager is not None and not isinstance(manager, PubSubManager):
            raise TypeError("client_manager must be a roomcast.AsyncRedisManager (or another PubSubManager)")
        if isinstance(manager, AsyncRedisManager) and self._emitter is None:
            self._emitter = RedisManager(manager.url, channel=manager.channel, redis_options=manager.redis_options)
        mode = options.pop("async_mode", None)
        if mode not in _OUR_ASYNC_MODES and not self._warned_async_mode:
            self._warned_async_mode = True
            warnings.warn(
                f"async_mode={mode!r} is ignored: Roomcast always runs on asyncio under an ASGI server "
                "(uvicorn); plain handlers run on worker threads, with no monkey patching.",
                RuntimeWarning,
                stacklevel=3,
            )
        path = options.pop("path", None) or options.pop("resource", None) or "socket.io"
        options.pop("resource", None)
        self.path = path.strip("/")
        if options.get("json") is flask.json:
            options["json"] = context.flask_json_serializer(app)
        if options.get("logger") is True:
            options["logger"] = _verbose_logger()
        interval = options.get("ping_interval")
        if isinstance(interval, (tuple, list)):
            # Flask-SocketIO's (interval, grace period): the grace extends the wait for the pong.
            options["ping_interval"] = interval[0]
            options["ping_timeout"] = options.get("ping_timeout", 20) + interval[1]
        if self.server is None:
            self.server = AsyncServer(**options)
            self.server.asgi_app(self._flask_apps, self.path)
            for event, fn, namespace in self.handlers:
                self.server.on(event, fn, namespace)
            for middleware, namespace in self._middlewares:
                self.server.use(middleware, namespace)
        if app is not None:
            if not hasattr(app, "extensions"):
                app.extensions = {}
            app.extensions["socketio"] = self
            self.app = app
            self._flask_apps.add(app)

    def _srv(self) -> AsyncServer:
        if self.server is None:
            raise RuntimeError("SocketIO is not initialised: pass the app, or call socketio.init_app(app)")
        return self.server

    # -- registration -----------------------------------------------------------------------------

    def on(self, message: str, namespace: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``handler`` handles event ``message`` in ``namespace`` (default ``'/'``).

        ``message`` may be ``'connect'`` (the handler may take ``auth``; return False or raise
        ``ConnectionRefusedError`` to refuse), ``'disconnect'`` (may take ``reason``), ``'message'``,
        ``'json'``, any custom name, or ``'*'`` for every event without a handler of its own (the
        handler then gets the event name first). ``namespace='*'`` serves every namespace; the actual
        one is ``request.namespace``.
        """
        key = namespace or "/"

        def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
            self._register(message, self._server_handler(message, key, handler=handler), key)
            return handler

        return decorator

    def on_event(self, message: str, handler: Callable[..., Any], namespace: str | None = None) -> None:
        """``on()`` without the decorator syntax."""
        self.on(message, namespace=namespace)(handler)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler for the event named like the function."""
        if len(args) == 1 and not kwargs and callable(args[0]):
            return self.on(args[0].__name__)(args[0])

        def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
            return self.on(handler.__name__, *args, **kwargs)(handler)

        return decorator

    def use(self, middleware: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """Register a connection middleware for ``namespace`` (default ``'/'``, ``'*'`` for all), as
        Node's ``io.use()``; usable as a decorator (``@socketio.use`` or ``@socketio.use(namespace=...)``).

        Before a connection to the namespace is accepted, each middleware runs in the order
        registered, before the ``connect`` handler, in the same Flask contexts (``request.sid``,
        ``request.namespace``, the session), taking ``auth`` or nothing as a connect handler does.
        It refuses the connection by raising ``ConnectionRefusedError`` or returning False; then the
        rest, and the connect handler, do not run. Not in Flask-SocketIO: a Roomcast addition.
        """
        key = namespace or "/"

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            def flask_middleware(sid: str, environ: dict[str, Any], auth: Any) -> Any:
                context.prepare_environ(environ, self._app_for(environ))
                socket = self._srv().sockets.get(sid)
                real_namespace = socket.namespace if socket is not None else key
                try:
                    result = context.call_in_socket_request(
                        environ["flask.app"], environ, fn, trim_args(fn, (auth,)), self.manage_session, sid,
                        real_namespace, "connect", (auth,),
                    )
                except BaseException:
                    context.forget_socket(environ, sid)
                    raise
                if result is False:
                    context.forget_socket(environ, sid)
                return result

            flask_middleware.__name__ = f"flask_{getattr(fn, '__name__', 'middleware')}"
            if self.server is not None:
                self.server.use(flask_middleware, key)
            else:
                self._middlewares.append((flask_middleware, key))
            return fn

        return register(middleware) if middleware is not None else register

    def on_error(self, namespace: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: the error handler of ``namespace``; it gets the exception a handler raised."""
        key = namespace or "/"

        def decorator(exception_handler: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(exception_handler):
                raise ValueError("exception_handler must be callable")
            self.exception_handlers[key] = exception_handler
            return exception_handler

        return decorator

    def on_error_default(self, exception_handler: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: the error handler of namespaces without one of their own."""
        if not callable(exception_handler):
            raise ValueError("exception_handler must be callable")
        self.default_exception_handler = exception_handler
        return exception_handler

    def on_namespace(self, namespace_handler: Namespace) -> None:
        """Register a class-based :class:`Namespace`.

        Its ``on_<event>`` methods are registered one by one, so that an event without a method stays
        unhandled (and unacknowledged). A class that overrides ``trigger_event`` gets every event.
        """
        if not isinstance(namespace_handler, Namespace):
            raise ValueError("Not a namespace instance.")
        namespace_handler._set_socketio(self)
        self.namespace_handlers.append(namespace_handler)
        key = namespace_handler.namespace
        if type(namespace_handler).trigger_event is not Namespace.trigger_event:
            events = {"*"}
        else:
            events = {
                name[3:]
                for name in dir(namespace_handler)
                if name.startswith("on_") and len(name) > 3 and callable(getattr(namespace_handler, name))
            }
        for event in sorted(events | set(_LIFECYCLE)):
            if (key, event) not in self._registered:
                self._register(event, self._server_handler(event, key, namespace_obj=namespace_handler), key)

    def _register(self, event: str, fn: Callable[..., Any], namespace: Any, *, default: bool = False) -> None:
        """Register ``fn`` with the server (now, or at ``init_app``).

        ``default`` marks the connect/disconnect wrappers that every namespace with Flask handlers
        gets, handlers of the application's or not: they keep the handshake environ while the socket
        lives. A registration of the application's replaces them.
        """
        key = (namespace, event)
        if default:
            if key in self._registered or key in self._defaults:
                return
            self._defaults.add(key)
        else:
            self._registered.add(key)
        if self.server is not None:
            self.server.on(event, fn, namespace)
        else:
            self.handlers.append((event, fn, namespace))
        if not default:
            for lifecycle in _LIFECYCLE:
                self._register(lifecycle, self._server_handler(lifecycle, namespace), namespace, default=True)

    # -- dispatch (on the server's worker threads) --------------------------------------------------

    def _server_handler(
        self,
        event: str,
        namespace: Any,
        *,
        handler: Callable[..., Any] | None = None,
        namespace_obj: Namespace | None = None,
    ) -> Callable[..., Any]:
        """The function the server calls for (``event``, ``namespace``).

        The server passes ``(sid, *args)``, preceded by the event name for ``'*'`` events and by the
        namespace for ``'*'`` namespaces; connect gets ``(environ, auth)``, disconnect ``(reason,)``.
        """
        catch_all_event = event == "*"
        catch_all_namespace = namespace == "*"
        if handler is not None and not catch_all_event and not catch_all_namespace and event not in _LIFECYCLE:
            return self._event_handler(event, namespace, handler)

        def server_handler(*raw: Any) -> Any:
            i = 0
            real_event = event
            real_namespace = namespace
            if catch_all_event:
                real_event = raw[0]
                i = 1
            if catch_all_namespace:
                real_namespace = raw[i]
                i += 1
            sid = raw[i]
            args = raw[i + 1:]
            if real_event == "connect":
                return self._connect(sid, real_namespace, args[0], args[1] if len(args) > 1 else None,
                                     handler, namespace_obj)
            if real_event == "disconnect":
                return self._disconnect(sid, real_namespace, args[0] if args else None, handler, namespace_obj)
            if namespace_obj is not None:
                fn: Callable[..., Any] = namespace_obj.trigger_event
                call_args: tuple[Any, ...] = (real_event, *args)
            else:
                assert handler is not None
                fn = handler
                call_args = (real_event, *args) if catch_all_event else args
            environ = self._environ(sid)
            if environ is None:  # the socket is gone
                return None
            return self._run_handler(fn, call_args, environ, sid, real_namespace, real_event, args)

        server_handler.__name__ = f"flask_{getattr(handler, '__name__', event)}"
        if handler is None and namespace_obj is None and event in _LIFECYCLE:
            # The default connect/disconnect wrapper only keeps or drops the handshake environ:
            # it never blocks, so it runs on the loop instead of costing a worker thread per connection.

            async def lifecycle_default(*raw: Any) -> Any:
                return server_handler(*raw)

            lifecycle_default.__name__ = server_handler.__name__
            return lifecycle_default
        return server_handler

    def _event_handler(self, event: str, namespace: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """:meth:`_server_handler` for the commonest case: a function handling one event of one
        namespace."""
        environs = self._environs
        call = context.call_in_socket_request
        on_error = self._on_error

        def event_handler(sid: str, *args: Any) -> Any:
            environ = environs.get(sid) or self._environ(sid)
            if environ is None:  # the socket is gone
                return None
            # (_run_handler inline: this is every event's path)
            return call(environ["flask.app"], environ, handler, args, self.manage_session, sid, namespace, event,
                        args, on_error)

        event_handler.__name__ = f"flask_{getattr(handler, '__name__', event)}"
        return event_handler

    def _environ(self, sid: str) -> dict[str, Any] | None:
        environ = self._environs.get(sid)
        if environ is None:
            environ = self._srv().get_environ(sid)
            if environ is not None:
                context.prepare_environ(environ, self._app_for(environ))
        return environ

    def _app_for(self, environ: dict[str, Any]) -> flask.Flask:
        app = app_of(environ) or environ.get("flask.app") or self.app
        if app is None:
            raise _NoApp("SocketIO has no Flask app: call socketio.init_app(app)")
        return app

    def _connect(
        self,
        sid: str,
        namespace: str,
        environ: dict[str, Any],
        auth: Any,
        handler: Callable[..., Any] | None,
        namespace_obj: Namespace | None,
    ) -> Any:
        context.prepare_environ(environ, self._app_for(environ))
        self._environs[sid] = environ
        result: Any = None
        try:
            if namespace_obj is not None:
                result = self._run_handler(
                    namespace_obj.trigger_event, ("connect", auth), environ, sid, namespace, "connect", (auth,)
                )
            elif handler is not None:
                result = self._run_handler(
                    handler, trim_args(handler, (auth,)), environ, sid, namespace, "connect", (auth,)
                )
        except BaseException:
            self._environs.pop(sid, None)
            raise
        if result is False and not self._srv().always_connect:
            self._environs.pop(sid, None)
        return result

    def _disconnect(
        self,
        sid: str,
        namespace: str,
        reason: Any,
        handler: Callable[..., Any] | None,
        namespace_obj: Namespace | None,
    ) -> Any:
        environ = self._environs.get(sid)
        try:
            if environ is None:
                return None
            if namespace_obj is not None:
                return self._run_handler(
                    namespace_obj.trigger_event, ("disconnect", reason), environ, sid, namespace, "disconnect",
                    (reason,),
                )
            if handler is not None:
                return self._run_handler(
                    handler, trim_args(handler, (reason,)), environ, sid, namespace, "disconnect", (reason,)
                )
            return None
        finally:
            self._environs.pop(sid, None)
            if environ is not None:
                context.forget_socket(environ, sid)

    def _run_handler(
        self,
        fn: Callable[..., Any],
        call_args: tuple[Any, ...],
        environ: dict[str, Any],
        sid: str,
        namespace: str,
        event: str | None,
        event_args: tuple[Any, ...],
    ) -> Any:
        """Call ``fn`` in the Flask contexts of socket ``sid``, with the namespace's error handler.
        ``environ`` is prepared (:func:`context.prepare_environ`): it names its app."""
        return context.call_in_socket_request(
            environ["flask.app"], environ, fn, call_args, self.manage_session, sid, namespace, event, event_args,
            self._on_error,
        )

    def _on_error(self, namespace: str, exc: Exception) -> Any:
        """A handler raised ``exc`` (in the socket's Flask contexts): the namespace's error handler's
        result, or ``exc`` raised again for the server to log."""
        if isinstance(exc, (ConnectionRefusedError, builtins.ConnectionRefusedError)):
            raise exc  # the server turns it into the client's connect_error
        error_handler = self.exception_handlers.get(namespace, self.default_exception_handler)
        if error_handler is None:
            raise exc  # the server logs it, once, with the event name
        return error_handler(exc)

    def _context_callback(self, callback: Callable[..., Any], sid: str, namespace: str) -> Callable[..., Any]:
        """Wrap an ack callback to run in the Flask contexts of the socket that emitted."""

        def run(*args: Any) -> Any:
            environ = self._environ(sid)
            if environ is None:
                return callback(*args)
            return self._run_handler(callback, args, environ, sid, namespace, None, args)

        return run

    # -- running things on the loop ---------------------------------------------------------------

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Hand ``fn(*args)`` to the event loop, in order with every other call (any thread)."""
        server = self._srv()
        if server.loop is None:
            return  # not serving yet: no client can be connected, so there is nothing to do
        server.submit(fn, *args)

    def _on_loop_wait(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the loop and return its result (after everything submitted before)."""
        server = self._srv()
        loop = server.loop
        if loop is None:
            return fn(*args)
        if _running_loop() is loop:
            return fn(*args)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop; without one (tests), start one on a daemon thread.

        The new loop gets an ASGI lifespan startup, which binds the server to it the way uvicorn's
        startup does.
        """
        server = self._srv()
        with self._lock:
            loop = server.loop
            if loop is not None:
                if loop.is_closed():
                    raise RuntimeError("the event loop this server ran on is closed")
                return loop
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="roomcast-loop", daemon=True)
            thread.start()
            self._loop_thread = thread
            asyncio.run_coroutine_threadsafe(self._start_lifespan(), loop).result(10)
            atexit.register(_stop_loop, loop)
            return loop

    async def _start_lifespan(self) -> None:
        engine = self._srv().engine
        assert engine is not None
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.get_running_loop().create_future()

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete" and not started.done():
                started.set_result(None)

        inbox.put_nowait({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._lifespan = asyncio.ensure_future(engine(scope, inbox.get, send))
        await started

    # -- emitting ---------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Emit ``event`` from anywhere: to everyone in ``namespace`` (default ``'/'``), or ``to`` a
        sid or room (``room`` is an alias).

        Several arguments go as a tuple (or as several positional arguments). ``include_self=False``
        (in a handler) skips the client being handled; ``skip_sid`` skips sids. ``callback`` gets each
        client's acknowledgement (in the emitting handler's contexts). ``volatile=True`` (a Roomcast
        addition, Node's flag) drops the event for clients whose transport can't take it at once.
        """
        namespace = kwargs.pop("namespace", None) or "/"
        to = kwargs.pop("to", None)
        room = kwargs.pop("room", None)
        if to is None:
            to = room
        include_self = kwargs.pop("include_self", True)
        skip_sid = kwargs.pop("skip_sid", None)
        callback = kwargs.pop("callback", None)
        volatile = kwargs.pop("volatile", False)
        for ignored in ("broadcast", "ignore_queue"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise TypeError(f"emit() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        current = context.current_socket()
        if not include_self and not skip_sid and current is not None:
            skip_sid = current[0]
        if volatile and self._srv().loop is not None:
            if callback is not None:
                raise ValueError("a volatile emit takes no callback (some recipients may never get it)")
            self._on_loop(self._srv()._emit, event, emit_args(args), to, namespace, skip_sid, None, None, False, True)
            return
        if callback is None:
            self._emit_to(event, emit_args(args), to, namespace, skip_sid)
            return
        if current is not None:
            callback = self._context_callback(callback, *current)
        if self._srv().loop is None and self._emitter is not None:
            raise ValueError("an emit with callback needs a server: this process serves no clients (emitter mode)")
        self._on_loop(self._srv()._emit, event, emit_args(args), to, namespace, skip_sid, None, callback)

    def _emit_to(self, event: str, args: tuple[Any, ...], to: Any, namespace: str, skip_sid: Any) -> None:
        """An emit without callback, encoded on the calling thread (see ``AsyncServer._emit_from_thread``)."""
        server = self._srv()
        if server.loop is not None:
            server._emit_from_thread(event, args, to, namespace, skip_sid)
        elif self._emitter is not None:  # serving nobody here: straight to the other servers
            self._emitter.emit(event, args, namespace=namespace, to=to, skip_sid=skip_sid)
        # (else not serving yet, and alone: no client can be connected)

    def send(
        self,
        data: Any,
        json: bool = False,
        namespace: str | None = None,
        to: Any = None,
        callback: Callable[..., Any] | None = None,
        include_self: bool = True,
        skip_sid: Any = None,
        **kwargs: Any,
    ) -> None:
        """Send a ``message`` event (``json`` event with ``json=True``) from anywhere."""
        room = kwargs.pop("room", None)
        self.emit(
            "json" if json else "message",
            data,
            namespace=namespace,
            to=to if to is not None else room,
            callback=callback,
            include_self=include_self,
            skip_sid=skip_sid,
            **kwargs,
        )

    def call(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Emit to one client (``to=sid``) and return its acknowledgement; blocks.

        Raises :class:`roomcast.TimeoutError` after ``timeout`` seconds (60), and
        :class:`roomcast.DisconnectedError` as soon as the client disconnects without acknowledging.
        """
        namespace = kwargs.pop("namespace", None) or "/"
        to = kwargs.pop("to", None) or kwargs.pop("room", None)
        timeout = kwargs.pop("timeout", 60)
        kwargs.pop("ignore_queue", None)
        if kwargs:
            raise TypeError(f"call() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        if to is None:
            raise ValueError("call() needs the recipient: to=<sid>")
        server = self._srv()
        if server.loop is None:
            raise ValueError(f"no connected client with sid {to!r}")
        data = as_data(args)
        return self._block_on("call", lambda: server.call(event, data, to=to, namespace=namespace, timeout=timeout))

    def emit_with_ack(self, event: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Emit to every recipient (everyone, or ``to``/``room``, less ``skip_sid``) and return the
        first argument of each one's acknowledgement; blocks (Node's ``emitWithAck()`` on a
        broadcast; see ``AsyncServer.emit_with_ack``). Raises :class:`roomcast.TimeoutError` after
        ``timeout`` seconds (60) with the answers that came in its ``responses``. Not in
        Flask-SocketIO: a Roomcast addition.
        """
        namespace = kwargs.pop("namespace", None) or "/"
        to = kwargs.pop("to", None) or kwargs.pop("room", None)
        skip_sid = kwargs.pop("skip_sid", None)
        timeout = kwargs.pop("timeout", 60)
        kwargs.pop("ignore_queue", None)
        if kwargs:
            raise TypeError(f"emit_with_ack() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        server = self._srv()
        if server.loop is None:
            return []
        data = as_data(args)
        result: list[Any] = self._block_on("emit_with_ack", lambda: server.emit_with_ack(
            event, data, to=to, skip_sid=skip_sid, namespace=namespace, timeout=timeout
        ))
        return result

    def _block_on(self, method: str, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run the coroutine ``make()`` on the server's loop and wait for its result: the blocking
        methods, from any thread but the loop's own."""
        loop = self._srv().loop
        assert loop is not None
        if _running_loop() is loop:
            raise RuntimeError(
                f"{method}() blocks: in a coroutine on the server's loop, await socketio.server.{method}()"
            )
        return asyncio.run_coroutine_threadsafe(make(), loop).result()

    # -- rooms and clients ------------------------------------------------------------------------

    def _emitting_only(self) -> RedisManager | None:
        """The blocking emitter when this process serves no clients but has a message queue."""
        return self._emitter if self._srv().loop is None else None

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Put client ``sid`` (of any server of the cluster) in ``room``."""
        emitter = self._emitting_only()
        if emitter is not None:
            emitter.enter_room(sid, namespace, room)
        self._on_loop(self._srv().enter_room_nowait, sid, room, namespace or "/")

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Take client ``sid`` out of ``room``."""
        emitter = self._emitting_only()
        if emitter is not None:
            emitter.leave_room(sid, namespace, room)
        self._on_loop(self._srv().leave_room_nowait, sid, room, namespace or "/")

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """Take everyone out of ``room``."""
        emitter = self._emitting_only()
        if emitter is not None:
            emitter.close_room(room, namespace)
        self._on_loop(self._srv().close_room_nowait, room, namespace or "/")

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms client ``sid`` is in, its own room included."""
        server = self._srv()
        if server.loop is None:
            return []
        return self._on_loop_wait(server.rooms, sid, namespace or "/")  # type: ignore[no-any-return]

    def disconnect(self, sid: str, namespace: str | None = None) -> None:
        """Disconnect client ``sid`` from its namespace."""
        emitter = self._emitting_only()
        if emitter is not None:
            emitter.disconnect(sid, namespace)
        self._on_loop(self._srv().disconnect_nowait, sid, namespace or "/")

    # -- tasks ------------------------------------------------------------------------------------

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target(*args, **kwargs)`` on a daemon thread; returns the thread (``join()`` waits)."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True,
                                  name=f"roomcast-task-{getattr(target, '__name__', 'task')}")
        thread.start()
        return thread

    def sleep(self, seconds: float = 0) -> None:
        """Sleep (a plain ``time.sleep``: background tasks are threads, nothing is monkey patched)."""
        time.sleep(seconds)

    # -- serving ----------------------------------------------------------------------------------

    def get_asgi_app(self, app: flask.Flask | None = None) -> FlaskASGIApp:
        """The ASGI application serving ``app`` (default: the last app initialised) and Socket.IO."""
        app = app or self.app
        if app is None:
            raise RuntimeError("no Flask app: pass one, or call socketio.init_app(app) first")
        if app.extensions.get("socketio") is not self:
            self.init_app(app)
        asgi = self._asgi_apps.get(id(app))
        if asgi is None:
            asgi = self._asgi_apps[id(app)] = FlaskASGIApp(self._srv().engine, app)
        return asgi

    @property
    def asgi_app(self) -> FlaskASGIApp:
        """The ASGI application for ``uvicorn module:asgi_app`` (``asgi_app = socketio.asgi_app``)."""
        return self.get_asgi_app()

    def run(
        self,
        app: flask.Flask | None = None,
        host: str | None = None,
        port: int | None = None,
        debug: bool | None = None,
        use_reloader: bool | None = None,
        log_output: bool | None = None,
        reloader_options: dict[str, Any] | None = None,
        extra_files: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Serve ``app`` and Socket.IO with uvicorn (WebSocket included) until stopped.

        ``debug`` (default ``app.debug``) turns on Werkzeug's debugger for HTTP views and, unless
        ``use_reloader=False``, the reloader. ``log_output`` logs each request (default: ``debug``).
        Other keyword arguments go to ``uvicorn.Config`` (``certfile``/``keyfile`` are accepted for
        ``ssl_certfile``/``ssl_keyfile``; ``allow_unsafe_werkzeug`` is accepted and unneeded).
        """
        app = app or self.app
        if app is None:
            raise RuntimeError("no Flask app to run")
        if host is None:
            host = "127.0.0.1"
        if port is None:
            server_name = app.config.get("SERVER_NAME")
            port = int(server_name.rsplit(":", 1)[1]) if server_name and ":" in server_name else 5000
        if debug is None:
            debug = app.debug
        if log_output is None:
            log_output = debug
        if use_reloader is None:
            use_reloader = debug
        reloader_options = dict(reloader_options or {})
        if extra_files:
            reloader_options["extra_files"] = extra_files
        kwargs.pop("allow_unsafe_werkzeug", None)
        # Like Node's server: no per-message compression by default; it costs CPU on every frame
        # and rarely pays for small real-time messages.
        kwargs.setdefault("ws_per_message_deflate", False)
        if "ws" not in kwargs:
            from ..cli import websocket_protocol

            kwargs["ws"] = websocket_protocol()
        if "http" not in kwargs:
            from ..cli import http_protocol

            kwargs["http"] = http_protocol()
        for ours, theirs in (("certfile", "ssl_certfile"), ("keyfile", "ssl_keyfile")):
            if ours in kwargs:
                kwargs[theirs] = kwargs.pop(ours)
        app.debug = debug
        asgi = self.get_asgi_app(app)
        if debug:
            from werkzeug.debug import DebuggedApplication

            self._flask_apps.add(app, DebuggedApplication(app, evalex=True))

        def serve() -> None:
            import uvicorn

            from ..cli import tune_gc
            from ..supervisor import make_server, warn_without_queue

            warn_without_queue(self.server)
            tune_gc()
            config = uvicorn.Config(
                asgi,
                host=host,
                port=port,
                log_level="info" if log_output else "warning",
                access_log=bool(log_output),
                **kwargs,
            )
            self._uvicorn = make_server(config)
            self._uvicorn.run()

        if use_reloader:
            context.run_with_reloader(serve, **reloader_options)
        else:
            serve()

    def stop(self) -> None:
        """Stop the server started by :meth:`run` (from a handler, a view or another thread)."""
        if self._uvicorn is None:
            raise RuntimeError("the server was not started with socketio.run()")
        self._uvicorn.should_exit = True

    # -- testing ----------------------------------------------------------------------------------

    def test_client(
        self,
        app: flask.Flask,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        flask_test_client: Any = None,
    ) -> Any:
        """A client driving this server in-process over an in-memory WebSocket (see
        :class:`~roomcast.flask.test_client.SocketIOTestClient`)."""
        from .test_client import SocketIOTestClient

        return SocketIOTestClient(
            app,
            self,
            namespace=namespace,
            query_string=query_string,
            headers=headers,
            auth=auth,
            flask_test_client=flask_test_client,
        )


def _stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    """At exit, stop a loop started for tests and let its connections go quietly.

    By the time ``atexit`` runs, ``concurrent.futures`` has shut the handler threads down, so closing
    the connections would only fail their disconnect handlers. The tasks left pending are abandoned
    on purpose: the loop stops reporting them.
    """
    if not loop.is_closed():
        loop.set_exception_handler(lambda _loop, _context: None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _verbose_logger() -> logging.Logger:
    """``logger=True``: Roomcast's logger at INFO, printing to stderr unless logging is set up."""
    log = logging.getLogger("roomcast")
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    return log


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _redis_manager(url: str, channel: str, write_only: bool) -> AsyncRedisManager:
    """The manager for Flask-SocketIO's ``message_queue`` URL (Redis only, for now)."""
    if not url.startswith(_REDIS_SCHEMES):
        raise NotImplementedError(
            f"message_queue={url!r}: Roomcast links servers through Redis (redis://, rediss:// or unix:// "
            "URLs); Kombu (AMQP), Kafka and ZeroMQ queues are not supported yet"
        )
    return AsyncRedisManager(url, channel=channel, write_only=write_only)
