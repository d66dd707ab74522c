"""The Socket.IO server on asyncio: :class:`AsyncServer` and :class:`ASGIApp`.

Its API is python-socketio's ``AsyncServer`` (so its users can switch), with these deliberate
differences, documented in ``docs/server.md``:

* one socket's handlers run one at a time, in arrival order (opt out with ``concurrent_handlers``);
* plain ``def`` handlers run on a worker thread pool, so a blocking handler never stalls the loop,
  other clients or heartbeats;
* disconnect reasons are the strings Node's server uses (``AsyncServer.reason`` names them).

Everything here runs on the event loop; :meth:`AsyncServer.submit` hands work to it from other threads.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
import itertools
import logging
import re
import secrets
import sys
import threading
import time
import weakref
from collections import deque
from types import CoroutineType as _CoroutineType
from collections.abc import Callable, Iterable
from contextvars import copy_context as _copy_context
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from .._arguments import ack_args, call_result, data_args, positional_arity
from ..engineio.server import EngineConfig
from ..engineio.session import Reason as EngineReason
from ..exceptions import ConnectionRefusedError, DisconnectedError, ProtocolError, TimeoutError
from ..serializer import Serializer, default_serializer, from_module
from ..socketio.packets import Decoder, Packet, PacketType, encode, encode_ack, encode_event, parse_event
from ..socketio.recovery import RECOVERABLE_REASONS, Recovery, RecoveryConfig
from ..socketio.rooms import Rooms
from ..adapters.base import PubSubManager, RemoteSocket, as_rooms, describe_handshake
from ..adapters.messages import Request, RequestType
from .asgi import ASGIApp as _ASGICallable
from .asgi import Receive, Scope, Send
from .eager import AVAILABLE as _HOSTS_AVAILABLE
from .eager import HandlerTask
from .engine import Connection, EngineIOApp
from .workers import Workers

__all__ = ["AsyncServer", "ASGIApp", "AsyncNamespace", "Reason"]

logger = logging.getLogger("roomcast")

NamespaceKey = Any  # str, re.Pattern or a callable(name, auth) -> bool


class Reason:
    """Why a socket disconnected: the strings Node's socket.io server uses."""

    SERVER_DISCONNECT = "server namespace disconnect"
    CLIENT_DISCONNECT = "client namespace disconnect"
    SERVER_SHUTTING_DOWN = EngineReason.SERVER_SHUTTING_DOWN
    PING_TIMEOUT = EngineReason.PING_TIMEOUT
    TRANSPORT_CLOSE = EngineReason.TRANSPORT_CLOSE
    TRANSPORT_ERROR = EngineReason.TRANSPORT_ERROR
    PARSE_ERROR = EngineReason.PARSE_ERROR
    PAYLOAD_TOO_LARGE = EngineReason.PAYLOAD_TOO_LARGE
    SEND_BUFFER_FULL = EngineReason.SEND_BUFFER_FULL
    FORCED_CLOSE = EngineReason.FORCED_CLOSE
    FORCED_SERVER_CLOSE = "forced server close"
    EVENT_QUEUE_FULL = "event queue full"


_ENGINE_OPTIONS = {f for f in EngineConfig.__dataclass_fields__}
_IGNORED_OPTIONS = {
    "async_mode",
    "engineio_logger",
    "monitor_clients",
    "transport_options",
    "allow_eio3",
    "manage_session",
}

#: The most passes of the loop a batch of plain handler calls waits for more (see _submit_batch_soon).
_BATCH_PASSES = 8
_RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting"})


