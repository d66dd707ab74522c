"""Redis for a cluster of Roomcast servers: the I/O of :class:`~roomcast.adapters.base.PubSubManager`
over redis-py's asyncio client, and a blocking emitter for code that runs no server.

::

    mgr = roomcast.AsyncRedisManager("redis://localhost:6379/0")
    sio = roomcast.AsyncServer(client_manager=mgr)

    # in a Celery task, a script, any process that serves no clients:
    roomcast.RedisManager("redis://localhost:6379/0").emit("news", {"n": 1}, to="room")

The channels and messages are those of Node's ``@socket.io/redis-adapter`` and
``@socket.io/redis-emitter`` (key ``"socket.io"``), so Node servers and emitters can share the Redis.
Two connections per server: one publishes (commands pipelined, in order), one subscribes.
"""

from __future__ import annotations

import logging
from typing import Any

from .._arguments import data_args
from .base import PubSubManager, as_rooms
from .messages import (
    DEFAULT_KEY,
    EMITTER_UID,
    Broadcast,
    Channels,
    Request,
    RequestType,
    encode_broadcast,
    encode_request,
)

__all__ = ["AsyncRedisManager", "RedisManager"]

_IDLE_PING = 30.0  # seconds of silence on the subscriber connection before it is checked with a PING


def _redis_asyncio() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the Redis manager needs redis-py: pip install 'roomcast[redis]'") from exc
    return aioredis


