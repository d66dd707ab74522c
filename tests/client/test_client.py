"""The Python client against Roomcast and Node's socket.io 4.8, over websocket, polling and upgrade."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import roomcast
from roomcast.asyncio.client import AsyncClient, AsyncClientNamespace
from roomcast.asyncio.simple_client import AsyncSimpleClient
from roomcast.sync.client import Client, ClientNamespace, SimpleClient
from tests.client.conftest import make_server, run, until
from tests.helpers import ROOT
from tests.helpers.require import require_node, require_roomcast_server
from tests.helpers.servers import NodeServer, RoomcastServer, ServerProcess


def expected_transport(transports: list[str]) -> str:
    return "websocket" if "websocket" in transports else "polling"


async def connected_client(server: ServerProcess, transports: list[str], **kwargs: Any) -> AsyncClient:
    client = AsyncClient(reconnection=False)
    await client.connect(server.url, transports=transports, wait_timeout=5, **kwargs)
    # With polling + websocket the upgrade happens after connect; wait for it so that each path is tested.
    await until(lambda: client.transport() == expected_transport(transports), what="the upgrade")
    return client


def test_connect_events_and_acks(server: ServerProcess, transports: list[str]) -> None:
    async def body() -> None:
        client = AsyncClient(reconnection=False)
        events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        connects: list[str] = []
        client.on("connect", lambda: connects.append("connect"))
        client.on("echo", lambda *args: events.put_nowait(args))
        client.on("answer", lambda *args: events.put_nowait(("answer", *args)))

        @client.on("question")
        async def question(payload: Any) -> Any:
            return {"answered": payload}

        await client.connect(
            server.url + "/?x=42", headers={"X-Test": "hdr"}, auth={"user": "ann"}, transports=transports,
            wait_timeout=5,
        )
        await until(lambda: client.transport() == expected_transport(transports), what="the upgrade")
        assert client.connected and connects == ["connect"]
        assert client.sid and client.get_sid("/") == client.sid and client.namespaces == {"/": client.sid}

        me = await client.call("whoami")
        assert me == {"sid": client.sid, "auth": {"user": "ann"}, "x": "42", "header": "hdr"}

        # Several arguments (a tuple), an event back from the server, and an ack callback.
        acked: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        await client.emit("echo", (1, "two", {"three": [3]}), callback=lambda *a: acked.set_result(a))
        assert await asyncio.wait_for(events.get(), 5) == (1, "two", {"three": [3]})
        assert await asyncio.wait_for(acked, 5) == (1, "two", {"three": [3]})

        # call() returns one value as is, several as a tuple.
        assert await client.call("echo", "one") == "one"
        assert await client.call("echo", (1, 2)) == (1, 2)
        assert await asyncio.wait_for(events.get(), 5) == ("one",)
        assert await asyncio.wait_for(events.get(), 5) == (1, 2)

        # Binary both ways, nested.
        blob = bytes(range(256)) * 4
        assert await client.call("echo", {"file": blob, "list": [b"\x00", "text"]}) == {
            "file": blob,
            "list": [b"\x00", "text"],
        }
        await asyncio.wait_for(events.get(), 5)

        # The server asks the client (server -> client ack), then reports the answer.
        await client.emit("server_call", {"q": b"\x01\x02"})
        assert await asyncio.wait_for(events.get(), 5) == ("answer", {"answered": {"q": b"\x01\x02"}})

        reasons: list[str] = []
        client.on("disconnect", reasons.append)
        await client.disconnect()
        await asyncio.wait_for(client.wait(), 5)
        assert reasons == ["io client disconnect"]
        assert not client.connected and client.sid is None

    run(body())


def test_connect_refused_with_message_and_data(server: ServerProcess, transports: list[str]) -> None:
    async def body() -> None:
        client = AsyncClient(reconnection=False)
        errors: list[Any] = []
        client.on("connect_error", errors.append)
        with pytest.raises(roomcast.ConnectionError, match="refused"):
            await client.connect(server.url, auth={"refuse": "banned"}, transports=transports, wait_timeout=5)
        assert errors == [{"message": "refused", "data": {"reason": "banned"}}]
        assert not client.connected
        await asyncio.wait_for(client.wait(), 5)

    run(body())


def test_namespaces(server: ServerProcess, transports: list[str]) -> None:
    async def body() -> None:
        client = await connected_client(server, transports, namespaces=["/", "/admin"], auth={"token": "secret"})
        assert set(client.namespaces) == {"/", "/admin"}
        assert client.get_sid("/admin") not in (None, client.sid)
        assert await client.call("echo", "x", namespace="/admin") == ("admin", "x")
        assert await client.call("echo", "x") == "x"
        with pytest.raises(roomcast.BadNamespaceError):
            await client.emit("echo", "x", namespace="/elsewhere")
        await client.disconnect()

        # Refused on /admin: the whole connect fails, and the handler of /admin hears why.
        refused = AsyncClient(reconnection=False)
        errors: list[Any] = []
        refused.on("connect_error", errors.append, namespace="/admin")
        with pytest.raises(roomcast.ConnectionError, match="not authorized"):
            await refused.connect(server.url, transports=transports, namespaces=["/", "/admin"], wait_timeout=5)
        assert errors == [{"message": "not authorized"}]

    run(body())


def test_class_based_namespace(server: ServerProcess, transports: list[str]) -> None:
    class Admin(AsyncClientNamespace):
        def __init__(self) -> None:
            super().__init__("/admin")
            self.seen: list[str] = []

        async def on_connect(self) -> None:
            self.seen.append("connect")

        def on_disconnect(self, reason: str) -> None:
            self.seen.append(reason)

    async def body() -> None:
        admin = Admin()
        client = AsyncClient(reconnection=False)
        client.register_namespace(admin)
        await client.connect(server.url, transports=transports, auth={"token": "secret"}, wait_timeout=5)
        assert set(client.namespaces) == {"/admin"}
        assert await admin.call("echo", 5) == ("admin", 5)
        await client.disconnect()
        await asyncio.wait_for(client.wait(), 5)
        assert admin.seen == ["connect", "io client disconnect"]

    run(body())


def test_call_times_out(server: ServerProcess, transports: list[str]) -> None:
    async def body() -> None:
        client = await connected_client(server, transports)
        started = time.monotonic()
        with pytest.raises(roomcast.TimeoutError):
            await client.call("slow", 0.6, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 3
        assert await client.call("echo", "still works") == "still works"
        await client.disconnect()

    run(body())


def test_server_disconnect_is_final(server: ServerProcess, transports: list[str]) -> None:
    async def body() -> None:
        client = AsyncClient(reconnection_delay=0.05)
        reasons: list[str] = []
        client.on("disconnect", reasons.append)
        await client.connect(server.url, transports=transports, wait_timeout=5)
        await client.emit("disconnect_me")
        await asyncio.wait_for(client.wait(), 5)
        assert reasons == ["io server disconnect"]
        assert not client.connected

    run(body())


def test_simple_client_async(server: ServerProcess, transports: list[str]) -> None:
    async def body() -> None:
        async with AsyncSimpleClient() as client:
            await client.connect(server.url, transports=transports, auth={"user": "bo"})
            assert client.sid and client.connected
            await client.emit("echo", ("a", b"\xff"))
            assert await client.receive(timeout=5) == ["echo", "a", b"\xff"]
            assert (await client.call("whoami"))["auth"] == {"user": "bo"}
            with pytest.raises(roomcast.TimeoutError):
                await client.receive(timeout=0.1)
        with pytest.raises(roomcast.DisconnectedError):
            await client.receive(timeout=1)

    run(body())


def test_sync_client(server: ServerProcess, transports: list[str]) -> None:
    client = Client(reconnection=False)
    got: list[Any] = []
    done = threading.Event()
    loop_threads: set[str] = set()

    @client.on("echo")
    def on_echo(*args: Any) -> None:
        loop_threads.add(threading.current_thread().name)
        # A blocking call from inside a handler must work (handlers run on worker threads).
        got.append((args, client.call("echo", "from handler") if args == ("go",) else None))
        if len(got) == 2:
            done.set()

    client.connect(server.url, transports=transports, wait_timeout=5)
    assert client.connected and client.sid
    assert client.call("echo", (1, b"\x00")) == (1, b"\x00")
    client.emit("echo", "go")
    assert done.wait(5)
    assert got[1] == (("go",), "from handler")
    assert "roomcast-client" not in loop_threads
    client.disconnect()
    client.wait()
    assert not client.connected


def test_python_socketio_names_shutdown_and_is_asyncio_based(server: ServerProcess) -> None:
    assert AsyncClient().is_asyncio_based() and roomcast.AsyncServer().is_asyncio_based()
    client = Client(reconnection=False)
    assert not client.is_asyncio_based()
    client.connect(server.url, transports=["websocket"], wait_timeout=5)
    client.shutdown()
    client.wait()
    assert not client.connected


def test_sync_simple_client_and_namespace_class(server: ServerProcess, transports: list[str]) -> None:
    with SimpleClient() as simple:
        simple.connect(server.url, transports=transports)
        simple.emit("echo", {"k": "v"})
        assert simple.receive(timeout=5) == ["echo", {"k": "v"}]
        assert simple.call("echo", 3) == 3

    class Admin(ClientNamespace):
        def on_connect(self) -> None:
            self.answer = self.call("echo", "sync")

    admin = Admin("/admin")
    client = Client(reconnection=False)
    client.register_namespace(admin)
    client.connect(server.url, transports=transports, auth={"token": "secret"}, wait_timeout=5)
    deadline = time.monotonic() + 5
    while not hasattr(admin, "answer") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admin.answer == ("admin", "sync")
    client.disconnect()


@pytest.mark.parametrize("kind", ["roomcast", "node"])
def test_reconnects_after_server_restart(kind: str, transports: list[str]) -> None:
    proc = make_server(kind)
    proc.start()
    try:

        async def body() -> None:
            client = AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2, randomization_factor=0.2)
            log: list[str] = []
            client.on("connect", lambda: log.append("connect"))
            client.on("disconnect", lambda reason: log.append(reason))
            client.on("connect", lambda: log.append("admin connect"), namespace="/admin")
            await client.connect(proc.url, transports=transports, auth={"token": "secret"}, wait_timeout=5)
            await until(lambda: client.transport() == expected_transport(transports), what="the upgrade")
            first_sid = client.sid
            await asyncio.get_running_loop().run_in_executor(None, proc.restart)
            await until(lambda: log.count("connect") == 2 and client.connected, timeout=10, what="reconnection")
            assert log[:2] == ["connect", "admin connect"] or log[:2] == ["admin connect", "connect"]
            assert log[2] in ("transport close", "transport error", "ping timeout")
            await until(lambda: log.count("admin connect") == 2, what="/admin reconnection")
            assert client.sid != first_sid
            # The namespaces came back with their auth.
            assert (await client.call("whoami"))["auth"] == {"token": "secret"}
            assert await client.call("echo", "x", namespace="/admin") == ("admin", "x")
            await client.disconnect()
            await asyncio.wait_for(client.wait(), 5)

        run(body(), timeout=30)
    finally:
        proc.close()


@pytest.mark.parametrize("kind", ["roomcast", "node"])
def test_emits_made_while_reconnecting_are_sent_once_back(kind: str) -> None:
    """``offline_buffer``: what is emitted while the connection is down goes out, in order, as soon
    as the namespace is joined again (socket.io-client's send buffer); at most that many emits."""
    proc = make_server(kind)
    proc.start()
    try:

        async def body() -> None:
            client = AsyncClient(offline_buffer=2, reconnection_delay=0.05, reconnection_delay_max=0.2,
                                 randomization_factor=0)
            echoed: list[Any] = []
            client.on("echo", lambda args: echoed.append(args))
            await client.connect(proc.url, transports=["websocket"], wait_timeout=5)
            await asyncio.get_running_loop().run_in_executor(None, proc.stop)
            await until(lambda: not client.connected, what="the connection to drop")
            await client.emit("echo", "sent while away")
            answer = asyncio.ensure_future(client.call("echo", "asked while away", timeout=20))
            await until(lambda: len(client._offline) == 2, what="both held")
            with pytest.raises(roomcast.BadNamespaceError):  # the buffer holds two
                await client.emit("echo", "one too many")
            await asyncio.get_running_loop().run_in_executor(None, proc.start)
            assert await answer == "asked while away"
            await until(lambda: len(echoed) == 2, what="the echoes")
            assert echoed == ["sent while away", "asked while away"]
            await client.disconnect()

        run(body(), timeout=30)
    finally:
        proc.close()


def test_without_an_offline_buffer_emits_while_reconnecting_raise(server: ServerProcess) -> None:
    async def body() -> None:
        client = AsyncClient(reconnection_delay=5)
        await client.connect(server.url, transports=["websocket"], wait_timeout=5)
        assert client._conn is not None
        client._lost(client._conn, "transport close")  # the connection drops; reconnection waits 5 s
        with pytest.raises(roomcast.BadNamespaceError):
            await client.emit("echo", "nobody keeps this")
        await client.disconnect()

    run(body(), timeout=15)


@pytest.mark.parametrize("kind", ["roomcast", "node"])
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
def test_the_msgpack_parser(kind: str, transports: list[str]) -> None:
    """``AsyncClient(serializer="msgpack")`` against Node's socket.io with socket.io-msgpack-parser
    and against Roomcast's ``serializer="msgpack"``: events, acks, binary, a refusal."""
    if kind == "node":
        require_node()
        proc: ServerProcess = NodeServer(ROOT / "tests" / "client" / "node_server.js", name="node-msgpack",
                                         env={"PARSER": "msgpack"})
    else:
        require_roomcast_server()
        proc = RoomcastServer("tests.apps.msgpack_app:app", impl="roomcast", name="uvicorn-msgpack")
    with proc:

        async def body() -> None:
            client = AsyncClient(reconnection=False, serializer="msgpack")
            echoed: list[Any] = []
            client.on("echo", lambda *args: echoed.append(args))
            await client.connect(proc.url, transports=transports, wait_timeout=5)
            blob = bytes(range(256))
            assert await client.call("echo", (1, "two", {"bin": blob})) == (1, "two", {"bin": blob})
            await until(lambda: echoed == [(1, "two", {"bin": blob})], what="the echo event")
            await client.disconnect()
            refused = AsyncClient(reconnection=False, serializer="msgpack")
            with pytest.raises(roomcast.ConnectionError, match="refused"):
                await refused.connect(proc.url, transports=transports, auth={"refuse": "x"}, wait_timeout=5)

        run(body(), timeout=30)
