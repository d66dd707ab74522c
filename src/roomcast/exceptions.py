"""Roomcast's exceptions, in one hierarchy.

::

    RoomcastError
     ├── ProtocolError            the peer sent something the protocol does not allow
     │    └── PayloadTooLarge     ... or more than the configured limit
     ├── ConnectionRefusedError   a connect handler refuses a client (message and data go to it)
     ├── ConnectionError          a client could not connect, or lost its connection
     ├── TimeoutError             a ``call()`` (``emit_with_ack()``) got no (not every) ack in time
     ├── DisconnectedError        an operation needs a connected socket and it is gone
     └── BadNamespaceError        a namespace is not connected (client side)

``ProtocolError`` is the single type that decoding raises on malformed input: its message says what was
wrong, and ``close_reason`` says which disconnect reason the offender's session ends with.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "RoomcastError",
    "ProtocolError",
    "PayloadTooLarge",
    "ConnectionRefusedError",
    "ConnectionError",
    "TimeoutError",
    "DisconnectedError",
    "BadNamespaceError",
]


class RoomcastError(Exception):
    """Base class of every exception Roomcast raises on purpose."""


class ProtocolError(RoomcastError):
    """The remote peer broke the Engine.IO or Socket.IO protocol.

    The message says what was wrong, in words fit for a log line. It is a remote error: the local side is
    fine, and the usual answer is to close the offender's session (or to answer its HTTP request with 400).
    """

    close_reason = "parse error"


class PayloadTooLarge(ProtocolError):
    """The peer sent more than the configured limit (payload size, attachment count, ...)."""

    close_reason = "payload too large"


class ConnectionRefusedError(RoomcastError, builtins.ConnectionRefusedError):
    """Raised by a ``connect`` handler to refuse a client.

    The first argument is the message the client receives in its ``connect_error``; further arguments
    become its ``data`` (one argument as is, several as a list). It also subclasses the builtin of the
    same name, so ``raise ConnectionRefusedError(...)`` with the builtin works too in handlers.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if not args:
            self.error_args: dict[str, Any] = {"message": "Connection rejected by server"}
        else:
            self.error_args = {"message": str(args[0])}
            if len(args) == 2:
                self.error_args["data"] = args[1]
            elif len(args) > 2:
                self.error_args["data"] = list(args[1:])


class ConnectionError(RoomcastError, builtins.ConnectionError):
    """A client could not connect, or its connection was lost."""


class TimeoutError(RoomcastError, builtins.TimeoutError):
    """A ``call()`` received no acknowledgement within its timeout, or an ``emit_with_ack()`` not
    every one: ``responses`` holds those that came."""

    def __init__(self, *args: Any, responses: list[Any] | None = None) -> None:
        super().__init__(*args)
        self.responses: list[Any] = list(responses or ())


class DisconnectedError(RoomcastError):
    """The socket an operation needs has disconnected."""


class BadNamespaceError(RoomcastError):
    """The namespace is not connected."""