class AsyncRedisManager(PubSubManager):
    """Many Roomcast servers, one set of clients: emits, rooms and disconnects reach every server
    through Redis (python-socketio's ``AsyncRedisManager``; pass it as ``client_manager``).

    ``url`` is a ``redis://`` (or ``rediss://``, ``unix://``) URL; ``channel`` the key channel names
    start with (``"socket.io"``, Node's default: python-socketio's is ``"socketio"``);
    ``write_only=True`` makes an emitter (``await mgr.emit(...)``) that subscribes to nothing;
    ``redis_options`` go to ``redis.asyncio.Redis.from_url``.
    """

    name = "aioredis"

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        channel: str = DEFAULT_KEY,
        write_only: bool = False,
        logger: logging.Logger | None = None,
        redis_options: dict[str, Any] | None = None,
        requests_timeout: float = 5.0,
        max_queue: int = 10_000,
    ) -> None:
        super().__init__(channel, write_only, logger, requests_timeout, max_queue)
        self.url = url
        self.redis_options = dict(redis_options or {})
        self._pub: Any = None
        self._sub: Any = None
        self._sub_client: Any = None
        self._early: list[tuple[str, bytes]] = []

    def _client(self) -> Any:
        return _redis_asyncio().Redis.from_url(self.url, **self.redis_options)

    def _publisher_client(self) -> Any:
        if self._pub is None:
            self._pub = self._client()
        return self._pub

    async def _publish(self, items: list[tuple[str, bytes]]) -> None:
        client = self._publisher_client()
        if len(items) == 1:
            await client.publish(*items[0])
            return
        async with client.pipeline(transaction=False) as pipe:
            for channel, message in items:
                pipe.publish(channel, message)
            await pipe.execute()

    async def _subscribe(self, patterns: list[str], channels: list[str]) -> None:
        await self._close_subscriber()
        self._sub_client = self._client()
        pubsub = self._sub = self._sub_client.pubsub()
        await pubsub.psubscribe(*patterns)
        if channels:
            await pubsub.subscribe(*channels)
        # Subscribed once Redis has confirmed each subscription; messages that arrive in between are
        # kept for _next_message.
        waiting = len(patterns) + len(channels)
        self._early = []
        while waiting:
            message = await pubsub.get_message(timeout=10.0)
            if message is None:
                raise ConnectionError("Redis did not confirm the subscriptions within 10 s")
            kind = message["type"]
            if kind in ("subscribe", "psubscribe"):
                waiting -= 1
            elif kind in ("message", "pmessage"):
                self._early.append((message["channel"].decode("utf-8", "replace"), message["data"]))

    async def _subscribe_more(self, channels: list[str]) -> None:
        if self._sub is not None:
            await self._sub.subscribe(*channels)

    async def _next_message(self) -> tuple[str, bytes]:
        if self._early:
            return self._early.pop(0)
        pubsub = self._sub
        idle = 0.0
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None:
                idle += 5.0
                if idle >= _IDLE_PING:
                    await pubsub.ping()  # a dead connection raises here instead of waiting forever
                    idle = 0.0
                continue
            if message["type"] in ("message", "pmessage"):
                return message["channel"].decode("utf-8", "replace"), message["data"]

    async def _count_subscribers(self, channel: str) -> int:
        result = await self._publisher_client().pubsub_numsub(channel)
        return int(result[0][1]) if result else 0

    async def _close_subscriber(self) -> None:
        pubsub, client = self._sub, self._sub_client
        self._sub = self._sub_client = None
        for closable in (pubsub, client):
            if closable is not None:
                try:
                    await closable.aclose()
                except Exception:  # (already broken)
                    pass

    async def _close(self) -> None:
        await self._close_subscriber()
        pub, self._pub = self._pub, None
        if pub is not None:
            try:
                await pub.aclose()
            except Exception:
                pass

    # -- the emitter API (python-socketio's manager methods) -------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Emit to the cluster's clients: everyone in ``namespace``, or ``to`` (``room``) a room or sid.

        Published at once. ``callback`` needs a server: emit from it (``sio.emit``) instead.
        """
        uid = EMITTER_UID if self.server is None else self.uid
        await self._publish([_emit_message(self.channels, uid, event, data, namespace, to, room, skip_sid, callback)])

    async def enter_room(self, sid: str, namespace: str | None, room: str) -> None:
        """Make ``sid`` (on any server) join ``room``."""
        await self._publish([_rooms_request(self.channels, namespace, sid, room, RequestType.REMOTE_JOIN)])

    async def leave_room(self, sid: str, namespace: str | None, room: str) -> None:
        await self._publish([_rooms_request(self.channels, namespace, sid, room, RequestType.REMOTE_LEAVE)])

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        await self._publish([_rooms_request(self.channels, namespace, room, room, RequestType.REMOTE_LEAVE)])

    async def disconnect(self, sid: str, namespace: str | None = None, **kwargs: Any) -> None:
        await self._publish([_disconnect_request(self.channels, namespace, sid)])


def _emit_message(
    channels: Channels, uid: str, event: str, data: Any, namespace: str | None, to: Any, room: Any, skip_sid: Any,
    callback: Any,
) -> tuple[str, bytes]:
    """The channel and message of an emitter's emit (python-socketio's arguments)."""
    if callback is not None:
        raise ValueError("an emitter cannot receive acknowledgements; emit with callback from a server")
    namespace = namespace or "/"
    message = Broadcast(
        uid=uid,
        namespace=namespace,
        data=[event, *data_args(data)],
        rooms=as_rooms(to if to is not None else room),
        except_rooms=as_rooms(skip_sid),
    )
    return channels.broadcast(namespace, message.rooms), encode_broadcast(message)


def _rooms_request(
    channels: Channels, namespace: str | None, selected: str, room: str, kind: RequestType
) -> tuple[str, bytes]:
    request = Request(type=kind, uid=EMITTER_UID, rooms=(selected,), targets=(room,))
    return channels.request(namespace or "/"), encode_request(request)


def _disconnect_request(channels: Channels, namespace: str | None, sid: str) -> tuple[str, bytes]:
    request = Request(type=RequestType.REMOTE_DISCONNECT, uid=EMITTER_UID, rooms=(sid,))
    return channels.request(namespace or "/"), encode_request(request)


class RedisManager:
    """A blocking emitter: publishes emits, room changes and disconnects for the servers of a cluster
    from code that serves no clients (a Celery task, a script, a WSGI view). python-socketio's
    ``RedisManager(url, write_only=True)``; Roomcast has no blocking server, so it is always an
    emitter. Safe to share between threads.
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        channel: str = DEFAULT_KEY,
        write_only: bool = True,
        logger: logging.Logger | None = None,
        redis_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("the Redis manager needs redis-py: pip install 'roomcast[redis]'") from exc
        self.url = url
        self.channel = channel
        self.channels = Channels(channel)
        self.logger = logger or logging.getLogger("roomcast.cluster")
        self.uid = EMITTER_UID
        self.client = redis.Redis.from_url(url, **(redis_options or {}))

    def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Emit to everyone in ``namespace`` (default ``'/'``), or ``to`` (``room``) rooms or sids."""
        self.client.publish(*_emit_message(self.channels, self.uid, event, data, namespace, to, room, skip_sid, callback))

    def send(self, data: Any, namespace: str | None = None, room: Any = None, to: Any = None, **kwargs: Any) -> None:
        """Emit a ``message`` event."""
        self.emit("message", data, namespace=namespace, room=room, to=to, **kwargs)

    def enter_room(self, sid: str, namespace: str | None, room: str) -> None:
        """Make ``sid`` (on any server) join ``room``."""
        self.client.publish(*_rooms_request(self.channels, namespace, sid, room, RequestType.REMOTE_JOIN))

    def leave_room(self, sid: str, namespace: str | None, room: str) -> None:
        self.client.publish(*_rooms_request(self.channels, namespace, sid, room, RequestType.REMOTE_LEAVE))

    def close_room(self, room: str, namespace: str | None = None) -> None:
        self.client.publish(*_rooms_request(self.channels, namespace, room, room, RequestType.REMOTE_LEAVE))

    def disconnect(self, sid: str, namespace: str | None = None, **kwargs: Any) -> None:
        self.client.publish(*_disconnect_request(self.channels, namespace, sid))

    def close(self) -> None:
        self.client.close()
