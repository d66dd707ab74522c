"""A Roomcast server in its own process, for the tests that need one (signals, memory).

Run: ``python tests/reliability/server_proc.py '{"max_send_buffer": 1000000}'`` (AsyncServer options as
JSON). It binds 127.0.0.1 on a free port and prints ``port N``; then one line per event:
``connect SID``, ``disconnect SID REASON``. Events it serves: ``echo`` (acks its arguments), ``join``
(a room), ``blast`` ``{"count", "size", "room"}`` (emits ``count`` messages of ``size`` bytes to the
room, letting the loop breathe every 10, acks how many it sent), ``pending`` (acks how many long-polling
GETs are waiting), ``memory`` (acks ``{"VmRSS": kB, "VmHWM": kB}``: resident set size, and its peak),
``stats`` (memory, plus the counts of asyncio tasks, threads, sessions and sockets).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import roomcast  # noqa: E402
from tests.helpers import uvicorn_http, uvicorn_ws  # noqa: E402


_say_lock = threading.Lock()


def say(*words: Any) -> None:
    """One line on stdout (handlers on worker threads say things at the same time)."""
    line = " ".join(str(w) for w in words) + "\n"
    with _say_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def memory_kb() -> dict[str, int]:
    """The resident set size now (VmRSS) and its peak so far (VmHWM), in kB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def build(options: dict[str, Any]) -> roomcast.AsyncServer:
    sio = roomcast.AsyncServer(**options)

    @sio.event
    def connect(sid: str, environ: dict[str, Any]) -> None:
        say("connect", sid)

    @sio.event
    async def disconnect(sid: str, reason: str) -> None:
        # a handler that takes its time (a database write, say): shutdown must wait for it
        await asyncio.sleep(0.3)
        await asyncio.get_running_loop().run_in_executor(None, say, "disconnect", sid, reason.replace(" ", "_"))

    @sio.on("echo")
    async def echo(sid: str, *args: Any) -> Any:
        return args

    @sio.on("join")
    async def join(sid: str, room: str) -> str:
        await sio.enter_room(sid, room)
        return "joined"

    @sio.on("blast")
    async def blast(sid: str, spec: dict[str, Any]) -> int:
        payload = "x" * spec["size"]
        for i in range(spec["count"]):
            await sio.emit("news", payload, to=spec["room"])
            if i % 10 == 9:
                await asyncio.sleep(0)
        return int(spec["count"])

    @sio.on("pending")
    async def pending(sid: str) -> int:
        """How many long-polling GETs are waiting."""
        assert sio.engine is not None
        return sum(1 for conn in sio.engine.connections.values() if conn.session.polling_get)

    @sio.on("memory")
    async def memory(sid: str) -> dict[str, int]:
        return memory_kb()

    @sio.on("stats")
    async def stats(sid: str) -> dict[str, int]:
        """Memory, and what must not leak: tasks, threads, sessions, sockets."""
        assert sio.engine is not None
        return {
            **memory_kb(),
            "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "sessions": len(sio.engine.connections),
            "sockets": len(sio.sockets),
        }

    return sio


def main() -> None:
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections made before uvicorn runs wait in the backlog
    app = roomcast.ASGIApp(build(options))
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5,
                            ws=uvicorn_ws(), http=uvicorn_http())
    server = uvicorn.Server(config)
    say("port", sock.getsockname()[1])
    server.run(sockets=[sock])
    say("exited")


if __name__ == "__main__":
    main()
