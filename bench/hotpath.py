"""The cost of one message through Roomcast's WebSocket path, without the network: a deterministic
measure for comparing two versions of the code, where the machine's run-to-run spread hides a 5%
change in `make bench`.

One WebSocket connection is opened on Roomcast's uvicorn protocol over an in-memory transport (the
HTTP upgrade, the Engine.IO open, the namespace CONNECT), then the same client frame (an ``echo``
event by default) is fed to the protocol N times; the transport only counts the bytes written.
What is measured is all of the Python between the bytes read and the bytes written: the
``websockets`` frame parser, uvicorn's protocol, Engine.IO, Socket.IO, the handler, the encoder and
the framing of the reply. System calls and the event loop's polling are not.

    python -m bench.hotpath                          # µs per message (best of 8 rounds)
    python -m bench.hotpath --instructions           # instructions per message (valgrind)
    taskset -c 0 python -m bench.hotpath --connections 50 --rounds 3000 --app bench/apps/flask_app.py

``--instructions`` runs this twice under valgrind's cachegrind (N and 6N messages) and divides
the difference: the same code gives the same count to within a few instructions, run after run.
One connection measures ``async def`` handlers well; plain handlers run one message at a time per
connection on worker threads, so ``--connections N`` opens N connections and sends one message on
each per round, as the benchmark's echo does: their batches and the hand-off to worker threads
are then measured too (wall time, median of the rounds; on one core, as the benchmark runs the
server). ``--app bench/apps/flask_app.py`` measures the Flask facade.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APP = ROOT / "bench" / "apps" / "roomcast_async.py"
HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PAYLOAD = '{"seq":1,"text":"hello world"}'


class CountingTransport(asyncio.Transport):
    """A transport that keeps nothing: it counts the bytes written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 5000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


FLASK_APP = ROOT / "bench" / "apps" / "flask_app.py"


def load_asgi_app(path: Path) -> Any:
    """The ASGI app of an app file: its ``app`` (as bench/apps/roomcast_async.py defines it), or for
    bench/apps/flask_app.py the ASGI app of its Flask app on Roomcast's facade."""
    spec = importlib.util.spec_from_file_location("hotpath_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    argv = sys.argv
    if path.resolve() == FLASK_APP:
        sys.argv = [str(path), "--impl", "roomcast", "--port", "0"]  # (it reads its options at import)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = argv
    socketio = getattr(module, "socketio", None)
    if socketio is not None and hasattr(socketio, "get_asgi_app"):
        return socketio.get_asgi_app(module.app)
    return module.app


async def _from_callback(feed: Any) -> None:
    """Run ``feed()`` as a callback of the loop, outside any task: where uvicorn's protocol gets its
    data (``asyncio.current_task()`` is None there, as it is under a real server)."""
    done = asyncio.get_running_loop().create_future()

    def run() -> None:
        feed()
        done.set_result(None)

    asyncio.get_running_loop().call_soon(run)
    await done


def client_frame(text: str) -> bytes:
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True)


