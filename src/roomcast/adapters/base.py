"""What one node of a cluster does with the others, whatever carries the messages.

:class:`PubSubManager` is the base of the message-queue managers (``AsyncServer(client_manager=...)``,
python-socketio's name; :class:`~roomcast.adapters.redis.AsyncRedisManager` is the one shipped). It
decides what to publish for an emit and what to do with what arrives; a subclass supplies the I/O:
publishing a batch, one subscriber connection, and counting a channel's subscribers. The messages
are those of :mod:`roomcast.adapters.messages` (Node's redis-adapter format).

Everything here runs on the server's event loop, except :meth:`PubSubManager.prepare_emit`, which is
pure and may run on any thread. Publishing never blocks the caller: messages wait in a bounded queue
(``max_queue``) for the publisher task; while the broker is unreachable the oldest are dropped past
that bound (logged once per outage), and the server keeps serving its own clients.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import ProtocolError, TimeoutError
from .messages import (
    DEFAULT_KEY,
    Broadcast,
    Channels,
    Request,
    RequestType,
    Response,
    decode_broadcast,
    decode_request,
    decode_response,
    encode_broadcast,
    encode_request,
    encode_response,
)

if TYPE_CHECKING:
    from ..asyncio.server import AsyncServer

__all__ = ["PubSubManager", "RemoteSocket", "as_rooms"]


def as_rooms(value: Any) -> tuple[str, ...]:
    """``to``/``skip_sid``/``exclude_rooms`` (None, a name, or several) as a tuple of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class RemoteSocket:
    """A socket of any node of the cluster, as :meth:`AsyncServer.fetch_sockets` describes it (Node's
    ``RemoteSocket``): its ``sid``, ``namespace``, ``rooms``, ``data`` (the socket's session) and
    ``handshake``. Its methods act through the cluster, wherever the socket is."""

    __slots__ = ("server", "sid", "namespace", "rooms", "data", "handshake")

    def __init__(self, server: AsyncServer, namespace: str, details: dict[str, Any]) -> None:
        self.server = server
        self.namespace = namespace
        self.sid: str = str(details.get("id"))
        rooms = details.get("rooms")
        self.rooms: list[str] = [str(r) for r in rooms] if isinstance(rooms, list) else []
        self.data: Any = details.get("data")
        handshake = details.get("handshake")
        self.handshake: dict[str, Any] = handshake if isinstance(handshake, dict) else {}

    def __repr__(self) -> str:
        return f"RemoteSocket(sid={self.sid!r}, namespace={self.namespace!r}, rooms={self.rooms!r})"

    async def emit(self, event: str, data: Any = None) -> None:
        await self.server.emit(event, data, to=self.sid, namespace=self.namespace)

    async def join(self, room: str | list[str]) -> None:
        await self.server.sockets_join(room, to=self.sid, namespace=self.namespace)

    async def leave(self, room: str | list[str]) -> None:
        await self.server.sockets_leave(room, to=self.sid, namespace=self.namespace)

    async def disconnect(self, close: bool = False) -> None:
        await self.server.disconnect_sockets(close, to=self.sid, namespace=self.namespace)


class _Pending:
    """A request waiting for ``expected`` responses."""

    __slots__ = ("expected", "responses", "future")

    def __init__(self, expected: int, future: asyncio.Future[list[Response]]) -> None:
        self.expected = expected
        self.responses: list[Response] = []
        self.future = future


class _AckRequest:
    """An emit with acknowledgements sent to other nodes: BROADCAST_CLIENT_COUNT and BROADCAST_ACK
    responses go to ``on_count`` and ``on_ack``."""

    __slots__ = ("on_count", "on_ack", "timer")

    def __init__(self, on_count: Callable[[int], None], on_ack: Callable[[Any], None]) -> None:
        self.on_count = on_count
        self.on_ack = on_ack
        self.timer: asyncio.TimerHandle | None = None


