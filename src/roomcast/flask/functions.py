"""The context-aware functions of Flask-SocketIO: ``emit``, ``send``, ``join_room``, ...

They work inside a Socket.IO handler, where they default to the client being handled
(``request.sid``) and its namespace (``request.namespace``). Elsewhere, use the methods of the
``SocketIO`` object.
"""

from __future__ import annotations

from typing import Any

from . import context
from ._util import emit_args

__all__ = ["emit", "send", "call", "join_room", "leave_room", "close_room", "rooms", "disconnect"]


def emit(event: str, *args: Any, **kwargs: Any) -> None:
    """Emit ``event`` to the client being handled, or with ``broadcast=True`` to everyone in the
    namespace, or ``to`` a room or sid (``room`` is an alias).

    ``namespace`` defaults to the handler's; ``include_self=False`` skips the client being handled;
    ``skip_sid`` skips sids; ``callback`` gets the client's acknowledgement. Several arguments go as a
    tuple.
    """
    if not kwargs:  # the commonest call: a reply to the client being handled
        sid, namespace, extension = context.handled_socket("emit")
        extension._emit_to(event, emit_args(args), sid, namespace, None)
        return
    sid, namespace = context.in_socket_context("emit")
    if "namespace" in kwargs:
        namespace = kwargs.pop("namespace")
    broadcast = kwargs.pop("broadcast", False)
    to = kwargs.pop("to", None)
    room = kwargs.pop("room", None)
    if to is None:
        to = room
    if to is None and not broadcast:
        to = sid
    context.current_extension().emit(
        event,
        *args,
        namespace=namespace,
        to=to,
        include_self=kwargs.pop("include_self", True),
        skip_sid=kwargs.pop("skip_sid", None),
        callback=kwargs.pop("callback", None),
        **kwargs,
    )


def send(message: Any, **kwargs: Any) -> None:
    """Send a ``message`` event (``json`` with ``json=True``); same targets as :func:`emit`."""
    json = kwargs.pop("json", False)
    emit("json" if json else "message", message, **kwargs)


def call(event: str, *args: Any, **kwargs: Any) -> Any:
    """Emit to the client being handled (or ``to`` a sid) and return its acknowledgement; blocks.

    Raises :class:`roomcast.TimeoutError` after ``timeout`` seconds (60), and
    :class:`roomcast.DisconnectedError` as soon as the client disconnects without acknowledging.
    """
    sid, namespace = context.in_socket_context("call")
    if "namespace" in kwargs:
        namespace = kwargs.pop("namespace")
    to = kwargs.pop("to", None) or kwargs.pop("room", None) or sid
    return context.current_extension().call(event, *args, namespace=namespace, to=to, **kwargs)


def _target(what: str, sid: str | None, namespace: str | None) -> tuple[str, str]:
    """The sid and namespace to act on: the ones given, else the handled client's.

    With an explicit ``sid`` these functions also work outside handlers (in a Flask view, say).
    """
    current = context.current_socket()
    if sid is None:
        if current is None:
            context.in_socket_context(what)  # raises the explanation
        assert current is not None
        sid = current[0]
    if namespace is None:
        namespace = current[1] if current is not None else "/"
    return sid, namespace


def join_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    """Put the client being handled (or ``sid``) in ``room``."""
    sid, namespace = _target("join_room", sid, namespace)
    context.current_extension().enter_room(sid, room, namespace)


def leave_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    """Take the client being handled (or ``sid``) out of ``room``."""
    sid, namespace = _target("leave_room", sid, namespace)
    context.current_extension().leave_room(sid, room, namespace)


def close_room(room: str, namespace: str | None = None) -> None:
    """Take everyone out of ``room`` (in the handler's namespace unless ``namespace`` is given)."""
    if namespace is None:
        namespace = context.in_socket_context("close_room")[1]
    context.current_extension().close_room(room, namespace)


def rooms(sid: str | None = None, namespace: str | None = None) -> list[str]:
    """The rooms of the client being handled (or ``sid``), its own room included."""
    sid, namespace = _target("rooms", sid, namespace)
    return context.current_extension().rooms(sid, namespace)  # type: ignore[no-any-return]


def disconnect(sid: str | None = None, namespace: str | None = None, silent: bool = False) -> None:
    """Disconnect the client being handled (or ``sid``) from its namespace.

    Its ``disconnect`` handler runs after the current handler returns. ``silent`` is accepted for
    compatibility and has no effect.
    """
    sid, namespace = _target("disconnect", sid, namespace)
    context.current_extension().disconnect(sid, namespace)