async def measure(app: Any, event: str, count: int, rounds: int) -> float:
    """Best µs per message over ``rounds`` rounds of ``count`` messages."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from roomcast.asyncio.uvicorn_ws import WebSocketProtocol

    config = Config(app=app, ws=WebSocketProtocol, log_level="warning", lifespan="off")
    config.load()
    protocol = WebSocketProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = CountingTransport()
    protocol.connection_made(transport)

    async def reply_to(data: bytes, what: str) -> int:
        before = transport.written
        protocol.data_received(data)
        deadline = time.monotonic() + 5
        while transport.written == before:
            if time.monotonic() > deadline:
                raise SystemExit(f"hotpath: no reply to {what}")
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the rest of a reply written in pieces
        return transport.written - before

    await reply_to(HANDSHAKE, "the WebSocket upgrade")
    await reply_to(client_frame("40"), "the namespace CONNECT")
    if event == "echoack":
        message = client_frame(f'421["echoack",{PAYLOAD}]')
    else:
        message = client_frame(f'42["{event}",{PAYLOAD}]')
    reply_size = await reply_to(message, f"an {event!r} event")
    best = float("inf")
    for _ in range(rounds):
        target = transport.written + count * reply_size
        started = time.perf_counter()
        await _from_callback(lambda: [protocol.data_received(message) for _ in range(count)])
        while transport.written < target:  # (replies held until the end of the loop's pass)
            await asyncio.sleep(0)
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    protocol.connection_lost(None)
    for _ in range(100):  # let the app see the disconnect and return
        await asyncio.sleep(0)
    return best


async def measure_many(app: Any, event: str, connections: int, rounds: int) -> float:
    """Median µs per message over ``rounds`` rounds in which each of ``connections`` connections
    sends one message and all the replies are awaited: what the benchmark's echo scenario does, so
    that plain handlers' batches and the hand-off to worker threads are measured too (wall time on
    one core, threads included)."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from roomcast.asyncio.uvicorn_ws import WebSocketProtocol

    config = Config(app=app, ws=WebSocketProtocol, log_level="warning", lifespan="off")
    config.load()
    loop = asyncio.get_running_loop()
    pairs = []
    for _ in range(connections):
        protocol = WebSocketProtocol(config, ServerState(), {}, loop)
        transport = CountingTransport()
        protocol.connection_made(transport)
        pairs.append((protocol, transport))

    async def all_replied(data: bytes, what: str) -> list[int]:
        before = [transport.written for _, transport in pairs]
        for protocol, _ in pairs:
            protocol.data_received(data)
        deadline = time.monotonic() + 5
        while any(transport.written == b for (_, transport), b in zip(pairs, before)):
            if time.monotonic() > deadline:
                raise SystemExit(f"hotpath: no reply to {what}")
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the rest of a reply written in pieces
        return [transport.written - b for (_, transport), b in zip(pairs, before)]

    await all_replied(HANDSHAKE, "the WebSocket upgrade")
    await all_replied(client_frame("40"), "the namespace CONNECT")
    message = client_frame(f'421["echoack",{PAYLOAD}]' if event == "echoack" else f'42["{event}",{PAYLOAD}]')
    sizes = await all_replied(message, f"an {event!r} event")
    times = []
    for _ in range(rounds):
        targets = [transport.written + size for (_, transport), size in zip(pairs, sizes)]
        started = time.perf_counter()
        await _from_callback(lambda: [protocol.data_received(message) for protocol, _ in pairs])
        while any(transport.written < target for (_, transport), target in zip(pairs, targets)):
            await asyncio.sleep(0)
        times.append((time.perf_counter() - started) / connections * 1e6)
    for protocol, _ in pairs:
        protocol.connection_lost(None)
    for _ in range(100):  # let the app see the disconnects and return
        await asyncio.sleep(0)
    return statistics.median(times)


def run(args: argparse.Namespace) -> float:
    app = load_asgi_app(args.app)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.connections > 1:
        return asyncio.run(measure_many(app, args.event, args.connections, args.rounds))
    return asyncio.run(measure(app, args.event, args.count, args.rounds))


def instructions(args: argparse.Namespace) -> int:
    """Instructions per message: cachegrind's count for 6N messages minus that for N, over 5N."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("hotpath: --instructions needs valgrind (apt-get install valgrind)")
    counts = []
    for count in (args.count, 6 * args.count):
        argv = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                sys.executable, "-m", "bench.hotpath", "--app", str(args.app), "--event", args.event,
                "--count", str(count), "--rounds", "1"]
        env = dict(os.environ, PYTHONHASHSEED="0")
        out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if match is None:
            raise SystemExit("hotpath: no instruction count in valgrind's output:\n" + out.stderr[-2000:])
        counts.append(int(match.group(1).replace(",", "")))
    per_message: int = (counts[1] - counts[0]) // (5 * args.count)
    return per_message


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=DEFAULT_APP,
                        help="an app file with async def handlers (default: bench/apps/roomcast_async.py)")
    parser.add_argument("--event", default="echo", help="echo (default), echoack, or any event the app handles")
    parser.add_argument("--count", type=int, default=20000, help="messages per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds, best kept (default 8)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with valgrind instead")
    parser.add_argument("--connections", type=int, default=1,
                        help="N > 1: N connections with one message in flight each, median of --rounds rounds "
                             "(plain handlers and their threads included; run it under taskset -c 0)")
    args = parser.parse_args(argv)
    if args.instructions:
        if args.connections > 1:
            parser.error("--instructions measures one connection")
        args.count = min(args.count, 1000)
        print(f"{args.event}: {instructions(args):,} instructions per message")
    elif args.connections > 1:
        print(f"{args.event}: {run(args):.2f} µs per message over {args.connections} connections "
              f"(median of {args.rounds} rounds)")
    else:
        print(f"{args.event}: {run(args):.2f} µs per message (best of {args.rounds})")


if __name__ == "__main__":
    main()
