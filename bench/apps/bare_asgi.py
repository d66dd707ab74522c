"""The floor: a bare ASGI WebSocket app on uvicorn, with just enough string handling to answer the
load generator, and no Socket.IO layer (no packet decoding, no JSON, no sessions, no heartbeats).

It answers the Engine.IO open and the namespace CONNECT with fixed strings, sends an ``echo`` event
back as the very string it received, turns ``42<id>["echoack",DATA]`` into ``43<id>[DATA]`` by
slicing, and writes a ``bcast`` string to every connection. Whatever a Socket.IO server measures
below this is the cost of its Socket.IO layer, not of Python, uvicorn or the WebSocket.

``--thread`` hands each message to a worker thread and back before answering: the floor for a
server that runs plain ``def`` handlers on a thread pool (Roomcast's Flask facade).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

OPEN = '0{"sid":"s%d","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
ECHOACK = '["echoack",'

_ids = itertools.count()
_connections: set[Any] = set()
_executor: ThreadPoolExecutor | None = None


def reply_to(text: str, sid: int) -> tuple[str | None, bool]:
    """(reply, broadcast?) for one message from a client."""
    if text.startswith('42["echo"'):
        return text, False
    if text.startswith('42["bcast"'):
        return text, True
    if text.startswith("42"):
        bracket = text.index("[")
        return "43" + text[2:bracket] + "[" + text[bracket + len(ECHOACK):], False
    if text == "40":
        return '40{"sid":"n%d"}' % sid, False
    return None, False


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    sid = next(_ids)
    await send({"type": "websocket.send", "text": OPEN % sid})
    _connections.add(send)
    loop = asyncio.get_running_loop()
    try:
        while True:
            message = await receive()
            text = message.get("text")
            if text is None:
                if message["type"] == "websocket.disconnect":
                    return
                continue
            if _executor is not None:
                reply, everyone = await loop.run_in_executor(_executor, reply_to, text, sid)
            else:
                reply, everyone = reply_to(text, sid)
            if reply is None:
                continue
            out = {"type": "websocket.send", "text": reply}
            if everyone:
                for peer in list(_connections):
                    try:
                        await peer(out)
                    except Exception:  # a peer closing meanwhile is not this sender's problem
                        _connections.discard(peer)
            else:
                await send(out)
    finally:
        _connections.discard(send)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--thread", action="store_true", help="answer each message from a worker thread")
    options = parser.parse_args()
    if options.thread:
        _executor = ThreadPoolExecutor(max_workers=16)
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning")
