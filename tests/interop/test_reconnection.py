"""Connection loss and recovery with the official client: transport cuts, server restarts."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.helpers.interop import SERVERS, expected, known_issue, transport_options
from tests.helpers.node_peer import NodePeer
from tests.helpers.require import require_node, require_roomcast_server
from tests.helpers.servers import NodeServer, RoomcastServer, ServerProcess

pytestmark = pytest.mark.interop

# Fast, deterministic reconnection: no jitter, short delays.
RECONNECT = {"reconnection": True, "reconnectionDelay": 50, "reconnectionDelayMax": 200, "randomizationFactor": 0}


@pytest.fixture(params=SERVERS)
def own_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server of the test's own, which it may stop and restart."""
    server: ServerProcess
    if request.param == "node":
        require_node()
        server = NodeServer()
    else:
        require_roomcast_server()
        server = RoomcastServer()
    server.start()
    try:
        yield server
    finally:
        # A graceful stop may wait for this test's clients; the prompt-stop
        # test checks graceful stops, so the teardown need not.
        server.stop(kill=True)
        server.close()


def connect(peer: NodePeer, server: ServerProcess, transport: str, **options: object) -> str:
    mark = peer.mark()
    client = peer.connect(server.url, **transport_options(transport), **options)  # type: ignore[arg-type]
    if transport == "upgrade":
        peer.wait_for((client, "upgrade"), after=mark)
    return client


def server_reasons(peer: NodePeer, asker: str, sid: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        [reasons] = peer.call(asker, "reasons", sid)
        if reasons or time.monotonic() > deadline:
            return list(reasons)
        time.sleep(0.02)  # the server records a disconnect asynchronously


def test_reconnects_after_transport_cut(peer: NodePeer, server: ServerProcess, transport: str) -> None:
    client = connect(peer, server, transport, name="cut", **RECONNECT)
    observer = connect(peer, server, transport, name="observer")
    [me] = peer.call(client, "whoami")
    mark = peer.mark()
    peer.close_engine(client)
    assert peer.wait_for((client, "disconnect"), after=mark)["reason"] == "forced close"
    again = peer.wait_for((client, "connect"), after=mark, timeout=10)
    assert again["sid"] != me["sid"]
    assert peer.events(client, "reconnect", after=mark)
    assert peer.call(client, "echo", "after") == ["after"]
    reasons = server_reasons(peer, observer, me["sid"])
    if transport == "polling" and known_issue(server, "polling close reported as client disconnect"):
        assert reasons == ["client disconnect"]
    else:
        assert reasons == ["transport close"]


@pytest.mark.parametrize("kill", [False, True], ids=["stop", "crash"])
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_reconnects_after_server_restart(
    peer: NodePeer, own_server: ServerProcess, transport: str, kill: bool
) -> None:
    client = connect(peer, own_server, transport, **RECONNECT)
    peer.auto_reply(client, "question", "still here")
    first = peer.state(client)["id"]
    mark = peer.mark()
    own_server.restart(kill=kill)
    lost = peer.wait_for((client, "disconnect"), after=mark, timeout=10)
    assert lost["reason"] in {"transport close", "transport error", "ping timeout"}
    again = peer.wait_for((client, "connect"), after=mark, timeout=10)
    assert again["sid"] != first
    # The new session works both ways, acks included.
    assert peer.call(client, "echo", "back") == ["back"]
    after = peer.mark()
    peer.emit(client, "server_call", 1)
    assert peer.wait_for((client, "event", "answer"), after=after)["args"] == ["still here"]


def test_server_stops_promptly_with_clients_connected(peer: NodePeer, own_server: ServerProcess) -> None:
    """SIGTERM with a WebSocket, a pending long-poll and an upgraded client: the
    server exits within a bound instead of waiting for the poll (pingInterval)."""
    for transport in ("websocket", "polling", "upgrade"):
        client = connect(peer, own_server, transport)
        assert peer.call(client, "echo", transport) == [transport]
    started = time.monotonic()
    own_server.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"{own_server.name} took {elapsed:.1f}s to stop"
    # uvicorn re-raises the SIGTERM it handled, so -SIGTERM is a normal exit.
    assert own_server.returncode != -signal.SIGKILL, "it had to be killed"
