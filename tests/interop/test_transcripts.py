"""One scripted scenario against Roomcast's server and Node's: same transcripts.

The official client records everything each socket sees. After removing what
legitimately differs between runs (socket ids, Engine.IO ids, transport
bookkeeping), the per-client transcripts from both servers must be equal. Every
step waits for its effect before the next, so each client's transcript has one
possible order.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers.interop import PYTHON_SOCKETIO_DIFFERENCES, TRANSPORTS, expected, transport_options
from tests.helpers.node_peer import NodePeer, Report
from tests.helpers.servers import NodeServer, RoomcastServer

pytestmark = pytest.mark.interop

# Report fields that differ between runs for reasons other than the server's
# behaviour: positions, request numbers, Engine.IO ids, transport names (the
# upgrade races the first packets).
_VOLATILE = {"n", "req", "engine", "transport", "client"}
_SKIPPED_TYPES = {"open", "upgrade"}


def _label(client: str) -> str:
    return client.rsplit("-", 1)[0]


def _replace(value: Any, table: dict[Any, Any]) -> Any:
    if isinstance(value, list):
        return [_replace(v, table) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, table) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        try:
            return table.get(value, value)
        except TypeError:
            return value
    return value


def _wait_reasons(peer: NodePeer, asker: str, sid: str) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        [reasons] = peer.call(asker, "reasons", sid)
        if reasons or time.monotonic() > deadline:
            return list(reasons)
        time.sleep(0.02)  # the server records a disconnect asynchronously


def run_scenario(peer: NodePeer, url: str, transport: str) -> dict[str, Any]:
    """Drive the scenario; return {"clients": {label: transcript}, "reasons": ...}."""
    opts = transport_options(transport)
    start = peer.mark()

    def connect(name: str, namespace: str = "/", **kwargs: Any) -> str:
        mark = peer.mark()
        client = peer.connect(url, namespace, name=name, **{**opts, **kwargs})
        if transport == "upgrade" and kwargs.get("wait", True) and "share" not in kwargs:
            peer.wait_for((client, "upgrade"), after=mark)
        return client

    def settles(client: str, mark: int) -> None:
        """Wait for the outcome of a connection attempt, whichever it is."""
        peer.wait_for(
            lambda r: r.get("client") == client and r["type"] in ("connect", "connect_error"),
            after=mark,
            what=f"{client} to connect or fail",
        )

    def arrives(client: str, event: str, mark: int) -> None:
        peer.wait_for((client, "event", event), after=mark)

    alice = connect("alice", auth={"user": "alice"}, query={"x": "1"})
    bob = connect("bob")
    carol = connect("carol")
    observer = connect("observer")
    peer.auto_reply(alice, "question", "from alice", b"\x01\x02")

    peer.call(alice, "whoami")
    peer.call(bob, "whoami")
    peer.call(alice, "echo", 1, "two", {"three": [3.5, None, True]})
    mark = peer.mark()
    peer.emit(alice, "echo", "no ack")
    arrives(alice, "echo", mark)
    peer.call(alice, "bin_echo", b"\x00\xff" * 100)
    peer.call(alice, "echo", b"bin", {"nested": [b"", b"x"]})
    mark = peer.mark()
    peer.emit(alice, "server_call", {"q": "?"})
    arrives(alice, "answer", mark)

    peer.call(bob, "join", "room1")
    peer.call(carol, "join", "room2")
    mark = peer.mark()
    peer.call(alice, "to_room", "room1", "for room1")
    arrives(bob, "room_message", mark)
    mark = peer.mark()
    peer.call(alice, "broadcast", "for the others")
    for client in (bob, carol, observer):
        arrives(client, "broadcast", mark)
    mark = peer.mark()
    peer.call(alice, "broadcast_except_room", "room2", "not for room2")
    for client in (alice, bob, observer):
        arrives(client, "broadcast_except_room", mark)
    mark = peer.mark()
    peer.call(alice, "broadcast_all", "for everyone")
    for client in (alice, bob, carol, observer):
        arrives(client, "broadcast_all", mark)

    mark = peer.mark()
    intruder = connect("intruder", "/admin", auth={"token": "nope"}, wait=False)
    settles(intruder, mark)
    admin = connect("admin", "/admin", share=alice, auth={"token": "secret"})
    peer.call(admin, "echo", "admin here")
    dyn = connect("dyn", "/dyn-5", share=alice)
    peer.call(dyn, "echo", "dyn here")
    lost = connect("lost", "/nope", wait=False)
    settles(lost, mark)
    refused = connect("refused", auth={"refuse": "scripted"}, wait=False)
    settles(refused, mark)

    sids = {c: peer.state(c)["id"] for c in (bob, carol)}
    mark = peer.mark()
    peer.emit(carol, "disconnect_me")
    peer.wait_for((carol, "disconnect"), after=mark)
    peer.disconnect(bob)
    reasons = {_label(c): _wait_reasons(peer, observer, sid) for c, sid in sids.items()}
    for client in (dyn, admin, alice, observer):
        peer.disconnect(client)

    # Normalise: per client, drop volatile fields and name sids by their owner.
    reports = [r for r in peer.events(after=start) if r["type"] not in _SKIPPED_TYPES]
    sid_names = {r["sid"]: f"<sid of {_label(r['client'])}>" for r in reports if r["type"] == "connect"}
    clients: dict[str, list[Report]] = {}
    for report in reports:
        if _label(report["client"]) == "observer" and report["type"] == "ack":
            continue  # how often the observer had to ask for reasons varies
        clean = {k: v for k, v in report.items() if k not in _VOLATILE}
        clients.setdefault(_label(report["client"]), []).append(_replace(clean, sid_names))
    return {"clients": clients, "reasons": reasons}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_same_transcript_as_node(
    peer: NodePeer, roomcast_server: RoomcastServer, node_server: NodeServer, transport: str
) -> None:
    node = run_scenario(peer, node_server.url, transport)
    ours = run_scenario(peer, roomcast_server.url, transport)
    if roomcast_server.impl == "python-socketio":
        node = _replace(node, PYTHON_SOCKETIO_DIFFERENCES)
    # Compare client by client first for a readable diff, then everything.
    assert sorted(ours["clients"]) == sorted(node["clients"])
    for label in node["clients"]:
        assert ours["clients"][label] == node["clients"][label], f"transcripts of {label} differ"
    assert ours == node
    # The scenario must have exercised what it claims to.
    alice = node["clients"]["alice"]
    assert {"type": "event", "event": "answer", "args": ["from alice", b"\x01\x02"], "with_ack": False} in alice
    assert node["reasons"] == {
        "bob": [expected(roomcast_server, "client namespace disconnect")],
        "carol": [expected(roomcast_server, "server namespace disconnect")],
    }
    errors = {label: t[-1]["message"] for label, t in node["clients"].items() if t[-1]["type"] == "connect_error"}
    assert errors == {
        "intruder": "not authorized",
        "lost": expected(roomcast_server, "Invalid namespace"),
        "refused": "refused",
    }
