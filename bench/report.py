"""The run's figures as Markdown tables: absolute figures, ratios of Roomcast to each peer, and
the targets of issue 6 (speed) checked against this run's ratios."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .scenarios import BY_NAME as SCENARIOS
from .servers import BY_NAME as SERVERS

Results = dict[str, dict[str, dict[str, Any]]]  # server -> scenario -> figures, or {"error"}/{"skipped"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One figure of one scenario: where it is in the result, and which way is better."""

    scenario: str
    key: str
    header: str
    better: Literal["higher", "lower"]
    unit: Literal["rate", "ms", "kib"]
    headline: bool = False


METRICS: tuple[Metric, ...] = (
    Metric(scenario="echo", key="rate", header="echo msgs/s", better="higher", unit="rate", headline=True),
    Metric(scenario="echo", key="latency_ms.p50", header="echo p50 ms", better="lower", unit="ms"),
    Metric(scenario="echo", key="latency_ms.p99", header="echo p99 ms", better="lower", unit="ms", headline=True),
    Metric(scenario="ack", key="rate", header="ack msgs/s", better="higher", unit="rate", headline=True),
    Metric(scenario="ack", key="latency_ms.p50", header="ack p50 ms", better="lower", unit="ms"),
    Metric(scenario="ack", key="latency_ms.p99", header="ack p99 ms", better="lower", unit="ms"),
    Metric(scenario="broadcast", key="rate", header="bcast deliveries/s", better="higher", unit="rate",
           headline=True),
    Metric(scenario="broadcast", key="last_client_ms.p50", header="bcast last client p50 ms", better="lower",
           unit="ms", headline=True),
    Metric(scenario="broadcast", key="last_client_ms.p99", header="bcast last client p99 ms", better="lower",
           unit="ms"),
    Metric(scenario="idle", key="rate", header="handshakes/s", better="higher", unit="rate", headline=True),
    Metric(scenario="idle", key="kib_per_connection", header="KiB per idle conn", better="lower", unit="kib",
           headline=True),
    Metric(scenario="polling", key="rate", header="polling msgs/s", better="higher", unit="rate", headline=True),
    Metric(scenario="polling", key="latency_ms.p50", header="polling p50 ms", better="lower", unit="ms"),
    Metric(scenario="polling", key="latency_ms.p99", header="polling p99 ms", better="lower", unit="ms"),
)

# Issue 6's targets: (Roomcast path, metric header, peer, bound on Roomcast / peer, "min" or "max").
TARGETS: tuple[tuple[str, str, str, float, str], ...] = (
    ("roomcast-async", "echo msgs/s", "node", 1.0, "min"),
    ("roomcast-async", "echo p99 ms", "node", 1.0, "max"),
    ("roomcast-flask", "echo msgs/s", "node", 0.8, "min"),
    ("roomcast-flask", "echo msgs/s", "python-socketio", 5.0, "min"),
    ("roomcast-async", "bcast deliveries/s", "node", 1.0, "min"),
    ("roomcast-flask", "bcast deliveries/s", "node", 1.0, "min"),
    ("roomcast-async", "handshakes/s", "node", 1.0, "min"),
    ("roomcast-flask", "handshakes/s", "node", 1.0, "min"),
    ("roomcast-async", "KiB per idle conn", "node", 1.0, "max"),
    ("roomcast-flask", "KiB per idle conn", "node", 1.0, "max"),
)

BY_HEADER = {metric.header: metric for metric in METRICS}
DASH = "—"


def value(results: Results, server: str, metric: Metric) -> float | None:
    figures = results.get(server, {}).get(metric.scenario)
    if not figures or "error" in figures or "skipped" in figures:
        return None
    found: Any = figures
    for part in metric.key.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return float(found) if isinstance(found, (int, float)) else None


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return DASH
    if unit == "rate":
        return f"{x:,.0f}"
    if unit == "ms":
        return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"
    if unit == "kib":
        return f"{x:.1f}"
    return f"{x:.2f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _label(server: str) -> str:
    spec = SERVERS.get(server)
    return spec.label if spec else server


CONTENDED = 25.0  # percent of a core used by other processes that marks a figure as disturbed


SATURATED = 85.0  # server CPU percent above which the server, not its surroundings, set the pace


def contended(results: Results, server: str, scenario: str) -> bool:
    """Whether other processes may have held this figure down: they took a sizeable share of the
    server's core, or of the load generator's core while the server was not saturated."""
    figures = results.get(server, {}).get(scenario, {})
    if (figures.get("others_on_server_core") or 0) > CONTENDED:
        return True
    return (figures.get("others_on_loadgen_core") or 0) > CONTENDED and (figures.get("server_cpu") or 0) < SATURATED


def summary(results: Results, servers: list[str], scenarios: list[str]) -> str:
    """The headline figures: one row per server, as in the issue; * marks disturbed measurements."""
    metrics = [m for m in METRICS if m.headline and m.scenario in scenarios]
    rows = []
    for server in servers:
        row = [_label(server)]
        for m in metrics:
            cell = fmt(value(results, server, m), m.unit)
            if cell != DASH and contended(results, server, m.scenario):
                cell += "*"
            row.append(cell)
        rows.append(row)
    return table(["server"] + [m.header for m in metrics], rows)