class PubSubManager:
    """A server's link to the other nodes of its cluster (see the module doc).

    ``channel`` is the key the channel names start with (``"socket.io"``, as Node's adapter and
    emitter use); ``write_only`` makes an emitter that publishes and never subscribes (a Celery task,
    a script). ``requests_timeout`` bounds the wait for other nodes' answers (5 s, as Node's).
    """

    name = "pubsub"

    def __init__(
        self,
        channel: str = DEFAULT_KEY,
        write_only: bool = False,
        logger: logging.Logger | None = None,
        requests_timeout: float = 5.0,
        max_queue: int = 10_000,
    ) -> None:
        self.channels = Channels(channel)
        self.channel = channel
        self.write_only = write_only
        self.logger = logger or logging.getLogger("roomcast.cluster")
        self.requests_timeout = requests_timeout
        self.max_queue = max_queue
        #: This node's id in the messages it publishes (it ignores its own).
        self.uid = secrets.token_urlsafe(6)
        self.server: AsyncServer | None = None
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake: asyncio.Event | None = None
        self._dropped = 0
        self._pending: dict[str, _Pending] = {}
        self._ack_requests: dict[str, _AckRequest] = {}
        #: Namespaces whose request channel this node subscribes to (so that NUMSUB counts it).
        self._namespaces: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._subscribed: asyncio.Event | None = None
        self._started = False

    # -- I/O a subclass supplies ---------------------------------------------------------------------

    async def _publish(self, items: list[tuple[str, bytes]]) -> None:
        """Publish ``items`` (channel, message) in order; raise if the broker could not take them."""
        raise NotImplementedError

    async def _subscribe(self, patterns: list[str], channels: list[str]) -> None:
        """Open the subscriber connection (a new one each time), subscribed to ``patterns`` and
        ``channels``."""
        raise NotImplementedError

    async def _subscribe_more(self, channels: list[str]) -> None:
        """Subscribe the open subscriber connection to more channels."""
        raise NotImplementedError

    async def _next_message(self) -> tuple[str, bytes]:
        """The next message on the subscriber connection: (channel, data); raise if it broke."""
        raise NotImplementedError

    async def _count_subscribers(self, channel: str) -> int:
        """How many connections subscribe to ``channel`` (Redis: PUBSUB NUMSUB)."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Close every connection."""

    # -- lifecycle -----------------------------------------------------------------------------------

    def attach(self, server: AsyncServer) -> None:
        """Serve ``server`` (called by :class:`AsyncServer`; a manager serves one server)."""
        if self.server is not None and self.server is not server:
            raise RuntimeError("this manager already serves another server")
        self.server = server

    def start(self) -> None:
        """Start the publisher (and, unless write-only, the subscriber) on the running loop."""
        if self._started:
            return
        self._started = True
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks.append(asyncio.ensure_future(self._publisher()))
        if not self.write_only:
            self._namespaces.add("/")
            server = self.server
            if server is not None:  # the namespaces known by name now, as Node's io.of(name) makes them
                allowed = server.allowed_namespaces
                names = [*server.handlers, *server.namespace_handlers, *(allowed if isinstance(allowed, list) else ())]
                self._namespaces.update(n for n in names if isinstance(n, str) and n.startswith("/"))
            self._tasks.append(asyncio.ensure_future(self._subscriber()))

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait until this node receives the cluster's messages (its subscriptions are in place)."""
        self.start()
        assert self._subscribed is not None
        if self.write_only:
            return
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self) -> None:
        """Stop the tasks, publishing what is queued first (within a second), and close."""
        if not self._started:
            return
        deadline = time.monotonic() + 1.0
        while self._queue and time.monotonic() < deadline and self._tasks and not self._tasks[0].done():
            await asyncio.sleep(0.01)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:  # (cancelled, or already failed and logged)
                pass
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
        for request in self._ack_requests.values():
            if request.timer is not None:
                request.timer.cancel()
        self._ack_requests.clear()
        self._started = False
        await self._close()

    def namespace_used(self, namespace: str) -> None:
        """A socket joined ``namespace`` here: take part in its requests from now on."""
        if namespace in self._namespaces or self.write_only:
            return
        self._namespaces.add(namespace)
        if self._subscribed is not None and self._subscribed.is_set():
            # (while not subscribed, the subscriber's next (re)connection includes it)
            task = asyncio.ensure_future(self._subscribe_more([self.channels.request(namespace)]))
            self._tasks.append(task)
            task.add_done_callback(self._subscribed_more)

    def _subscribed_more(self, task: asyncio.Future[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:  # the subscriber finds it broken and reconnects
            self.logger.debug("cluster: subscribing to one more namespace failed: %r", task.exception())

    # -- publishing ----------------------------------------------------------------------------------

    def enqueue(self, channel: str, message: bytes) -> None:
        """Publish ``message`` on ``channel`` soon (on the loop; never blocks)."""
        queue = self._queue
        queue.append((channel, message))
        if len(queue) > self.max_queue:
            queue.popleft()
            self._dropped += 1
            if self._dropped == 1:
                self.logger.warning(
                    "cluster: the message broker does not keep up or is unreachable; dropping the oldest "
                    "of %d queued messages (max_queue; logged once until it recovers)", self.max_queue
                )
        if self._wake is not None:
            self._wake.set()
        elif not self._started:
            self.start()

    async def _publisher(self) -> None:
        assert self._wake is not None
        wake = self._wake
        delay = 0.1
        failing = False
        while True:
            if not self._queue:
                wake.clear()
                await wake.wait()
                continue
            batch = [self._queue[i] for i in range(min(len(self._queue), 512))]
            try:
                await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # (once per outage; the retries go on quietly, backing off to 5 s)
                    self.logger.warning("cluster: publishing failed (%s); retrying", exc)
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            for _ in range(min(len(batch), len(self._queue))):
                self._queue.popleft()
            if failing:
                self.logger.warning("cluster: publishing again (%d messages were dropped)", self._dropped)
                failing = False
                self._dropped = 0

    def prepare_emit(
        self, namespace: str, event: str, args: tuple[Any, ...], to: Any, skip_sid: Any, exclude_rooms: Any,
        volatile: bool = False,
    ) -> tuple[str, bytes] | None:
        """The channel and message of an emit for the other nodes, or None when every recipient is
        a socket of this node (sids are unique to a node). Pure: any thread may call it."""
        rooms = as_rooms(to)
        if self.all_local(rooms):
            return None
        message = Broadcast(
            uid=self.uid,
            namespace=namespace,
            data=[event, *args],
            rooms=rooms,
            except_rooms=as_rooms(skip_sid) + as_rooms(exclude_rooms),
            flags={"volatile": True} if volatile else {},
        )
        return self.channels.broadcast(namespace, rooms), encode_broadcast(message)

    def all_local(self, rooms: tuple[str, ...]) -> bool:
        """Whether ``rooms`` name sockets of this server only (sids are unique to a server, so an
        emit to them needs no other server); False for none (everyone)."""
        server = self.server
        return bool(rooms) and server is not None and all(room in server.sockets for room in rooms)

    def publish_emit(
        self, namespace: str, event: str, args: tuple[Any, ...], to: Any, skip_sid: Any, exclude_rooms: Any,
        volatile: bool = False,
    ) -> None:
        prepared = self.prepare_emit(namespace, event, args, to, skip_sid, exclude_rooms, volatile)
        if prepared is not None:
            self.enqueue(*prepared)

    def publish_request(self, namespace: str, request: Request) -> None:
        self.enqueue(self.channels.request(namespace), encode_request(request))

    def _respond(self, namespace: str, response: Response) -> None:
        self.enqueue(self.channels.response(namespace), encode_response(response))

    # -- requests to the other nodes ---------------------------------------------------------------------

    async def other_nodes(self, namespace: str = "/") -> int:
        """How many other nodes serve ``namespace`` (subscribe to its request channel)."""
        count = await self._count_subscribers(self.channels.request(namespace))
        return max(0, count - (1 if namespace in self._namespaces and not self.write_only else 0))

    async def ask(self, namespace: str, request: Request) -> list[Response]:
        """Send ``request`` to every other node and return their responses (within
        ``requests_timeout``: :class:`roomcast.TimeoutError` names how many answered)."""
        expected = await self.other_nodes(namespace)
        if expected == 0:
            return []
        assert request.request_id is not None
        future: asyncio.Future[list[Response]] = asyncio.get_running_loop().create_future()
        pending = self._pending[request.request_id] = _Pending(expected, future)
        self.publish_request(namespace, request)
        try:
            return await asyncio.wait_for(future, self.requests_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"{request.type.name}: {len(pending.responses)} of {expected} other nodes answered "
                f"within {self.requests_timeout} s"
            ) from None
        finally:
            self._pending.pop(request.request_id, None)

    def new_request_id(self) -> str:
        return secrets.token_urlsafe(6)

    def expect_acks(
        self, request_id: str, timeout: float, on_count: Callable[[int], None], on_ack: Callable[[Any], None]
    ) -> None:
        """Route the BROADCAST_CLIENT_COUNT/BROADCAST_ACK responses to ``request_id`` for ``timeout``
        seconds (as Node, nodes do not say when their clients are done acknowledging)."""
        entry = self._ack_requests[request_id] = _AckRequest(on_count, on_ack)
        entry.timer = asyncio.get_running_loop().call_later(timeout, self._ack_requests.pop, request_id, None)

    def forget_acks(self, request_id: str) -> None:
        entry = self._ack_requests.pop(request_id, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()

    # -- what arrives ------------------------------------------------------------------------------------

    async def _subscriber(self) -> None:
        assert self._subscribed is not None
        delay = 0.1
        failed = False
        while True:
            try:
                namespaces = set(self._namespaces)
                await self._subscribe(
                    [self.channels.broadcast_pattern, self.channels.response_pattern],
                    sorted(self.channels.request(n) for n in namespaces),
                )
                while self._namespaces - namespaces:  # (namespaces used while it subscribed)
                    missing = self._namespaces - namespaces
                    namespaces |= missing
                    await self._subscribe_more(sorted(self.channels.request(n) for n in missing))
                self._subscribed.set()
                if failed:
                    self.logger.warning("cluster: subscribed again")
                    failed = False
                delay = 0.1
                while True:
                    channel, data = await self._next_message()
                    self.dispatch(channel, data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed.clear()
                if not failed:
                    self.logger.warning("cluster: lost the subscription (%s); reconnecting", exc)
                    failed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def dispatch(self, channel: str, data: bytes) -> None:
        """Handle one message received on ``channel`` (malformed ones are dropped with a debug line)."""
        parsed = self.channels.parse(channel)
        if parsed is None:
            return
        kind, namespace, room = parsed
        try:
            if kind == "broadcast":
                self._on_broadcast(namespace, room, data)
            elif kind == "request":
                self._on_request(namespace, decode_request(data))
            else:
                self._on_response(decode_response(data))
        except ProtocolError as exc:
            self.logger.debug("cluster: dropped a malformed message on %s: %s", channel, exc)
        except Exception as exc:  # (what this node cannot deliver, say a value its serializer refuses)
            self.logger.info("cluster: dropped a message on %s that could not be handled: %r", channel, exc)

    def _on_broadcast(self, namespace: str, room: str | None, data: bytes) -> None:
        server = self.server
        if server is None:
            return
        if room is not None and not server.rooms_table.room(namespace, room):
            return  # a room with nobody here: not worth decoding
        message = decode_broadcast(data)
        if message.uid == self.uid or message.namespace != namespace:
            return
        server._emit(
            message.data[0],
            tuple(message.data[1:]),
            list(message.rooms) or None,
            namespace,
            None,
            list(message.except_rooms) or None,
            None,
            local=True,
            volatile=bool(message.flags.get("volatile")),
        )

    def _select(self, namespace: str, request: Request) -> list[str]:
        assert self.server is not None
        return self.server.rooms_table.select(
            namespace, list(request.rooms) or None, except_rooms=request.except_rooms
        )

    def _on_request(self, namespace: str, request: Request) -> None:
        server = self.server
        if server is None or request.uid == self.uid:
            return
        kind = request.type
        rid = request.request_id
        if kind == RequestType.SOCKETS:
            if rid is not None:
                sids = server.rooms_table.select(namespace, list(request.rooms) or None)
                self._respond(namespace, Response(request_id=rid, sockets=sids))
        elif kind == RequestType.ALL_ROOMS:
            if rid is not None:
                self._respond(namespace, Response(request_id=rid, rooms=server.rooms_table.all_rooms(namespace)))
        elif kind in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT):
            if request.sid is not None:  # the older one-socket form, answered when the socket is here
                socket = server.sockets.get(request.sid)
                if socket is None:
                    return
                sids = [request.sid]
                targets: tuple[str, ...] = (request.room,) if request.room is not None else ()
            else:
                sids = self._select(namespace, request)
                targets = request.targets
            if kind == RequestType.REMOTE_DISCONNECT:
                server._disconnect_local(sids, request.close)
            else:
                server._rooms_local(sids, targets, join=kind == RequestType.REMOTE_JOIN)
            if request.sid is not None and rid is not None:
                self._respond(namespace, Response(request_id=rid))
        elif kind == RequestType.REMOTE_FETCH:
            if rid is not None:
                sids = self._select(namespace, request)
                described = [server._describe_socket(sid) for sid in sids if sid in server.sockets]
                self._respond(namespace, Response(request_id=rid, sockets=described))
        elif kind == RequestType.SERVER_SIDE_EMIT:
            assert request.data is not None
            ack = None
            if rid is not None:
                called = False

                def ack(value: Any = None) -> None:
                    nonlocal called
                    if not called:
                        called = True
                        self._respond(
                            namespace, Response(request_id=rid, type=RequestType.SERVER_SIDE_EMIT, data=value)
                        )

            server._server_side_event(namespace, request.data, ack)
        elif kind == RequestType.BROADCAST:
            if rid is None or rid in self._ack_requests or request.packet is None:
                return
            data = request.packet["data"]
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                return

            def on_ack(*args: Any) -> None:
                packet = args[0] if args else None
                self._respond(namespace, Response(request_id=rid, type=RequestType.BROADCAST_ACK, packet=packet))

            count = server._emit_with_acks(
                namespace, data[0], tuple(data[1:]), list(request.rooms) or None, list(request.except_rooms) or None,
                on_ack,
            )
            self._respond(
                namespace, Response(request_id=rid, type=RequestType.BROADCAST_CLIENT_COUNT, client_count=count)
            )

    def _on_response(self, response: Response) -> None:
        rid = response.request_id
        entry = self._ack_requests.get(rid)
        if entry is not None:
            if response.type == RequestType.BROADCAST_CLIENT_COUNT and response.client_count is not None:
                entry.on_count(response.client_count)
            elif response.type == RequestType.BROADCAST_ACK:
                entry.on_ack(response.packet)
            return
        pending = self._pending.get(rid)
        if pending is None or pending.future.done():
            return
        pending.responses.append(response)
        if len(pending.responses) >= pending.expected:
            pending.future.set_result(pending.responses)


def describe_handshake(environ: dict[str, Any] | None, auth: Any, issued: float) -> dict[str, Any]:
    """A socket's handshake as Node's ``socket.handshake`` describes it (what fetchSockets returns)."""
    environ = environ or {}
    headers = {
        key[5:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    url = path + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
    return {
        "headers": headers,
        "time": time.strftime("%a %b %d %Y %H:%M:%S GMT+0000", time.gmtime(issued)),
        "address": environ.get("REMOTE_ADDR", ""),
        "xdomain": "origin" in headers,
        "secure": environ.get("wsgi.url_scheme") == "https",
        "issued": int(issued * 1000),
        "url": url,
        "query": query,
        "auth": auth if isinstance(auth, dict) else {},
    }
