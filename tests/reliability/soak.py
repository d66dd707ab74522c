"""Soak test (not a CI test): many connections with mixed traffic for minutes; memory, tasks and
threads must stay flat.

Run::

    .venv/bin/python tests/reliability/soak.py                         # 5,000 connections, 10 minutes
    .venv/bin/python tests/reliability/soak.py --connections 1000 --minutes 1

It starts tests/reliability/server_proc.py in a process of its own and drives it from this one with
hand-made Engine.IO/Socket.IO clients (the websockets asyncio client, httpx for long-polling):

* most clients are WebSockets, a share long-polls; each joins one of 50 rooms;
* every client emits an ``echo`` with an ack every few seconds and checks the answer;
* once a second the server broadcasts to a random room (``blast``);
* churn: every 10 s, 1% of the clients leave and new ones take their place;
* a few clients stop reading, and so stop answering pings: they must be cut (``ping timeout``, or
  ``send buffer full`` when broadcasts fill their buffer first), not grow memory.

Every 15 s it samples the server (``stats``: VmRSS, asyncio tasks, threads, sessions, sockets) and
prints a line. The run fails (exit status 1) when memory grows by more than ``--max-growth`` MB over
the second half of the run (a leak grows all along; a heap settling under load flattens), when threads
pass the bounds of the pools, when an echo on a live connection was lost or wrong, or when sessions,
sockets or tasks remain once every client has gone (vanished polling clients get the heartbeat's time).
Connections that break under a client (a long-polling request that meets uvicorn's keep-alive close)
are counted and reported, not failures: a real client reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.reliability.harness import ServerProcess  # noqa: E402

ROOMS = 50


@dataclass
class Totals:
    echoes: int = 0
    #: echoes unanswered on a connection that was still up (a failure)
    lost: int = 0
    #: echoes unanswered because their connection broke (counted apart: see transport_errors)
    lost_with_connection: int = 0
    #: connections that broke under a client (a polling request hitting uvicorn's keep-alive close, ...)
    transport_errors: int = 0
    wrong: int = 0
    broadcasts: int = 0
    connect_failures: int = 0
    latencies: list[float] = field(default_factory=list)


class Control:
    """One WebSocket client that asks the server for broadcasts and stats."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None
        self.ack = 0
        self.waiting: dict[int, asyncio.Future[Any]] = {}

    async def start(self) -> None:
        self.ws = await ws_connect(self.url, max_size=None)
        assert str(await self.ws.recv()).startswith("0")
        await self.ws.send("40")
        assert str(await self.ws.recv()).startswith("40")
        asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "2":
                    await self.ws.send("3")
                elif isinstance(frame, str) and frame.startswith("43"):
                    head, _, body = frame[2:].partition("[")
                    future = self.waiting.pop(int(head), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads("[" + body)[0])
        except ConnectionClosed:
            pass

    async def ask(self, event: str, *args: Any) -> Any:
        self.ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[self.ack] = future
        await self.ws.send(f"42{self.ack}" + json.dumps([event, *args]))
        return await asyncio.wait_for(future, 30)


async def websocket_client(url: str, n: int, stop: asyncio.Event, totals: Totals, reads: bool = True) -> None:
    try:
        ws = await ws_connect(url, max_size=None, open_timeout=30)
    except Exception:
        totals.connect_failures += 1
        return
    pending: dict[int, float] = {}
    try:
        assert str(await ws.recv()).startswith("0")
        await ws.send("40")
        await ws.recv()
        await ws.send(f'42["join","r{n % ROOMS}"]')
        if not reads:
            await stop.wait()  # joined, then never reads again
            return

        async def reader() -> None:
            async for frame in ws:
                if frame == "2":
                    await ws.send("3")
                elif isinstance(frame, str) and frame.startswith('42["news"'):
                    totals.broadcasts += 1
                elif isinstance(frame, str) and frame.startswith("43"):
                    head, _, body = frame[2:].partition("[")
                    sent = pending.pop(int(head), None)
                    if sent is None or body != f"{head}]":
                        totals.wrong += 1
                    else:
                        totals.echoes += 1
                        totals.latencies.append(time.monotonic() - sent)

        task = asyncio.ensure_future(reader())
        ack = n * 1_000_000
        while not stop.is_set() and not task.done():
            try:
                await asyncio.wait_for(stop.wait(), random.uniform(2, 8))
            except asyncio.TimeoutError:
                pass
            if stop.is_set() or task.done():
                break
            ack += 1
            pending[ack] = time.monotonic()
            await ws.send(f'42{ack}["echo",{ack}]')
        # answers still due get a moment, then count as lost
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
        if task.done():
            totals.transport_errors += 1
            totals.lost_with_connection += len(pending)
        else:
            totals.lost += len(pending)
        task.cancel()
    except ConnectionClosed:
        totals.transport_errors += 1
        totals.lost_with_connection += len(pending)
    finally:
        await ws.close()