def details(results: Results, servers: list[str], scenario: str) -> str:
    """Every figure of one scenario, with the CPU use on both sides and anything that went wrong."""
    metrics = [m for m in METRICS if m.scenario == scenario]
    header = ["server"] + [m.header for m in metrics] + [
        "server CPU %", "others on server core %", "loadgen CPU %", "loadgen µs/op", "notes"]
    rows = []
    for server in servers:
        figures = results.get(server, {}).get(scenario, {})
        notes = []
        if "skipped" in figures:
            notes.append(f"skipped: {figures['skipped']}")
        if "error" in figures:
            notes.append(f"failed: {_short(figures['error'])}")
        if figures.get("loadgen_saturated"):
            notes.append("load generator saturated: figure is a lower bound")
        if figures.get("errors"):
            notes.append(f"{figures['errors']} client errors ({_short(figures.get('first_error') or '')})")
        if figures.get("unexpected_closes"):
            notes.append(f"{figures['unexpected_closes']} unexpected closes")
        if figures.get("failed"):
            notes.append(f"{figures['failed']} connections failed")
        if len(figures.get("runs", [])) > 1:
            notes.append("best of " + ", ".join(fmt(r, "rate") for r in figures["runs"]))
        if figures.get("extensions"):
            notes.append(f"ws extension: {figures['extensions']}")
        server_cpu = figures.get("server_cpu")
        loadgen_cpu = figures.get("loadgen_cpu")
        others = figures.get("others_on_server_core")
        if (figures.get("others_on_loadgen_core") or 0) > 15:
            notes.append(f"others used {figures['others_on_loadgen_core']:.0f}% of the load generator's core")
        rows.append(
            [_label(server)]
            + [fmt(value(results, server, m), m.unit) for m in metrics]
            + [DASH if server_cpu is None else f"{server_cpu:.0f}",
               DASH if others is None else f"{others:.0f}",
               DASH if loadgen_cpu is None else f"{loadgen_cpu:.0f}",
               DASH if loadgen_cpu is None or not figures.get("rate") else f"{loadgen_cpu * 1e4 / figures['rate']:.0f}",
               "; ".join(notes)]
        )
    return table(header, rows)


def _short(text: str, limit: int = 140) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ratio(results: Results, ours: str, peer: str, metric: Metric) -> float | None:
    a, b = value(results, ours, metric), value(results, peer, metric)
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(results: Results, servers: list[str], scenarios: list[str]) -> str:
    """Roomcast (each path) divided by each other server, figure by figure."""
    ours = [s for s in servers if SERVERS.get(s) and SERVERS[s].role == "roomcast"]
    metrics = [m for m in METRICS if m.headline and m.scenario in scenarios]
    header = ["Roomcast ÷ peer"] + [
        m.header + (" (↓ better)" if m.better == "lower" else "") for m in metrics
    ]
    rows = []
    for mine in ours:
        for peer in servers:
            if peer in ours:
                continue
            rows.append(
                [f"{_label(mine)} ÷ {_label(peer)}"]
                + [fmt(ratio(results, mine, peer, m), "ratio") for m in metrics]
            )
    return table(header, rows)


def targets(results: Results) -> str:
    rows = []
    for ours, header, peer, bound, kind in TARGETS:
        metric = BY_HEADER[header]
        r = ratio(results, ours, peer, metric)
        wanted = f"{'≥' if kind == 'min' else '≤'} {bound:g}× {_label(peer)}"
        if r is None:
            verdict = "not measured"
        else:
            verdict = "met" if (r >= bound if kind == "min" else r <= bound) else "not met"
        rows.append([_label(ours), header, wanted, fmt(r, "ratio"), verdict])
    return table(["Roomcast path", "figure", "target", "this run", "verdict"], rows)


def versions_table(versions: dict[str, str]) -> str:
    return table(["component", "version"], [[k, v] for k, v in versions.items()])


def render(results: Results, servers: list[str], scenarios: list[str], meta: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    parts = [
        "## Summary (absolute figures)",
        "",
        summary(results, servers, scenarios),
        "",
        f"\\* disturbed: other processes used more than {CONTENDED:.0f}% of the server's core, or of the load "
        f"generator's core while the server stayed under {SATURATED:.0f}% CPU, during this measurement (see the "
        "details): the figure likely understates the server.",
        "",
        "## Ratios: Roomcast ÷ each other server",
        "",
        "Above 1.0 is better for throughput; below 1.0 is better where marked ↓.",
        "",
        ratios(results, servers, scenarios),
        "",
    ]
    if any(s in servers for s in ("roomcast-async", "roomcast-flask")) and "node" in servers:
        parts += ["## Issue 6 targets in this run", "", targets(results), ""]
    parts += ["## Details per scenario", ""]
    for scenario in scenarios:
        spec = SCENARIOS[scenario]
        parts += [f"### {spec.title} ({scenario})", "", spec.what + ".", "", details(results, servers, scenario), ""]
    for i, settings in enumerate(meta.get("runs") or [meta["settings"]]):
        title = "## Run" if "runs" not in meta else f"## Run {i + 1} of {len(meta['runs'])}"
        parts += [title, "", table(["setting", "value"], [[k, str(v)] for k, v in settings.items()]), ""]
    parts += ["## Versions", "", versions_table(meta["versions"]), ""]
    return "\n".join(parts)
