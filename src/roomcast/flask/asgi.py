"""One ASGI application per Flask app: Socket.IO at its path, every other request to Flask over WSGI.

::

    uvicorn ──▶ FlaskASGIApp(app)  ── marks the scope with its Flask app ──▶ the Engine.IO app
                                                                              │ /socket.io/ → Socket.IO
                                                                              ▼ anything else
                                                                           FlaskApps ── a2wsgi ──▶ app

The mark in the scope reaches the handshake environ (``environ["asgi.scope"]``), which is how a
handler knows which Flask app to run in when one :class:`~roomcast.flask.SocketIO` serves several.
"""

from __future__ import annotations

from typing import Any

from ..asyncio.asgi import Receive, Scope, Send, send_response
from .context import APP_KEY

__all__ = ["FlaskApps", "FlaskASGIApp", "app_of"]


def app_of(environ: dict[str, Any]) -> Any:
    """The Flask app a connection came through, or None."""
    scope = environ.get("asgi.scope")
    return scope.get(APP_KEY) if scope is not None else None


class FlaskApps:
    """The Engine.IO app's ``other_asgi_app``: requests go to their Flask app through a2wsgi.

    a2wsgi runs each WSGI call on its own thread pool, so a slow view never blocks the event loop.
    """

    def __init__(self) -> None:
        self._bridges: dict[int, Any] = {}

    def add(self, app: Any, wsgi: Any = None) -> None:
        """Serve ``app`` (or ``wsgi``, a WSGI wrapper of it such as the debugger) for its requests."""
        from a2wsgi import WSGIMiddleware

        self._bridges[id(app)] = WSGIMiddleware(wsgi if wsgi is not None else app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Nothing of ours to start or stop: Flask has no lifespan; the Engine.IO app above closes
            # its sessions at shutdown.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        bridge = self._bridges.get(id(scope.get(APP_KEY)))
        if bridge is not None:
            await bridge(scope, receive, send)
        elif kind == "http":
            await send_response(send, 404, b"Not Found", [("content-type", "text/plain")])
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})


class FlaskASGIApp:
    """A Flask app and its Socket.IO server as one ASGI application (``socketio.asgi_app``)."""

    def __init__(self, engine: Any, flask_app: Any) -> None:
        self.engine = engine
        self.flask_app = flask_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            scope = dict(scope)
            scope[APP_KEY] = self.flask_app
        await self.engine(scope, receive, send)

    def __repr__(self) -> str:
        return f"<FlaskASGIApp {getattr(self.flask_app, 'name', self.flask_app)!r}>"
