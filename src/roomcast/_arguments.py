"""The argument conventions of Roomcast's Python API, shared by the server, the client and the Flask
facade (python-socketio's and Flask-SocketIO's conventions, which their users rely on)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["positional_arity", "trim_args", "data_args", "ack_args", "call_result"]

_MANY = 1 << 16


def positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` accepts (a large number with ``*args`` or no signature)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return _MANY
    count = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return _MANY
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def trim_args(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` cut to what ``fn`` takes: how ``connect(auth)`` and ``disconnect(reason)`` stay optional.

    Deciding from the signature (not by calling and catching ``TypeError``) never runs a handler twice.
    """
    arity = positional_arity(fn)
    return args if len(args) <= arity else args[:arity]


def data_args(data: Any) -> tuple[Any, ...]:
    """``emit(event, data)``: a tuple is several arguments, None is none, anything else is one."""
    if data is None:
        return ()
    if isinstance(data, tuple):
        return data
    return (data,)


def ack_args(result: Any) -> list[Any]:
    """A handler's return value as the arguments of its ack (the same convention as :func:`data_args`)."""
    return list(data_args(result))


def call_result(args: list[Any] | tuple[Any, ...]) -> Any:
    """What ``call()`` returns for an ack's arguments: None, the single value, or a tuple of several."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)