_ASYNC: dict[Any, bool] = {}


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is an ``async def`` (or an object whose ``__call__`` is); asked once per handler."""
    try:
        return _ASYNC[fn]
    except KeyError:
        pass
    except TypeError:  # unhashable callable
        return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
    answer = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
    if len(_ASYNC) < 4096:  # bounded, in case callables are made on the fly
        _ASYNC[fn] = answer
    return answer


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _engine_packets(items: list[str | bytes]) -> list[str | bytes]:
    """Encoded Socket.IO items (text first, then attachments) as Engine.IO message packets: the text
    gets the message type ``4``; binary attachments travel as binary messages, unchanged, as does a
    MessagePack packet (``serializer='msgpack'``: one binary item)."""
    first = items[0]
    if type(first) is str:
        return ["4" + first, *items[1:]]
    return list(items)


def _event_packets(namespace: str, event: str, args: tuple[Any, ...], serializer: Any) -> list[str | bytes]:
    """An EVENT without ack id as Engine.IO packets: ``_engine_packets(encode_event(...))``, the
    commonest case (plain JSON on ``/``) in one step."""
    if namespace == "/" and type(event) is str:
        try:
            return ["42" + serializer.dumps([event, *args])]
        except TypeError:
            pass  # binary arguments: encode_event sends them as attachments
    return _engine_packets(encode_event(namespace, event, args, None, serializer))


if sys.version_info >= (3, 12):

    def _new_task(coro: Any, loop: Any) -> asyncio.Task[Any]:
        """A task for ``coro``, whose first step runs now, inside the task."""
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]

else:

    def _new_task(coro: Any, loop: Any) -> asyncio.Task[Any]:
        """A task for ``coro`` (Python 3.11 cannot start one eagerly: its first step is the loop's next)."""
        task: asyncio.Task[Any] = loop.create_task(coro)
        return task


async def _settle(awaitable: Any, finish: Callable[[bool, Any], None]) -> None:
    """Await a handler and report its outcome: ``finish(True, result)`` or ``finish(False, exc)``."""
    try:
        value = await awaitable
    except Exception as exc:
        finish(False, exc)
    else:
        finish(True, value)


class Socket:
    """One client's connection to one namespace."""

    __slots__ = (
        "sid",
        "namespace",
        "key",
        "conn",
        "auth",
        "session",
        "connected",
        "acks",
        "_ack_ids",
        "queue",
        "running",
        "held",
        "held_bytes",
        "idle_waiters",
        "pid",
        "recovered",
        "acks_dropped",
        "issued",
        "host",
    )

    def __init__(self, sid: str, namespace: str, key: NamespaceKey, conn: Connection, auth: Any) -> None:
        self.sid = sid
        self.namespace = namespace
        self.key = key
        self.conn = conn
        self.auth = auth
        self.session: dict[str, Any] = {}
        self.connected = False
        self.acks: dict[int, Callable[..., Any]] = {}
        self._ack_ids = itertools.count()
        # Items waiting behind the running one (a list: most sockets hold an empty one, and a
        # deque costs ~700 bytes).
        self.queue: list[tuple[Any, ...]] = []
        self.running = False
        #: Packets emitted to the socket while its connect handler runs; sent after the CONNECT reply.
        #: They count against the connection's ``max_send_buffer`` as queued packets do.
        self.held: list[list[str | bytes]] | None = []
        self.held_bytes = 0
        #: Futures resolved when the queue of handlers runs dry (see :meth:`idle`).
        self.idle_waiters: list[asyncio.Future[None]] = []
        #: Connection state recovery: the private session id (None when recovery is off), and whether
        #: this socket took over a saved session (same sid, rooms and data).
        self.pid: str | None = None
        self.recovered = False
        #: Pending acks dropped past ``max_pending_acks`` (the first drop is logged).
        self.acks_dropped = 0
        #: When the socket connected (time.time()), for its handshake's description.
        self.issued = time.time()
        #: The task its ``async def`` event handlers run in (made at its first such event).
        self.host: HandlerTask | None = None

    async def idle(self) -> None:
        """Return once every handler queued for this socket so far has run (its disconnect handler too).

        In-process test clients use it to know that an event they sent has been handled.
        """
        if not self.running:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.idle_waiters.append(waiter)
        await waiter

    def deliver(self, packets: list[str | bytes]) -> None:
        """Write encoded Engine.IO packets to this socket (held back until it is connected)."""
        if self.connected:
            if len(packets) == 1:
                self.conn.send(packets[0])
            else:
                self.conn.send_many(packets)
        elif self.held is not None:
            self.held.append(packets)
            self.held_bytes += sum(len(packet) for packet in packets)
            session = self.conn.session
            if self.held_bytes > session.config.max_send_buffer:
                # A connect handler emitting without bound: closed like a client that stops reading.
                self.held = None
                session.abort(EngineReason.SEND_BUFFER_FULL)
                self.conn.after()

    def next_ack_id(self) -> int:
        return next(self._ack_ids)

    def add_ack(self, callback: Callable[..., Any], limit: int | None) -> int:
        """Register the callback of an emit that asks for an ack; return its ack id.

        At most ``limit`` acks wait per socket (a client that never acknowledges would otherwise make
        the server hold callbacks without bound): past it the oldest is dropped, its callback never
        runs, and a ``call()`` waiting on it raises :class:`roomcast.TimeoutError` at once.
        """
        acks = self.acks
        if limit is not None and len(acks) >= limit:
            oldest = next(iter(acks))
            dropped = acks.pop(oldest)
            self.acks_dropped += 1
            if isinstance(dropped, (_AckWaiter, _GatheredAck)):
                dropped.fail(TimeoutError(f"acknowledgement dropped: more than {limit} pending (max_pending_acks)"))
            if self.acks_dropped == 1:
                logger.info(
                    "sid %s does not acknowledge: more than %d acks pending (max_pending_acks), "
                    "dropping the oldest (logged once)", self.sid, limit,
                )
        ack_id = next(self._ack_ids)
        acks[ack_id] = callback
        return ack_id


class _AckWaiter:
    """What ``call()`` registers as its ack callback: it resolves the caller's future."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[tuple[Any, ...]]) -> None:
        self.future = future

    def __call__(self, *args: Any) -> None:
        if not self.future.done():
            self.future.set_result(args)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _AckGatherer:
    """The acknowledgements of one :meth:`AsyncServer.emit_with_ack`: the first argument of each
    (as Node keeps it), until every recipient counted so far has answered and every other server
    of the cluster has said how many recipients it has."""

    __slots__ = ("future", "responses", "expected", "nodes_left")

    def __init__(self, future: asyncio.Future[list[Any]]) -> None:
        self.future = future
        self.responses: list[Any] = []
        self.expected = 0
        self.nodes_left = 0

    def answered(self, *args: Any) -> None:
        if not self.future.done():  # (late ones, past the timeout or the end, are dropped)
            self.responses.append(args[0] if args else None)
            self.check()

    def counted(self, count: int) -> None:
        """Another server emitted to ``count`` recipients of its own."""
        self.expected += count
        self.nodes_left -= 1
        self.check()

    def check(self) -> None:
        if self.nodes_left <= 0 and len(self.responses) >= self.expected and not self.future.done():
            self.future.set_result(self.responses)


class _GatheredAck:
    """One local recipient's ack callback for an :class:`_AckGatherer`; a recipient that can no
    longer answer (it disconnected, or its acks overflowed) stops being waited for."""

    __slots__ = ("gatherer",)

    def __init__(self, gatherer: _AckGatherer) -> None:
        self.gatherer = gatherer

    def __call__(self, *args: Any) -> None:
        self.gatherer.answered(*args)

    def fail(self, exc: BaseException) -> None:
        self.gatherer.expected -= 1
        self.gatherer.check()


class _ConnState:
    __slots__ = ("decoder", "sockets", "connect_timer")

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.sockets: dict[str, Socket] = {}
        self.connect_timer: asyncio.TimerHandle | None = None


class AsyncServer:
    """A Socket.IO server for asyncio (python-socketio's ``AsyncServer`` API).

    Options (all keyword): the Engine.IO ones (``ping_interval``, ``ping_timeout``,
    ``max_http_buffer_size``, ``cors_allowed_origins``, ``cors_credentials``, ``cookie``, ``transports``,
    ``allow_upgrades``, ``http_compression``, ``compression_threshold``, ``max_send_buffer``,
    ``max_connections``, ``upgrade_timeout``), and ``namespaces`` (None: the registered ones; ``'*'``:
    any; or a list of names, compiled regexes and ``callable(name, auth)``), ``connect_timeout``
    (45 s), ``max_attachments`` (10), ``max_namespaces`` (64 per connection), ``max_pending_acks``
    (1024 per socket), ``max_queued_events`` (1024 events waiting for one socket's handlers), ``json`` (a module with ``dumps``/``loads``), ``always_connect``,
    ``concurrent_handlers`` (False), ``handler_threads`` (64), ``logger``, ``connection_state_recovery``
    (None; True or ``{"max_disconnection_duration": 120, "skip_middlewares": True}``, see docs/recovery.md),
    ``serializer`` (``"default"``, or ``"msgpack"`` for socket.io-msgpack-parser clients).
    """

    reason = Reason

    def __init__(
        self,
        *,
        namespaces: None | str | Iterable[NamespaceKey] = None,
        connect_timeout: float = 45.0,
        max_attachments: int = 10,
        max_namespaces: int | None = 64,
        max_pending_acks: int | None = 1024,
        max_queued_events: int | None = 1024,
        json: Any = None,
        always_connect: bool = False,
        concurrent_handlers: bool = False,
        handler_threads: int = 64,
        logger: bool | logging.Logger = False,
        async_handlers: bool = True,
        connection_state_recovery: bool | dict[str, Any] | RecoveryConfig | None = None,
        client_manager: PubSubManager | None = None,
        serializer: str = "default",
        **options: Any,
    ) -> None:
        engine_options = {k: v for k, v in options.items() if k in _ENGINE_OPTIONS}
        unknown = set(options) - _ENGINE_OPTIONS - _IGNORED_OPTIONS
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        for key in ("transports",):
            if key in engine_options and isinstance(engine_options[key], (list, str)):
                value = engine_options[key]
                engine_options[key] = (value,) if isinstance(value, str) else tuple(value)
        if engine_options.get("cors_allowed_origins") is not None and isinstance(
            engine_options["cors_allowed_origins"], list
        ):
            engine_options["cors_allowed_origins"] = tuple(engine_options["cors_allowed_origins"])
        self.engine_config = EngineConfig(**engine_options)
        recovery = RecoveryConfig.from_option(connection_state_recovery)
        #: Connection state recovery (docs/recovery.md); None when off, and then every hook is one check.
        self._recovery: Recovery | None = (
            None
            if recovery is None
            # packets written to a dead connection before it is noticed are missed too: keep them longer
            else Recovery(recovery, grace=self.engine_config.ping_interval + self.engine_config.ping_timeout)
        )
        self.serializer: Serializer = from_module(json) if json is not None else default_serializer
        # The packet parser (python-socketio's ``serializer``): Socket.IO's text format, or MessagePack.
        if serializer == "msgpack":
            from ..socketio import msgpack_parser

            msgpack_parser.require()
            self._encode = msgpack_parser.encode
            self._encode_event = msgpack_parser.encode_event
            self._encode_ack = msgpack_parser.encode_ack
            self._decoder_class: Any = msgpack_parser.Decoder
            self._event_packets: Callable[..., list[str | bytes]] = msgpack_parser.event_packets
        elif serializer == "default":
            self._encode = encode
            self._encode_event = encode_event
            self._encode_ack = encode_ack
            self._decoder_class = Decoder
            self._event_packets = _event_packets
        else:
            raise ValueError(f"serializer must be 'default' or 'msgpack', not {serializer!r}")
        self.connect_timeout = connect_timeout
        self.max_attachments = max_attachments
        self.max_namespaces = max_namespaces
        self.max_pending_acks = max_pending_acks
        self.max_queued_events = max_queued_events
        self.always_connect = always_connect
        self.concurrent_handlers = concurrent_handlers
        self.async_handlers = async_handlers
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger("roomcast")
        self.handlers: dict[NamespaceKey, dict[str, Callable[..., Any]]] = {}
        self.namespace_handlers: dict[NamespaceKey, AsyncNamespace] = {}
        self.allowed_namespaces = namespaces
        self.rooms_table = Rooms()
        self.sockets: dict[str, Socket] = {}
        #: Sockets that left, until their ``disconnect`` handler is done: it still finds their
        #: rooms, session and environ, as in python-socketio (see :meth:`_socket_gone`).
        self._departing: dict[str, Socket] = {}
        #: The threads plain ``def`` handlers (and plain background tasks) run on.
        self.workers = Workers(handler_threads)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        #: The application's own tasks (start_background_task), among ``_tasks``.
        self._background_tasks: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()
        #: Work handed to the loop by worker threads (see :meth:`_post`).
        self._inbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._inbox_scheduled = False
        #: Plain handler calls waiting to go to the workers as one batch (see :meth:`_submit_batch_soon`).
        self._thread_batch: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._arity: dict[Callable[..., Any], int] = {}
        #: (namespace key, namespace, event) -> (handler, leading arguments, is async): what
        #: :meth:`_handler` finds, remembered for the events that have a handler (cleared when
        #: handlers change).
        self._dispatch: dict[tuple[Any, str, str], tuple[Callable[..., Any], tuple[Any, ...], bool]] = {}
        self.engine: EngineIOApp | None = None
        #: The link to the other servers of a cluster (docs/scaling.md); None for one process.
        self.manager: PubSubManager | None = client_manager
        if client_manager is not None:
            client_manager.attach(self)
        #: (namespace key, event) -> handler of events other servers emit (:meth:`on_server_event`).
        self.server_handlers: dict[tuple[str, str], Callable[..., Any]] = {}
        #: Connection middlewares, in the order registered: (namespace key, function) (:meth:`use`).
        self.middlewares: list[tuple[NamespaceKey, Callable[..., Any]]] = []
        #: The Admin UI's view of this server, once :meth:`instrument` was called.
        self._admin: Any = None

    # -- registration -----------------------------------------------------------------------------

    def on(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: NamespaceKey = None
    ) -> Any:
        """Register ``handler`` for ``event`` in ``namespace`` (default '/'); usable as a decorator.

        ``event`` may be ``'*'`` (catch-all: the handler gets the event name first) and ``namespace``
        may be ``'*'`` (any namespace: the handler gets the namespace first), a compiled regex or a
        ``callable(name, auth)`` for dynamic namespaces.
        """
        key = namespace or "/"

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers.setdefault(key, {})[event] = fn
            self._dispatch.clear()
            return fn

        return register(handler) if handler is not None else register

    def use(self, middleware: Callable[..., Any] | None = None, namespace: NamespaceKey = None) -> Any:
        """Register a connection middleware for ``namespace`` (default '/'; ``'*'`` for every
        namespace), as Node's ``io.use()`` and ``io.of(name).use()``; usable as a decorator.

        Before a client's connection to the namespace is accepted (and before its ``connect``
        handler runs), each middleware is called in the order registered with ``(sid, environ,
        auth)`` (or fewer arguments, as it declares); plain functions run on a worker thread. To
        refuse the connection it raises :class:`roomcast.ConnectionRefusedError` (the client's
        ``connect_error`` gets its message and data) or returns False; any other exception refuses
        it too, as ``"Internal server error"``, and is logged. The rest are then not called.
        """
        key = namespace or "/"

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.middlewares.append((key, fn))
            return fn

        return register(middleware) if middleware is not None else register

    def is_asyncio_based(self) -> bool:
        """True: this server runs on asyncio (python-socketio's test of a server class)."""
        return True

    def instrument(
        self,
        auth: Any = None,
        mode: str = "development",
        read_only: bool = False,
        server_id: str | None = None,
        namespace: str = "/admin",
        server_stats_interval: float = 2,
    ) -> Any:
        """Serve the Socket.IO Admin UI (https://admin.socket.io) in ``namespace``, as python-socketio's
        ``instrument()`` and Node's ``@socket.io/admin-ui`` do.

        ``auth``: the login the UI must send (a dict such as ``{"username": ..., "password": ...}``),
        a list of such dicts, a ``callable(login) -> bool`` (or ``async def``), or False for none
        (never in production). ``mode="production"`` reports statistics only; ``"development"`` also
        every socket, room change and event (a cost on every message). ``read_only`` hides the UI's
        actions (emit, join, leave, disconnect). See docs/server.md.
        """
        from .admin import AdminUI

        self._admin = AdminUI(self, auth, mode=mode, read_only=read_only, server_id=server_id,
                              namespace=namespace, server_stats_interval=server_stats_interval)
        return self._admin

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function (``@sio.event``)."""
        if len(args) == 1 and not kwargs and callable(args[0]):
            fn: Callable[..., Any] = args[0]
            return self.on(fn.__name__)(fn)

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            registered: Callable[..., Any] = self.on(fn.__name__, **kwargs)(fn)
            return registered

        return register

    def register_namespace(self, namespace_handler: AsyncNamespace) -> None:
        """Register a class-based namespace (an :class:`AsyncNamespace` instance)."""
        namespace_handler._set_server(self)
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler
        self._dispatch.clear()

    # -- the loop and threads ---------------------------------------------------------------------

    def _bind(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            if self.manager is not None:
                self.manager.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's event loop: now if called on it, soon from any other thread."""
        if self.loop is None:
            raise RuntimeError("the server is not running yet")
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._post(fn, *args)

    def _spawn(self, coro: Any) -> asyncio.Future[Any]:
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.logger.error("background task failed: %r", exc, exc_info=exc)

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Run ``target`` as an asyncio task (a coroutine function) or on a thread of its own (a plain
        one: background tasks tend to run for long, and would hold a handler thread)."""
        if _is_async(target):
            task = self._spawn(target(*args, **kwargs))
        else:
            self._bind()
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            threading.Thread(
                target=self._call_in_thread,
                args=(future, lambda: target(*args, **kwargs), ()),
                name=f"roomcast-task-{getattr(target, '__name__', 'task')}",
                daemon=True,
            ).start()
            task = self._spawn(future)
        self._background_tasks.add(task)  # not waited for at shutdown (see engine_shutdown)
        return task  # type: ignore[return-value]

    async def sleep(self, seconds: float = 0) -> None:
        await asyncio.sleep(seconds)

    # -- Engine.IO handler ------------------------------------------------------------------------

    async def engine_connect(self, conn: Connection) -> bool:
        conn.state = _ConnState(self._decoder_class(serializer=self.serializer, max_attachments=self.max_attachments))
        if self.connect_timeout:
            conn.state.connect_timer = asyncio.get_running_loop().call_later(
                self.connect_timeout, self._connect_timed_out, conn
            )
        return True

    def _connect_timed_out(self, conn: Connection) -> None:
        state: _ConnState = conn.state
        state.connect_timer = None
        if not any(s.connected for s in state.sockets.values()) and not conn.closed:
            self.logger.info("closing session %s: no namespace joined within connect_timeout", conn.log_id)
            conn.close(Reason.FORCED_SERVER_CLOSE)

    def engine_message(self, conn: Connection, data: str | bytes) -> None:
        state: _ConnState = conn.state
        if type(data) is str and not state.decoder.pending:
            event = parse_event(data, self.serializer)
            if event is not None:  # the common case: an event on "/", decoded with less work
                socket = state.sockets.get("/")
                if socket is not None:
                    self._event(socket, event[0], event[1])
                return
        try:
            packet = state.decoder.receive(data)
        except ProtocolError as exc:
            self.logger.info("closing session %s: %s", conn.log_id, exc)
            conn.close(exc.close_reason, flush=False)
            return
        if packet is None:
            return
        ptype = packet.type
        socket = state.sockets.get(packet.namespace)
        if ptype is PacketType.EVENT or ptype is PacketType.BINARY_EVENT:
            if socket is None:
                return
            self._event(socket, packet.data, packet.id)
        elif ptype is PacketType.ACK or ptype is PacketType.BINARY_ACK:
            if socket is not None:
                callback = socket.acks.pop(packet.id, None)  # type: ignore[arg-type]
                if callback is not None:
                    callback(*packet.data)
        elif ptype is PacketType.CONNECT:
            if socket is not None:
                return
            self._connect(conn, packet.namespace, packet.data)
        elif ptype is PacketType.DISCONNECT:
            if socket is not None:
                self._socket_gone(socket, Reason.CLIENT_DISCONNECT)
        else:
            self.logger.info("closing session %s: a client may not send %s", conn.log_id, ptype.name)
            conn.close(Reason.PARSE_ERROR, flush=False)

    def _event(self, socket: Socket, data: list[Any], ack_id: int | None) -> None:
        """An EVENT packet from the client: ``data`` is ``[name, *args]``."""
        name = data[0]
        if self._admin is not None:
            self._admin.received(socket, data)
        if name in _RESERVED_EVENTS:
            conn = socket.conn
            self.logger.info("closing session %s: client emitted reserved event %r", conn.log_id, name)
            conn.close(Reason.PARSE_ERROR, flush=False)
            return
        if socket.running or self.concurrent_handlers:
            self._enqueue(socket, ("event", name, data[1:], ack_id))
        else:  # an idle socket (nearly always): what _enqueue and _start do for it, in fewer steps
            socket.running = True
            if self._run_event(socket, name, data[1:], ack_id, True):
                self._next(socket)

    def engine_upgraded(self, conn: Connection) -> None:
        """The connection moved from long-polling to WebSocket (the Admin UI shows the transport)."""
        state: _ConnState | None = conn.state
        if self._admin is not None and state is not None:
            for socket in list(state.sockets.values()):
                self._admin.upgraded(socket)

    def engine_disconnect(self, conn: Connection, reason: str) -> None:
        state: _ConnState | None = conn.state
        if state is None:
            return
        if state.connect_timer is not None:
            state.connect_timer.cancel()
            state.connect_timer = None
        for socket in list(state.sockets.values()):
            self._socket_gone(socket, reason)

    # -- namespace connection ---------------------------------------------------------------------

    def _match_namespace(self, name: str, auth: Any) -> tuple[bool, NamespaceKey]:
        """Whether ``name`` may be joined, and the key its handlers are registered under."""
        if name in self.handlers or name in self.namespace_handlers:
            return True, name
        for key in itertools.chain(self.handlers, self.namespace_handlers):
            if isinstance(key, re.Pattern) and key.fullmatch(name):
                return True, key
            if callable(key) and not isinstance(key, str):
                try:
                    if key(name, auth):
                        return True, key
                except Exception:
                    self.logger.exception("namespace matcher failed for %r", name)
        allowed = self.allowed_namespaces
        # Handlers registered for namespace '*' serve every *admitted* namespace; they admit none by
        # themselves (as in python-socketio): '/' always exists, others need the namespaces option.
        if name == "/" or allowed == "*":
            return True, "*"
        if allowed is not None and not isinstance(allowed, str):
            for item in allowed:
                if item == name or item == "*":
                    return True, "*"
                if isinstance(item, re.Pattern) and item.fullmatch(name):
                    return True, item
                if callable(item) and not isinstance(item, str) and item(name, auth):
                    return True, item
        return False, None

    def _connect(self, conn: Connection, namespace: str, auth: Any) -> None:
        limit = self.max_namespaces
        if limit is not None and len(conn.state.sockets) >= limit:
            self.logger.info("session %s: refused one more namespace, max_namespaces (%d) reached", conn.log_id, limit)
            self._send_packets(
                conn, Packet(type=PacketType.CONNECT_ERROR, namespace=namespace, data={"message": "Too many namespaces"})
            )
            return
        ok, key = self._match_namespace(namespace, auth)
        if not ok:
            self._send_packets(
                conn, Packet(type=PacketType.CONNECT_ERROR, namespace=namespace, data={"message": "Invalid namespace"})
            )
            return
        if self._recovery is not None and self._recover(conn, namespace, key, auth):
            return
        sid = secrets.token_urlsafe(15)
        socket = Socket(sid, namespace, key, conn, auth)
        conn.state.sockets[namespace] = socket
        self.sockets[sid] = socket
        # In its own room from the start, so that the connect handler can emit to it; those packets
        # are held until the CONNECT reply has gone out.
        self.rooms_table.enter(namespace, sid, sid)
        if self.manager is not None:
            self.manager.namespace_used(namespace)
        self._enqueue(socket, ("connect",))

    def _connect_result(self, socket: Socket, result: Any) -> None:
        """Finish a namespace connection once its ``connect`` handler has answered (on the loop)."""
        conn = socket.conn
        if conn.closed or socket.sid not in self.sockets:
            return
        if isinstance(result, BaseException):
            error = (
                result.error_args
                if isinstance(result, ConnectionRefusedError)
                else ConnectionRefusedError(*result.args).error_args
            )
        elif result is False and not self.always_connect:
            error = {"message": "Connection rejected by server"}
        else:
            error = None
        if error is not None:
            self.sockets.pop(socket.sid, None)
            conn.state.sockets.pop(socket.namespace, None)
            self.rooms_table.leave_all(socket.namespace, socket.sid)
            socket.queue.clear()
            socket.held = None
            self._send_packets(conn, Packet(type=PacketType.CONNECT_ERROR, namespace=socket.namespace, data=error))
            return
        state: _ConnState = conn.state
        if state.connect_timer is not None:
            state.connect_timer.cancel()
            state.connect_timer = None
        reply: dict[str, Any] = {"sid": socket.sid}
        if self._recovery is not None:
            # Node's reply with recovery on: the pid the client presents when it comes back.
            if socket.pid is None:
                socket.pid = self._recovery.new_pid()
            reply["pid"] = socket.pid
        self._send_packets(conn, Packet(type=PacketType.CONNECT, namespace=socket.namespace, data=reply))
        socket.connected = True
        held, socket.held = socket.held, None
        for packets in held or ():
            socket.deliver(packets)
        if self._admin is not None:  # (after what was held for this socket: it was emitted first)
            self._admin.connected(socket)

    def _socket_gone(self, socket: Socket, reason: str) -> None:
        """A socket left its namespace: forget it, and queue its ``disconnect`` handler."""
        if self.sockets.pop(socket.sid, None) is None:
            return
        state: _ConnState | None = socket.conn.state
        if state is not None and state.sockets.get(socket.namespace) is socket:
            del state.sockets[socket.namespace]
        was_connected = socket.connected
        socket.connected = False
        socket.held = None
        if was_connected and self._recovery is not None and reason in RECOVERABLE_REASONS:
            self._save_session(socket)
        for callback in socket.acks.values():  # a call() waiting for an ack that can no longer come
            if isinstance(callback, (_AckWaiter, _GatheredAck)):
                callback.fail(DisconnectedError(f"client {socket.sid} disconnected ({reason})"))
        socket.acks.clear()
        if was_connected and self._admin is not None:
            self._admin.disconnected(socket, reason)
        if was_connected:
            # It stays in its rooms (receiving nothing: it is out of ``sockets``) until its disconnect
            # handler is done, which may want to tell them (see _idle).
            self._departing[socket.sid] = socket
            self._enqueue(socket, ("disconnect", reason))
        else:
            self.rooms_table.leave_all(socket.namespace, socket.sid)
            socket.queue.clear()

    # -- connection state recovery (docs/recovery.md; the state lives in socketio/recovery.py) ---------

    def _save_session(self, socket: Socket) -> None:
        """Keep a socket that lost its connection for a while: sid, rooms and session data."""
        assert self._recovery is not None and socket.pid is not None
        self._recovery.save(
            sid=socket.sid,
            pid=socket.pid,
            namespace=socket.namespace,
            rooms=self.rooms_table.rooms_of(socket.namespace, socket.sid),
            data=socket.session,
            now=time.monotonic(),
        )

    def _recover(self, conn: Connection, namespace: str, key: NamespaceKey, auth: Any) -> bool:
        """Take over a saved session if the CONNECT auth names one (``{"pid": ..., "offset": ...}``).

        On success the socket gets its sid, rooms and data back, and the packets it missed go out
        right after the CONNECT reply, before anything emitted later (they start its held list).
        With ``skip_middlewares`` the connection completes at once and the ``connect`` handler runs
        afterwards, as Node runs its "connection" listeners; without it the handler runs first and
        may refuse, as for any connection.
        """
        recovery = self._recovery
        if recovery is None or not isinstance(auth, dict):
            return False
        restored = recovery.restore(auth.get("pid"), auth.get("offset"), namespace=namespace, now=time.monotonic())
        if restored is None:
            return False
        saved = restored.session
        if saved.sid in self.sockets:
            return False
        socket = Socket(saved.sid, namespace, key, conn, auth)
        socket.pid = saved.pid
        socket.recovered = True
        socket.session = saved.data
        socket.held = list(restored.missed)
        conn.state.sockets[namespace] = socket
        self.sockets[saved.sid] = socket
        self.rooms_table.enter(namespace, saved.sid, saved.sid)
        if self.manager is not None:
            self.manager.namespace_used(namespace)
        for room in saved.rooms:
            self.rooms_table.enter(namespace, saved.sid, room)
        self.logger.debug("sid %s recovered with %d missed packets", saved.sid, len(restored.missed))
        if recovery.config.skip_middlewares:
            self._connect_result(socket, None)
            self._enqueue(socket, ("recovered",))
        else:
            self._enqueue(socket, ("connect",))
        return True

    def _emit_recorded(
        self,
        event: str,
        args: tuple[Any, ...],
        namespace: str,
        to: Any,
        skip_sid: Any,
        exclude_rooms: Any,
    ) -> None:
        """:meth:`_emit` with recovery on and no callback: stamp the event with its offset (its last
        argument, as Node does), log the encoded packet, then deliver it like any broadcast.

        Logged even without a recipient: a socket that is away is in no room, yet must get it back.
        """
        recovery = self._recovery
        assert recovery is not None
        items = self._encode_event(namespace, event, (*args, recovery.next_offset()), None, self.serializer)
        packets = _engine_packets(items)
        rooms = None if to is None else ((to,) if isinstance(to, str) else tuple(to))
        excluded: tuple[str, ...] = ()
        if skip_sid is not None:
            # every socket is in the room named after its sid, so skipping a sid excludes that room
            excluded = (skip_sid,) if isinstance(skip_sid, str) else tuple(skip_sid)
        if exclude_rooms is not None:
            excluded += (exclude_rooms,) if isinstance(exclude_rooms, str) else tuple(exclude_rooms)
        recovery.record(packets, namespace=namespace, rooms=rooms, excluded=excluded, now=time.monotonic())
        sockets = self.sockets
        for sid in self.rooms_table.select(namespace, rooms, except_rooms=excluded):
            socket = sockets.get(sid)
            if socket is not None:
                socket.deliver(packets)

    def is_recovered(self, sid: str, namespace: str | None = None) -> bool:
        """Whether ``sid``'s connection took over a saved session (connection state recovery), like
        Node's ``socket.recovered``: its rooms and session data are the ones it had, and the events it
        missed were sent again. False for an unknown sid."""
        socket = self.sockets.get(sid)
        return socket is not None and socket.recovered

    # -- dispatch ---------------------------------------------------------------------------------

    def _handler(self, socket: Socket, event: str) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
        """The handler for ``event`` on ``socket`` and the leading arguments it takes."""
        ns_obj = self.namespace_handlers.get(socket.key)
        if ns_obj is not None:
            fn = getattr(ns_obj, "on_" + event, None)
            if fn is not None:
                return fn, ()
        table = self.handlers.get(socket.key)
        lead: tuple[Any, ...] = ()
        if socket.key == "*" or (not isinstance(socket.key, str)):
            lead = (socket.namespace,)
        if table is not None:
            fn = table.get(event)
            if fn is not None:
                return fn, lead
            if event not in ("connect", "disconnect"):
                fn = table.get("*")
                if fn is not None:
                    return fn, (event, *lead)
        if socket.key != "*":
            table = self.handlers.get("*")
            if table is not None:
                fn = table.get(event)
                if fn is not None:
                    return fn, (socket.namespace,)
                if event not in ("connect", "disconnect"):
                    fn = table.get("*")
                    if fn is not None:
                        return fn, (event, socket.namespace)
        return None, ()

    def _enqueue(self, socket: Socket, item: tuple[Any, ...]) -> None:
        """Run ``item`` after the socket's earlier items, or at once when the socket is idle.

        No task per item: an ``async def`` handler starts right here and, if it completes without
        suspending (``await sio.emit(...)`` does not suspend), costs no task at all; one that really
        waits continues in a task. A plain handler goes to a worker thread, and its completion comes
        back through the inbox, where it starts the socket's next item.
        """
        if self.concurrent_handlers and item[0] == "event":
            self._start(socket, item, chained=False)
            return
        if socket.running:
            limit = self.max_queued_events
            if limit is not None and len(socket.queue) >= limit and item[0] == "event":
                # The client sends faster than its handlers finish: refuse to buffer without bound.
                self.logger.info(
                    "closing session %s: more than %d events waiting for their handlers (max_queued_events)",
                    socket.conn.log_id, limit,
                )
                socket.conn.close(Reason.EVENT_QUEUE_FULL, flush=False)
                return
            socket.queue.append(item)
            return
        socket.running = True
        self._start(socket, item, chained=True)

    def _next(self, socket: Socket) -> None:
        """The socket's current item is done: start its next one, or mark it idle."""
        if socket.queue:
            self._start(socket, socket.queue.pop(0), chained=True)
        else:
            self._idle(socket)

    def _start(self, socket: Socket, item: tuple[Any, ...], chained: bool) -> None:
        """Start ``item``; a ``chained`` item starts the socket's next one once it has finished."""
        while True:
            if item[0] == "event":
                done = self._run_event(socket, item[1], item[2], item[3], chained)
            else:
                done = self._run_lifecycle(socket, item, chained)
            if not done or not chained:
                return
            if not socket.queue:
                self._idle(socket)
                return
            item = socket.queue.pop(0)

    def _run_lifecycle(self, socket: Socket, item: tuple[Any, ...], chained: bool) -> bool:
        """Start a connect or disconnect item's handler; True if it is done already (see
        :meth:`_run_event`)."""
        fn, args, finish = self._prepare(socket, item)
        if item[0] == "connect" and self.middlewares:
            chain = [mw for key, mw in self.middlewares if key == "*" or key == socket.key or key == socket.namespace]
            if chain:
                return self._run_coroutine(socket, self._connect_through(socket, chain, fn, args, finish), chained)
        if fn is not None:
            if not _is_async(fn):
                self.workers.submit(self._run_in_thread, self._thread_done, fn, args, socket, finish, chained)
                return False
            return self._run_coroutine(socket, _settle(fn(*args), finish), chained)
        if finish is not None:
            finish(True, None)
        return True

    def _run_event(self, socket: Socket, name: str, args: list[Any], ack_id: int | None, chained: bool) -> bool:
        """Start an event's handler; True if it is done already (an ``async def`` handler that did
        not suspend, or no handler), False if it goes on in a task or on a worker thread.

        The hot path of every message: the handler found once per event name, an ``async def``
        handler stepped directly, no wrapper coroutine and no callback object unless needed.
        """
        if not socket.connected:
            return True
        key = (socket.key, socket.namespace, name)  # the namespace too: dynamic ones pass it on
        entry = self._dispatch.get(key)
        if entry is None:
            fn, lead = self._handler(socket, name)
            if fn is None:
                return True  # like Node's server: an event nobody handles is not acknowledged either
            entry = (fn, lead, _is_async(fn))
            if len(self._dispatch) < 4096:  # event names come from clients: bounded
                self._dispatch[key] = entry
        fn, lead, is_async = entry
        call_args = (*lead, socket.sid, *args) if lead else (socket.sid, *args)
        if not is_async:
            batch = self._thread_batch
            if not batch:
                self.loop.call_soon(self._submit_batch_soon, 0, _BATCH_PASSES)  # type: ignore[union-attr]
            batch.append(
                (self._run_in_thread, (self._event_thread_done, fn, call_args, socket, name, ack_id, chained))
            )
            return False
        host = socket.host
        try:
            coro = fn(*call_args)
            if type(coro) is not _CoroutineType or not chained or not _HOSTS_AVAILABLE:
                # another awaitable, or concurrent handlers: a task each
                finish = functools.partial(self._event_done, socket, name, ack_id)
                return self._run_coroutine(socket, _settle(coro, finish), chained)
            if host is None or host.task.done():  # (a host cancelled while idle has ended: make another)
                host = socket.host = HandlerTask(self.loop)  # type: ignore[arg-type]
            context = _copy_context()
            yielded = host.step(coro, context)
        except StopIteration as stop:
            if ack_id is not None:
                self._event_done(socket, name, ack_id, True, stop.value)
            return True
        except Exception as exc:
            self._event_done(socket, name, ack_id, False, exc)
            return True
        busy: asyncio.Future[None] = self.loop.create_future()  # type: ignore[union-attr]
        self._tasks.add(busy)  # waited for at shutdown, like the handlers in tasks
        host.drive(coro, yielded, context, functools.partial(self._host_done, socket, name, ack_id, busy))
        return False

    def _host_done(
        self, socket: Socket, name: str, ack_id: int | None, busy: asyncio.Future[None], ok: bool, value: Any
    ) -> None:
        """An event handler that suspended has finished inside its socket's :class:`HandlerTask`."""
        self._tasks.discard(busy)
        busy.set_result(None)
        if ok or isinstance(value, Exception):
            self._event_done(socket, name, ack_id, ok, value)
        self._next(socket)

    async def _connect_through(
        self, socket: Socket, chain: list[Callable[..., Any]], fn: Any, args: tuple[Any, ...], finish: Any
    ) -> None:
        """A connection's middlewares (:meth:`use`), then its ``connect`` handler; the first that
        refuses ends it (``finish`` reports the outcome, as for the handler alone)."""
        lead = (socket.sid, socket.conn.environ, socket.auth)
        for middleware in chain:
            try:
                verdict = await self._invoke(middleware, self._call_args(middleware, lead))
            except Exception as exc:
                finish(False, exc)
                return
            if verdict is False:
                finish(False, ConnectionRefusedError("Connection rejected by server"))
                return
        if fn is None:
            finish(True, None)
            return
        await _settle(self._invoke(fn, args), finish)

    def _submit_batch_soon(self, size: int, passes: int) -> None:
        """Submit the batch once a pass of the loop has added nothing to it (or after ``passes``
        passes): while the loop keeps reading messages, they join the batch. Each wake-up of a parked
        worker costs two context switches and preempts the loop, so fewer, larger batches are worth
        a pass or two: Flask echo +8% and a lower p99 against submitting one pass later
        (3,500 wake-ups/s instead of 6,000, see docs/benchmarks.md). Under light load this is one
        pass later, as before."""
        batch = self._thread_batch
        if len(batch) > size and passes > 1:
            self.loop.call_soon(self._submit_batch_soon, len(batch), passes - 1)  # type: ignore[union-attr]
        else:
            self._submit_batch()

    def _submit_batch(self) -> None:
        """Hand the batched plain handler calls to the workers together: one wake-up of a worker
        thread per batch instead of one per message."""
        batch, self._thread_batch = self._thread_batch, []
        self.workers.submit_many(batch)

    def _run_coroutine(self, socket: Socket, coro: Any, chained: bool) -> bool:
        """Run a handler's coroutine in a task of its own (what asyncio code expects of
        ``current_task()``: timeouts, cancel scopes, database drivers). On Python 3.12+ the task
        starts eagerly, and one that finishes without suspending costs no pass of the loop: True
        then. Otherwise False, and the task starts the socket's next item when done (``chained``)."""
        task = _new_task(coro, self.loop)
        if task.done():
            if not task.cancelled() and task.exception() is not None:  # (_settle reports Exceptions)
                self.logger.error("handler failed: %r", task.exception())
            return True
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._item_task_done, socket, chained))
        return False

    def _item_task_done(self, socket: Socket, chained: bool, task: asyncio.Task[Any]) -> None:
        self._task_done(task)
        if task.cancelled():
            self._idle(socket)
        elif chained:
            self._next(socket)

    def _run_in_thread(self, done: Callable[..., None], fn: Callable[..., Any], args: tuple[Any, ...],
                       *context: Any) -> None:
        """On a worker thread: run a plain handler, then hand its outcome to the loop as
        ``done(*context, ok, value)`` (after the emits it made, in the same inbox batch)."""
        try:
            value, ok = fn(*args), True
        except BaseException as exc:
            value, ok = exc, False
        self._post(done, *context, ok, value)

    def _thread_done(self, socket: Socket, finish: Any, chained: bool, ok: bool, value: Any) -> None:
        if ok and value is not None and inspect.isawaitable(value):  # a plain function returned an awaitable
            if not self._run_coroutine(socket, _settle(value, finish), chained):
                return
        else:
            finish(ok, value)
        if chained:
            self._next(socket)

    def _event_thread_done(
        self, socket: Socket, name: str, ack_id: int | None, chained: bool, ok: bool, value: Any
    ) -> None:
        """:meth:`_thread_done` for an event's handler, without a ``finish`` callback made per message
        unless its handler returned an awaitable."""
        if ok and value is not None and inspect.isawaitable(value):
            self._thread_done(socket, functools.partial(self._event_done, socket, name, ack_id), chained, ok, value)
            return
        if not ok or ack_id is not None:
            self._event_done(socket, name, ack_id, ok, value)
        if chained:
            self._next(socket)

    def _prepare(self, socket: Socket, item: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...], Any]:
        """For a connect or disconnect item (events go through :meth:`_run_event`): the handler it
        calls, its arguments, and what to do with the outcome: ``finish(ok, value)`` where ``value``
        is the result, or the exception when not ``ok``."""
        kind = item[0]
        if kind == "connect" or kind == "recovered":
            fn, lead = self._handler(socket, "connect")
            finish = functools.partial(self._connect_done, socket, kind)
            if fn is None:
                return None, (), finish
            return fn, self._call_args(fn, (*lead, socket.sid, socket.conn.environ, socket.auth)), finish
        fn, lead = self._handler(socket, "disconnect")
        if fn is None:
            return None, (), None
        return fn, self._call_args(fn, (*lead, socket.sid, item[1])), functools.partial(self._disconnect_done, socket)

    def _event_done(self, socket: Socket, name: str, ack_id: int | None, ok: bool, value: Any) -> None:
        if not ok:
            self.logger.error(
                "handler for event %r (namespace %s) failed: %r", name, socket.namespace, value, exc_info=value
            )
            return
        if ack_id is not None and socket.connected:
            try:
                self._send_items(socket.conn, self._encode_ack(socket.namespace, ack_id, ack_args(value), self.serializer))
            except (TypeError, ValueError) as exc:
                # The application's bug (NaN, an object JSON can't hold), not the client's: it gets
                # no ack, and its connection (whose reader may be running this) goes on.
                self.logger.error(
                    "handler for event %r (namespace %s) returned a value its ack cannot carry: %r",
                    name, socket.namespace, exc,
                )

    def _connect_done(self, socket: Socket, kind: str, ok: bool, value: Any) -> None:
        outcome = value
        if not ok and not isinstance(value, (ConnectionRefusedError, builtins.ConnectionRefusedError)):
            self.logger.error("connect handler (namespace %s) failed: %r", socket.namespace, value, exc_info=value)
            outcome = ConnectionRefusedError("Internal server error")
        if kind == "connect":
            self._connect_result(socket, outcome)
        elif (isinstance(outcome, BaseException) or outcome is False and not self.always_connect) and (
            self.sockets.get(socket.sid) is socket
        ):
            # A recovered connection is already established (skip_middlewares): a refusal from its
            # connect handler can only end it.
            self.disconnect_nowait(socket.sid)

    def _disconnect_done(self, socket: Socket, ok: bool, value: Any) -> None:
        if not ok:
            self.logger.error(
                "disconnect handler (namespace %s) failed: %r", socket.namespace, value, exc_info=value
            )

    def _idle(self, socket: Socket) -> None:
        socket.running = False
        if not socket.connected and self._departing.get(socket.sid) is socket:  # its disconnect handler is done
            del self._departing[socket.sid]
            if socket.sid not in self.sockets:  # (not taken over by a recovered connection meanwhile)
                self.rooms_table.leave_all(socket.namespace, socket.sid)
        if socket.host is not None and socket.sid not in self.sockets:  # gone, and its handlers done
            socket.host.stop()
            socket.host = None
        if socket.idle_waiters:
            waiters, socket.idle_waiters = socket.idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _call_args(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        arity = self._arity.get(fn)
        if arity is None:
            arity = self._arity[fn] = positional_arity(fn)
        return args if len(args) <= arity else args[:arity]

    async def _invoke(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if _is_async(fn):
            return await fn(*args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.workers.submit(self._call_in_thread, future, fn, args)
        result = await future
        if inspect.isawaitable(result):
            result = await result
        return result

    def _call_in_thread(self, future: asyncio.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run a plain handler on a worker thread; its result travels back through the inbox, after
        the emits it made, so that one wake-up of the loop carries both."""
        try:
            result = fn(*args)
        except BaseException as exc:
            self._post(_set_exception, future, exc)
        else:
            self._post(_set_result, future, result)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` for the loop from a worker thread; wake the loop once per batch."""
        self._inbox.append((fn, args))
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            self.loop.call_soon_threadsafe(self._drain_inbox)  # type: ignore[union-attr]

    def _drain_inbox(self) -> None:
        # Reset first: a thread that appends after this line sees False and schedules another drain.
        self._inbox_scheduled = False
        inbox = self._inbox
        while inbox:
            fn, args = inbox.popleft()
            try:
                fn(*args)
            except Exception:
                self.logger.exception("work handed to the loop failed")

    # -- sending ----------------------------------------------------------------------------------

    def _send_packets(self, conn: Connection, packet: Packet) -> None:
        self._send_items(conn, self._encode(packet, self.serializer))

    def _send_items(self, conn: Connection, items: list[str | bytes]) -> None:
        """Write one encoded Socket.IO packet (its text, then its attachments)."""
        packets = _engine_packets(items)
        if len(packets) == 1:
            conn.send(packets[0])
        else:
            conn.send_many(packets)

    def _recipients(
        self,
        namespace: str,
        to: Any,
        skip_sid: Any,
        exclude_rooms: Any,
    ) -> list[str]:
        rooms = None if to is None else ([to] if isinstance(to, str) else list(to))
        skip = () if skip_sid is None else ([skip_sid] if isinstance(skip_sid, str) else list(skip_sid))
        exclude = () if exclude_rooms is None else (
            [exclude_rooms] if isinstance(exclude_rooms, str) else list(exclude_rooms)
        )
        return self.rooms_table.select(namespace, rooms, except_rooms=exclude, skip_sids=skip)

    def _emit(
        self,
        event: str,
        args: tuple[Any, ...],
        to: Any = None,
        namespace: str | None = None,
        skip_sid: Any = None,
        exclude_rooms: Any = None,
        callback: Callable[..., Any] | None = None,
        local: bool = False,
        volatile: bool = False,
    ) -> None:
        """Emit on the loop: encode once, write the same packets to every recipient; with a cluster
        manager (and not ``local``), publish it once for the other servers too."""
        namespace = namespace or "/"
        if volatile:
            if callback is not None:
                raise ValueError("a volatile emit takes no callback (some recipients may never get it)")
            packets = self._event_packets(namespace, event, args, self.serializer)
            sockets = self.sockets
            for sid in self._recipients(namespace, to, skip_sid, exclude_rooms):
                socket = sockets.get(sid)
                if socket is not None and socket.connected and socket.conn.writable_now():
                    socket.deliver(packets)
            if self.manager is not None and not local:
                self.manager.publish_emit(namespace, event, args, to, skip_sid, exclude_rooms, volatile=True)
            return
        if callback is None:
            if self._recovery is not None:
                self._emit_recorded(event, args, namespace, to, skip_sid, exclude_rooms)
            else:
                self._deliver(self._event_packets(namespace, event, args, self.serializer), namespace, to, skip_sid,
                              exclude_rooms)
            if self.manager is not None and not local:
                self.manager.publish_emit(namespace, event, args, to, skip_sid, exclude_rooms)
            return
        wrapped = self._wrap_callback(callback)
        self._emit_with_acks(namespace, event, args, to, as_rooms(skip_sid) + as_rooms(exclude_rooms) or None, wrapped)
        if self.manager is not None and not local:
            self._emit_with_remote_acks(namespace, event, args, to, skip_sid, exclude_rooms, wrapped)

    def _emit_with_acks(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        to: Any,
        exclude_rooms: Any,
        callback: Callable[..., Any],
    ) -> int:
        """Emit to this server's recipients, each with an ack id of its own whose acknowledgement calls
        ``callback``; return how many got it."""
        sids = self._recipients(namespace, to, None, exclude_rooms)
        sockets = self.sockets
        count = 0
        for sid in sids:
            socket = sockets.get(sid)
            if socket is None:
                continue
            ack_id = socket.add_ack(callback, self.max_pending_acks)
            items = self._encode_event(namespace, event, args, ack_id, self.serializer)
            socket.deliver(_engine_packets(items))
            count += 1
        return count

    def _emit_with_remote_acks(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        to: Any,
        skip_sid: Any,
        exclude_rooms: Any,
        on_ack: Callable[..., Any],
        timeout: float = 60.0,
        on_count: Callable[[int], None] | None = None,
    ) -> bool:
        """Ask the other servers to emit to their recipients with acks: each acknowledgement calls
        ``on_ack`` with its first argument (as Node's adapter carries it) for ``timeout`` seconds.
        False (nothing sent) when every recipient named is a socket of this server."""
        manager = self.manager
        assert manager is not None
        rooms = as_rooms(to)
        if manager.all_local(rooms):
            return False
        request_id = manager.new_request_id()
        manager.expect_acks(request_id, timeout, on_count or (lambda count: None), on_ack)
        manager.publish_request(namespace, Request(
            type=RequestType.BROADCAST,
            uid=manager.uid,
            request_id=request_id,
            rooms=rooms,
            except_rooms=as_rooms(skip_sid) + as_rooms(exclude_rooms),
            packet={"type": 2, "data": [event, *args], "nsp": namespace},
            timeout=int(timeout * 1000),
        ))
        return True

    def _deliver(
        self, packets: list[str | bytes], namespace: str, to: Any, skip_sid: Any, exclude_rooms: Any
    ) -> None:
        """Write encoded packets to every recipient of an emit (on the loop)."""
        sockets = self.sockets
        if type(to) is str and skip_sid is None and exclude_rooms is None:
            # The commonest emit: to one room, usually a sid (a reply to one client).
            members = self.rooms_table.room(namespace, to)
            if len(members) == 1:
                socket = sockets.get(next(iter(members)))  # (delivering may empty the room)
                if socket is not None:
                    socket.deliver(packets)
                return
        for sid in self._recipients(namespace, to, skip_sid, exclude_rooms):
            socket = sockets.get(sid)
            if socket is not None:
                socket.deliver(packets)

    def _admin_sent(
        self, event: str, args: tuple[Any, ...], to: Any, namespace: str | None, skip_sid: Any, exclude_rooms: Any
    ) -> None:
        """Tell the Admin UI of an emit (on the loop): its recipients here."""
        namespace = namespace or "/"
        self._admin.sent(namespace, event, args, self._recipients(namespace, to, skip_sid, exclude_rooms))

    def _emit_from_thread(self, event: str, args: tuple[Any, ...], to: Any, namespace: str, skip_sid: Any) -> None:
        """An emit without callback from a thread other than the loop's: encoded right here (so the
        caller gets an unserializable argument's error), delivered on the loop, in order with the
        thread's other calls to it."""
        if self._admin is not None:
            self.submit(self._admin_sent, event, args, to, namespace, skip_sid, None)
        if self._recovery is not None:  # stamped with its offset on the loop, where offsets are kept
            self.submit(self._emit, event, args, to, namespace, skip_sid, None, None)
            return
        packets = self._event_packets(namespace, event, args, self.serializer)
        if threading.get_ident() == self._loop_thread:  # (submit inline)
            self._deliver(packets, namespace, to, skip_sid, None)
        else:
            self._post(self._deliver, packets, namespace, to, skip_sid, None)
        manager = self.manager
        if manager is not None:  # (encoded for the other servers on this thread too)
            prepared = manager.prepare_emit(namespace, event, args, to, skip_sid, None)
            if prepared is not None:
                self.submit(manager.enqueue, *prepared)

    def _wrap_callback(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(callback, asyncio.Future):
            return _AckWaiter(callback)

        def run(*args: Any) -> None:
            self._spawn(self._invoke(callback, self._call_args(callback, args)))

        return run

    async def emit(
        self,
        event: str,
        data: Any = None,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        exclude_rooms: Any = None,
        volatile: bool = False,
        **kwargs: Any,
    ) -> None:
        """Emit ``event`` to one sid, a room, several rooms (``to``/``room``), or everyone.

        ``data`` is one argument, or a tuple of several. ``skip_sid`` (a sid or a list) and
        ``exclude_rooms`` leave recipients out. ``callback`` is called with each recipient's ack.
        ``volatile`` (Node's ``volatile`` flag) drops the event for each recipient whose transport
        can't take it at once (a client not reading, a long-poll with no GET waiting): for data
        that the next event replaces, such as positions.
        """
        if to is None:
            to = room
        if volatile or self._admin is not None:  # (one test on the common path)
            if self._admin is not None:
                self._admin_sent(event, data_args(data), to, namespace, skip_sid, exclude_rooms)
            if volatile:
                self._emit(event, data_args(data), to, namespace, skip_sid, exclude_rooms, callback, volatile=True)
                return
        if (
            type(to) is str and callback is None and skip_sid is None and exclude_rooms is None
            and self._recovery is None and self.manager is None
        ):
            # The commonest emit, a reply to one client on a single server: _emit and _deliver inline.
            namespace = namespace or "/"
            packets = self._event_packets(namespace, event, data_args(data), self.serializer)
            members = self.rooms_table.room(namespace, to)
            if len(members) == 1:
                socket = self.sockets.get(next(iter(members)))  # (delivering may empty the room)
                if socket is not None:
                    socket.deliver(packets)
                return
            self._deliver(packets, namespace, to, None, None)
            return
        self._emit(event, data_args(data), to, namespace, skip_sid, exclude_rooms, callback)

    async def send(
        self,
        data: Any,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Emit a ``message`` event (what the client's ``send()`` and ``on('message')`` use)."""
        await self.emit("message", data, to=to, room=room, skip_sid=skip_sid, namespace=namespace,
                        callback=callback)

    async def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float = 60,
        **kwargs: Any,
    ) -> Any:
        """Emit to one client and wait for its ack; raise :class:`roomcast.TimeoutError` after ``timeout``,
        :class:`roomcast.DisconnectedError` as soon as the client disconnects without acknowledging.

        Returns the ack's argument (a tuple when there are several, None when there are none).
        """
        target = to or sid
        socket = self.sockets.get(target) if target else None
        if socket is None and target and self.manager is not None:
            return await self._remote_call(event, data, target, namespace or "/", timeout)
        if socket is None or socket.held is None and not socket.connected:
            raise builtins.ValueError(f"no connected client with sid {target!r}")
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        ack_id = socket.add_ack(_AckWaiter(future), self.max_pending_acks)
        items = self._encode_event(socket.namespace, event, data_args(data), ack_id, self.serializer)
        socket.deliver(_engine_packets(items))
        try:
            args = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError as exc:
            socket.acks.pop(ack_id, None)
            if isinstance(exc, TimeoutError):  # dropped past max_pending_acks (see Socket.add_ack)
                raise
            raise TimeoutError(f"no acknowledgement of {event!r} within {timeout} s") from None
        return call_result(args)

    async def emit_with_ack(
        self,
        event: str,
        data: Any = None,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        namespace: str | None = None,
        exclude_rooms: Any = None,
        timeout: float = 60,
        **kwargs: Any,
    ) -> list[Any]:
        """Emit to every recipient (everyone, or ``to``/``room``, less ``skip_sid`` and
        ``exclude_rooms``, on every server of a cluster) and wait for all their acknowledgements:
        Node's ``io.timeout(ms).emitWithAck()``.

        Returns the first argument of each recipient's acknowledgement, in the order they came (an
        empty list when nobody was emitted to). A recipient of this server that disconnects before
        answering is no longer waited for. Raises :class:`roomcast.TimeoutError` when some have not
        answered within ``timeout`` seconds; its ``responses`` holds those that did.
        """
        if to is None:
            to = room
        namespace = namespace or "/"
        args = data_args(data)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        gatherer = _AckGatherer(future)
        manager = self.manager
        if manager is not None and not manager.all_local(as_rooms(to)):
            # Counted before anything is sent: an answer must not find the count still unknown.
            gatherer.nodes_left = await manager.other_nodes(namespace)
        sent: list[tuple[Socket, int]] = []
        excluded = as_rooms(skip_sid) + as_rooms(exclude_rooms) or None
        for sid in self._recipients(namespace, to, None, excluded):
            socket = self.sockets.get(sid)
            if socket is None or not socket.connected:
                continue
            ack_id = socket.add_ack(_GatheredAck(gatherer), self.max_pending_acks)
            gatherer.expected += 1
            socket.deliver(_engine_packets(self._encode_event(namespace, event, args, ack_id, self.serializer)))
            sent.append((socket, ack_id))
        if gatherer.nodes_left:
            self._emit_with_remote_acks(
                namespace, event, args, to, skip_sid, exclude_rooms, gatherer.answered, timeout, gatherer.counted
            )
        gatherer.check()
        try:
            return list(await asyncio.wait_for(future, timeout))
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"only {len(gatherer.responses)} acknowledgements of {event!r} within {timeout} s",
                responses=gatherer.responses,
            ) from None
        finally:
            for socket, ack_id in sent:
                socket.acks.pop(ack_id, None)

    async def _remote_call(self, event: str, data: Any, sid: str, namespace: str, timeout: float) -> Any:
        """:meth:`call` for a sid that is not here: through the servers of the cluster."""
        manager = self.manager
        assert manager is not None
        nodes = await manager.other_nodes(namespace)
        if nodes == 0:
            raise builtins.ValueError(f"no connected client with sid {sid!r}")
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        counts: list[int] = []

        def on_count(count: int) -> None:
            counts.append(count)
            if len(counts) >= nodes and not any(counts) and not future.done():
                future.set_exception(builtins.ValueError(f"no connected client with sid {sid!r}"))

        def on_ack(arg: Any = None) -> None:
            if not future.done():
                future.set_result((arg,))

        request_id = self._emit_with_remote_acks(
            namespace, event, data_args(data), sid, None, None, on_ack, timeout, on_count
        )
        assert request_id
        try:
            args = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no acknowledgement of {event!r} within {timeout} s") from None
        return call_result(args)

    # -- rooms and sessions -----------------------------------------------------------------------

    def _find(self, sid: str) -> Socket | None:
        """Socket ``sid``: connected, or gone with its disconnect handler still to finish."""
        return self.sockets.get(sid) or self._departing.get(sid)

    def _socket(self, sid: str, namespace: str | None = None) -> Socket:
        socket = self._find(sid)
        if socket is None:
            raise KeyError(f"no client with sid {sid!r}")
        return socket

    def enter_room_nowait(self, sid: str, room: str, namespace: str | None = None) -> None:
        socket = self.sockets.get(sid)
        if socket is not None:
            self.rooms_table.enter(socket.namespace, sid, room)
        elif self.manager is not None:  # a socket of another server, maybe
            self._publish_rooms(RequestType.REMOTE_JOIN, namespace, (sid,), None, (room,))

    def leave_room_nowait(self, sid: str, room: str, namespace: str | None = None) -> None:
        socket = self.sockets.get(sid)
        self.rooms_table.leave(socket.namespace if socket else (namespace or "/"), sid, room)
        if socket is None and self.manager is not None:
            self._publish_rooms(RequestType.REMOTE_LEAVE, namespace, (sid,), None, (room,))

    def close_room_nowait(self, room: str, namespace: str | None = None) -> None:
        self.rooms_table.close(namespace or "/", room)
        if self.manager is not None:
            self._publish_rooms(RequestType.REMOTE_LEAVE, namespace, (room,), None, (room,))

    def _publish_rooms(
        self, kind: RequestType, namespace: str | None, rooms: tuple[str, ...], exclude_rooms: Any, targets: Any,
        close: bool = False,
    ) -> None:
        manager = self.manager
        assert manager is not None
        manager.publish_request(namespace or "/", Request(
            type=kind, uid=manager.uid, rooms=rooms, except_rooms=as_rooms(exclude_rooms), targets=as_rooms(targets),
            close=close,
        ))

    def _rooms_local(self, sids: Iterable[str], rooms: Iterable[str], join: bool) -> None:
        """Make this server's sockets ``sids`` join (or leave) ``rooms``."""
        for sid in list(sids):
            socket = self.sockets.get(sid)
            if socket is None:
                continue
            for room in rooms:
                if join:
                    self.rooms_table.enter(socket.namespace, sid, room)
                else:
                    self.rooms_table.leave(socket.namespace, sid, room)

    def _disconnect_local(self, sids: Iterable[str], close: bool) -> None:
        """Disconnect this server's sockets ``sids``; with ``close``, their whole connections."""
        for sid in list(sids):
            socket = self.sockets.get(sid)
            if socket is None:
                continue
            if close:
                state: _ConnState | None = socket.conn.state
                for other in list(state.sockets.values()) if state is not None else ():
                    self.disconnect_nowait(other.sid)
                socket.conn.close(EngineReason.FORCED_CLOSE)
            else:
                self.disconnect_nowait(sid)

    # -- the cluster (Node's socket.io 4 server API; see docs/scaling.md) ------------------------------

    def _selection(self, namespace: str | None, to: Any, exclude_rooms: Any) -> tuple[str, list[str]]:
        namespace = namespace or "/"
        return namespace, self._recipients(namespace, as_rooms(to) or None, None, exclude_rooms)  # (none: all)

    async def sockets_join(
        self, room: str | list[str], to: Any = None, namespace: str | None = None, exclude_rooms: Any = None
    ) -> None:
        """Make the sockets in ``to`` (rooms or sids; everyone when None) join ``room`` (one or several),
        on every server of the cluster (Node's ``io.in(to).socketsJoin(room)``)."""
        namespace, sids = self._selection(namespace, to, exclude_rooms)
        self._rooms_local(sids, as_rooms(room), join=True)
        if self.manager is not None:
            self._publish_rooms(RequestType.REMOTE_JOIN, namespace, as_rooms(to), exclude_rooms, room)

    async def sockets_leave(
        self, room: str | list[str], to: Any = None, namespace: str | None = None, exclude_rooms: Any = None
    ) -> None:
        """Make the sockets in ``to`` leave ``room``, on every server (Node's ``socketsLeave``)."""
        namespace, sids = self._selection(namespace, to, exclude_rooms)
        self._rooms_local(sids, as_rooms(room), join=False)
        if self.manager is not None:
            self._publish_rooms(RequestType.REMOTE_LEAVE, namespace, as_rooms(to), exclude_rooms, room)

    async def disconnect_sockets(
        self, close: bool = False, to: Any = None, namespace: str | None = None, exclude_rooms: Any = None
    ) -> None:
        """Disconnect the sockets in ``to`` (everyone when None) on every server; with ``close``, their
        whole connections (Node's ``io.in(to).disconnectSockets(close)``)."""
        namespace, sids = self._selection(namespace, to, exclude_rooms)
        self._disconnect_local(sids, close)
        if self.manager is not None:
            self._publish_rooms(RequestType.REMOTE_DISCONNECT, namespace, as_rooms(to), exclude_rooms, (), close)

    def _describe_socket(self, sid: str) -> dict[str, Any]:
        """A socket as fetchSockets describes it: id, handshake, rooms, data (its session)."""
        socket = self.sockets[sid]
        return {
            "id": sid,
            "handshake": describe_handshake(socket.conn.environ, socket.auth, socket.issued),
            "rooms": self.rooms_table.rooms_of(socket.namespace, sid),
            "data": socket.session,
        }

    async def fetch_sockets(
        self, to: Any = None, namespace: str | None = None, exclude_rooms: Any = None
    ) -> list[RemoteSocket]:
        """The sockets in ``to`` (rooms or sids; everyone when None) on every server of the cluster,
        as :class:`~roomcast.adapters.base.RemoteSocket` (Node's ``io.in(to).fetchSockets()``)."""
        namespace, sids = self._selection(namespace, to, exclude_rooms)
        found = [RemoteSocket(self, namespace, self._describe_socket(sid)) for sid in sids if sid in self.sockets]
        manager = self.manager
        if manager is not None:
            responses = await manager.ask(namespace, Request(
                type=RequestType.REMOTE_FETCH, uid=manager.uid, request_id=manager.new_request_id(),
                rooms=as_rooms(to), except_rooms=as_rooms(exclude_rooms),
            ))
            for response in responses:
                for details in response.sockets or ():
                    if isinstance(details, dict):
                        found.append(RemoteSocket(self, namespace, details))
        return found

    async def all_rooms(self, namespace: str | None = None) -> set[str]:
        """Every room of ``namespace`` on every server (sid rooms included, as Node's ``allRooms``)."""
        namespace = namespace or "/"
        rooms = set(self.rooms_table.all_rooms(namespace))
        manager = self.manager
        if manager is not None:
            responses = await manager.ask(namespace, Request(
                type=RequestType.ALL_ROOMS, uid=manager.uid, request_id=manager.new_request_id()
            ))
            for response in responses:
                rooms.update(str(room) for room in response.rooms or ())
        return rooms

    async def server_count(self, namespace: str | None = None) -> int:
        """How many servers of the cluster serve ``namespace`` (1 without a cluster manager)."""
        if self.manager is None:
            return 1
        return 1 + await self.manager.other_nodes(namespace or "/")

    def on_server_event(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None
    ) -> Any:
        """Register ``handler`` for an event that *other servers* emit with :meth:`server_side_emit`
        (Node's ``io.on(event)`` for ``serverSideEmit``); usable as a decorator. Its return value
        acknowledges a :meth:`server_side_emit_with_ack`."""
        key = (namespace or "/", event)

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.server_handlers[key] = fn
            return fn

        return register(handler) if handler is not None else register

    async def server_side_emit(self, event: str, *args: Any, namespace: str | None = None) -> None:
        """Emit ``event`` to the other servers of the cluster (not to clients): their
        :meth:`on_server_event` handlers get ``args`` (Node's ``serverSideEmit``)."""
        manager = self.manager
        if manager is not None:
            manager.publish_request(namespace or "/", Request(
                type=RequestType.SERVER_SIDE_EMIT, uid=manager.uid, data=[event, *args]
            ))

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, namespace: str | None = None
    ) -> list[Any]:
        """:meth:`server_side_emit`, and wait for each other server's answer (what its handler
        returned), within the manager's ``requests_timeout`` (Node's ``serverSideEmitWithAck``)."""
        manager = self.manager
        if manager is None:
            return []
        responses = await manager.ask(namespace or "/", Request(
            type=RequestType.SERVER_SIDE_EMIT, uid=manager.uid, request_id=manager.new_request_id(),
            data=[event, *args],
        ))
        return [response.data for response in responses]

    def _server_side_event(self, namespace: str, data: list[Any], ack: Callable[[Any], None] | None) -> None:
        """Another server's :meth:`server_side_emit`: run its handler here (on the loop, or on a worker
        thread for a plain one); its result answers ``ack``. Without a handler nothing answers, as in Node."""
        handler = self.server_handlers.get((namespace, data[0]))
        if handler is None:
            return

        async def run() -> None:
            result = await self._invoke(handler, tuple(data[1:]))
            if ack is not None:
                ack(result)

        self._spawn(run())

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Put ``sid`` in ``room``."""
        self.enter_room_nowait(sid, room, namespace)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Take ``sid`` out of ``room``."""
        self.leave_room_nowait(sid, room, namespace)

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        """Take everyone out of ``room``."""
        self.close_room_nowait(room, namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms ``sid`` is in (its own sid room included)."""
        socket = self._find(sid)
        return self.rooms_table.rooms_of(socket.namespace if socket else (namespace or "/"), sid)

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The per-socket session dict (the same object each time: changes stick)."""
        return self._socket(sid).session

    async def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        socket = self._socket(sid)
        if session is not socket.session:
            socket.session.clear()
            socket.session.update(session)

    @asynccontextmanager
    async def session(self, sid: str, namespace: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """``async with sio.session(sid) as session:`` edits the socket's session."""
        yield self._socket(sid).session

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, Any] | None:
        socket = self._find(sid)
        return socket.conn.environ if socket is not None else None

    def transport(self, sid: str, namespace: str | None = None) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self._socket(sid).conn.transport

    def disconnect_nowait(self, sid: str, namespace: str | None = None) -> None:
        socket = self.sockets.get(sid)
        if socket is None:
            if self.manager is not None:  # a socket of another server, maybe
                self._publish_rooms(RequestType.REMOTE_DISCONNECT, namespace, (sid,), None, ())
            return
        if socket.connected:
            self._send_packets(socket.conn, Packet(type=PacketType.DISCONNECT, namespace=socket.namespace))
        self._socket_gone(socket, Reason.SERVER_DISCONNECT)

    async def disconnect(self, sid: str, namespace: str | None = None, ignore_queue: bool = False) -> None:
        """Disconnect ``sid`` from its namespace (its ``disconnect`` handler runs with
        ``"server namespace disconnect"``)."""
        self.disconnect_nowait(sid, namespace)

    async def shutdown(self) -> None:
        """Disconnect every client ("server shutting down") and stop."""
        if self.engine is not None:
            await self.engine.shutdown()

    async def engine_shutdown(self, timeout: float) -> None:
        """Every session is closed: wait, within ``timeout``, for the handlers still queued or running
        (the disconnect handlers, mostly), which would otherwise be cancelled with the loop.
        Background tasks are the application's to stop."""
        running = [t for t in self._tasks if not t.done() and t not in self._background_tasks]
        if running:
            await asyncio.wait(running, timeout=timeout)
        if self.manager is not None:  # (what the disconnect handlers published goes out first)
            await self.manager.stop()

    # -- ASGI -------------------------------------------------------------------------------------

    def asgi_app(
        self,
        other_asgi_app: _ASGICallable | None = None,
        socketio_path: str = "socket.io",
        **kwargs: Any,
    ) -> EngineIOApp:
        """This server as an ASGI application (see :class:`ASGIApp`)."""
        if self.engine is None:
            self.engine = EngineIOApp(
                self, self.engine_config, path=socketio_path, other_asgi_app=other_asgi_app, on_startup=self._bind
            )
        else:
            self.engine.other_asgi_app = other_asgi_app
            self.engine.path = "/" + socketio_path.strip("/")
        return self.engine


class ASGIApp:
    """``ASGIApp(sio, other_asgi_app=None, socketio_path='socket.io')``: mount a server in ASGI.

    Requests under ``socketio_path`` go to Socket.IO; every other request (and the lifespan) go to
    ``other_asgi_app`` (a 404 without one). Honours the ASGI ``root_path``.
    """

    def __init__(
        self,
        socketio_server: AsyncServer,
        other_asgi_app: _ASGICallable | None = None,
        socketio_path: str = "socket.io",
        **kwargs: Any,
    ) -> None:
        self.server = socketio_server
        self.app = socketio_server.asgi_app(other_asgi_app, socketio_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class AsyncNamespace:
    """Class-based namespace: methods named ``on_<event>`` handle ``<event>``.

    The helpers (:meth:`emit`, :meth:`send`, :meth:`enter_room`, ...) default to this namespace.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.server: AsyncServer | None = None

    def _set_server(self, server: AsyncServer) -> None:
        self.server = server

    def _srv(self) -> AsyncServer:
        if self.server is None:
            raise RuntimeError("namespace is not registered with a server")
        return self.server

    async def emit(self, event: str, data: Any = None, to: Any = None, room: Any = None,
                   skip_sid: Any = None, namespace: str | None = None, callback: Any = None,
                   **kwargs: Any) -> None:
        await self._srv().emit(event, data, to=to, room=room, skip_sid=skip_sid,
                               namespace=namespace or self.namespace, callback=callback, **kwargs)

    async def send(self, data: Any, to: Any = None, room: Any = None, skip_sid: Any = None,
                   namespace: str | None = None, callback: Any = None, **kwargs: Any) -> None:
        await self._srv().send(data, to=to, room=room, skip_sid=skip_sid,
                               namespace=namespace or self.namespace, callback=callback)

    async def call(self, event: str, data: Any = None, to: Any = None, sid: Any = None,
                   namespace: str | None = None, timeout: float = 60, **kwargs: Any) -> Any:
        return await self._srv().call(event, data, to=to, sid=sid, namespace=namespace or self.namespace,
                                      timeout=timeout)

    async def emit_with_ack(self, event: str, data: Any = None, to: Any = None, room: Any = None,
                            skip_sid: Any = None, namespace: str | None = None, exclude_rooms: Any = None,
                            timeout: float = 60, **kwargs: Any) -> list[Any]:
        return await self._srv().emit_with_ack(event, data, to=to, room=room, skip_sid=skip_sid,
                                               namespace=namespace or self.namespace,
                                               exclude_rooms=exclude_rooms, timeout=timeout)

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        await self._srv().enter_room(sid, room, namespace or self.namespace)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        await self._srv().leave_room(sid, room, namespace or self.namespace)

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        await self._srv().close_room(room, namespace or self.namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        return self._srv().rooms(sid, namespace or self.namespace)

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        return await self._srv().get_session(sid, namespace or self.namespace)

    async def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        await self._srv().save_session(sid, session, namespace or self.namespace)

    def session(self, sid: str, namespace: str | None = None) -> Any:
        return self._srv().session(sid, namespace or self.namespace)

    async def disconnect(self, sid: str, namespace: str | None = None) -> None:
        await self._srv().disconnect(sid, namespace or self.namespace)
