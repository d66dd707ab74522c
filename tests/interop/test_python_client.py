"""python-socketio's AsyncClient as a second, independent client implementation.

Runs against Roomcast's server (and Node's, which checks the test itself), over
each transport path. No pytest-asyncio: each test runs its coroutine with
``asyncio.run`` under an overall deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from tests.helpers.interop import expected, known_issue
from tests.helpers.require import require_module
from tests.helpers.servers import ServerProcess

pytestmark = pytest.mark.interop

TIMEOUT = 5.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def transports_for(transport: str) -> list[str] | None:
    return None if transport == "upgrade" else [transport]


class Inbox:
    """Collects events a client receives, for waiting on them with a deadline."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}

    def handler(self, event: str) -> Callable[..., Awaitable[None]]:
        queue = self.queues.setdefault(event, asyncio.Queue())

        async def on_event(*args: Any) -> None:
            await queue.put(args)

        return on_event

    async def next(self, event: str) -> tuple[Any, ...]:
        return await asyncio.wait_for(self.queues[event].get(), TIMEOUT)


async def new_client(
    server: ServerProcess,
    transport: str,
    *,
    namespaces: list[str] | None = None,
    auth: Any = None,
    query: str = "",
) -> Any:
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        server.url + query,
        auth=auth,
        transports=transports_for(transport),
        namespaces=namespaces or ["/"],
        wait_timeout=TIMEOUT,
    )
    return client


async def close(client: Any, server: ServerProcess, transport: str) -> None:
    """Disconnect ``client``, within the deadline."""
    if transport == "polling" and known_issue(server, "polling close holds the pending poll"):
        # Do not wait ~30 s for python-socketio: asyncio.run() cancels the
        # rest when the test's coroutine ends.
        asyncio.ensure_future(client.disconnect())
        return
    await asyncio.wait_for(client.disconnect(), TIMEOUT)


@pytest.fixture(autouse=True)
def _python_socketio_client() -> None:
    require_module("socketio", "install the test extras (python-socketio)")
    # python-engineio's asyncio client does its HTTP and WebSocket with aiohttp.
    require_module("aiohttp", "install the test extras (python-socketio[asyncio_client])")


def test_connect_auth_query_and_transport(server: ServerProcess, transport: str) -> None:
    async def scenario() -> None:
        client = await new_client(server, transport, auth={"user": "py"}, query="?x=abc")
        try:
            me = await client.call("whoami", timeout=TIMEOUT)
            assert me == {"sid": client.get_sid("/"), "auth": {"user": "py"}, "query": "abc"}
            assert client.transport() == ("websocket" if transport != "polling" else "polling")
        finally:
            await close(client, server, transport)

    run(scenario())


def test_events_and_acks(server: ServerProcess, transport: str) -> None:
    async def scenario() -> None:
        client = await new_client(server, transport)
        inbox = Inbox()
        client.on("echo", inbox.handler("echo"))
        try:
            # Several args go as a tuple; the ack of several args comes back as one.
            assert await client.call("echo", (1, "two", {"three": [3]}), timeout=TIMEOUT) == (1, "two", {"three": [3]})
            assert await client.call("echo", "one", timeout=TIMEOUT) == "one"
            await client.emit("echo", ("no", "ack"))
            assert await inbox.next("echo") == (1, "two", {"three": [3]})  # from the acked call
            assert await inbox.next("echo") == ("one",)
            assert await inbox.next("echo") == ("no", "ack")
        finally:
            await close(client, server, transport)

    run(scenario())


def test_server_to_client_ack(server: ServerProcess, transport: str) -> None:
    async def scenario() -> None:
        client = await new_client(server, transport)
        inbox = Inbox()
        questions: list[Any] = []

        async def on_question(payload: Any) -> tuple[Any, ...]:
            questions.append(payload)
            return ("sure", b"\x00\x01")

        client.on("question", on_question)
        client.on("answer", inbox.handler("answer"))
        try:
            await client.emit("server_call", {"q": 1})
            assert await inbox.next("answer") == ("sure", b"\x00\x01")
            assert questions == [{"q": 1}]
        finally:
            await close(client, server, transport)

    run(scenario())


