"""The asyncio Socket.IO client (python-socketio's ``AsyncClient`` API) and the simple client.

This is the I/O layer of the client: it owns the transports (WebSocket through ``websockets``, long-polling
through ``httpx``), the tasks and the timers. Every protocol decision is taken by the sans-I/O cores,
:class:`roomcast.engineio.client.EngineClient` (handshake, heartbeat, upgrade) and
:class:`roomcast.socketio.client.ClientSession` (namespaces, acks, packets). The blocking client in
:mod:`roomcast.sync.client` runs this one on a loop in a background thread.

Shape of a connection: one :class:`_Connection` per Engine.IO session, with a reader task per transport
and a heartbeat watchdog. When it ends for any reason other than a disconnect asked by either side, the
client reconnects with exponential backoff and jitter, and joins its namespaces again with their auth.
Application handlers run one at a time, in arrival order, on a dispatcher task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from .._arguments import ack_args, call_result, data_args
from ..engineio.client import PROBE, UPGRADE, EngineClient, Reason, State, engine_url
from ..exceptions import BadNamespaceError, ConnectionError, DisconnectedError, ProtocolError, TimeoutError
from ..serializer import Serializer, default_serializer, from_module
from .transports import PollingTransport, Transport, TransportClosed, WebSocketTransport
from ..socketio.client import (
    AckReceived,
    ClientEvent,
    ClientSession,
    Connected,
    RecoveryState,
    ConnectRefused,
    EventReceived,
    ServerDisconnected,
)

__all__ = ["AsyncClient", "AsyncClientNamespace", "Reason"]

logger = logging.getLogger("roomcast.client")

_RESERVED = frozenset({"connect", "connect_error", "disconnect"})
_TRANSPORTS = ("polling", "websocket")


def _accepts_args(fn: Callable[..., Any], count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments (for the optional ``reason``)."""
    try:
        inspect.signature(fn).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: assume yes
        return True
    return True


_LOST = "lost"


class _Refused(ConnectionError):
    """A namespace was refused by the server (not worth retrying with the same auth)."""


class _Connection:
    """One Engine.IO session of the client and everything that lives and dies with it."""

    def __init__(self, engine: EngineClient, session: ClientSession) -> None:
        self.engine = engine
        self.session = session
        self.transport: Transport | None = None
        self.polling: PollingTransport | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.send_lock = asyncio.Lock()
        self.closed = False
        self.poll_reader: asyncio.Task[Any] | None = None
        self.teardown: asyncio.Task[Any] | None = None
        #: Packets that came with the handshake, fed once the reader starts.
        self.leftovers: list[str | bytes] = []
        #: Per namespace being joined: None (accepted), the refusal, or _LOST.
        self.waiters: dict[str, asyncio.Future[Any]] = {}
        self.calls: dict[int, asyncio.Future[list[Any]]] = {}
        self.callbacks: dict[int, Callable[..., Any]] = {}


# -- the client ---------------------------------------------------------------------------------------


