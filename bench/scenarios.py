"""The scenarios, and running one against one server through the Node load generator.

The load generator (loadgen.js) does the measuring on the client side; this module starts it
pinned to the other core, follows its JSON lines and adds what only the orchestrator can see: the
server's CPU use over the measured window (/proc/<pid>/stat) and, for idle connections, the
server's RSS before and after (/proc/<pid>/status).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .servers import ROOT, ServerProcess, kill, pinned, track

LOADGEN = Path(__file__).resolve().parent / "loadgen.js"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One measurement, and the load generator settings it needs."""

    name: str
    title: str
    clients: int
    transport: str = "websocket"
    what: str = ""

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(name="echo", title="echo round trip", clients=50,
             what="each client keeps one `echo` event in flight; the server emits it back to the sender"),
    Scenario(name="ack", title="echo through acks", clients=50,
             what="each client keeps one `echoack` event in flight; the handler's return value comes back as the ack"),
    Scenario(name="broadcast", title="broadcast", clients=1000,
             what="one client emits `bcast`, the server emits it to all 1000 (sender included); 2 broadcasts in flight"),
    Scenario(name="idle", title="idle connections", clients=2000,
             what="2000 connections opened, 50 handshakes in flight, then held idle; server RSS before and after"),
    Scenario(name="polling", title="echo over long-polling", clients=20, transport="polling",
             what="as echo, over HTTP long-polling (one GET pending and at most one POST per client)"),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


class ScenarioFailed(RuntimeError):
    """The scenario could not be measured (the load generator said why, or timed out)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Options shared by every scenario of one run."""

    duration: float
    warmup: float
    deflate: bool
    ws_client: str
    broadcast_window: int
    concurrency: int
    cpu: str | None
    clients: dict[str, int]
    verbose: bool


def core_times(cores: list[str | None]) -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies so far of each named core, from /proc/stat."""
    wanted = {f"cpu{core}" for core in cores if core is not None and core.isdigit()}
    found: dict[str, tuple[int, int]] = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name in wanted:
                    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
                    # Interrupt and softirq time is left out of "busy": on loopback much of it is our
                    # own traffic, charged to whichever core took the packet, not to a process.
                    busy = user + nice + system + steal
                    found[name[3:]] = (busy, busy + idle + iowait + irq + softirq)
    except OSError:
        pass
    return found


def others_percent(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], core: str | None,
                   ours: float | None) -> float | None:
    """How busy ``core`` was with work other than ours (percent of the core) between two samples.

    Pinning keeps our two processes apart, not other people's processes off our cores: on a shared
    machine this says how much of the core the measured process did not get (process time: user,
    system and a hypervisor's steal; interrupt time is not counted). A few percent is normal.
    """
    if core is None or ours is None or core not in before or core not in after:
        return None
    busy = after[core][0] - before[core][0]
    total = after[core][1] - before[core][1]
    if total <= 0:
        return None
    return round(max(0.0, 100 * busy / total - ours), 1)


def loadgen_timeout(scenario: Scenario, clients: int, settings: Settings) -> float:
    """A generous bound on one load generator run: connecting, warm-up, measuring, closing."""
    return settings.warmup + settings.duration + clients / 100 + 60


def run(scenario: Scenario, server: ServerProcess, settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Runs ``scenario`` against the running ``server``; returns the figures (raises ScenarioFailed)."""
    clients = settings.clients.get(scenario.name, scenario.clients)
    timeout = loadgen_timeout(scenario, clients, settings)
    config = {
        "scenario": scenario.name,
        "port": server.port,
        "clients": clients,
        "duration": settings.duration,
        "warmup": settings.warmup,
        "deflate": settings.deflate,
        "wsClient": settings.ws_client,
        "window": settings.broadcast_window,
        "concurrency": settings.concurrency,
        "timeout": timeout,
    }
    node = shutil.which("node") or "node"
    proc = subprocess.Popen(
        pinned(settings.cpu, [node, str(LOADGEN), json.dumps(config)]),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    track(proc)
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def pump_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr.append(line.rstrip())
            if settings.verbose or "WARNING" in line:
                log("    " + line.rstrip())

    threading.Thread(target=pump_stdout, daemon=True).start()
    threading.Thread(target=pump_stderr, daemon=True).start()

    extra: dict[str, Any] = {}
    cpu_start = wall_start = 0.0
    cores = [server.cpu, settings.cpu]
    cores_start: dict[str, tuple[int, int]] = {}
    cores_end: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + timeout + 10
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise ScenarioFailed(f"load generator silent past its {timeout:.0f} s budget") from None
            if line is None:
                tail = " | ".join(stderr[-3:])
                raise ScenarioFailed(f"load generator exited without a result ({tail or 'no output'})")
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "error" in message:
                raise ScenarioFailed(message["error"])
            if "result" in message:
                result: dict[str, Any] = message["result"]
                result.update(extra)
                result["others_on_server_core"] = others_percent(
                    cores_start, cores_end, server.cpu, result.get("server_cpu"))
                result["others_on_loadgen_core"] = others_percent(
                    cores_start, cores_end, settings.cpu, result.get("loadgen_cpu"))
                if "rss_loaded_kib" in result and result.get("clients"):
                    grown = result["rss_loaded_kib"] - result["rss_baseline_kib"]
                    result["kib_per_connection"] = round(grown / result["clients"], 2)
                return result
            mark = message.get("mark") or message.get("sync")
            if not server.alive():
                raise ScenarioFailed(f"the server died: {server.log_tail()}")
            if mark == "start":
                cores_start = core_times(cores)
                cpu_start, wall_start = server.cpu_seconds(), time.monotonic()
            elif mark == "end":
                extra["server_cpu"] = round(
                    100 * (server.cpu_seconds() - cpu_start) / max(time.monotonic() - wall_start, 1e-6), 1
                )
                cores_end = core_times(cores)
            elif mark == "baseline":
                extra["rss_baseline_kib"] = server.rss_kib()
            elif mark == "loaded":
                extra["rss_loaded_kib"] = server.rss_kib()
            if "sync" in message:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
    finally:
        kill(proc, grace=2.0)
