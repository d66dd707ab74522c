"""Uvicorn's WebSocket protocol with a direct lane for Roomcast: messages in and frames out without
an ASGI round trip per message.

Plain ASGI costs every WebSocket message a queue put, a task wake-up, a pause and a resume of the
socket's reading (uvicorn pauses reading until the app has taken each message), a message dict, and
on the way out a coroutine, an ``asyncio.Event`` check and a frame built anew for each recipient of
a broadcast. With this protocol (``uvicorn.Config(ws=WebSocketProtocol)``, which ``roomcast run``
and ``socketio.run`` use), a WebSocket's scope carries the extension ``"roomcast.websocket"``: the
protocol object itself, through which Roomcast's Engine.IO layer

- takes the messages straight from the frame parser (:meth:`WebSocketProtocol.take_messages`), and
- writes frames synchronously while the socket is writable (:meth:`WebSocketProtocol.write`), the
  frame of a text packet built once for all recipients of a broadcast.

Every write on the connection (the lane's and uvicorn's own) is held until the end of the event
loop's pass and then written in one piece (see ``_CorkedTransport``).

Once the handshake is done, a connection's frames are read by aiohttp's compiled reader where it
is installed (``pip install 'roomcast[fast]'``; see :mod:`roomcast.asyncio.frame_reader`), about 4×
cheaper than ``websockets``' parser; each control frame it reads is handed back to ``websockets``.

Everything else (the opening handshake, close handshake, keepalive pings, disconnect events, back
pressure through ``send()`` when the socket is not writable) stays uvicorn's own, and any other ASGI
app served by this protocol sees plain ASGI. Frames written are ``websockets``' own bytes. A frame
that breaks the protocol (invalid UTF-8 in a text frame included) closes the connection with the
RFC's code and one log line, where uvicorn logs a traceback for invalid UTF-8.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State as _WSState

from . import frame_reader
from .engine import DIRECT_EXTENSION

__all__ = ["WebSocketProtocol", "EXTENSION"]

#: The scope extension naming the protocol object (ASGI "extensions" key).
EXTENSION = DIRECT_EXTENSION

logger = logging.getLogger("roomcast.server")

_OPEN = _WSState.OPEN
_TEXT_MSG, _BINARY_MSG = frame_reader.TEXT, frame_reader.BINARY
_CLOSE_MSG, _PING_MSG = frame_reader.CLOSE, frame_reader.PING
_feed = frame_reader.feed
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY

# The header of a final, unmasked frame without extensions depends on its opcode and payload length
# alone (RFC 6455, 5.2), so the header ``websockets`` writes for a payload of each length is kept
# and reused: building a ``Frame`` and serializing it costs about as much as the rest of an echo's
# reply. Kept for payloads up to this many bytes: at most 4,097 headers of 2 or 4 bytes per opcode.
_HEADER_CACHE_MAX = 4096
_TEXT_HEADERS: dict[int, bytes] = {}
_BINARY_HEADERS: dict[int, bytes] = {}


def _frame(opcode: Opcode, headers: dict[int, bytes], payload: bytes) -> bytes:
    """The final unmasked frame of ``payload``, exactly as ``websockets`` serializes it; ``headers``
    holds the headers of ``opcode`` built so far."""
    size = len(payload)
    if size > _HEADER_CACHE_MAX:
        return Frame(opcode, payload).serialize(mask=False)
    header = headers.get(size)
    if header is None:
        header = headers[size] = Frame(opcode, bytes(size)).serialize(mask=False)[: -size or None]
    return header + payload


# One-entry cache of the last text frame built: a broadcast writes the very same ``str`` object to
# every recipient, so it is encoded and framed once. Holding the reference keeps ``is`` exact.
_last_text: str | None = None
_last_frame = b""


def _text_frame(text: str) -> bytes:
    global _last_text, _last_frame
    if text is _last_text:
        return _last_frame
    frame = _frame(_TEXT, _TEXT_HEADERS, text.encode())
    _last_text, _last_frame = text, frame
    return frame


def _discard(message: str | bytes) -> None:
    pass


# Frames written during one pass of the event loop are held and written together at its end, for
# every connection at once. Written at once instead, each reply to a message wakes its client in the
# middle of the pass (a wake-up that costs the server more than the write itself when the client sits
# idle waiting for it), and several frames to one client cost a syscall each. Past this many bytes
# held for one connection, they are written at once, so that the transport's high-water mark (and
# with it uvicorn's ``writable`` flag) still bounds what a connection that does not read can cost.
_CORK_LIMIT = 64 * 1024

_local = threading.local()


class _Flusher:
    """One event loop's corked transports holding frames; written out when the loop gets to it."""

    __slots__ = ("loop", "dirty")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[_CorkedTransport] = []

    def add(self, transport: _CorkedTransport) -> None:
        if not self.dirty:
            self.loop.call_soon(self.flush)
        self.dirty.append(transport)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for transport in dirty:
            try:
                transport.flush()
            except Exception:  # a transport that broke is the connection's own business
                logger.debug("writing held frames failed", exc_info=True)


