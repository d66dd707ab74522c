"""The one module of the Flask facade that relies on how Flask and Werkzeug work inside.

A Socket.IO handler runs the way a Flask view does: in an app context and a request context, here
built from the environ of the connection's handshake (the polling GET or WebSocket upgrade that opened
it). On top of Flask's request the handler finds ``request.sid``, ``request.namespace`` and
``request.event``, as Flask-SocketIO's handlers do.

The user session follows Flask-SocketIO's two modes:

* ``manage_session=True`` (the default): the connection gets its own copy of the HTTP session, taken
  when its first handler runs. Handlers read and write that copy; it lives as long as the connection
  and never reaches the browser's cookie (a WebSocket can't set cookies).
* ``manage_session=False``: every handler opens the session through the app's session interface,
  and saves it afterwards if it changed. With a server-side session store, HTTP views and Socket.IO
  handlers then share one session.

Everything else in ``roomcast.flask`` goes through the functions below, so that a change in Flask's
internals is fixed here.
"""

from __future__ import annotations

import contextvars
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import flask
from flask.ctx import AppContext, RequestContext
from flask.globals import _cv_app, _cv_request
from flask.signals import appcontext_popped, appcontext_pushed, appcontext_tearing_down, request_tearing_down
from flask.sessions import SessionMixin
from werkzeug.test import EnvironBuilder

__all__ = [
    "APP_KEY",
    "ManagedSession",
    "prepare_environ",
    "socket_request",
    "call_in_socket_request",
    "forget_socket",
    "current_socket",
    "in_socket_context",
    "handled_socket",
    "flask_json_serializer",
    "flask_client_cookie_header",
    "run_with_reloader",
]

#: Where the ASGI scope (and so the handshake environ) says which Flask app a connection belongs to.
APP_KEY = "roomcast.flask_app"
#: Where the environ keeps the connection's copy of the session (``manage_session=True``).
_SESSION_KEY = "roomcast.flask_session"
#: Where the environ caches each socket's reusable request context (``manage_session=True``).
_CONTEXTS_KEY = "roomcast.flask_contexts"


class ManagedSession(dict, SessionMixin):  # type: ignore[type-arg]
    """A connection's own copy of the HTTP session: a dict with Flask's session attributes."""


def prepare_environ(environ: dict[str, Any], app: flask.Flask) -> None:
    """Complete a handshake environ into what WSGI code expects, once per connection.

    The ASGI layer builds the CGI keys; Flask's request object also looks for the ``wsgi.*`` ones
    (``request.stream``, for instance, reads ``wsgi.input``).
    """
    if environ.get("flask.app") is app:
        return
    environ.setdefault("wsgi.version", (1, 0))
    environ.setdefault("wsgi.input", io.BytesIO(b""))
    environ.setdefault("wsgi.errors", sys.stderr)
    environ.setdefault("wsgi.multithread", True)
    environ.setdefault("wsgi.multiprocess", False)
    environ.setdefault("wsgi.run_once", False)
    environ.setdefault("SERVER_NAME", "localhost")
    environ.setdefault("SERVER_PORT", "80")
    environ["flask.app"] = app


def _managed_session(app: flask.Flask, environ: dict[str, Any]) -> ManagedSession:
    """The connection's session copy, made from the HTTP session on first use."""
    session = environ.get(_SESSION_KEY)
    if session is None:
        # Open the HTTP session the way a request does (in a pushed request context, since custom
        # session interfaces may use ``flask.request``), and keep a copy of its content.
        with app.request_context(environ):
            session = ManagedSession(flask.session)
        environ[_SESSION_KEY] = session
    return session


