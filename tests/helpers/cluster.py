"""Clusters for tests: server processes sharing the real Redis at 127.0.0.1:6379.

Each test takes a fresh channel key (``cluster_key()``), so that tests never hear each other's
messages. A node counts as part of the cluster once Redis counts its subscription to the request
channel of '/' (``wait_for_nodes``): what Node's adapter counts too.

    key = cluster_key()
    with roomcast_node(key) as a, roomcast_node(key) as b:
        wait_for_nodes(key, 2)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from tests.helpers import ROOT
from tests.helpers.servers import NodeServer, RoomcastServer

REDIS_URL = "redis://127.0.0.1:6379/0"
NODE_CLUSTER_SCRIPT = ROOT / "tests" / "cluster" / "node" / "server.js"


def cluster_key() -> str:
    """A channel key no other test uses."""
    return f"rc-test-{secrets.token_hex(4)}"


def subscribers(key: str, namespace: str = "/") -> int:
    """How many nodes subscribe to ``namespace``'s request channel under ``key``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        result = client.pubsub_numsub(f"{key}-request#{namespace}#")
    finally:
        client.close()
    return int(result[0][1]) if result else 0


def wait_for_nodes(key: str, count: int, namespace: str = "/", timeout: float = 10.0) -> None:
    """Return once ``count`` nodes take part in ``namespace`` under ``key`` (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = subscribers(key, namespace)
    while seen < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{seen} of {count} nodes subscribed to {key}-request#{namespace}# within {timeout} s")
        time.sleep(0.02)  # (Redis gives no signal; polled under a deadline)
        seen = subscribers(key, namespace)


def roomcast_node(key: str, name: str = "roomcast", env: Mapping[str, str] | None = None) -> RoomcastServer:
    """A Roomcast node (tests/apps/cluster_app.py under uvicorn) in the cluster ``key``; start it
    with ``with`` or ``start()``."""
    return RoomcastServer(
        "tests.apps.cluster_app:app",
        name=f"cluster-{name}",
        env={"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL, "NODE_NAME": name, **(env or {})},
    )


def node_node(key: str, name: str = "node") -> NodeServer:
    """A Node socket.io 4.8 node with ``@socket.io/redis-adapter`` (tests/cluster/node/server.js)."""
    return NodeServer(
        NODE_CLUSTER_SCRIPT,
        name=f"cluster-{name}",
        env={"CLUSTER_KEY": key, "REDIS_URL": REDIS_URL, "NODE_NAME": name},
    )
