"""Class-based namespaces for the Flask facade (Flask-SocketIO's ``Namespace``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._util import trim_args

if TYPE_CHECKING:
    from .extension import SocketIO

__all__ = ["Namespace"]


class Namespace:
    """Handlers of one namespace as methods: ``on_<event>`` handles ``<event>``.

    Methods take the event's arguments (no sid: it is ``request.sid``) and run in the same Flask
    contexts as decorated handlers. ``on_connect`` may take ``auth`` and ``on_disconnect`` may take
    ``reason``. Register with ``socketio.on_namespace(MyNamespace('/chat'))``.

    An event without a method is ignored. A decorated handler for the same event and namespace wins
    over the method.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.socketio: SocketIO | None = None

    def _set_socketio(self, socketio: SocketIO) -> None:
        self.socketio = socketio

    def _sio(self) -> SocketIO:
        if self.socketio is None:
            raise RuntimeError("register the namespace first: socketio.on_namespace(namespace)")
        return self.socketio

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call the ``on_<event>`` method with ``args`` (override to dispatch differently).

        ``connect`` and ``disconnect`` give their argument (auth, reason) only to methods that take it.
        """
        handler = getattr(self, "on_" + event, None)
        if handler is None:
            return None
        if event in ("connect", "disconnect"):
            args = trim_args(handler, args)
        return handler(*args)

    # -- helpers that default to this namespace ----------------------------------------------------

    def emit(
        self,
        event: str,
        data: Any = None,
        room: Any = None,
        include_self: bool = True,
        namespace: str | None = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """``socketio.emit`` in this namespace (to everyone unless ``to``/``room`` is given)."""
        args = () if data is None else (data,)
        self._sio().emit(
            event,
            *args,
            to=to if to is not None else room,
            include_self=include_self,
            namespace=namespace or self.namespace,
            callback=callback,
            **kwargs,
        )

    def send(
        self,
        data: Any,
        room: Any = None,
        include_self: bool = True,
        namespace: str | None = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """``socketio.send`` in this namespace."""
        self._sio().send(
            data,
            to=to if to is not None else room,
            include_self=include_self,
            namespace=namespace or self.namespace,
            callback=callback,
            **kwargs,
        )

    def call(
        self,
        event: str,
        data: Any = None,
        to: Any = None,
        sid: Any = None,
        namespace: str | None = None,
        timeout: float = 60,
        **kwargs: Any,
    ) -> Any:
        """``socketio.call`` in this namespace: emit to one client and return its acknowledgement."""
        args = () if data is None else (data,)
        return self._sio().call(event, *args, to=to or sid, namespace=namespace or self.namespace, timeout=timeout)

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self._sio().enter_room(sid, room, namespace=namespace or self.namespace)

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self._sio().leave_room(sid, room, namespace=namespace or self.namespace)

    def close_room(self, room: str, namespace: str | None = None) -> None:
        self._sio().close_room(room, namespace=namespace or self.namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        return self._sio().rooms(sid, namespace=namespace or self.namespace)

    def disconnect(self, sid: str, namespace: str | None = None) -> None:
        self._sio().disconnect(sid, namespace=namespace or self.namespace)
