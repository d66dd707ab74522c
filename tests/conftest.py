"""Suite-wide pytest setup.

- Makes ``tests.helpers`` / ``tests.apps`` importable, and ``roomcast`` from
  ``src`` when it is not installed (``make test`` installs it editable).
- Under CI=true a skipped test is a failure: CI must prove every component was
  there. The skips are listed at the end and the exit status is set to 1.
- A failing test's report includes the output of the servers and node peers
  that were running (see tests/helpers/servers.py).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `.venv/bin/pytest` does not put the working directory on sys.path, and
# tests/ has no __init__.py, so make the repo root importable for `tests.*`.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if importlib.util.find_spec("roomcast") is None:
    sys.path.insert(0, str(ROOT / "src"))

from tests.helpers.require import in_ci  # noqa: E402
from tests.helpers.servers import live_logs  # noqa: E402

_skipped: list[tuple[str, str]] = []
_LOG_MARKS = pytest.StashKey[dict[int, int]]()


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # An expected failure is reported as "skipped" with `wasxfail`; that is
    # not a skip.
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module-level pytest.skip() skips at collection time.
    if report.skipped:
        _skipped.append((report.nodeid, _skip_reason(report)))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Only upgrade a success; a run that failed or crashed keeps its status.
    # "No tests collected" counts as success here: a module-level skip gives it.
    if in_ci() and _skipped and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (in_ci() and _skipped):
        return
    terminalreporter.section("skipped tests fail under CI=true", sep="=", red=True, bold=True)
    for nodeid, reason in _skipped:
        terminalreporter.write_line(f"SKIPPED (counts as failure) {nodeid}: {reason}", red=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    # Remember how much output each running process had, so a failure shows
    # only what this test produced (processes started later show everything).
    item.stash[_LOG_MARKS] = {id(source): source.log_size() for source in live_logs()}
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed:
        return report
    marks = item.stash.get(_LOG_MARKS, {})
    for source in live_logs():
        try:
            text = source.log_text(marks.get(id(source), 0))
        except OSError as exc:
            text = f"(log unavailable: {exc})"
        if text.strip():
            report.sections.append((f"output of {source.name} ({report.when})", text))
    return report