@pytest.mark.parametrize("size", [1, 100_000])
def test_binary(server: ServerProcess, transport: str, size: int) -> None:
    async def scenario() -> None:
        client = await new_client(server, transport)
        data = bytes(i % 251 for i in range(size))
        try:
            assert await client.call("bin_echo", data, timeout=TIMEOUT) == {"size": size, "data": data}
            mixed = (b"\xff", {"k": [b"\x00", "s"]})
            assert await client.call("echo", mixed, timeout=TIMEOUT) == mixed
        finally:
            await close(client, server, transport)

    run(scenario())


def test_namespaces(server: ServerProcess, transport: str) -> None:
    async def scenario() -> None:
        # One auth for every namespace: "/" accepts it, "/admin" requires it.
        client = await new_client(
            server, transport, namespaces=["/", "/admin", "/dyn-9"], auth={"token": "secret"}
        )
        try:
            assert await client.call("echo", "root", timeout=TIMEOUT) == "root"
            assert await client.call("echo", "adm", namespace="/admin", timeout=TIMEOUT) == "adm"
            assert await client.call("echo", "d", namespace="/dyn-9", timeout=TIMEOUT) == ("/dyn-9", "d")
            sids = {client.get_sid(ns) for ns in ("/", "/admin", "/dyn-9")}
            assert len(sids) == 3 and None not in sids
        finally:
            await close(client, server, transport)

    run(scenario())


# Not over polling only: there python-socketio's client, when a namespace is
# refused, closes the session inside connect() and now and then (about 1 in
# 100, against Node's server too) waits forever for its pending long-poll GET.
# The official client covers refusals over polling (test_node_client.py).
@pytest.mark.parametrize("transport", ["websocket", "upgrade"])
def test_refusals(server: ServerProcess, transport: str) -> None:
    import socketio

    async def refused(namespace: str, auth: Any) -> Any:
        client = socketio.AsyncClient(reconnection=False)
        errors: asyncio.Queue[Any] = asyncio.Queue()

        async def on_connect_error(data: Any) -> None:
            await errors.put(data)

        client.on("connect_error", on_connect_error, namespace=namespace)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                server.url,
                auth=auth,
                transports=transports_for(transport),
                namespaces=[namespace],
                wait_timeout=TIMEOUT,
            )
        error = await asyncio.wait_for(errors.get(), TIMEOUT)
        await close(client, server, transport)
        return error

    async def scenario() -> None:
        assert await refused("/", {"refuse": "py"}) == {"message": "refused", "data": {"reason": "py"}}
        assert await refused("/admin", {"token": "bad"}) == {"message": "not authorized"}
        unknown = await refused("/nope", None)
        message = unknown.get("message") if isinstance(unknown, dict) else None
        assert message == (expected(server, "Invalid namespace") or None)

    run(scenario())


def test_server_side_disconnect(server: ServerProcess, transport: str) -> None:
    async def scenario() -> None:
        client = await new_client(server, transport)
        gone = asyncio.Event()
        client.on("disconnect", lambda *reason: gone.set())
        await client.emit("disconnect_me")
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        assert not client.connected

    run(scenario())


def test_client_disconnect_is_prompt(server: ServerProcess, transport: str) -> None:
    """A client's disconnect completes at once, also with a long-poll pending."""
    if transport == "polling" and known_issue(server, "polling close holds the pending poll"):
        pytest.xfail("python-socketio ends the pending poll only at the next ping")

    async def scenario() -> None:
        client = await new_client(server, transport)
        assert await client.call("echo", "x", timeout=TIMEOUT) == "x"
        await asyncio.wait_for(client.disconnect(), TIMEOUT)
        assert not client.connected

    run(scenario())
