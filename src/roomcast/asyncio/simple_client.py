"""The simple asyncio client, for scripts and tests: connect, emit, call, receive events one by one."""

from __future__ import annotations

import asyncio
from typing import Any

from ..exceptions import BadNamespaceError, DisconnectedError, TimeoutError
from .client import AsyncClient, Reason

__all__ = ["AsyncSimpleClient"]


class AsyncSimpleClient:
    """A client for scripts and tests: connect, emit, call, ``receive()`` events one by one, disconnect.

    ``receive`` returns ``[event, *args]`` for every event of the namespace, in order. Usable as
    ``async with AsyncSimpleClient() as client:``. Options are passed to :class:`AsyncClient`.
    """

    def __init__(self, **client_options: Any) -> None:
        self.client_options = client_options
        self.client: AsyncClient | None = None
        self.namespace = "/"
        self._events: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._gone = asyncio.Event()

    async def connect(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        transports: str | list[str] | None = None,
        namespace: str = "/",
        socketio_path: str = "socket.io",
        wait_timeout: float = 5,
    ) -> None:
        """Connect to ``url`` and join ``namespace``; raises :class:`ConnectionError` on failure."""
        if self.client is not None and self.client.connected:
            raise RuntimeError("Already connected")
        self.namespace = namespace
        self._events = asyncio.Queue()
        self._connected = asyncio.Event()
        self._gone = asyncio.Event()
        client = self.client = AsyncClient(**self.client_options)

        def connect() -> None:
            self._gone.clear()
            self._connected.set()

        def disconnect(reason: str) -> None:
            self._connected.clear()
            if reason in (Reason.SERVER_DISCONNECT, Reason.CLIENT_DISCONNECT) or not client.reconnection:
                self._gone.set()

        def any_event(event: str, *args: Any) -> None:
            self._events.put_nowait([event, *args])

        client.on("connect", connect, namespace)
        client.on("disconnect", disconnect, namespace)
        client.on("*", any_event, namespace)

        await client.connect(
            url, headers=headers, auth=auth, transports=transports, namespaces=[namespace],
            socketio_path=socketio_path, wait_timeout=wait_timeout,
        )
        self._connected.set()
        self._keep_gone(client)

    def _keep_gone(self, client: AsyncClient) -> None:
        async def watch() -> None:
            await client.wait()
            self._gone.set()
            self._connected.clear()

        client.start_background_task(watch)

    @property
    def sid(self) -> str | None:
        """The session id in the namespace."""
        return self.client.get_sid(self.namespace) if self.client else None

    @property
    def transport(self) -> str | None:
        """``'websocket'`` or ``'polling'``."""
        return self.client.transport() if self.client else None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    async def _ready(self) -> AsyncClient:
        """The client, once connected (waiting out a reconnection); DisconnectedError if it is gone."""
        client = self.client
        if client is None or self._gone.is_set():
            raise DisconnectedError("not connected")
        waiter = asyncio.ensure_future(self._connected.wait())
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            gone.cancel()
        if not self._connected.is_set():
            raise DisconnectedError("disconnected")
        return client

    async def emit(self, event: str, data: Any = None) -> None:
        """Emit ``event`` (a tuple ``data`` is several arguments)."""
        client = await self._ready()
        try:
            await client.emit(event, data, namespace=self.namespace)
        except BadNamespaceError:
            raise DisconnectedError("disconnected") from None

    async def call(self, event: str, data: Any = None, timeout: float = 60) -> Any:
        """Emit ``event`` and return the server's ack (see :meth:`AsyncClient.call`)."""
        client = await self._ready()
        try:
            return await client.call(event, data, namespace=self.namespace, timeout=timeout)
        except BadNamespaceError:
            raise DisconnectedError("disconnected") from None

    async def receive(self, timeout: float | None = None) -> list[Any]:
        """The next event as ``[event, *args]``; :class:`TimeoutError` after ``timeout`` seconds,
        :class:`DisconnectedError` once disconnected with nothing left to read.
        """
        if self.client is None:
            raise DisconnectedError("not connected")
        if not self._events.empty():
            return self._events.get_nowait()
        getter = asyncio.ensure_future(self._events.get())
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            done, _ = await asyncio.wait({getter, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done or (getter.done() and not getter.cancelled()):
            return getter.result()
        if gone in done:
            raise DisconnectedError("disconnected")
        raise TimeoutError(f"no event within {timeout}s")

    async def disconnect(self) -> None:
        """Disconnect (no-op when not connected)."""
        if self.client is not None:
            await self.client.disconnect()
            self._gone.set()
            self._connected.clear()

    async def __aenter__(self) -> AsyncSimpleClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