def call_in_socket_request(
    app: flask.Flask,
    environ: dict[str, Any],
    fn: Callable[..., Any],
    call_args: tuple[Any, ...],
    manage_session: bool,
    sid: str,
    namespace: str,
    event: str | None,
    args: tuple[Any, ...],
    on_error: Callable[[str, Exception], Any] | None = None,
) -> Any:
    """``fn(*call_args)`` in ``app``'s app and request contexts for one Socket.IO handler call
    (see :func:`socket_request`); an exception it raises goes to ``on_error(namespace, exc)`` (in the
    same contexts), whose result is returned instead, or which raises.

    When nothing in the app observes contexts being pushed and popped (no teardown functions, no
    receivers of Flask's context signals), what a push and a pop would do comes down to binding
    them: each socket gets a ``contextvars.Context`` with its app and request contexts bound, made
    once, and every call runs in it, at a fraction of the cost per event. A fresh ``g`` each call,
    as in a pushed app context.
    """
    if manage_session and _nothing_observes(app):
        cache, ctx = _take_context(app, environ, sid, namespace)
        try:
            bound, app_ctx = ctx.bound, ctx.app_ctx
            if bound is None or app_ctx is None:
                app_ctx = ctx.app_ctx = app.app_context()
                ctx.match_request()  # what the first push does (the session is already given)
                bound = ctx.bound = contextvars.Context()
                bound.run(_bind, app_ctx, ctx)
            app_ctx.g = app.app_ctx_globals_class()
            ctx.request.event = {"message": event, "args": args}  # type: ignore[attr-defined]
            return bound.run(_guarded, fn, call_args, namespace, on_error)
        finally:
            cache[sid] = ctx
    with socket_request(
        app, environ, manage_session=manage_session, sid=sid, namespace=namespace, event=event, args=args
    ):
        return _guarded(fn, call_args, namespace, on_error)


def _bind(app_ctx: AppContext, ctx: RequestContext) -> None:
    _cv_app.set(app_ctx)
    _cv_request.set(ctx)


def _guarded(
    fn: Callable[..., Any], call_args: tuple[Any, ...], namespace: str,
    on_error: Callable[[str, Exception], Any] | None,
) -> Any:
    try:
        return fn(*call_args)
    except Exception as exc:
        if on_error is None:
            raise
        return on_error(namespace, exc)


def _nothing_observes(app: flask.Flask) -> bool:
    """No teardown function and no receiver of the context signals: pushing and popping the
    contexts has no effect beyond binding them."""
    return not (
        app.teardown_appcontext_funcs
        or appcontext_pushed.receivers
        or appcontext_popped.receivers
        or appcontext_tearing_down.receivers
        or request_tearing_down.receivers
        or (app.teardown_request_funcs and any(app.teardown_request_funcs.values()))
    )


@contextmanager
def socket_request(
    app: flask.Flask,
    environ: dict[str, Any],
    *,
    manage_session: bool,
    sid: str,
    namespace: str,
    event: str | None,
    args: tuple[Any, ...],
) -> Iterator[None]:
    """Run the body in ``app``'s app and request contexts for one Socket.IO handler call.

    With ``manage_session`` false, a session the handler changed is saved through the app's session
    interface when the body ends without an exception.
    """
    if not manage_session:
        with app.request_context(environ):
            request = flask.request._get_current_object()  # type: ignore[attr-defined]
            _tag_request(request, sid, namespace, event, args)
            yield
            session = flask.session._get_current_object()  # type: ignore[attr-defined]
            if getattr(session, "modified", True):
                app.session_interface.save_session(app, session, app.response_class())
        return
    cache, ctx = _take_context(app, environ, sid, namespace)
    with ctx:
        ctx.request.event = {"message": event, "args": args}  # type: ignore[attr-defined]
        yield
    cache[sid] = ctx


def _take_context(
    app: flask.Flask, environ: dict[str, Any], sid: str, namespace: str
) -> tuple[dict[str, _SocketRequestContext], _SocketRequestContext]:
    """Socket ``sid``'s request context (managed sessions) and the cache to put it back into.

    One request context per socket serves all its handler calls: building one (and matching its URL)
    per event costs more than most handlers. Its request carries the socket's ``sid`` and
    ``namespace`` from the start (the caller sets ``request.event``). It is taken out of the cache
    while in use, so that two calls at once (an ack callback during a handler) never share it.
    """
    cache: dict[str, _SocketRequestContext] | None = environ.get(_CONTEXTS_KEY)
    if cache is None:
        cache = environ[_CONTEXTS_KEY] = {}
    ctx = cache.pop(sid, None)
    if ctx is None or ctx.app is not app:
        # RequestContext takes the session to use instead of opening one (Flask's public signature).
        ctx = _SocketRequestContext(app, environ, session=_managed_session(app, environ))
        request: Any = ctx.request  # (Flask-SocketIO's attributes, unknown to Flask's type)
        request.sid = sid
        request.namespace = namespace
    return cache, ctx


def forget_socket(environ: dict[str, Any], sid: str) -> None:
    """Drop the cached request context of a socket that disconnected."""
    cache = environ.get(_CONTEXTS_KEY)
    if cache is not None:
        cache.pop(sid, None)


