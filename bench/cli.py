"""``python -m bench``: run the scenarios against Roomcast and its peers, print the tables.

Scenario by scenario, each selected server is started fresh (pinned to ``--server-cpu``), measured
by one load generator run (pinned to ``--loadgen-cpu``) and stopped, so that servers compared in
one scenario run close together in time and none inherits another's memory or connections.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import peers, report, scenarios, servers
from .scenarios import ScenarioFailed, Settings
from .servers import ROOT, ServerFailed, ServerProcess, ServerSpec

PROJECT_PACKAGES = ("roomcast", "uvicorn", "uvloop", "websockets", "httptools", "orjson", "flask", "a2wsgi")
PEER_PACKAGES = ("python-socketio", "python-engineio", "flask-socketio", "flask", "gevent", "gevent-websocket",
                 "simple-websocket", "uvicorn", "uvloop", "websockets")
NODE_PACKAGES = ("socket.io", "engine.io", "ws")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _csv(text: str, known: dict[str, Any], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"bench: unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Roomcast against Node socket.io, python-socketio and Flask-SocketIO, side by side.",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per scenario (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before that (default 1)")
    parser.add_argument("--servers", default=",".join(servers.BY_NAME),
                        help="comma-separated servers (default: all): " + ", ".join(servers.BY_NAME))
    parser.add_argument("--scenarios", default=",".join(scenarios.BY_NAME),
                        help="comma-separated scenarios (default: all): " + ", ".join(scenarios.BY_NAME))
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure each server N times per scenario (interleaved) and keep the best: "
                             "on a shared machine the best run is the least disturbed (default 1)")
    parser.add_argument("--clients", action="append", default=[], metavar="SCENARIO=N",
                        help="override a scenario's client count, e.g. --clients broadcast=500 (repeatable)")
    parser.add_argument("--broadcast-window", type=int, default=2, metavar="N",
                        help="broadcasts in flight in the broadcast scenario (default 2; 1 measures the time "
                             "until the last client has an isolated broadcast, but leaves the server idle "
                             "while the load generator reads)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="handshakes in flight while connecting (default 50)")
    parser.add_argument("--deflate", action="store_true",
                        help="offer permessage-deflate as browsers do (default: not offered; see docs/benchmarks.md)")
    parser.add_argument("--ws-client", choices=["raw", "ws"], default="raw",
                        help="the load generator's WebSocket client: its own minimal one (default) or the ws "
                             "package (cross-check; always used with --deflate)")
    parser.add_argument("--server-cpu", default="0", help="core for the server (default 0)")
    parser.add_argument("--loadgen-cpu", default="1", help="core for the load generator (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="don't pin processes to cores")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save every figure as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also save the report as Markdown")
    parser.add_argument("--verbose", action="store_true", help="show the load generator's progress lines")
    parser.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    parser.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                        help="measure nothing: print the report of runs saved with --json; with several files, "
                             "a later file's scenarios replace the earlier ones' (each scenario's servers "
                             "still come from one run)")
    return parser.parse_args(argv)


def raise_fd_limit() -> None:
    """2000 idle connections need more descriptors than a default soft limit of 1024; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _run(argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def check_import(python: str, module: str) -> str | None:
    """None if ``module`` imports in ``python``, else the reason it does not."""
    try:
        done = _run([python, "-c", f"import {module}"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return f"import {module} failed: {lines[-1] if lines else 'no output'}"


def _package_versions(python: str, names: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    try:
        done = _run([python, "-c", code, *names])
        return json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def versions(peers_python: Path | None) -> dict[str, str]:
    found: dict[str, str] = {"python (Roomcast, floor)": platform.python_version()}
    for name in PROJECT_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        head = _run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = _run(["git", "status", "--porcelain", "--untracked-files=no", "src"]).stdout.strip()
        if head:
            found["roomcast"] = found.get("roomcast", "?") + f" (git {head}{', src modified' if dirty else ''})"
    except (OSError, subprocess.TimeoutExpired):
        pass
    if peers_python is not None:
        peer = _package_versions(str(peers_python), PEER_PACKAGES)
        peer_python = _run([str(peers_python), "-c", "import platform; print(platform.python_version())"])
        found["python (peers)"] = peer_python.stdout.strip()
        for name, version in peer.items():
            key = name if name not in found or found[name] == version else f"{name} (peers)"
            found[key] = version
    node = shutil.which("node")
    if node:
        found["node"] = _run([node, "--version"]).stdout.strip()
        for name in NODE_PACKAGES:
            try:
                found[f"npm {name}"] = json.loads((ROOT / "node_modules" / name / "package.json").read_text())["version"]
            except (OSError, ValueError, KeyError):
                pass
    return found


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "load average at start": " ".join(f"{x:.2f}" for x in load),
    }


def headline(scenario: str, figures: dict[str, Any]) -> str:
    """A one-line summary for the progress log."""
    if "skipped" in figures:
        return f"skipped ({figures['skipped']})"
    if "error" in figures:
        return f"FAILED: {figures['error']}"
    parts: list[str] = []
    if scenario in ("echo", "ack", "polling"):
        lat = figures.get("latency_ms", {})
        parts.append(f"{figures['rate']:,.0f} msgs/s, p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    elif scenario == "broadcast":
        last = figures.get("last_client_ms", {})
        parts.append(f"{figures['rate']:,.0f} deliveries/s, last client p50 {last.get('p50')} ms")
    elif scenario == "idle":
        parts.append(f"{figures['rate']:,.0f} handshakes/s, {figures.get('kib_per_connection')} KiB/conn")
    parts.append(f"server CPU {figures.get('server_cpu')}% (others on its core {figures.get('others_on_server_core')}%), "
                 f"loadgen CPU {figures.get('loadgen_cpu')}%")
    if figures.get("errors"):
        parts.append(f"{figures['errors']} errors: {figures.get('first_error')}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        for spec in servers.SERVERS:
            print(f"server   {spec.name:18} {spec.label}")
        for scenario in scenarios.SCENARIOS:
            print(f"scenario {scenario.name:18} {scenario.what}")
        return
    if args.report:
        rerender(args)
        return
    chosen_servers = _csv(args.servers, servers.BY_NAME, "server")
    chosen_scenarios = _csv(args.scenarios, scenarios.BY_NAME, "scenario")
    clients: dict[str, int] = {}
    for item in args.clients:
        name, _, count = item.partition("=")
        if name not in scenarios.BY_NAME or not count.isdigit():
            raise SystemExit(f"bench: --clients wants SCENARIO=N, got {item!r}")
        clients[name] = int(count)
    if not shutil.which("node"):
        raise SystemExit("bench: node is not installed; the load generator needs it")
    if not (ROOT / "node_modules" / "ws").is_dir():
        raise SystemExit("bench: node_modules/ws is missing: run `make node` (or npm install)")

    pin = not args.no_pin and servers.can_pin()
    if not args.no_pin and not pin:
        log("bench: WARNING: cannot pin (no taskset or fewer than 2 cores): server and load generator share cores")
    raise_fd_limit()
    started = time.time()

    specs = [servers.BY_NAME[name] for name in chosen_servers]
    skipped: dict[str, str] = {}
    peers_python: Path | None = None
    if any(spec.runtime == "peers" for spec in specs):
        try:
            peers_python = peers.ensure(log)
        except peers.PeersUnavailable as exc:
            for spec in specs:
                if spec.runtime == "peers":
                    skipped[spec.name] = f"peers' virtualenv unavailable: {exc}"
    for spec in specs:
        if spec.needs_import and spec.name not in skipped:
            reason = check_import(servers.interpreter(spec.runtime, peers_python), spec.needs_import)
            if reason:
                skipped[spec.name] = reason
                log(f"bench: skipping {spec.name}: {reason}")

    settings = Settings(
        duration=args.duration,
        warmup=args.warmup,
        deflate=args.deflate,
        ws_client="ws" if args.deflate else args.ws_client,
        broadcast_window=args.broadcast_window,
        concurrency=args.concurrency,
        cpu=args.loadgen_cpu if pin else None,
        clients=clients,
        verbose=args.verbose,
    )
    meta: dict[str, Any] = {
        "settings": {
            "duration (s per scenario)": args.duration,
            "warm-up (s)": args.warmup,
            "pinning": f"server on core {args.server_cpu}, load generator on core {args.loadgen_cpu}" if pin else "none",
            "permessage-deflate offered": args.deflate,
            "load generator's WebSocket client": "ws" if args.deflate else args.ws_client,
            "handshakes in flight": args.concurrency,
            "broadcasts in flight": args.broadcast_window,
            "runs per server and scenario (best kept)": args.repeat,
            "clients": ", ".join(
                f"{s.name} {clients.get(s.name, s.clients)}" for s in scenarios.SCENARIOS if s.name in chosen_scenarios
            ),
            **machine(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
        },
        "versions": versions(peers_python),
    }

    log_dir = Path(tempfile.mkdtemp(prefix="roomcast-bench-"))
    log(f"bench: servers' output in {log_dir}")
    results: report.Results = {name: {} for name in chosen_servers}
    try:
        for scenario_name in chosen_scenarios:
            scenario = scenarios.BY_NAME[scenario_name]
            for attempt in range(max(1, args.repeat)):
                for spec in specs:
                    figures = measure(spec, scenario, settings, skipped, peers_python,
                                      args.server_cpu if pin else None, log_dir)
                    results[spec.name][scenario_name] = best(results[spec.name].get(scenario_name), figures)
                    prefix = f"[{scenario_name}{f' {attempt + 1}/{args.repeat}' if args.repeat > 1 else ''}]"
                    log(f"{prefix} {spec.label}: {headline(scenario_name, figures)}")
    finally:
        servers.kill_all()
    meta["settings"]["wall time (s)"] = round(time.time() - started)

    text = report.render(results, chosen_servers, chosen_scenarios, meta)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        labels = {name: servers.BY_NAME[name].label for name in chosen_servers}
        args.json.write_text(json.dumps({"meta": meta, "servers": labels, "results": results}, indent=2) + "\n")
        log(f"bench: figures saved to {args.json}")


def rerender(args: argparse.Namespace) -> None:
    """The report of one or more saved runs; a later run's scenarios replace an earlier run's."""
    results: report.Results = {}
    server_order: list[str] = []
    scenario_order: list[str] = []
    runs: list[dict[str, Any]] = []
    versions: dict[str, str] = {}
    for path in args.report:
        saved = json.loads(path.read_text())
        measured = {sc for figures in saved["results"].values() for sc in figures}
        for figures in results.values():
            for scenario in measured:
                figures.pop(scenario, None)
        for server, figures in saved["results"].items():
            results.setdefault(server, {}).update(figures)
            if server not in server_order:
                server_order.append(server)
        scenario_order += [sc for sc in scenarios.BY_NAME if sc in measured and sc not in scenario_order]
        settings = dict(saved["meta"]["settings"])
        settings["scenarios taken from this run"] = ", ".join(sc for sc in scenarios.BY_NAME if sc in measured)
        runs.append(settings)
        versions.update(saved["meta"]["versions"])
    scenario_order = [sc for sc in scenarios.BY_NAME if sc in scenario_order]
    meta: dict[str, Any] = {"settings": runs[-1], "versions": versions}
    if len(runs) > 1:
        meta["runs"] = runs
    text = report.render(results, server_order, scenario_order, meta)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


def best(kept: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Of two measurements of one server and scenario, the one with the higher rate; ``runs`` lists
    every successful run's rate."""
    if kept is None:
        if "rate" in new:
            new["runs"] = [new["rate"]]
        return new
    if "rate" not in new:
        return kept
    runs = kept.get("runs", []) + [new["rate"]]
    winner = new if "rate" not in kept or new["rate"] > kept["rate"] else kept
    winner["runs"] = runs
    return winner


def measure(
    spec: ServerSpec,
    scenario: scenarios.Scenario,
    settings: Settings,
    skipped: dict[str, str],
    peers_python: Path | None,
    server_cpu: str | None,
    log_dir: Path,
) -> dict[str, Any]:
    """One server, one scenario, from a fresh process; failures become ``{"error": ...}``."""
    if spec.name in skipped:
        return {"skipped": skipped[spec.name]}
    if scenario.transport == "polling" and not spec.polling:
        return {"skipped": "no long-polling"}
    try:
        python = servers.interpreter(spec.runtime, peers_python)
        server = ServerProcess(spec, python, cpu=server_cpu, log_dir=log_dir)
    except ServerFailed as exc:
        return {"error": f"server did not start: {exc}"}
    try:
        server.start()
        return scenarios.run(scenario, server, settings, log)
    except ServerFailed as exc:
        return {"error": f"server did not start: {exc}"}
    except ScenarioFailed as exc:
        figures: dict[str, Any] = {"error": str(exc)}
        if not server.alive():
            figures["error"] += f" (server died: {server.log_tail()})"
        return figures
    finally:
        server.stop()
