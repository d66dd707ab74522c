"""Client frames read by aiohttp's compiled WebSocket reader, where it is installed.

``websockets`` parses frames with generator-based coroutines: about 3.2 µs of Python per small frame
here, a third of everything Roomcast does for an echo. aiohttp ships a reader compiled with Cython
that does the same work (unmasking, fragments, control frames, UTF-8, size limits, close codes) in
about 0.7 µs. Roomcast's uvicorn protocol (:mod:`roomcast.asyncio.uvicorn_ws`) reads a connection's
frames with it once the handshake is done; the handshake, the close handshake, pings and pongs
stay ``websockets``' and uvicorn's (the protocol hands them each control frame).

The reader is aiohttp's internal API (``aiohttp._websocket.reader``), so it is used only after
:func:`_probe` has checked, at import, that the installed aiohttp reads a set of frames exactly as
needed here; otherwise (no aiohttp, the pure-Python reader, another API) :data:`AVAILABLE` is False
and ``websockets`` reads every frame, as before.

One rule aiohttp does not keep, since it reads both sides' frames: a server must close a
connection whose client sends an unmasked frame (RFC 6455, 5.1). Its reader unmasks a masked
payload in place into a ``bytearray`` and passes an unmasked one on as the ``bytes`` it sliced, so
:class:`_Reader` refuses a frame whose payload arrives as ``bytes`` (the probe checks that too). One
case escapes: a frame that arrives in more than max(1024, max_size / 256) reads (65,536 at uvicorn's
default 16 MiB) is gathered into a ``bytearray`` masked or not, so it is not checked.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

__all__ = ["AVAILABLE", "FrameError", "make_reader", "feed", "TEXT", "BINARY", "CLOSE", "PING", "PONG"]

logger = logging.getLogger("roomcast.server")

#: Called with each message the reader completes and its size: aiohttp's ``WSMessage`` tuple
#: ``(type, data, extra)``: text as ``str``, binary as ``bytes``, a close as ``(CLOSE, code,
#: reason)`` with code 0 for none, a ping or pong with its payload.
Deliver = Callable[[Any, int], None]

AVAILABLE = False
TEXT: Any = None
BINARY: Any = None
CLOSE: Any = None
PING: Any = None
PONG: Any = None


class FrameError(Exception):
    """The client broke the framing rules: close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_AioReader: Any = None
_SINK: Any = None
try:  # (typed as Any: an internal API, checked by _probe below rather than by its annotations)
    _models: Any = importlib.import_module("aiohttp._websocket.models")
    _reader: Any = importlib.import_module("aiohttp._websocket.reader")
except ImportError:  # pragma: no cover - aiohttp is not installed
    pass
else:
    _WebSocketError, _WSMsgType = _models.WebSocketError, _models.WSMsgType
    _Queue, _AioReader = _reader.WebSocketDataQueue, _reader.WebSocketReader


def make_reader(max_size: int) -> Any:
    """A reader for one connection, fed with :func:`feed`; ``max_size`` bounds a message (0: no
    bound). Only when :data:`AVAILABLE`."""
    # aiohttp refuses a message of exactly its limit; websockets (and so uvicorn's ws_max_size) allows it.
    return _Reader(_SINK, max_size + 1 if max_size else 0, False, True)


def feed(reader: Any, data: bytes, deliver: Deliver) -> BaseException | None:
    """Read ``data`` with ``reader``, calling ``deliver`` with each message it completes. Returns
    what broke the protocol (a :class:`FrameError`, or what ``deliver`` raised) the first time; the
    reader then ignores what follows (None is returned for it)."""
    sink = _SINK
    outer = sink.feed_data  # (a feed from inside a deliver, if one ever happens, gets its own back)
    sink.feed_data = deliver
    failed = reader.feed_data(data)[0]  # (it catches what deliver raises: see set_exception)
    sink.feed_data = outer
    if failed:
        error: BaseException | None = sink.error
        sink.error = None
        return error
    return None


if _AioReader is not None and _AioReader.__module__.endswith("_c"):

    class _Sink(_Queue):  # type: ignore[misc,valid-type]
        """Where the compiled reader (which insists on its queue class) puts each message: handed to
        the ``feed_data`` slot, which :func:`feed` points at the connection's callback, nothing kept.
        One for every reader, where a queue each would cost every connection 1.2 KB."""

        __slots__ = ("feed_data", "error")

        def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
            if isinstance(exc, _WebSocketError):
                exc = FrameError(int(exc.code), str(exc))
            self.error = exc

    def _ignore(message: Any, size: int) -> None:
        pass

    _SINK = _Sink(None, 1 << 30, loop=None)
    _SINK.feed_data = _ignore
    _SINK.error = None

    class _Reader(_AioReader):  # type: ignore[misc]
        """aiohttp's reader, refusing unmasked frames (see the module doc)."""

        _handle = _AioReader._handle_frame

        def _handle_frame(self, fin: bool, opcode: int, payload: Any, compressed: int) -> None:
            if type(payload) is bytes:
                raise FrameError(1002, "incorrect masking")
            self._handle(fin, opcode, payload, compressed)

    def _probe() -> bool:
        """True when the installed reader reads these frames as Roomcast needs."""
        got: list[Any] = []

        def keep(message: Any, size: int) -> None:
            got.append(message)

        def frame(opcode: int, payload: bytes, masked: bool = True, fin: bool = True) -> bytes:
            # RFC 6455 5.2, short payloads only; the mask key 1, 2, 3, 4.
            head = bytes([(0x80 if fin else 0) | opcode, (0x80 if masked else 0) | len(payload)])
            if not masked:
                return head + payload
            key = b"\x01\x02\x03\x04"
            return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

        reader = make_reader(1024)
        for data in (frame(0x1, b"h\xc3\xa9") + frame(0x2, b"\x00\xff"),
                     frame(0x1, b"ab", fin=False) + frame(0x9, b"p") + frame(0x0, b"c"),
                     frame(0x8, b"\x03\xe8bye")):
            if feed(reader, data, keep) is not None:
                return False
        if [(m[0], m[1]) for m in got] != [
            (_WSMsgType.TEXT, "hé"), (_WSMsgType.BINARY, b"\x00\xff"), (_WSMsgType.PING, b"p"),
            (_WSMsgType.TEXT, "abc"), (_WSMsgType.CLOSE, 1000),
        ] or got[-1][2] != "bye" or type(got[1][1]) is not bytes:
            return False
        for bad, code in ((frame(0x1, b"x", masked=False), 1002), (frame(0x1, b"\xff"), 1007),
                          (frame(0x2, bytes(100)), 1009)):
            error = feed(make_reader(64), bad, keep)
            if getattr(error, "code", None) != code:
                return False
        return True

    try:
        AVAILABLE = _probe()
    except Exception:  # another aiohttp than the one this was written for
        logger.debug("aiohttp's frame reader is not usable here", exc_info=True)
        AVAILABLE = False
    if AVAILABLE:
        TEXT, BINARY, CLOSE, PING, PONG = (
            _WSMsgType.TEXT, _WSMsgType.BINARY, _WSMsgType.CLOSE, _WSMsgType.PING, _WSMsgType.PONG,
        )