def _flusher(loop: asyncio.AbstractEventLoop) -> _Flusher:
    """This thread's flusher (one loop per thread), made anew when the thread runs another loop."""
    flusher: _Flusher | None = getattr(_local, "flusher", None)
    if flusher is None or flusher.loop is not loop:
        flusher = _local.flusher = _Flusher(loop)
    return flusher


class _CorkedTransport:
    """The connection's transport, with writes held until the end of the event loop's pass (see
    ``_CORK_LIMIT``). Every write goes through it, uvicorn's own included, so frames keep their
    order; ``close`` writes what is held first, ``abort`` drops it."""

    __slots__ = ("_transport", "_flusher", "_out", "_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._flusher = _flusher(loop)
        self._out: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        out = self._out
        if not out:
            self._flusher.add(self)
        out.append(data)
        self._size += len(data)
        if self._size > _CORK_LIMIT:
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write what is held now."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._out.clear()
        self._size = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Queue:
    """What uvicorn's protocol asks of its receive queue (``put_nowait``, ``get``, ``empty``) for its
    one consumer, the app's ``receive()``: a list and one waiter, where ``asyncio.Queue`` holds three
    deques (about 2 KiB per idle connection)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.pop(0)


class _Event:
    """``asyncio.Event`` for uvicorn's ``writable`` flag, without a deque of waiters per connection."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol plus Roomcast's direct lane (see the module doc)."""

    #: Read frames with aiohttp's compiled reader when it is usable (False: ``websockets`` reads them).
    fast_reader: bool = frame_reader.AVAILABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Queue()  # type: ignore[assignment]
        self.writable: _Event = _Event()  # type: ignore[assignment]
        self.writable.set()
        self._on_message: Callable[[str | bytes], None] | None = None
        self._reader: Any = None  # aiohttp's frame reader, once the handshake is done
        self._deliver: Callable[[Any, int], None] = self._frame_message  # (bound once: fed every read)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not isinstance(transport, _CorkedTransport):  # (Roomcast's HTTP protocol corks it already)
            self.transport = _CorkedTransport(cast(asyncio.Transport, transport), self.loop)  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # the handshake request was valid: the scope exists, the app not yet run
            extensions: dict[str, Any] = self.scope["extensions"]
            extensions[EXTENSION] = self
            # The reader takes over at a frame boundary: websockets' parser holds no bytes after the
            # request. With permessage-deflate, websockets inflates (each connection has its context).
            if self.fast_reader and not self.conn.extensions and not self.conn.reader.buffer:
                self._reader = frame_reader.make_reader(self.config.ws_max_size or 0)

    # -- messages in ------------------------------------------------------------------------------

    def take_messages(self, on_message: Callable[[str | bytes], None]) -> bool:
        """From now on, hand each message to ``on_message`` (synchronously, from the parser) instead of
        queueing it for ``receive()``; disconnects still come through ``receive()``.

        Only once the ASGI queue is empty (False otherwise: ``receive()`` what is queued first), so
        that messages keep their order. ``on_message`` must not raise.
        """
        if not self.queue.empty():
            return False
        self._on_message = on_message
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        return True

    def stop_messages(self) -> None:
        """Drop the messages that still arrive (the session is over; the close handshake follows)."""
        self._on_message = _discard

    def data_received(self, data: bytes) -> None:
        """uvicorn's ``data_received``; on the lane, with :meth:`handle_events` inline; with aiohttp's
        reader, each message goes to :meth:`_frame_message`."""
        reader = self._reader
        if reader is not None:
            error = _feed(reader, data, self._deliver)
            if error is not None:
                self._frame_error(error)
            return
        if self._on_message is None:
            super().data_received(data)
            return
        conn = self.conn
        conn.receive_data(data)
        if conn.parser_exc is not None:
            self.handle_parser_exception()
            return
        self.handle_events()

    def handle_events(self) -> None:
        """uvicorn's dispatch of the parser's events, except that on the lane a message in one frame
        (nearly all of them) goes straight to the lane's callback."""
        on_message = self._on_message
        if on_message is None:
            super().handle_events()
            return
        for event in self.conn.events_received():
            if type(event) is Frame and event.fin and (event.opcode is _TEXT or event.opcode is _BINARY):
                # (A new data frame is the start of a message: websockets rejects one in the middle of
                # a fragmented message before it gets here, so no fragments are pending.)
                if event.opcode is _TEXT and on_message is self._on_message and not self.close_sent:
                    # The common case, a text message on the lane: _message inline.
                    try:
                        text = event.data.decode()  # type: ignore[union-attr]
                    except UnicodeDecodeError:
                        self._invalid_utf8()
                        return
                    on_message(text)
                    continue
                self.curr_msg_data_type = "text" if event.opcode is _TEXT else "bytes"
                self._message(event.data)  # type: ignore[arg-type]
            else:  # control frames, fragments: uvicorn's own handling
                self.conn.events.append(event)
                super().handle_events()

    def send_receive_event_to_app(self) -> None:
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        self._message(data)

    def _message(self, data: bytes) -> None:
        """A whole message received: to the lane's callback, or queued for ``receive()``."""
        if self.close_sent:
            return
        message: str | bytes = data
        if self.curr_msg_data_type == "text":
            try:
                message = data.decode()
            except UnicodeDecodeError:
                self._invalid_utf8()
                return
        on_message = self._on_message
        if on_message is not None:
            on_message(message)
            return
        self._queue(message)

    def _frame_message(self, message: Any, size: int) -> None:
        """A message from aiohttp's reader: data to the lane's callback or ``receive()``, control
        frames to ``websockets`` and uvicorn (serialized again: its parser then reads just that
        frame), so that pings, pongs and the close handshake stay theirs."""
        kind = message[0]
        if kind is _TEXT_MSG or kind is _BINARY_MSG:
            if self.close_sent or self.conn.state is not _OPEN:
                return  # as websockets drops what follows a close frame
            on_message = self._on_message
            if on_message is not None:
                on_message(message[1])
            else:
                self._queue(message[1])
            return
        if kind is _CLOSE_MSG:
            code = message[1]
            frame = Frame(Opcode.CLOSE, code.to_bytes(2, "big") + message[2].encode() if code else b"")
        else:
            frame = Frame(Opcode.PING if kind is _PING_MSG else Opcode.PONG, bytes(message[1]))
        conn = self.conn
        conn.receive_data(frame.serialize(mask=True))
        if conn.parser_exc is not None:
            self.handle_parser_exception()
            return
        WebSocketsSansIOProtocol.handle_events(self)

    def _frame_error(self, exc: BaseException) -> None:
        """aiohttp's reader found a frame that breaks the protocol (or a callback raised): close the
        connection with the RFC's code, one log line; the reader ignores what follows."""
        if self.close_sent or self.transport.is_closing():
            return
        if isinstance(exc, frame_reader.FrameError):
            code = exc.code
            if code == 1007:
                self._invalid_utf8()  # (what websockets' path does for it)
                return
            reason = "message too big" if code == 1009 else ""
            logger.info("closing a WebSocket: %s", "a message over ws_max_size" if code == 1009 else exc)
        else:
            code, reason = 1011, ""
            logger.error("closing a WebSocket: error handling a message", exc_info=exc)
        self.conn.fail(code, reason)
        self.handle_parser_exception()

    def _queue(self, message: str | bytes) -> None:
        """Queue a message for ``receive()``; reading pauses until the app has taken it."""
        if type(message) is str:
            self.queue.put_nowait({"type": "websocket.receive", "text": message})  # type: ignore[arg-type]
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": message})  # type: ignore[arg-type]
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _invalid_utf8(self) -> None:
        logger.info("closing a WebSocket: a text frame is not valid UTF-8")
        self.conn.send_close(1007, "invalid UTF-8")
        self.handle_parser_exception()

    # -- frames out -------------------------------------------------------------------------------

    def writable_now(self) -> bool:
        """True when a frame written now goes out (or into the transport's buffer below its high-water
        mark) at once; False while the peer is not reading, or once the socket is closing."""
        return (
            self.writable.is_set() and not self.close_sent and not self.disconnected and self.conn.state is _OPEN
        )

    def write(self, packet: str | bytes) -> bool:
        """Write one message frame now; False (nothing written) when not :meth:`writable_now`."""
        # writable_now() and _write() inline for a text frame: the path of nearly every packet
        # (2% of an echo's instructions as calls, bench.hotpath --instructions).
        if not (
            self.writable._value and not self.close_sent and not self.disconnected and self.conn.state is _OPEN
        ):
            return False
        if type(packet) is str and not self.conn.extensions:
            self.transport.write(_text_frame(packet))
        else:
            self._write(packet)
        return True

    def write_many(self, packets: list[str | bytes]) -> bool:
        """Write several message frames now, all or none (see :meth:`write`)."""
        if not self.writable_now():
            return False
        for packet in packets:
            self._write(packet)
        return True

    def _write(self, packet: str | bytes) -> None:
        conn = self.conn
        if conn.extensions:  # permessage-deflate: each connection compresses with its own context
            if type(packet) is str:
                conn.send_text(packet.encode())
            else:
                conn.send_binary(cast(bytes, packet))
            self.transport.write(b"".join(conn.data_to_send()))
        elif type(packet) is str:
            self.transport.write(_text_frame(packet))
        else:
            self.transport.write(_frame(_BINARY, _BINARY_HEADERS, cast(bytes, packet)))

    def abort(self) -> None:
        """Drop the connection now, buffered frames included (a client that stopped reading)."""
        if not self.transport.is_closing():
            self.transport.abort()

    def close_now(self, code: int, reason: str = "") -> None:
        """Start the closing handshake from a message callback (what ``websocket.close`` does)."""
        if self.close_sent or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._on_message = None
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)