class AsyncClient:
    """A Socket.IO client for asyncio (python-socketio's ``AsyncClient`` API).

    Options: ``reconnection`` (True), ``reconnection_attempts`` (0: unlimited), ``reconnection_delay``
    (1 s, doubled each attempt), ``reconnection_delay_max`` (5 s), ``randomization_factor`` (0.5: each
    delay is moved by up to ±50%), ``request_timeout`` (5 s: HTTP requests and the WebSocket opening
    handshake), ``json`` (a module with ``dumps``/``loads``), ``max_attachments`` (10),
    ``handle_sigint`` and ``logger`` (accepted for compatibility).
    """

    reason = Reason

    def __init__(
        self,
        reconnection: bool = True,
        reconnection_attempts: int = 0,
        reconnection_delay: float = 1,
        reconnection_delay_max: float = 5,
        randomization_factor: float = 0.5,
        logger: Any = False,
        json: Any = None,
        handle_sigint: bool = True,
        request_timeout: float = 5,
        max_attachments: int = 10,
        ssl_verify: bool = True,
        offline_buffer: int = 0,
        serializer: str = "default",
        _threaded_handlers: bool = False,
        **kwargs: Any,
    ) -> None:
        if offline_buffer < 0:
            raise ValueError("offline_buffer must be 0 (off) or more")
        if serializer not in ("default", "msgpack"):
            raise ValueError(f"serializer must be 'default' or 'msgpack', not {serializer!r}")
        if serializer == "msgpack":
            from ..socketio import msgpack_parser

            msgpack_parser.require()
        #: The packet format: Socket.IO's text ("default") or MessagePack (socket.io-msgpack-parser).
        self.packet_format = serializer
        self.reconnection = reconnection
        #: Emits kept while reconnecting, at most (0: none; emitting then raises BadNamespaceError).
        self.offline_buffer = offline_buffer
        #: What was emitted while reconnecting: (namespace, event, args, callback or call() future).
        self._offline: list[tuple[str, str, tuple[Any, ...], Any]] = []
        self.reconnection_attempts = reconnection_attempts
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.randomization_factor = randomization_factor
        self.request_timeout = request_timeout
        self.max_attachments = max_attachments
        self.ssl_verify = ssl_verify
        self.serializer: Serializer = from_module(json) if json is not None else default_serializer
        #: Connection state recovery: kept across connections (see docs/client.md).
        self._recovery = RecoveryState()
        self._recovered: dict[str, bool] = {}
        # The blocking facade runs plain-function handlers on worker threads, so that they may call its
        # blocking methods (which wait on this loop); asyncio users get them on the loop, as usual.
        self._threaded_handlers = _threaded_handlers
        self.handlers: dict[str, dict[str, Callable[..., Any]]] = {}
        self.namespace_handlers: dict[str, Any] = {}
        self.connection_url: str | None = None
        self.connection_headers: dict[str, str] = {}
        self.connection_auth: Any = None
        self.connection_transports: list[str] = list(_TRANSPORTS)
        self.connection_namespaces: list[str] = []
        self.socketio_path = "socket.io"
        self._conn: _Connection | None = None
        self._reconnect_task: asyncio.Task[Any] | None = None
        self._dispatcher: asyncio.Task[Any] | None = None
        self._queue: asyncio.Queue[tuple[Any, ...] | None] | None = None
        self._done = asyncio.Event()
        self._done.set()
        self._background: set[asyncio.Task[Any]] = set()
        self._opening = False

    # -- registration ---------------------------------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """Register ``handler`` for ``event`` in ``namespace`` ('/' by default); a decorator without handler.

        ``event`` may be ``'*'`` (any event: the handler gets the event name first) and ``namespace`` ``'*'``
        (any namespace: the handler gets the namespace first).
        """
        ns = namespace or "/"

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers.setdefault(ns, {})[event] = fn
            return fn

        if handler is None:
            return register
        register(handler)
        return None

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function.

        Usable bare (``@client.event``) or with ``on``'s options (``@client.event(namespace="/admin")``).
        """
        if len(args) == 1 and not kwargs and callable(args[0]):
            return self.on(args[0].__name__)(args[0])

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.on(fn.__name__, fn, *args, **kwargs)
            return fn

        return register

    def register_namespace(self, namespace_handler: Any) -> None:
        """Register a class-based namespace (an :class:`AsyncClientNamespace`, or the sync ``ClientNamespace``)."""
        namespace_handler._set_client(self)
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler

    # -- state ----------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the Engine.IO session is open and at least one namespace is connected."""
        conn = self._conn
        return conn is not None and not conn.closed and bool(conn.session.sids)

    @property
    def namespaces(self) -> dict[str, str]:
        """The connected namespaces and their sids."""
        conn = self._conn
        return dict(conn.session.sids) if conn is not None and not conn.closed else {}

    @property
    def sid(self) -> str | None:
        """The sid of the '/' namespace (None when not connected to it)."""
        return self.get_sid("/")

    def get_sid(self, namespace: str | None = None) -> str | None:
        """The sid the server gave ``namespace`` (default '/'), or None."""
        return self.namespaces.get(namespace or "/")

    def recovered(self, namespace: str | None = None) -> bool:
        """Whether the last connection of ``namespace`` (default '/') restored the previous session
        (the server's connection state recovery): same sid, rooms, and the missed events replayed."""
        return self._recovered.get(namespace or "/", False)

    def transport(self) -> str | None:
        """The transport in use: ``'websocket'`` or ``'polling'`` (None when not connected)."""
        conn = self._conn
        return conn.engine.transport if conn is not None and not conn.closed else None

    # -- connecting -----------------------------------------------------------------------------------

    async def connect(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        transports: str | list[str] | None = None,
        namespaces: str | list[str] | None = None,
        socketio_path: str = "socket.io",
        wait: bool = True,
        wait_timeout: float = 1,
        retry: bool = False,
    ) -> None:
        """Connect to ``url`` and join ``namespaces`` (default: those with handlers, else '/').

        ``auth`` is a dict, or a callable (sync or async) returning one, called on every (re)connection.
        ``transports`` is any of ``'polling'`` and ``'websocket'`` (both by default: polling, then an
        upgrade). With ``wait`` the call returns once every namespace is connected, waiting at most
        ``wait_timeout`` seconds for them. Raises :class:`ConnectionError` when the server can't be
        reached, the handshake fails, or a namespace is refused or not answered in time; with
        ``retry=True`` a failure starts the reconnection loop instead.
        """
        if self._conn is not None and not self._conn.closed or not self._done.is_set():
            raise ConnectionError("Already connected")
        if isinstance(transports, str):
            transports = [transports]
        transports = list(transports or _TRANSPORTS)
        bad = [t for t in transports if t not in _TRANSPORTS]
        if bad or not transports:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {transports!r}")
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        if not namespaces:
            namespaces = [ns for ns in self.handlers if ns != "*"]
            namespaces += [ns for ns in self.namespace_handlers if ns not in namespaces and ns != "*"]
            namespaces = namespaces or ["/"]
        self.connection_url = url
        self.connection_headers = dict(headers or {})
        self.connection_auth = auth
        self.connection_transports = transports
        self.connection_namespaces = list(namespaces)
        self.socketio_path = socketio_path
        self.wait_timeout = wait_timeout
        self._done = asyncio.Event()
        self._queue = asyncio.Queue()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(self._queue))
        try:
            await self._open(wait=wait)
        except ConnectionError:
            if retry and self.reconnection:
                self._start_reconnect()
                return
            self._finish()
            # Let connect_error / disconnect handlers run before the caller sees the exception.
            dispatcher = self._dispatcher
            if dispatcher is not None and dispatcher is not asyncio.current_task():
                await asyncio.wait([dispatcher], timeout=self.request_timeout)
            raise

    async def _auth(self) -> Any:
        auth = self.connection_auth
        if callable(auth):
            auth = auth()
            if inspect.isawaitable(auth):
                auth = await auth
        return auth

    async def _open(self, wait: bool = True) -> None:
        """One connection attempt: handshake, optional upgrade, namespace connects."""
        assert self.connection_url is not None
        transports = self.connection_transports
        first = "polling" if "polling" in transports else "websocket"
        url = engine_url(self.connection_url, self.socketio_path, first)
        engine = EngineClient(first)
        conn = _Connection(
            engine,
            ClientSession(serializer=self.serializer, max_attachments=self.max_attachments, recovery=self._recovery,
                          msgpack=self.packet_format == "msgpack"),
        )
        loop = asyncio.get_running_loop()
        try:
            if first == "websocket":
                ws = await WebSocketTransport.open(url, self.connection_headers, self.request_timeout)
                conn.transport = ws
                try:
                    opening = await asyncio.wait_for(ws.receive(), self.request_timeout)
                except asyncio.TimeoutError:
                    raise TransportClosed(Reason.TRANSPORT_ERROR, "no handshake within the request timeout") from None
                engine.receive_open(opening[0], loop.time())
            else:
                http = httpx.AsyncClient(headers=self.connection_headers, verify=self.ssl_verify)
                polling = PollingTransport(http, url, self.request_timeout)
                conn.transport = conn.polling = polling
                packets = await polling.receive()
                handshake = engine.receive_open(packets[0], loop.time())
                conn.leftovers = packets[1:]
                polling.opened(handshake.sid, handshake.ping_interval, handshake.ping_timeout, handshake.max_payload)
        except (TransportClosed, ProtocolError) as exc:
            if conn.transport is not None:
                await conn.transport.close()
            raise ConnectionError(f"Connection to {self.connection_url} failed: {exc}") from exc
        self._conn = conn
        self._opening = True
        try:
            await self._start(conn, wait)
        finally:
            self._opening = False
        if conn.closed:
            raise ConnectionError(f"connection lost while connecting ({conn.engine.close_reason})")

    async def _start(self, conn: _Connection, wait: bool) -> None:
        """Start the connection's tasks, join the namespaces and (if ``wait``) wait for the answers."""
        engine = conn.engine
        loop = asyncio.get_running_loop()
        auth = await self._auth()
        for ns in self.connection_namespaces:
            conn.waiters[ns] = loop.create_future()
        assert conn.transport is not None
        reader = self._spawn(conn, self._read_loop(conn, conn.transport, conn.leftovers))
        if engine.transport == "polling":
            conn.poll_reader = reader
        self._spawn(conn, self._heartbeat(conn))
        try:
            for ns in self.connection_namespaces:
                await self._send(conn, conn.session.connect(ns, auth))
        except ValueError as exc:
            self._lost(conn, Reason.CLIENT_DISCONNECT)
            raise ConnectionError(f"Invalid auth: {exc}") from exc
        if engine.can_upgrade(self.connection_transports):
            self._spawn(conn, self._upgrade(conn))
        if not wait:
            return
        await self._wait_namespaces(conn)

    async def _wait_namespaces(self, conn: _Connection) -> None:
        """Wait for every namespace's answer; raise ConnectionError unless all were accepted."""
        done, pending = await asyncio.wait(list(conn.waiters.values()), timeout=self.wait_timeout)
        problems = []
        refused = False
        for ns, fut in conn.waiters.items():
            if fut not in done:
                problems.append(f"{ns}: no answer within {self.wait_timeout}s")
            elif fut.result() is _LOST:
                problems.append(f"{ns}: connection lost ({conn.engine.close_reason})")
            elif fut.result() is not None:
                refused = True
                problems.append(f"{ns}: {fut.result().message}")
        if problems:
            if not conn.closed:
                self._close(conn, Reason.CLIENT_DISCONNECT)
            error = _Refused if refused else ConnectionError
            raise error("One or more namespaces failed to connect: " + "; ".join(problems))

    def _spawn(self, conn: _Connection, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)
        return task

    # -- the connection's tasks -----------------------------------------------------------------------

    async def _read_loop(self, conn: _Connection, transport: Transport, first: list[str | bytes]) -> None:
        """Feed everything ``transport`` receives to the cores, until it fails or is paused."""
        packets = first
        try:
            while True:
                for packet in packets:
                    await self._on_packet(conn, packet)
                    if conn.closed:
                        return
                if transport.paused or conn.closed:
                    return
                packets = await transport.receive()
        except TransportClosed as exc:
            if transport is conn.transport:
                logger.info("transport %s lost: %s", transport.name, exc)
                self._lost(conn, exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave the client hanging
            logger.exception("client reader failed")
            self._lost(conn, Reason.TRANSPORT_ERROR)

    async def _on_packet(self, conn: _Connection, packet: str | bytes) -> None:
        engine = conn.engine
        try:
            messages = engine.receive(packet, asyncio.get_running_loop().time())
        except ProtocolError as exc:
            logger.warning("invalid Engine.IO packet from the server: %s", exc)
            self._lost(conn, Reason.PARSE_ERROR)
            return
        out = engine.take_outgoing()
        if out:
            await self._send_engine(conn, out)
        if engine.state is State.CLOSED:
            self._lost(conn, engine.close_reason or Reason.TRANSPORT_CLOSE)
            return
        for message in messages:
            try:
                events = conn.session.receive(message)
            except ProtocolError as exc:
                logger.warning("invalid Socket.IO packet from the server: %s", exc)
                self._lost(conn, Reason.PARSE_ERROR)
                return
            for event in events:
                self._on_event(conn, event)

    def _on_event(self, conn: _Connection, event: ClientEvent) -> None:
        if isinstance(event, EventReceived):
            self._post(("event", conn, event.namespace, event.name, event.args, event.ack_id))
        elif isinstance(event, AckReceived):
            fut = conn.calls.pop(event.ack_id, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(event.args)
                return
            callback = conn.callbacks.pop(event.ack_id, None)
            if callback is not None:
                self._post(("callback", callback, event.args))
        elif isinstance(event, Connected):
            self._recovered[event.namespace] = event.recovered
            self._flush_offline(conn, event.namespace)
            self._post(("connect", event.namespace))
            self._resolve_waiter(conn, event.namespace, None)
        elif isinstance(event, ConnectRefused):
            payload: dict[str, Any] = {"message": event.message}
            if event.data is not None:
                payload["data"] = event.data
            self._post(("connect_error", event.namespace, payload))
            self._resolve_waiter(conn, event.namespace, event)
        elif isinstance(event, ServerDisconnected):
            self._post(("disconnect", event.namespace, Reason.SERVER_DISCONNECT))
            if not conn.session.namespaces:
                self._close(conn, Reason.SERVER_DISCONNECT)

    def _resolve_waiter(self, conn: _Connection, ns: str, value: ConnectRefused | None) -> None:
        fut = conn.waiters.get(ns)
        if fut is not None and not fut.done():
            fut.set_result(value)
        if value is not None and not conn.session.namespaces and not self._opening:
            # The last namespace was refused (a connect without waiting): nothing keeps the session open.
            self._close(conn, Reason.CLIENT_DISCONNECT)

    async def _heartbeat(self, conn: _Connection) -> None:
        """Close with ``ping timeout`` when the server sends no ping in pingInterval + pingTimeout."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = conn.engine.next_deadline()
            if deadline is None:
                return
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if conn.engine.handle_timeout(loop.time()):
                logger.info("the server sent no ping in time: ping timeout")
                self._lost(conn, Reason.PING_TIMEOUT)
                return

    async def _upgrade(self, conn: _Connection) -> None:
        """Probe a WebSocket, pause polling, then move the session to the WebSocket.

        "the client sends a probe ... the server responds ... the client pauses polling, sends the
        upgrade packet" (engine.io-protocol.md, "Upgrade"). A failed probe leaves the session on polling.
        """
        polling = conn.polling
        engine = conn.engine
        assert polling is not None and engine.sid is not None and self.connection_url is not None
        url = engine_url(self.connection_url, self.socketio_path, "websocket", engine.sid)
        headers = dict(self.connection_headers)
        cookies = "; ".join(f"{k}={v}" for k, v in polling.http.cookies.items())
        if cookies and "Cookie" not in headers:
            headers["Cookie"] = cookies  # sticky-session cookies set on the handshake
        ws: WebSocketTransport | None = None
        try:
            ws = await WebSocketTransport.open(url, headers, self.request_timeout)
            await ws.send([PROBE])
            answer = await asyncio.wait_for(ws.receive(), self.request_timeout)
            if conn.closed or not engine.probe_answered(answer[0]):
                raise TransportClosed(Reason.TRANSPORT_ERROR, f"bad probe answer {answer[0]!r}")
            polling.paused = True
            # The server answers the pending GET with a noop once it saw the probe: the reader then stops.
            reader = conn.poll_reader
            if reader is not None:
                await asyncio.wait([reader], timeout=self.request_timeout)
                reader.cancel()
            async with conn.send_lock:
                await polling.drained()
                if conn.closed:
                    raise TransportClosed(Reason.TRANSPORT_CLOSE)
                await ws.send([UPGRADE])
                engine.upgrade_done()
                conn.transport = ws
            self._spawn(conn, self._read_loop(conn, ws, []))
            await polling.close()
            ws = None
        except (TransportClosed, asyncio.TimeoutError) as exc:
            logger.info("upgrade to WebSocket failed, staying on polling: %r", exc)
            engine.upgrade_failed()
            if polling.paused and not conn.closed:
                polling.paused = False
                conn.poll_reader = self._spawn(conn, self._read_loop(conn, polling, []))
        finally:
            if ws is not None:
                await ws.close()

    # -- sending --------------------------------------------------------------------------------------

    async def _send(self, conn: _Connection, messages: list[str | bytes]) -> None:
        """Send Socket.IO messages (Engine.IO ``message`` payloads) on the connection's transport."""
        await self._send_engine(conn, ["4" + m if isinstance(m, str) else m for m in messages])

    async def _send_engine(self, conn: _Connection, packets: list[str | bytes]) -> None:
        if conn.closed:
            return
        async with conn.send_lock:
            transport = conn.transport
            assert transport is not None
            try:
                await transport.send(packets)
            except TransportClosed as exc:
                self._lost(conn, exc.reason)

    def _hold(self, ns: str, event: str, args: tuple[Any, ...], target: Any) -> bool:
        """Keep an emit made while reconnecting, to send once ``ns`` is joined again (socket.io-client's
        send buffer); False when it can't be kept (no buffer, not reconnecting, a namespace that is not
        being joined again). Raises :class:`BadNamespaceError` when the buffer is full."""
        conn = self._conn
        if conn is not None and not conn.closed and conn.session.connected(ns):
            return False
        task = self._reconnect_task
        if not self.offline_buffer or task is None or task.done() or ns not in self.connection_namespaces:
            return False
        if len(self._offline) >= self.offline_buffer:
            raise BadNamespaceError(f"{ns} is reconnecting and the offline buffer is full ({self.offline_buffer})")
        self._offline.append((ns, event, args, target))
        return True

    def _flush_offline(self, conn: _Connection, ns: str) -> None:
        """``ns`` is joined again: send what was emitted for it meanwhile, in order, before anything else."""
        held = [entry for entry in self._offline if entry[0] == ns]
        if not held:
            return
        self._offline = [entry for entry in self._offline if entry[0] != ns]
        messages: list[str | bytes] = []
        for _, event, args, target in held:
            if isinstance(target, asyncio.Future) and target.done():
                continue  # a call() that gave up meanwhile
            out, ack_id = conn.session.emit(ns, event, args, target is not None)
            if ack_id is not None:
                if isinstance(target, asyncio.Future):
                    conn.calls[ack_id] = target
                else:
                    conn.callbacks[ack_id] = target
            messages += out
        if messages:
            self._keep(asyncio.ensure_future(self._send(conn, messages)))

    def _drop_offline(self, reason: str) -> None:
        """Reconnection is over without success: what was held can't be sent."""
        held, self._offline = self._offline, []
        for _, event, _, target in held:
            if isinstance(target, asyncio.Future) and not target.done():
                target.set_exception(DisconnectedError(f"{event!r} was never sent: {reason}"))
        if held:
            logger.info("dropped %d emits made while reconnecting: %s", len(held), reason)

    def _connection_for(self, namespace: str) -> _Connection:
        conn = self._conn
        if conn is None or conn.closed or not conn.session.connected(namespace):
            raise BadNamespaceError(f"{namespace} is not a connected namespace.")
        return conn

    async def emit(
        self, event: str, data: Any = None, namespace: str | None = None, callback: Callable[..., Any] | None = None
    ) -> None:
        """Emit ``event`` with ``data`` (a tuple for several arguments); ``callback`` gets the server's ack.

        Raises :class:`BadNamespaceError` when ``namespace`` (default '/') is not connected.
        """
        ns = namespace or "/"
        if self._hold(ns, event, data_args(data), callback):
            return
        conn = self._connection_for(ns)
        messages, ack_id = conn.session.emit(ns, event, data_args(data), callback is not None)
        if ack_id is not None:
            assert callback is not None
            conn.callbacks[ack_id] = callback
        await self._send(conn, messages)

    async def send(self, data: Any, namespace: str | None = None, callback: Callable[..., Any] | None = None) -> None:
        """Emit a ``message`` event."""
        await self.emit("message", data, namespace, callback)

    async def call(self, event: str, data: Any = None, namespace: str | None = None, timeout: float = 60) -> Any:
        """Emit ``event`` and wait for the server's ack; returns None, its one argument, or a tuple.

        Raises :class:`TimeoutError` after ``timeout`` seconds, :class:`DisconnectedError` if the
        connection is lost meanwhile.
        """
        ns = namespace or "/"
        held: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self._hold(ns, event, data_args(data), held):
            try:
                args = await asyncio.wait_for(held, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no acknowledgement for {event!r} within {timeout}s") from None
            return call_result(args)
        conn = self._connection_for(ns)
        messages, ack_id = conn.session.emit(ns, event, data_args(data), True)
        assert ack_id is not None
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        conn.calls[ack_id] = fut
        try:
            await self._send(conn, messages)
            args = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no acknowledgement for {event!r} within {timeout}s") from None
        except asyncio.CancelledError:
            if fut.cancelled() and conn.closed:
                raise DisconnectedError(f"connection lost while waiting for the ack of {event!r}") from None
            raise
        finally:
            conn.calls.pop(ack_id, None)
            conn.session.forget_ack(ack_id)
        return call_result(args)

    # -- ending ---------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """python-socketio's name for stopping the client: disconnect, or stop reconnecting."""
        await self.disconnect()

    def is_asyncio_based(self) -> bool:
        """True: this client runs on asyncio (python-socketio's test of a client class)."""
        return True

    async def disconnect(self) -> None:
        """Leave every namespace, close the connection and stop reconnecting."""
        task = self._reconnect_task
        self._reconnect_task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn = self._conn
        if conn is not None and not conn.closed:
            self._close(conn, Reason.CLIENT_DISCONNECT)
        else:
            self._finish()
        if conn is not None and conn.teardown is not None and conn.teardown is not asyncio.current_task():
            await asyncio.wait([conn.teardown], timeout=self.request_timeout + 1)

    def _close(self, conn: _Connection, reason: str) -> None:
        """Close from this side, for good: DISCONNECT each namespace and ``close``, then tear down."""
        if conn.closed:
            return
        out: list[str | bytes] = []
        for ns in list(conn.session.namespaces):
            if conn.session.connected(ns):
                self._post(("disconnect", ns, reason))
            out += ["4" + m if isinstance(m, str) else m for m in conn.session.disconnect(ns)]
        out += conn.engine.close(reason)
        self._lost(conn, reason, reconnect=False, farewell=out)

    async def _teardown(self, conn: _Connection, farewell: list[str | bytes]) -> None:
        """Send the last packets (if any), then close the transports."""
        transport = conn.transport
        if farewell and transport is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(transport.send(farewell), self.request_timeout)
        for t in {t for t in (conn.transport, conn.polling) if t is not None}:
            await t.close()

    def _lost(
        self, conn: _Connection, reason: str, *, reconnect: bool = True, farewell: list[str | bytes] | None = None
    ) -> None:
        """The connection is over (idempotent): stop its tasks, tell the handlers, maybe reconnect."""
        if conn.closed:
            return
        conn.closed = True
        conn.engine.lost(reason)
        current = asyncio.current_task()
        for task in list(conn.tasks):
            if task is not current:
                task.cancel()
        for fut in conn.waiters.values():
            if not fut.done():
                fut.set_result(_LOST)
        for fut in conn.calls.values():
            if not fut.done():
                fut.set_exception(DisconnectedError(f"connection lost ({reason})"))
        for ns in conn.session.connection_lost():
            self._post(("disconnect", ns, reason))
        conn.teardown = self._keep(asyncio.ensure_future(self._teardown(conn, farewell or [])))
        if self._opening:
            return  # connect() or the reconnection loop decides what comes next
        if reconnect and self.reconnection and reason not in (Reason.CLIENT_DISCONNECT, Reason.SERVER_DISCONNECT):
            self._start_reconnect()
        else:
            self._finish()

    def _finish(self) -> None:
        """No connection and none coming: let the dispatcher drain and end, which releases ``wait()``."""
        if self._queue is not None:
            self._queue.put_nowait(None)
            self._queue = None

    def _start_reconnect(self) -> None:
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.ensure_future(self._reconnect())

    def _delay(self, attempt: int) -> float:
        """Exponential backoff capped at ``reconnection_delay_max``, moved by ±``randomization_factor``."""
        delay = min(self.reconnection_delay * 2 ** min(attempt - 1, 32), self.reconnection_delay_max)
        jitter = self.randomization_factor * (2 * random.random() - 1)
        return float(max(0.0, delay * (1 + jitter)))

    async def _reconnect(self) -> None:
        attempt = 0
        try:
            while True:
                attempt += 1
                if self.reconnection_attempts and attempt > self.reconnection_attempts:
                    logger.info("giving up reconnecting after %d attempts", attempt - 1)
                    break
                await asyncio.sleep(self._delay(attempt))
                try:
                    await self._open(wait=True)
                except _Refused as exc:
                    logger.info("reconnection refused, giving up: %s", exc)
                    break
                except ConnectionError as exc:
                    logger.info("reconnection attempt %d failed: %s", attempt, exc)
                    continue
                self._reconnect_task = None
                return
        finally:
            # Cancelled by disconnect(), which then tears down and finishes itself.
            if self._reconnect_task is asyncio.current_task():
                self._reconnect_task = None
            self._drop_offline("reconnection ended")
        self._finish()

    async def wait(self) -> None:
        """Wait until the client is disconnected for good (not while it is reconnecting)."""
        await self._done.wait()

    async def sleep(self, seconds: float = 0) -> None:
        """``asyncio.sleep``, for python-socketio compatibility."""
        await asyncio.sleep(seconds)

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Run ``target(*args, **kwargs)`` (a coroutine function) as a task."""
        return self._keep(asyncio.ensure_future(target(*args, **kwargs)))

    def _keep(self, fut: asyncio.Future[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = fut  # type: ignore[assignment]  # ensure_future of a coroutine is a Task
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- dispatching to the application ---------------------------------------------------------------

    def _post(self, item: tuple[Any, ...]) -> None:
        if self._queue is not None:
            self._queue.put_nowait(item)

    async def _dispatch_loop(self, queue: asyncio.Queue[tuple[Any, ...] | None]) -> None:
        """Run handlers one at a time, in arrival order, until the client is done."""
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                try:
                    await self._dispatch(item)
                except Exception:
                    logger.exception("client handler for %r failed", item[:4])
        finally:
            self._done.set()

    def _find_handler(self, namespace: str, event: str) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
        """The handler for ``event`` in ``namespace`` and the leading arguments it takes."""
        handlers = self.handlers.get(namespace, {})
        if event in handlers:
            return handlers[event], ()
        ns_obj = self.namespace_handlers.get(namespace)
        if ns_obj is not None:
            method = getattr(ns_obj, f"on_{event}", None)
            if method is not None:
                return method, ()
        if "*" in handlers and event not in _RESERVED:
            return handlers["*"], (event,)
        anyns = self.handlers.get("*", {})
        if event in anyns:
            return anyns[event], (namespace,)
        if "*" in anyns and event not in _RESERVED:
            return anyns["*"], (event, namespace)
        return None, ()

    async def _invoke(self, fn: Callable[..., Any], *args: Any) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args)
        if self._threaded_handlers:
            result = await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))
        else:
            result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _dispatch(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "event":
            _, conn, ns, name, args, ack_id = item
            fn, lead = self._find_handler(ns, name)
            result = await self._invoke(fn, *lead, *args) if fn is not None else None
            if ack_id is not None and not conn.closed and conn.session.connected(ns):
                await self._send(conn, conn.session.ack(ns, ack_id, ack_args(result)))
        elif kind == "callback":
            await self._invoke(item[1], *item[2])
        elif kind == "connect":
            fn, lead = self._find_handler(item[1], "connect")
            if fn is not None:
                await self._invoke(fn, *lead)
        elif kind == "connect_error":
            fn, lead = self._find_handler(item[1], "connect_error")
            if fn is not None:
                await self._invoke(fn, *lead, item[2])
        elif kind == "disconnect":
            fn, lead = self._find_handler(item[1], "disconnect")
            if fn is not None:
                if _accepts_args(fn, len(lead) + 1):
                    await self._invoke(fn, *lead, item[2])
                else:
                    await self._invoke(fn, *lead)


class AsyncClientNamespace:
    """A class-based client namespace: ``on_<event>`` methods (sync or async) handle its events."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.client: AsyncClient | None = None

    def _set_client(self, client: AsyncClient) -> None:
        self.client = client

    def _cli(self) -> AsyncClient:
        if self.client is None:
            raise RuntimeError("namespace is not registered with a client")
        return self.client

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>`` if it exists (what the client does for each event)."""
        handler = getattr(self, f"on_{event}", None)
        if handler is not None:
            return await self._cli()._invoke(handler, *args)
        return None

    async def emit(
        self, event: str, data: Any = None, namespace: str | None = None, callback: Callable[..., Any] | None = None
    ) -> None:
        await self._cli().emit(event, data, namespace or self.namespace, callback)

    async def send(self, data: Any, namespace: str | None = None, callback: Callable[..., Any] | None = None) -> None:
        await self._cli().send(data, namespace or self.namespace, callback)

    async def call(self, event: str, data: Any = None, namespace: str | None = None, timeout: float = 60) -> Any:
        return await self._cli().call(event, data, namespace or self.namespace, timeout)

    async def disconnect(self) -> None:
        await self._cli().disconnect()


# -- the simple client ----------------------------------------------------------------------------------
