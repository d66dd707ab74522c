"""``SocketIOTestClient``: Flask-SocketIO's test client, driving the real server in-process.

The client opens an in-memory WebSocket into the application's real ASGI app (the same one uvicorn
serves): its ``receive``/``send`` are plain functions on the server's event loop, so packets go through
the Socket.IO encoder, the Engine.IO session and the server's dispatch exactly as a network client's
would. There is no network and nothing is patched.

Calls are synchronous, as in Flask-SocketIO: :meth:`SocketIOTestClient.emit` returns once the server
has handled the event (its handler, and anything queued behind it for that socket, has run) and has
written out what it sent back, so :meth:`get_received` right after an emit sees what the handler
emitted. Without a running server (a plain test), the ``SocketIO`` object runs its server on an event
loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine
from typing import Any

from ..exceptions import ConnectionError, ProtocolError
from ..socketio.packets import Decoder, Packet, PacketType, encode, encode_event
from . import context

__all__ = ["SocketIOTestClient"]

_EVENTS = (PacketType.EVENT, PacketType.BINARY_EVENT)
_ACKS = (PacketType.ACK, PacketType.BINARY_ACK)


class _Peer:
    """The client end of one in-memory WebSocket: the ASGI ``receive``/``send`` pair (loop only).

    ``receive`` counts its calls: the server's reader handles each message completely before it asks
    for the next, so once message *n* is followed by another ``receive`` call, *n* has been
    dispatched.
    """

    def __init__(
        self,
        on_text: Callable[[str], None],
        on_binary: Callable[[bytes], None],
        on_close: Callable[[], None],
    ) -> None:
        self.on_text = on_text
        self.on_binary = on_binary
        self.on_close = on_close
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.put_count = 0
        self.receive_calls = 0
        self.eio_sid: str | None = None
        self.closed = False
        self.task: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()

    def notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds, re-checking after every change on this connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"test client: timed out after {timeout} s waiting for {what}")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def put(self, data: str | bytes) -> int:
        """Queue one WebSocket message for the server; returns its number."""
        if isinstance(data, str):
            self.inbox.put_nowait({"type": "websocket.receive", "text": data})
        else:
            self.inbox.put_nowait({"type": "websocket.receive", "bytes": bytes(data)})
        self.put_count += 1
        return self.put_count

    def dispatched(self, number: int) -> bool:
        # Call 1 returned websocket.connect; call k (k >= 2) returned message k - 1 and call k + 1
        # means that message k - 1 was handled.
        return self.closed or self.receive_calls >= number + 2

    def close(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    def finished(self) -> None:
        self._closed()
        self.notify()

    def _closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.on_close()

    # ASGI side. ``send`` never suspends: when the server's writer takes its queued packets, all of
    # them are here before any other task runs (the test client relies on it to know nothing is in
    # flight).

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        self.notify()
        if self.receive_calls == 1:
            return {"type": "websocket.connect"}
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                self._engine_text(text)
            else:
                self.on_binary(message["bytes"])
        elif kind == "websocket.close":
            self._closed()
        self.notify()

    def _engine_text(self, text: str) -> None:
        # Engine.IO packet types: 0 open, 1 close, 2 ping, 3 pong, 4 message, 6 noop.
        kind = text[:1]
        if kind == "4":
            self.on_text(text[1:])
        elif kind == "2":
            self.put("3" + text[1:])
        elif kind == "0":
            self.eio_sid = json.loads(text[1:])["sid"]
        elif kind == "1":
            self._closed()


class SocketIOTestClient:
    """A Socket.IO client for tests (Flask-SocketIO's API), connected at creation.

    ``get_received(namespace)`` returns (and forgets) the events received in a namespace, as dicts
    ``{'name': event, 'args': [...], 'namespace': ns}`` (for ``message`` and ``json`` events,
    ``args`` is the single value). With ``flask_test_client``, the handshake carries that client's
    cookies, so the HTTP session reaches the handlers.
    """

    #: Seconds any single operation may wait for the server (a handler that never returns, say).
    timeout = 30.0

    def __init__(
        self,
        app: Any,
        socketio: Any,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: Any = None,
        auth: Any = None,
        flask_test_client: Any = None,
    ) -> None:
        self.app = app
        self.socketio = socketio
        self.flask_test_client = flask_test_client
        self.eio_sid: str | None = None
        self.connected: dict[str, bool] = {}
        self.queue: list[dict[str, Any]] = []
        self.acks: dict[int, list[Any]] = {}
        #: What the server answered a refused connection with, by namespace.
        self.connect_errors: dict[str, Any] = {}
        #: The socket id of each connected namespace.
        self.sids: dict[str, str] = {}
        self._sockets: dict[str, Any] = {}
        self._peer: _Peer | None = None
        self._decoder: Decoder | None = None
        self._ack_ids = itertools.count(1)
        self._loop = socketio._ensure_loop()
        self._asgi = socketio.get_asgi_app(app)
        self._server = socketio.server
        self.connect(namespace=namespace, query_string=query_string, headers=headers, auth=auth)

    # -- plumbing ---------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("the test client blocks: it can't be used from the server's event loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout + 5)

    def _peer_or_fail(self) -> _Peer:
        if self._peer is None:
            raise RuntimeError("not connected")
        return self._peer

    def _put_packet(self, items: list[str | bytes]) -> int:
        peer = self._peer_or_fail()
        number = 0
        for i, item in enumerate(items):
            number = peer.put("4" + item if i == 0 else item)  # type: ignore[operator]
        return number

    async def _open(self, query_string: str | None, headers: Any) -> None:
        query = "EIO=4&transport=websocket"
        if query_string:
            query += "&" + query_string.lstrip("?")
        path = "/" + self.socketio.path.strip("/") + "/"
        raw_headers: list[tuple[bytes, bytes]] = [(b"host", b"localhost")]
        items = headers.items() if hasattr(headers, "items") else (headers or ())
        for name, value in items:
            raw_headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
        if self.flask_test_client is not None:
            cookie = context.flask_client_cookie_header(self.flask_test_client, path)
            if cookie:
                raw_headers.append((b"cookie", cookie.encode("latin-1")))
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode("latin-1"),
            "headers": raw_headers,
            "client": ("127.0.0.1", 40000),
            "server": ("localhost", 80),
            "subprotocols": [],
            "state": {},
        }
        self._decoder = Decoder(serializer=self._server.serializer, max_attachments=self._server.max_attachments)
        peer = self._peer = _Peer(self._on_text, self._on_binary, self._on_close)
        peer.task = asyncio.ensure_future(self._asgi(scope, peer.receive, peer.send))
        peer.task.add_done_callback(lambda _: peer.finished())
        await peer.until(lambda: peer.eio_sid is not None or peer.closed, self.timeout, "the Engine.IO handshake")
        if peer.eio_sid is None:
            raise ConnectionError("the server refused the connection (see its log)")
        self.eio_sid = peer.eio_sid

    def _on_close(self) -> None:
        for namespace in self.connected:
            self.connected[namespace] = False

    def _on_binary(self, data: bytes) -> None:
        self._on_text(data)

    def _on_text(self, data: str | bytes) -> None:
        assert self._decoder is not None
        try:
            packet = self._decoder.receive(data)
        except ProtocolError as exc:
            raise AssertionError(f"the server sent a malformed packet: {exc}") from exc
        if packet is None:
            return
        self._on_packet(packet)

    def _on_packet(self, packet: Packet) -> None:
        ptype = packet.type
        namespace = packet.namespace
        if ptype in _EVENTS:
            name, args = packet.data[0], packet.data[1:]
            if name in ("message", "json"):
                args = args[0] if args else None
            self.queue.append({"name": name, "args": args, "namespace": namespace})
        elif ptype in _ACKS:
            self.acks[packet.id] = list(packet.data)  # type: ignore[index]
        elif ptype is PacketType.CONNECT:
            sid = str((packet.data or {}).get("sid"))
            self.connected[namespace] = True
            self.sids[namespace] = sid
            socket = self._server.sockets.get(sid)
            if socket is not None:
                self._sockets[namespace] = socket
        elif ptype is PacketType.CONNECT_ERROR:
            self.connected[namespace] = False
            self.connect_errors[namespace] = packet.data
        elif ptype is PacketType.DISCONNECT:
            self.connected[namespace] = False

    async def _flush(self) -> None:
        """Wait until the server has written out everything queued for this connection."""
        peer = self._peer
        engine = self._server.engine
        if peer is None or engine is None or self.eio_sid is None:
            return
        conn = engine.connections.get(self.eio_sid)
        if conn is None:
            return
        await peer.until(
            lambda: peer.closed or conn.closed or not conn.session.has_packets,
            self.timeout,
            "the server to send what it queued",
        )

    async def _settle(self, namespace: str) -> None:
        """Wait until the handlers queued for ``namespace``'s socket have run, then flush."""
        socket = self._sockets.get(namespace)
        if socket is not None:
            try:
                await asyncio.wait_for(socket.idle(), self.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"test client: a handler in {namespace} ran for more than {self.timeout} s") from None
        await self._flush()

    # -- API --------------------------------------------------------------------------------------

    def is_connected(self, namespace: str | None = None) -> bool:
        """Whether ``namespace`` (default ``'/'``) is connected."""
        return self.connected.get(namespace or "/", False)

    def connect(
        self,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: Any = None,
        auth: Any = None,
    ) -> None:
        """Connect to ``namespace`` (done for the first one at creation).

        A refused connection leaves ``is_connected(namespace)`` false, with the server's answer in
        ``connect_errors[namespace]``. ``query_string`` and ``headers`` go to the Engine.IO handshake,
        so they count when no namespace is connected yet (as with a real client's connection).
        """
        self._run(self._connect(namespace or "/", query_string, headers, auth))

    async def _connect(self, namespace: str, query_string: str | None, headers: Any, auth: Any) -> None:
        if self._peer is None or self._peer.closed:
            await self._open(query_string, headers)
        if self.connected.get(namespace):
            return
        peer = self._peer_or_fail()
        self.connected.pop(namespace, None)
        self.connect_errors.pop(namespace, None)
        self._put_packet(encode(Packet(type=PacketType.CONNECT, namespace=namespace, data=auth),
                                self._server.serializer))
        await peer.until(lambda: namespace in self.connected or peer.closed, self.timeout,
                         f"the answer to connecting {namespace}")
        if self.connected.get(namespace):
            await self._settle(namespace)

    def disconnect(self, namespace: str | None = None) -> None:
        """Leave ``namespace``; returns after its ``disconnect`` handler ran."""
        if not self.is_connected(namespace):
            raise RuntimeError("not connected")
        self._run(self._disconnect(namespace or "/"))

    async def _disconnect(self, namespace: str) -> None:
        peer = self._peer_or_fail()
        number = self._put_packet(encode(Packet(type=PacketType.DISCONNECT, namespace=namespace)))
        await peer.until(lambda: peer.dispatched(number), self.timeout, "the server to read the disconnect")
        await self._settle(namespace)
        self.connected.pop(namespace, None)
        self._sockets.pop(namespace, None)
        self.sids.pop(namespace, None)
        if not any(self.connected.values()):
            # The last namespace is gone: close the connection too, so that a later connect() opens
            # a fresh one with its own query string and headers.
            peer.close()
            if peer.task is not None:
                await asyncio.wait_for(asyncio.shield(peer.task), self.timeout)
            self._peer = None

    def emit(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Emit ``event`` with ``args``; returns once the server has handled it.

        With ``callback=True`` the event asks for an acknowledgement and its arguments are returned
        (one argument as is, several as a list).
        """
        namespace = kwargs.pop("namespace", None) or "/"
        callback = kwargs.pop("callback", False)
        if kwargs:
            raise TypeError(f"emit() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        if not self.is_connected(namespace):
            raise RuntimeError("not connected")
        return self._run(self._emit(namespace, event, args, bool(callback)))

    async def _emit(self, namespace: str, event: str, args: tuple[Any, ...], callback: bool) -> Any:
        peer = self._peer_or_fail()
        ack_id = next(self._ack_ids) if callback else None
        number = self._put_packet(encode_event(namespace, event, args, ack_id, self._server.serializer))
        await peer.until(lambda: peer.dispatched(number), self.timeout, f"the server to read {event!r}")
        await self._settle(namespace)
        if ack_id is None:
            return None
        ack = self.acks.pop(ack_id, None)
        if ack is None:
            return None
        return ack[0] if len(ack) == 1 else ack

    def send(self, data: Any, json: bool = False, callback: bool = False, namespace: str | None = None) -> Any:
        """Send a ``message`` event (``json`` with ``json=True``)."""
        return self.emit("json" if json else "message", data, callback=callback, namespace=namespace)

    def get_received(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The events received in ``namespace`` (default ``'/'``) since the last call."""
        if not self.is_connected(namespace):
            raise RuntimeError("not connected")
        return self._run(self._received(namespace or "/"))  # type: ignore[no-any-return]

    async def _received(self, namespace: str) -> list[dict[str, Any]]:
        await self._flush()
        mine = [item for item in self.queue if item["namespace"] == namespace]
        self.queue = [item for item in self.queue if item["namespace"] != namespace]
        return mine