async def polling_client(base: str, n: int, stop: asyncio.Event, totals: Totals) -> None:
    url = base + "/socket.io/"
    async with httpx.AsyncClient(timeout=60) as http:
        try:
            r = await http.get(url, params={"EIO": "4", "transport": "polling"})
            sid = json.loads(r.text[1:])["sid"]
        except Exception:
            totals.connect_failures += 1
            return
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        await http.post(url, params=params, content=f'40\x1e42["join","r{n % ROOMS}"]')
        pending: dict[int, float] = {}
        ack = n * 1_000_000
        next_echo = time.monotonic() + random.uniform(2, 8)

        async def poll() -> httpx.Response:
            return await http.get(url, params=params)

        get = asyncio.ensure_future(poll())
        broken = False
        try:
            while not stop.is_set():
                if time.monotonic() >= next_echo:
                    ack += 1
                    pending[ack] = time.monotonic()
                    await http.post(url, params=params, content=f'42{ack}["echo",{ack}]')
                    next_echo = time.monotonic() + random.uniform(2, 8)
                done, _ = await asyncio.wait({get}, timeout=0.5)
                if not done:
                    continue
                response = get.result()
                if response.status_code != 200:
                    break
                for packet in response.text.split("\x1e"):
                    if packet == "2":
                        await http.post(url, params=params, content="3")
                    elif packet.startswith('42["news"'):
                        totals.broadcasts += 1
                    elif packet.startswith("43"):
                        head, _, body = packet[2:].partition("[")
                        sent = pending.pop(int(head), None)
                        if sent is None or body != f"{head}]":
                            totals.wrong += 1
                        else:
                            totals.echoes += 1
                            totals.latencies.append(time.monotonic() - sent)
                get = asyncio.ensure_future(poll())
            if pending and not stop.is_set():
                broken = True
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline and not broken:
                done, _ = await asyncio.wait({get}, timeout=0.5)
                if done:
                    response = get.result()
                    for packet in response.text.split("\x1e"):
                        head, _, body = packet[2:].partition("[")
                        if packet.startswith("43") and pending.pop(int(head), None) is not None:
                            totals.echoes += 1
                    get = asyncio.ensure_future(poll())
        except httpx.TransportError:
            broken = True
        finally:
            if broken:
                totals.transport_errors += 1
                totals.lost_with_connection += len(pending)
            else:
                totals.lost += len(pending)
            try:
                await http.post(url, params=params, content="1")  # before dropping the GET: a clean close
            except httpx.HTTPError:
                pass
            get.cancel()


