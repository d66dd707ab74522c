"""Connection state recovery with the official socket.io-client 4.8, cut mid-stream like a lost network.

tests/recovery/recovery_client.js runs one scenario through a TCP proxy: join a room, ask for a
numbered stream, and when item ``CUT_AFTER`` arrives drop every byte of the connection both ways
(neither side is told; both notice by the heartbeat), then let the client reconnect. The same script
runs against Roomcast (tests/recovery/app.py) and against Node's socket.io 4.8 with
``connectionStateRecovery`` (tests/recovery/node_server.js), and both must show the same behaviour.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import ROOT
from tests.helpers.require import require_node, require_roomcast_server
from tests.helpers.servers import NodeServer, RoomcastServer, ServerProcess

pytestmark = pytest.mark.interop

SCRIPT = ROOT / "tests" / "recovery" / "recovery_client.js"
PING = 0.4  # interval and timeout, seconds: a cut is noticed within 2 * PING
WINDOW = 2.5  # max_disconnection_duration, seconds
ENV = {"PING_INTERVAL": str(PING), "PING_TIMEOUT": str(PING), "RECOVERY_WINDOW": str(WINDOW)}
COUNT = 150
INTERVAL_MS = 20  # the stream lasts 3 s, past the reconnection
CUT_AFTER = 10
# A reconnection can only recover a session the server already knows is lost (Node's rule too), so
# the network stays down until the server has surely noticed (its heartbeat: within 2 * PING).
SHORT_OUTAGE = 2 * PING + 0.6


@pytest.fixture(params=["roomcast", "node"], scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    node = require_node()
    process: ServerProcess
    if request.param == "node":
        process = NodeServer(ROOT / "tests" / "recovery" / "node_server.js", node=node, env=ENV)
    else:
        require_roomcast_server()
        process = RoomcastServer("tests.recovery.app:app", impl="roomcast", env=ENV)
    process.start()
    try:
        yield process
    finally:
        process.stop(kill=True)
        process.close()


SCENARIOS = {
    # name: (transport, outage in seconds, whether the stream's "done" is expected after reconnecting)
    "websocket": ("websocket", SHORT_OUTAGE, True),
    "polling": ("polling", SHORT_OUTAGE, True),
    # refuse reconnections until well after the server's copy of the session expired
    "expired": ("websocket", 2 * PING + WINDOW + 1.0, False),
}


@pytest.fixture(scope="module")
def runs(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """What the client saw in each scenario; the scenarios run at once (each in its own room)."""
    node = require_node()
    processes = {}
    for name, (transport, outage, wait_done) in SCENARIOS.items():
        config = {
            "port": server.port,
            "transports": [transport],
            "room": f"room-{name}",
            "count": COUNT,
            "intervalMs": INTERVAL_MS,
            "cutAfter": CUT_AFTER,
            "outageMs": int(outage * 1000),
            "waitDone": wait_done,
            "timeoutMs": 15000,
        }
        processes[name] = subprocess.Popen(
            [node, str(SCRIPT), json.dumps(config)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results: dict[str, dict[str, Any]] = {}
    for name, process in processes.items():
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        lines = out.strip().splitlines()
        results[name] = json.loads(lines[-1]) if process.returncode == 0 and lines else {"error": err or out}
    return results


def result(runs: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    seen = runs[name]
    assert "error" not in seen, seen
    return seen


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_short_cut_loses_nothing(runs: dict[str, dict[str, Any]], transport: str) -> None:
    seen = result(runs, transport)
    first, second = seen["connects"]
    assert first["recovered"] is False
    assert second == {"sid": first["sid"], "recovered": True}
    assert len(seen["disconnects"]) == 1
    assert seen["disconnects"][0] in ("ping timeout", "transport close", "transport error")
    # Every item exactly once, in order: what was in flight or emitted during the cut was replayed.
    assert seen["received"] == list(range(1, COUNT + 1))
    # ...and there was something to replay: the stream went on long after the cut.
    assert seen["receivedAtDisconnect"][0] < COUNT - 10
    # each event carried its offset as an extra, last argument, a string
    assert all(isinstance(offset, str) and offset for offset in seen["offsets"])
    assert len(set(seen["offsets"])) == COUNT
    before, after = seen["before"], seen["after"]
    assert before["recovered"] is False
    assert after == {"sid": before["sid"], "recovered": True, "rooms": sorted([before["sid"], f"room-{transport}"]),
                     "data": {"name": "ann"}}


def test_after_the_window_the_session_is_gone(runs: dict[str, dict[str, Any]]) -> None:
    seen = result(runs, "expired")
    first, second = seen["connects"]
    assert second["sid"] != first["sid"] and second["recovered"] is False
    after = seen["after"]
    assert after == {"sid": second["sid"], "recovered": False, "rooms": [second["sid"]], "data": {}}
    # not in the room any more: the rest of the stream is lost, as with Node
    assert len(seen["received"]) < COUNT
