"""Engine.IO over ASGI: the I/O half of the Engine.IO server.

Everything that awaits lives here: reading request bodies, holding long-polling GETs, the WebSocket
reader and writer, the per-session timer. Every protocol decision is the sans-I/O core's
(:mod:`roomcast.engineio`). Above this layer sits an :class:`EngineHandler`: the Socket.IO server, or
the application itself through :class:`EngineServer` when Engine.IO is used alone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ..engineio.server import (
    EngineConfig,
    EngineCore,
    Handshake,
    Poll,
    Post,
    Preflight,
    Rejected,
    Request,
    Response,
    Upgrade,
    error_response,
    ErrorCode,
)
from ..engineio.session import Reason, Session, State
from ..exceptions import PayloadTooLarge, ProtocolError
from ..supervisor import sid_prefix
from .eager import resume
from .asgi import (
    ASGIApp,
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    header_dict,
    make_environ,
    query_dict,
    read_body,
    relative_path,
    send_response,
)

__all__ = ["Connection", "EngineHandler", "EngineIOApp", "EngineServer"]

logger = logging.getLogger("roomcast")

#: The ASGI scope extension through which a WebSocket server offers Roomcast a direct lane
#: (see :mod:`roomcast.asyncio.uvicorn_ws`).
DIRECT_EXTENSION = "roomcast.websocket"


class EngineHandler(Protocol):
    """What sits on top of Engine.IO: told of sessions opening, messages and closings (on the loop)."""

    async def engine_connect(self, conn: Connection) -> bool: ...

    def engine_message(self, conn: Connection, data: str | bytes) -> None: ...

    def engine_disconnect(self, conn: Connection, reason: str) -> None: ...


class Connection:
    """One Engine.IO session seen from the I/O layer: its core session, its waiters, its timer.

    ``send``/``close`` must be called on the event loop. ``state`` belongs to the layer above.
    """

    __slots__ = (
        "app",
        "session",
        "sid",
        "scope",
        "environ",
        "state",
        "_waiter",
        "_timer",
        "_timer_at",
        "_notified",
        "flushing",
        "_upgrade_ws_close",
        "_closed_event",
        "log_id",
        "ws_send",
        "_pending",
        "direct",
        "lean",
        "_writer",
    )

    def __init__(self, app: EngineIOApp, session: Session, scope: Scope) -> None:
        self.app = app
        self.session = session
        self.sid = session.sid
        self.scope = scope
        self.environ = make_environ(scope)
        self.state: Any = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._notified = False
        #: A coroutine is writing this session's packets to its WebSocket.
        self.flushing = False
        self._upgrade_ws_close: asyncio.Event | None = None
        #: Resolved when the session closes, for the WebSocket that carries it (see _run_websocket).
        self._closed_event: asyncio.Future[None] | None = None
        #: How log lines name the session: a prefix of the sid, which is a credential (anyone holding
        #: it can poll and post as this client), long enough to correlate lines, too short to use.
        self.log_id = session.sid[:6]
        #: The ASGI ``send`` of the WebSocket carrying the session (None on polling).
        self.ws_send: Send | None = None
        #: A write that suspended during an eager flush, for the writer task to finish:
        #: (the send coroutine, what it yielded, the packets after it).
        self._pending: tuple[Any, Any, list[str | bytes]] | None = None
        #: The WebSocket protocol's direct lane (see :mod:`roomcast.asyncio.uvicorn_ws`), when the
        #: server offers it: packets are written through it synchronously while it is writable.
        self.direct: Any = None
        #: Served on the direct lane with no reader and no writer task: a writer task exists only
        #: while there is something the lane cannot write at once (a peer not reading, a close).
        self.lean = False
        self._writer: asyncio.Future[None] | None = None

    @property
    def transport(self) -> str:
        return self.session.transport

    @property
    def closed(self) -> bool:
        return self.session.state is State.CLOSED

    def send(self, packet: str | bytes) -> None:
        """Queue one encoded packet (``"4..."`` or binary ``bytes``) and get it written."""
        direct = self.direct  # (_free_lane inline: the path of every reply)
        if direct is not None and not self.flushing and self.session.idle_open() and direct.write(packet):
            return
        if self.session.send(packet):
            self._kick()
        else:
            self.after()

    def send_many(self, packets: list[str | bytes]) -> None:
        """Queue packets that must stay together (a Socket.IO packet and its attachments)."""
        lane = self._free_lane()
        if lane is not None and lane.write_many(packets):
            return
        if self.session.send_many(packets):
            self._kick()
        else:
            self.after()

    def writable_now(self) -> bool:
        """Whether a packet sent now goes out at once, queued behind nothing: a WebSocket the client
        is reading, or a long-poll GET waiting for it (what a volatile emit needs, as in Node)."""
        session = self.session
        if not session.idle_open() or self.flushing:
            return False
        direct = self.direct
        if direct is not None:
            return bool(direct.writable_now())
        if session.transport == "polling":
            return session.polling_get
        return self.ws_send is not None

    def _free_lane(self) -> Any:
        """The direct lane, when a packet may go out on it ahead of nothing (no queue, no flush at
        work); None otherwise."""
        direct = self.direct
        if direct is None or self.flushing or not self.session.idle_open():
            return None
        return direct

    def _kick(self) -> None:
        """Get the queue written: on an idle WebSocket right now, else by waking its waiter."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            if self.lean and self._writer is None:
                if self.session.state is State.OPEN and self._write_now():
                    return
                self._start_writer()
            return  # nobody parked: the flusher at work (or the next GET) takes the new packets
        if self.ws_send is not None and not self.flushing and self.session.state is State.OPEN:
            if self._write_now():
                return
        waiter.set_result(None)

    def _write_now(self) -> bool:
        """Write the queue through the WebSocket's ``send`` without a task switch (a broadcast reaches
        each idle recipient this way). False when a write would wait (the client is not reading) or
        failed: the writer task then takes over, finishing the suspended write first."""
        session = self.session
        direct = self.direct
        if direct is not None:
            if not direct.writable_now():
                return False
            direct.write_many(session.take_packets())
            return True
        send = self.ws_send
        assert send is not None
        packets = session.take_packets(hold=True)
        for index, packet in enumerate(packets):
            coro: Any
            if type(packet) is str:
                coro = send({"type": "websocket.send", "text": packet})
            else:
                coro = send({"type": "websocket.send", "bytes": packet})
            try:
                yielded = coro.send(None)
            except StopIteration:
                continue
            except Exception:  # the socket is gone; its reader ends the session
                session.written()
                return False
            self._pending = (coro, yielded, packets[index + 1:])
            self.flushing = True
            return False
        session.written()
        return True

    def close(self, reason: str = Reason.FORCED_CLOSE, *, flush: bool = True) -> None:
        """Close the session (after flushing what is queued, unless ``flush`` is false)."""
        if flush:
            self.session.close(reason)
        else:
            self.session.abort(reason)
        self.wake()
        self.after()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif self.lean and self._writer is None:
            self._start_writer()

    def _start_writer(self) -> None:
        """Lean mode: a writer task for what the lane could not write at once; it ends when idle."""
        send = self.ws_send
        if send is None:
            return
        writer = self._writer = asyncio.ensure_future(self.app._ws_writer(self, send))
        writer.add_done_callback(self._writer_done)

    def _writer_done(self, writer: asyncio.Future[None]) -> None:
        if self._writer is writer:
            self._writer = None
        if not writer.cancelled():
            writer.exception()  # retrieved: a socket that broke mid-write ends through its disconnect

    def arm(self) -> asyncio.Future[None]:
        """The future the next ``wake`` resolves (one waiter at a time: the writer or the pending GET).

        Arm it right after checking what you wait for, with no ``await`` in between, or a wake that
        comes in that gap is lost; :meth:`disarm` it when done.
        """
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        return waiter

    def disarm(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and self._waiter is waiter:
            self._waiter = None

    async def wait(self) -> None:
        """Wait until ``wake``."""
        waiter = self.arm()
        try:
            await waiter
        finally:
            self.disarm(waiter)

    def after(self) -> None:
        """Act on what the last core call changed: a closed session, a new deadline."""
        session = self.session
        if session.state is State.CLOSED:
            if not self._notified:
                self._notified = True
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self.wake()
                if self.lean:
                    self._close_lean(session.close_reason)
                if self._upgrade_ws_close is not None:
                    self._upgrade_ws_close.set()
                if self._closed_event is not None and not self._closed_event.done():
                    self._closed_event.set_result(None)
                self.app.session_closed(self, session.close_reason or Reason.TRANSPORT_CLOSE)
            return
        deadline = session.next_deadline()
        if deadline is not None and (self._timer is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.app.loop.call_at(deadline, self._on_timer)

    def _close_lean(self, reason: str | None) -> None:
        """Lean mode, session closed: the writer flushes and sends the close frame; a client that
        stopped reading is cut now (``send buffer full``) or after a grace."""
        direct = self.direct
        if reason == Reason.SEND_BUFFER_FULL:
            direct.abort()
        else:
            self._timer = self.app.loop.call_later(_CLOSE_GRACE, direct.abort)

    def _on_timer(self) -> None:
        self._timer = None
        session = self.session
        session.handle_timeout(self.app.loop.time())
        if session.has_packets:
            self._kick()
        if session.upgrade_failed and self._upgrade_ws_close is not None:
            self._upgrade_ws_close.set()
        self.after()


class EngineIOApp:
    """The Engine.IO server as an ASGI application, serving ``handler`` at ``path``.

    Requests outside ``path`` (relative to the ASGI ``root_path``) go to ``other_asgi_app``, or get a
    404. Lifespan events go to ``other_asgi_app`` too, and shutdown closes every session.
    """

    def __init__(
        self,
        handler: EngineHandler,
        config: EngineConfig,
        *,
        path: str = "engine.io",
        other_asgi_app: ASGIApp | None = None,
        on_startup: Callable[[], Any] | None = None,
    ) -> None:
        self.handler = handler
        self.config = config
        self.core = EngineCore(config)
        self.core.sid_prefix = sid_prefix()
        #: Under ``roomcast run --workers N``: this worker's sid prefix (see :meth:`_route_in_worker`).
        self._worker_prefix = self.core.sid_prefix or None
        self.path = "/" + path.strip("/")
        self.other_asgi_app = other_asgi_app
        self.connections: dict[str, Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_startup = on_startup
        #: Set once shutdown began: handshakes are refused.
        self.closing = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            if self._on_startup is not None:
                self._on_startup()

    # -- ASGI entry ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        self._bind_loop()
        path = relative_path(scope)
        if path.rstrip("/") == self.path:
            if kind == "http":
                await self._serve_http(scope, receive, send)
                return
            if kind == "websocket":
                await self._serve_websocket(scope, receive, send)
                return
        if self._worker_prefix is not None and kind == "http":
            send = _closing(send)  # (no session named: the supervisor chose this worker at random)
        if self.other_asgi_app is not None:
            await self.other_asgi_app(scope, receive, send)
        elif kind == "http":
            await send_response(send, 404, b"Not Found", [("content-type", "text/plain")])
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.other_asgi_app is not None:
            app = self.other_asgi_app

            async def wrapped_receive() -> Any:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._bind_loop()
                    self._watch_signals()
                elif message["type"] == "lifespan.shutdown":
                    await self.shutdown()
                return message

            await app(scope, wrapped_receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._bind_loop()
                self._watch_signals()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _watch_signals(self) -> None:
        """Start closing sessions as soon as the process is told to stop (SIGINT/SIGTERM).

        ASGI servers wait for in-flight requests before the lifespan shutdown, and a held long-poll
        would keep them waiting until its next ping. So the server's own handler (uvicorn's,
        gunicorn's) is chained: Roomcast first closes its sessions (clients are told, buffers are
        flushed, disconnect handlers run), then the server's handler runs as before. Only a Python
        handler already installed by the server is chained; default dispositions are left alone.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        loop = self.loop
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if not callable(previous) or getattr(previous, "__roomcast__", False):
                continue

            def handler(num: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
                loop.call_soon_threadsafe(self.begin_shutdown)
                previous(num, frame)

            handler.__roomcast__ = True  # type: ignore[attr-defined]
            signal.signal(signum, handler)

    def begin_shutdown(self) -> None:
        """Close every session: flushed where a transport can still carry it, at once otherwise.
        New sessions are refused from now on (503)."""
        self.closing = True
        for conn in list(self.connections.values()):
            session = conn.session
            # a polling session with no GET waiting has no transport left to flush through
            flushable = session.transport == "websocket" or session.polling_get
            conn.close(Reason.SERVER_SHUTTING_DOWN, flush=flushable)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Close every session (clients are told to reconnect) and wait, within ``timeout``, for
        their transports to flush."""
        self.begin_shutdown()
        deadline = self.loop.time() + timeout
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections.values()):
            conn.close(Reason.SERVER_SHUTTING_DOWN, flush=False)
        # The layer above may still be running what the closings queued (disconnect handlers): the
        # loop ends after this, cancelling them, so give them the time left (one second at least).
        settle = getattr(self.handler, "engine_shutdown", None)
        if settle is not None:
            await settle(max(1.0, deadline - self.loop.time()))

    # -- bookkeeping -----------------------------------------------------------------------------

    def _request(self, scope: Scope, websocket: bool) -> Request:
        return Request(
            method="GET" if websocket else scope.get("method", "GET"),
            query=query_dict(scope),
            headers=header_dict(scope),
            websocket=websocket,
            scheme=scope.get("scheme", "http"),
        )

    async def _refuse_handshake(self, scope: Scope) -> Response | None:
        """The checks a handshake passes before any session exists: shutdown (503) and the
        ``allow_request`` hook (403, the reference server's "Forbidden"). None: go ahead."""
        if self.closing:
            return error_response(ErrorCode.FORBIDDEN, status=503, message="Server shutting down")
        hook = self.config.allow_request
        if hook is None:
            return None
        try:
            allowed = hook(make_environ(scope))
            if inspect.isawaitable(allowed):
                allowed = await allowed
        except Exception:
            logger.exception("the allow_request hook failed: request refused")
            allowed = False
        if allowed:
            return None
        logger.info("refused a handshake: allow_request returned %r", allowed)
        return error_response(ErrorCode.FORBIDDEN, status=403)

    async def _open(self, transport: str, scope: Scope) -> Connection | None:
        if self.closing:
            return None
        session = self.core.open_session(transport, self.loop.time())
        conn = Connection(self, session, scope)
        self.connections[session.sid] = conn
        try:
            accepted = await self.handler.engine_connect(conn)
        except Exception:
            logger.exception("engine connect handler failed")
            accepted = False
        if not accepted:
            session.abort(Reason.FORCED_CLOSE)
            conn._notified = True
            self.connections.pop(session.sid, None)
            self.core.forget(session)
            return None
        return conn

    def session_closed(self, conn: Connection, reason: str) -> None:
        self.connections.pop(conn.sid, None)
        self.core.forget(conn.session)
        try:
            self.handler.engine_disconnect(conn, reason)
        except Exception:
            logger.exception("disconnect handling failed for session %s", conn.log_id)

    def _deliver(self, conn: Connection, messages: list[str | bytes]) -> None:
        """Hand a POST's messages to the handler, in order.

        A payload ending with the client's ``close`` packet has closed the session already, but the
        messages before that packet were sent first and still count (Node delivers them too). Only a
        session closed *while* delivering (the handler aborted it) drops the rest.
        """
        handler = self.handler
        session = conn.session
        closed_by_payload = session.state is State.CLOSED
        for message in messages:
            if session.state is State.CLOSED and not closed_by_payload:
                break
            handler.engine_message(conn, message)

    # -- long-polling ----------------------------------------------------------------------------

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self._request(scope, websocket=False)
        if self._worker_prefix is not None:
            routed = await self._route_in_worker(scope, request, send)
            if routed is None:
                return
            send = routed
        decision = self.core.check(request)
        if isinstance(decision, Rejected):
            await self._reject_http(send, request, decision)
            return
        if isinstance(decision, Preflight):
            await self._respond(send, self.core.preflight(request))
            return
        if isinstance(decision, Handshake):
            refusal = await self._refuse_handshake(scope)
            if refusal is not None:
                await self._respond_error(send, request, refusal)
                return
            conn = await self._open("polling", scope)
            if conn is None:
                response = error_response(ErrorCode.FORBIDDEN, status=401, message="Unauthorized")
                await self._respond_error(send, request, response)
                return
            response = self.core.text_response(request, self.core.handshake_packet(conn.session))
            cookie = self.core.cookie_header(conn.sid)
            if cookie:
                response.headers.append(cookie)
            await self._respond(send, response)
            conn.after()
            return
        conn = self.connections.get(decision.session.sid)
        if conn is None:
            await self._respond_error(send, request, error_response(ErrorCode.UNKNOWN_SID))
            return
        if isinstance(decision, Poll):
            await self._poll(conn, request, receive, send)
        elif isinstance(decision, Post):
            await self._post(conn, request, receive, send)

    async def _route_in_worker(self, scope: Scope, request: Request, send: Send) -> Send | None:
        """Under ``roomcast run --workers N``, where the supervisor routes each connection by the sid
        of its first request: the ``send`` to answer ``request`` with, or None once it was answered.

        A request that names no session was sent to this worker in turn, so its response closes the
        connection (the next request on it may belong to any worker). One that names another
        worker's session came on a connection kept alive for a session of this worker: a browser
        shares its connections among its tabs. It gets a 307 to the same URL, closing the
        connection, and the browser repeats it (a POST with its body) on a connection of its owner.
        """
        sid = request.query.get("sid")
        if sid is None:
            return _closing(send)
        if sid.startswith(self._worker_prefix or ""):
            return send
        target = scope.get("root_path", "") + scope.get("path", "/")
        query = scope.get("query_string", b"").decode("latin-1")
        response = Response(status=307, headers=[("location", f"{target}?{query}"), ("connection", "close")])
        await self._respond_error(send, request, response)
        return None

    async def _reject_http(self, send: Send, request: Request, decision: Rejected) -> None:
        if decision.log:
            logger.info("%s", decision.log)
        await self._respond_error(send, request, decision.response)

    async def _respond_error(self, send: Send, request: Request, response: Response) -> None:
        """An error response, with the CORS headers a cross-origin page needs to read it."""
        response.headers.extend(self.core.cors_headers(request))
        await self._respond(send, response)

    async def _respond(self, send: Send, response: Response) -> None:
        await send_response(send, response.status, response.body, response.headers)

    async def _poll(self, conn: Connection, request: Request, receive: Receive, send: Send) -> None:
        session = conn.session
        try:
            session.begin_poll()
        except ProtocolError as exc:
            logger.info("closing session %s: %s", conn.log_id, exc)
            conn.wake()
            conn.after()
            await self._respond_error(send, request, error_response(ErrorCode.BAD_REQUEST))
            return
        if not session.poll_ready():
            waiter: asyncio.Future[None] | None = None

            def on_gone(_: Any) -> None:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

            gone = asyncio.ensure_future(_until_disconnect(receive))
            gone.add_done_callback(on_gone)  # (cheaper than an asyncio.wait on both per GET)
            try:
                while not session.poll_ready():
                    # Armed synchronously after the check (not in a task of its own, whose first step
                    # would run later): a packet queued in between must wake this GET.
                    waiter = conn.arm()
                    await waiter
                    if gone.done():
                        session.abandon_poll()
                        conn.after()
                        return
            finally:
                conn.disarm(waiter)
                if not gone.done():
                    gone.cancel()
        payload = session.take_poll_payload()
        conn.after()
        await self._respond(send, self.core.text_response(request, payload))

    async def _post(self, conn: Connection, request: Request, receive: Receive, send: Send) -> None:
        session = conn.session
        try:
            session.begin_post()
        except ProtocolError as exc:
            logger.info("closing session %s: %s", conn.log_id, exc)
            conn.after()
            await self._respond_error(send, request, error_response(ErrorCode.BAD_REQUEST))
            return
        try:
            try:
                body = await read_body(receive, self.config.max_http_buffer_size)
            except BodyTooLarge:
                logger.info("closing session %s: POST body over max_http_buffer_size", conn.log_id)
                session.abort(Reason.PAYLOAD_TOO_LARGE)
                conn.after()
                await self._respond_error(
                    send, request, error_response(ErrorCode.BAD_REQUEST, status=413, message="Payload too large")
                )
                return
            except ClientGone:
                return
            try:
                messages = session.receive_payload(body, self.loop.time())
            except ProtocolError as exc:
                logger.info("closing session %s: %s", conn.log_id, exc)
                conn.after()
                status = 413 if isinstance(exc, PayloadTooLarge) else 400
                await self._respond_error(
                    send, request, error_response(ErrorCode.BAD_REQUEST, status=status, message=str(exc))
                )
                return
            self._deliver(conn, messages)
        finally:
            session.end_post()
        conn.after()
        await self._respond(send, self.core.text_response(request, "ok"))

    # -- WebSocket -------------------------------------------------------------------------------

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        request = self._request(scope, websocket=True)
        decision = self.core.check(request)
        if isinstance(decision, Rejected):
            if decision.log:
                logger.info("%s", decision.log)
            await send({"type": "websocket.close", "code": 1008})
            return
        if isinstance(decision, Handshake):
            if await self._refuse_handshake(scope) is not None:
                # A bare 403, as for every WebSocket refusal: uvicorn's websocket.http.response
                # support logs an error after sending the body.
                await send({"type": "websocket.close", "code": 1008})
                return
            conn = await self._open("websocket", scope)
            if conn is None:
                await send({"type": "websocket.close", "code": 1008})
                return
            accept: dict[str, Any] = {"type": "websocket.accept"}
            cookie = self.core.cookie_header(conn.sid)
            if cookie:
                accept["headers"] = [(cookie[0].encode(), cookie[1].encode())]
            await send(accept)
            await send({"type": "websocket.send", "text": self.core.handshake_packet(conn.session)})
            conn.after()
            await self._run_websocket(conn, scope, receive, send)
            return
        if isinstance(decision, Upgrade):
            conn = self.connections.get(decision.session.sid)
            if conn is None or conn._upgrade_ws_close is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "websocket.accept"})
            if await self._upgrade(conn, receive, send):
                await self._run_websocket(conn, scope, receive, send)

    async def _upgrade(self, conn: Connection, receive: Receive, send: Send) -> bool:
        """Run the probe/upgrade exchange on a new WebSocket; True once the session moved to it."""
        session = conn.session
        gave_up = conn._upgrade_ws_close = asyncio.Event()
        try:
            while True:
                msg_task = asyncio.ensure_future(receive())
                stop_task = asyncio.ensure_future(gave_up.wait())
                done, _ = await asyncio.wait((msg_task, stop_task), return_when=asyncio.FIRST_COMPLETED)
                if msg_task not in done:
                    msg_task.cancel()
                    await send({"type": "websocket.close", "code": 1000})
                    return False
                stop_task.cancel()
                message = msg_task.result()
                if message["type"] == "websocket.disconnect":
                    session.abandon_upgrade()
                    return False
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                try:
                    out = session.receive_upgrade(data, self.loop.time())
                except ProtocolError as exc:
                    logger.info("upgrade of session %s failed: %s", conn.log_id, exc)
                    await send({"type": "websocket.close", "code": 1002})
                    return False
                upgraded = session.transport == "websocket"
                if not upgraded:
                    conn.wake()  # release a waiting GET with its noop
                    conn.after()
                for packet in out:
                    await self._ws_send(send, packet)
                if upgraded:
                    conn.wake()
                    on_upgrade = getattr(self.handler, "engine_upgraded", None)
                    if on_upgrade is not None:  # (an optional part of the handler's interface)
                        on_upgrade(conn)
                    return True
        finally:
            conn._upgrade_ws_close = None

    async def _ws_send(self, send: Send, packet: str | bytes) -> None:
        if type(packet) is str:
            await send({"type": "websocket.send", "text": packet})
        else:
            await send({"type": "websocket.send", "bytes": packet})

    async def _run_websocket(self, conn: Connection, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a session on its WebSocket until the client goes, or the session closes and the
        socket is done with it.

        Reader and writer both block in ``send()`` once a client stops reading, and ASGI cannot abort a
        connection: the only way out is to return. So the reader runs as a task of its own, and when
        the session closes the client gets a bounded grace to take its last frames (none when it was
        closed for not reading: ``send buffer full``); then both are cancelled and the ASGI server
        closes the socket, which releases the session's tasks and buffers.
        """
        direct = (scope.get("extensions") or {}).get(DIRECT_EXTENSION)
        if direct is not None and not conn.closed and direct.take_messages(self._direct_reader(conn, direct)):
            await self._run_lean(conn, direct, receive, send)
            return
        closed = conn._closed_event = self.loop.create_future()
        if conn.closed:
            closed.set_result(None)
        conn.ws_send = send
        writer = asyncio.ensure_future(self._ws_writer(conn, send))
        reader = asyncio.ensure_future(self._ws_reader(conn, receive, send, direct))
        try:
            await asyncio.wait((reader, closed), return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                # Normally the writer flushes, sends the close frame, and the reader sees the disconnect.
                grace = 0.0 if conn.session.close_reason == Reason.SEND_BUFFER_FULL else _CLOSE_GRACE
                await asyncio.wait((reader,), timeout=grace)
        finally:
            conn._closed_event = None
            conn.ws_send = None
            conn.direct = None
            gave_up = not reader.done()
            if gave_up:
                reader.cancel()
            if not conn.closed:
                conn.session.transport_closed(Reason.TRANSPORT_CLOSE)
                conn.after()
            conn.wake()
            if gave_up or conn.session.close_reason == Reason.SEND_BUFFER_FULL:
                writer.cancel()  # it is stuck in send() too, or about to be
            try:
                await asyncio.wait_for(writer, timeout=_CLOSE_GRACE)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                writer.cancel()
            except Exception:  # the socket broke while flushing: nothing more to do
                pass
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    async def _run_lean(self, conn: Connection, direct: Any, receive: Receive, send: Send) -> None:
        """Serve a session on the direct lane: messages arrive through the lane's callback, frames
        leave through it while it is writable, and this waits for the disconnect alone. No reader
        task; a writer task only while needed (see :meth:`Connection._kick`)."""
        conn.ws_send = send
        conn.direct = direct
        conn.lean = True
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            conn.lean = False
            conn.direct = None
            conn.ws_send = None
            if conn._timer is not None and conn.closed:
                conn._timer.cancel()  # the grace before abort: the socket is gone already
                conn._timer = None
            if not conn.closed:
                conn.session.transport_closed(Reason.TRANSPORT_CLOSE)
                conn.after()
            writer = conn._writer
            conn._writer = None
            if writer is not None and not writer.done():
                writer.cancel()
            conn.wake()

    async def _ws_reader(self, conn: Connection, receive: Receive, send: Send, direct: Any = None) -> None:
        """Read the WebSocket's messages until it or the session ends.

        With a direct lane (``direct``, see :mod:`roomcast.asyncio.uvicorn_ws`), once what was
        queued before has been read, messages come from the protocol's parser straight to
        :meth:`_ws_message`, and ``receive()`` is left with the disconnect.
        """
        session = conn.session
        while True:
            if direct is not None and direct.take_messages(self._direct_reader(conn, direct)):
                conn.direct = direct
                direct = None
            message = await receive()
            mtype = message["type"]
            if mtype == "websocket.receive":
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                    if data is None:
                        continue
                stop = self._ws_message(conn, data)
                if stop is not None:
                    if stop[0]:
                        await self._ws_close(send, *stop)
                    return
                if session.has_packets and not conn.flushing:
                    # Answer right here rather than waking the writer task: one task switch less
                    # per round trip, and a client that does not read slows its own reading.
                    await self._flush(conn, send)
            elif mtype == "websocket.disconnect":
                session.transport_closed(Reason.TRANSPORT_CLOSE)
                conn.after()
                return

    def _direct_reader(self, conn: Connection, direct: Any) -> Callable[[str | bytes], None]:
        """The message callback of a direct lane: :meth:`_ws_message`, then the replies written."""
        session = conn.session
        handler = self.handler
        quick_limit = self.config.max_http_buffer_size // 4  # characters that surely fit the limit

        engine_message = handler.engine_message
        open_state, closed_state = State.OPEN, State.CLOSED

        def on_message(data: str | bytes) -> None:
            try:
                if (
                    type(data) is str and data[:1] == "4" and len(data) <= quick_limit
                    and session.state is open_state
                ):
                    # The common case, a text message on an open session: _ws_message minus the
                    # checks that cannot fail for it.
                    engine_message(conn, data[1:])
                    stop = None
                    if session.state is closed_state:  # the handler closed the session
                        conn.after()
                        stop = _STOP
                else:
                    stop = self._ws_message(conn, data)
            except Exception:
                logger.exception("closing session %s: error handling a message", conn.log_id)
                session.abort(Reason.TRANSPORT_ERROR)
                conn.after()
                direct.close_now(1011)
                return
            if stop is not None:
                if stop[0]:
                    direct.close_now(*stop)
                else:
                    direct.stop_messages()
                return
            if session.has_packets and not conn.flushing:
                conn._kick()

        return on_message

    def _ws_message(self, conn: Connection, data: str | bytes) -> tuple[int, str] | None:
        """Handle one WebSocket message. None to read on; else stop reading, after closing the
        WebSocket with ``(code, reason)`` when the code is not 0."""
        session = conn.session
        limit = self.config.max_http_buffer_size
        size = len(data)
        if size * 4 > limit and type(data) is str:
            size = len(data.encode("utf-8", "surrogatepass"))
        if size > limit:
            logger.info("closing session %s: message of %d bytes over the limit", conn.log_id, size)
            session.abort(Reason.PAYLOAD_TOO_LARGE)
            conn.after()
            return 1009, Reason.PAYLOAD_TOO_LARGE
        try:
            result = session.receive(data, self.loop.time())
        except ProtocolError as exc:
            logger.info("closing session %s: %s", conn.log_id, exc)
            conn.after()
            return 1002, session.close_reason or ""
        if result is not None:
            self.handler.engine_message(conn, result)
            if session.state is State.CLOSED:
                conn.after()
                return _STOP
        else:
            # a control packet (pong, close...) may move the deadlines or end the session
            conn.after()
            if session.state is State.CLOSED:
                return _STOP
        return None

    async def _flush(self, conn: Connection, send: Send) -> None:
        """Write what the session has queued, in order. One flusher at a time (the reader or the
        writer task), so that frames never interleave out of order."""
        session = conn.session
        conn.flushing = True
        try:
            while session.has_packets or session.state is State.CLOSING:
                # hold=True: the batch counts against max_send_buffer until written, since send()
                # blocks as long as the client does not read.
                for packet in session.take_packets(hold=True):
                    if type(packet) is str:
                        await send({"type": "websocket.send", "text": packet})
                    else:
                        await send({"type": "websocket.send", "bytes": packet})
                session.written()
                if session.state is State.CLOSED:
                    conn.after()
                    break
        finally:
            conn.flushing = False

    async def _ws_writer(self, conn: Connection, send: Send) -> None:
        session = conn.session
        while True:
            if conn._pending is not None:
                await self._finish_pending(conn, send)
                continue
            if (session.has_packets or session.state is State.CLOSING) and not conn.flushing:
                await self._flush(conn, send)
                continue
            if session.state is State.CLOSED:
                break
            if conn.lean:
                conn._writer = None  # idle: the next packet goes straight out, or starts a writer again
                return
            await conn.wait()
        await self._ws_close(send, 1000, session.close_reason or "")

    async def _finish_pending(self, conn: Connection, send: Send) -> None:
        """Finish the write an eager flush left suspended, then the packets that were behind it."""
        assert conn._pending is not None
        coro, yielded, rest = conn._pending
        conn._pending = None
        try:
            await resume(coro, yielded)
            for packet in rest:
                if type(packet) is str:
                    await send({"type": "websocket.send", "text": packet})
                else:
                    await send({"type": "websocket.send", "bytes": packet})
            conn.session.written()
        finally:
            conn.flushing = False

    async def _ws_close(self, send: Send, code: int, reason: str = "") -> None:
        """Close the WebSocket; ``reason`` (the session's close reason) tells the client why."""
        try:
            await send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:  # already closed by the other side
            pass


#: :meth:`EngineIOApp._ws_message`'s "stop reading, the session is closed".
_STOP = (0, "")

#: Seconds a WebSocket client gets to take its last frames once its session closed.
_CLOSE_GRACE = 5.0


def _closing(send: Send) -> Send:
    """``send``, with ``connection: close`` added to the response's headers."""

    async def closing_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)

    return closing_send


async def _until_disconnect(receive: Receive) -> None:
    """Return when the HTTP client goes away (the request body, if any, is skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class EngineServer:
    """Engine.IO on its own: raw messages with transport fallback, no Socket.IO on top.

    Handlers: ``connect(sid, environ)`` (return False to refuse), ``message(sid, data)``,
    ``disconnect(sid, reason)``; plain or ``async def`` (plain ones run on the event loop here, so
    keep them short). Mount :meth:`asgi_app` in any ASGI server.
    """

    def __init__(self, **options: Any) -> None:
        self.config = EngineConfig(**options)
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.app: EngineIOApp | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register a handler for ``connect``, ``message`` or ``disconnect`` (also as a decorator)."""
        if event not in ("connect", "message", "disconnect"):
            raise ValueError(f"unknown Engine.IO event {event!r}")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers[event] = fn
            return fn

        return register(handler) if handler is not None else register

    def asgi_app(self, path: str = "engine.io", other_asgi_app: ASGIApp | None = None) -> EngineIOApp:
        self.app = EngineIOApp(self, self.config, path=path, other_asgi_app=other_asgi_app)
        return self.app

    def _conn(self, sid: str) -> Connection:
        if self.app is None or sid not in self.app.connections:
            raise KeyError(f"no session {sid!r}")
        return self.app.connections[sid]

    async def send(self, sid: str, data: str | bytes) -> None:
        """Send one message (text or binary) to session ``sid``."""
        self._conn(sid).send(data if isinstance(data, bytes) else "4" + data)

    async def disconnect(self, sid: str) -> None:
        self._conn(sid).close(Reason.FORCED_CLOSE)

    def transport(self, sid: str) -> str:
        return self._conn(sid).transport

    def _run(self, event: str, *args: Any) -> Any:
        """Call the ``event`` handler; a failing handler is logged, never allowed to break the
        transport that delivered the event (or the session's other events)."""
        fn = self.handlers.get(event)
        if fn is None:
            return None
        try:
            result = fn(*args)
        except Exception:
            logger.exception("the %s handler failed for session %s", event, str(args[0])[:6])
            return None
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        return result

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("an async handler failed", exc_info=task.exception())

    async def engine_connect(self, conn: Connection) -> bool:
        fn = self.handlers.get("connect")
        if fn is None:
            return True
        result = fn(conn.sid, conn.environ)
        if inspect.isawaitable(result):
            result = await result
        return result is not False

    def engine_message(self, conn: Connection, data: str | bytes) -> None:
        self._run("message", conn.sid, data)

    def engine_disconnect(self, conn: Connection, reason: str) -> None:
        self._run("disconnect", conn.sid, reason)