async def soak(args: argparse.Namespace) -> int:
    server = ServerProcess(max_send_buffer=1_000_000, ping_interval=15, ping_timeout=10)
    ws_url = server.ws_url + "/socket.io/?EIO=4&transport=websocket"
    totals = Totals()
    control = Control(ws_url)
    await control.start()
    stops: list[asyncio.Event] = []
    tasks: list[asyncio.Future[Any]] = []
    counter = 0

    def spawn() -> None:
        nonlocal counter
        counter += 1
        stop = asyncio.Event()
        stops.append(stop)
        if counter % 20 == 0:
            tasks.append(asyncio.ensure_future(polling_client(server.url, counter, stop, totals)))
        else:
            tasks.append(asyncio.ensure_future(websocket_client(ws_url, counter, stop, totals)))

    started = time.monotonic()
    gate = asyncio.Semaphore(100)

    async def ramp() -> None:
        for _ in range(args.connections):
            async with gate:
                spawn()
                await asyncio.sleep(0.002)

    await ramp()
    non_readers_stop = asyncio.Event()
    for i in range(args.non_readers):
        tasks.append(asyncio.ensure_future(websocket_client(ws_url, 10_000 + i, non_readers_stop, totals, reads=False)))
    print(f"{args.connections} clients connecting, {args.non_readers} that will stop reading", flush=True)

    samples: list[dict[str, Any]] = []
    end = started + args.minutes * 60
    next_sample = time.monotonic()
    next_churn = time.monotonic() + 10
    while time.monotonic() < end:
        await control.ask("blast", {"count": 1, "size": 200, "room": f"r{random.randrange(ROOMS)}"})
        now = time.monotonic()
        if now >= next_churn:
            next_churn = now + 10
            for stop in random.sample([s for s in stops if not s.is_set()], max(1, args.connections // 100)):
                stop.set()
                spawn()
        if now >= next_sample:
            next_sample = now + 15
            stats = await control.ask("stats")
            stats["t"] = round(now - started)
            samples.append(stats)
            print(
                f"t={stats['t']:4d}s rss={stats['VmRSS'] / 1024:6.1f}MB peak={stats['VmHWM'] / 1024:6.1f}MB "
                f"tasks={stats['tasks']:5d} threads={stats['threads']:3d} sessions={stats['sessions']:5d} "
                f"echoes={totals.echoes} broadcasts={totals.broadcasts} lost={totals.lost} wrong={totals.wrong}",
                flush=True,
            )
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - now)))

    for stop in stops:
        stop.set()
    non_readers_stop.set()
    await asyncio.wait(tasks, timeout=60)
    # A client that vanished without a word is noticed by the heartbeat: wait for it (25 s at most).
    deadline = time.monotonic() + 30
    while True:
        final = await control.ask("stats")
        if final["sessions"] <= 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    await control.ws.close()
    cut = sum(1 for line in server.lines if line.endswith(("send_buffer_full", "ping_timeout")))
    reasons: dict[str, int] = {}
    for line in server.lines:
        if line.startswith("disconnect "):
            reason = line.rsplit(" ", 1)[-1]
            reasons[reason] = reasons.get(reason, 0) + 1
    server.kill()

    steady = [s for s in samples if s["t"] >= args.warmup]
    failures = []
    if len(steady) >= 2:
        # A leak grows all along; a heap settling under load flattens. Judge the second half.
        half = steady[len(steady) // 2]
        growth = (steady[-1]["VmRSS"] - half["VmRSS"]) / 1024
        if growth > args.max_growth:
            failures.append(f"RSS grew by {growth:.1f} MB over the second half of the run")
    # Threads: the handler pool (64 at most) and the default executor grow on demand, up to their bound.
    if max(s["threads"] for s in samples + [final]) > 64 + 32 + 8:
        failures.append("more threads than the pools allow")
    if final["sessions"] > 1 or final["sockets"] > 1:  # the control client is still there
        failures.append(f"left behind: {final['sessions']} sessions, {final['sockets']} sockets")
    if final["tasks"] > 50:
        failures.append(f"{final['tasks']} tasks left after every client had gone")
    if totals.lost or totals.wrong:
        failures.append(f"echoes lost on live connections {totals.lost}, wrong {totals.wrong}")
    lat = sorted(totals.latencies) or [0.0]
    print(
        f"\nechoes {totals.echoes}, broadcasts received {totals.broadcasts}, connect failures "
        f"{totals.connect_failures}, cut for not reading {cut}/{args.non_readers}\n"
        f"connections broken under a client {totals.transport_errors} (echoes lost with them "
        f"{totals.lost_with_connection}); echoes lost on live connections {totals.lost}\n"
        f"disconnect reasons: {reasons}\n"
        f"echo latency p50 {statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms\n"
        f"after the warm-up: RSS {steady[0]['VmRSS'] / 1024 if steady else 0:.1f} → "
        f"{steady[-1]['VmRSS'] / 1024 if steady else 0:.1f} MB (peak {final['VmHWM'] / 1024:.1f} MB), "
        f"threads {steady[0]['threads'] if steady else '-'} → {steady[-1]['threads'] if steady else '-'}\n"
        f"after every client left: RSS {final['VmRSS'] / 1024:.1f} MB, tasks {final['tasks']}, "
        f"threads {final['threads']}, sessions {final['sessions']}, sockets {final['sockets']}"
    )
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--non-readers", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the samples count")
    parser.add_argument(
        "--max-growth", type=float, default=20, help="MB of RSS growth allowed over the second half of the run"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
