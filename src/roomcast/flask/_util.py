"""Small helpers shared by the Flask facade's modules."""

from __future__ import annotations

from typing import Any

from .._arguments import positional_arity, trim_args

__all__ = ["positional_arity", "trim_args", "emit_args", "as_data"]


def emit_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Flask-SocketIO's convention for ``emit(event, *args)``: one tuple is several arguments."""
    if len(args) == 1 and isinstance(args[0], tuple):
        return args[0]
    return args


def as_data(args: tuple[Any, ...]) -> Any:
    """``emit(event, *args)``'s arguments as the server's ``data``: one value, a tuple of several, or
    None for none."""
    values = emit_args(args)
    return values[0] if len(values) == 1 else (tuple(values) if values else None)
