"""Small helpers shared by the Flask facade's modules."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["positional_arity", "trim_args", "emit_args"]


def positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` accepts (a large number with ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1 << 16
    count = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return 1 << 16
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def trim_args(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` cut to what ``fn`` takes: how ``connect(auth)`` and ``disconnect(reason)`` stay optional.

    Deciding from the signature (not by calling and catching ``TypeError``) never runs a handler twice.
    """
    arity = positional_arity(fn)
    return args if len(args) <= arity else args[:arity]


def emit_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Flask-SocketIO's convention for ``emit(event, *args)``: one tuple is several arguments."""
    if len(args) == 1 and isinstance(args[0], tuple):
        return args[0]
    return args