class _SocketRequestContext(RequestContext):
    """A request context pushed once per handler call of one socket: its URL is matched only once.
    When nothing observes contexts, ``app_ctx`` is the app context bound with it and ``bound`` the
    context-variable context holding both (see :func:`call_in_socket_request`)."""

    _matched = False
    app_ctx: AppContext | None = None
    bound: contextvars.Context | None = None

    def match_request(self) -> None:
        if not self._matched:
            super().match_request()
            self._matched = True


def _tag_request(request: Any, sid: str, namespace: str, event: str | None, args: tuple[Any, ...]) -> None:
    """What Flask-SocketIO's handlers find on ``flask.request``."""
    request.sid = sid
    request.namespace = namespace
    request.event = {"message": event, "args": args}


def current_socket() -> tuple[str, str] | None:
    """``(sid, namespace)`` when called from a Socket.IO handler (or its callbacks), else None."""
    ctx = _cv_request.get(None)
    if ctx is None:  # no request context
        return None
    request = ctx.request
    sid = getattr(request, "sid", None)
    if sid is None:
        return None
    return sid, getattr(request, "namespace", "/")


def in_socket_context(what: str) -> tuple[str, str]:
    """``(sid, namespace)`` of the handler running now; a clear error outside of one."""
    current = current_socket()
    if current is None:
        raise RuntimeError(
            f"{what}() works inside a Socket.IO event handler only; elsewhere (views, background "
            f"threads) use the methods of the SocketIO object, e.g. socketio.{what}(...)"
        )
    return current


def handled_socket(what: str) -> tuple[str, str, Any]:
    """``(sid, namespace, extension)`` of the handler running now, in one lookup (the path of every
    reply); the errors of :func:`in_socket_context` and :func:`current_extension` otherwise."""
    ctx = _cv_request.get(None)
    if ctx is not None:
        request = ctx.request
        sid = getattr(request, "sid", None)
        extension = ctx.app.extensions.get("socketio")
        if sid is not None and extension is not None:
            return sid, getattr(request, "namespace", "/"), extension
    sid, namespace = in_socket_context(what)
    return sid, namespace, current_extension()


def current_extension() -> Any:
    """The SocketIO extension of the current Flask app."""
    app_ctx = _cv_app.get(None)
    extension = None if app_ctx is None else app_ctx.app.extensions.get("socketio")
    if extension is None:
        raise RuntimeError("no SocketIO extension: create SocketIO(app) or call socketio.init_app(app)")
    return extension


class _FlaskJSON:
    """``flask.json`` with an app context around each call, so that its output does not depend on
    whether the caller (often the event loop) happens to have one."""

    def __init__(self, app: flask.Flask | None) -> None:
        self.app = app

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if self.app is None or flask.has_app_context():
            return flask.json.dumps(obj, **kwargs)
        with self.app.app_context():
            return flask.json.dumps(obj, **kwargs)

    def loads(self, text: str | bytes, **kwargs: Any) -> Any:
        if self.app is None or flask.has_app_context():
            return flask.json.loads(text, **kwargs)
        with self.app.app_context():
            return flask.json.loads(text, **kwargs)


def flask_json_serializer(app: flask.Flask | None) -> _FlaskJSON:
    """What to hand the server when the application passes ``json=flask.json``."""
    return _FlaskJSON(app)


def flask_client_cookie_header(client: Any, path: str, host: str = "localhost") -> str | None:
    """The ``Cookie`` header that Flask test client ``client`` would send to ``path``.

    Werkzeug keeps the cookie jar private; both of its historical shapes are handled.
    """
    environ = EnvironBuilder(path=path, base_url=f"http://{host}").get_environ()
    add = getattr(client, "_add_cookies_to_wsgi", None)
    if add is not None:  # Werkzeug >= 2.3
        add(environ)
    else:
        jar = getattr(client, "cookie_jar", None)
        if jar is not None:
            jar.inject_wsgi(environ)
    return environ.get("HTTP_COOKIE")


def run_with_reloader(main: Any, **options: Any) -> None:
    """Run ``main`` under Werkzeug's reloader (the one ``flask run`` uses): a child process runs it
    and is restarted when a source file changes. Werkzeug keeps it in a private module."""
    from werkzeug._reloader import run_with_reloader as werkzeug_reloader

    werkzeug_reloader(main, **options)
