"""The example in chromium, served by ``roomcast run examples/app.py:app --workers 2`` with its
message queue on the real Redis: what a browser does (a page, its script, a long-polling handshake,
polls and posts on whatever connections it likes, the upgrade to WebSocket) must reach the worker
holding the page's session, and a broadcast must reach pages of both workers.

Forced long-polling is the hard case: the page, its script and the handshake come on connections
that workers close after one response (they name no session), and every poll and post must then
reach the worker of the page's session.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.harness import ExamplePage
from tests.browser.test_browser_example import MODES, OpenPage, expect_transport
from tests.helpers import ROOT
from tests.helpers.cluster import REDIS_URL, cluster_key
from tests.helpers.require import require_redis
from tests.helpers.servers import HOST, ServerProcess

WORKERS = 2


class WorkersExample(ServerProcess):
    """``python -m roomcast run examples/app.py:app --workers 2`` with ``MESSAGE_QUEUE`` set."""

    def __init__(self) -> None:
        env = {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "DEMO_TICK_SECONDS": "60",
            "MESSAGE_QUEUE": REDIS_URL,
            "MESSAGE_QUEUE_CHANNEL": cluster_key(),
        }
        super().__init__(name="example-workers", env=env, stop_timeout=15.0)

    def argv(self) -> Sequence[str]:
        return [sys.executable, "-m", "roomcast", "run", str(ROOT / "examples" / "app.py") + ":app",
                "--host", HOST, "--port", str(self.port), "--workers", str(WORKERS)]


@pytest.fixture(scope="module")
def workers_example(browser: object) -> Iterator[WorkersExample]:
    require_redis()
    with WorkersExample() as server:
        yield server


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def engine_sids(page: ExamplePage) -> set[str]:
    """The Engine.IO session ids the page's requests named (polls, posts, the upgrade)."""
    urls = page.traffic.requests + page.traffic.websockets
    return {sid for url in urls for sid in parse_qs(urlsplit(url).query).get("sid", [])}


def worker_of(page: ExamplePage) -> str:
    """The index of the worker holding the page's one session (its sid starts with it)."""
    sids = engine_sids(page)
    assert len(sids) == 1, sids
    sid = next(iter(sids))
    assert re.fullmatch(r"[01]\.[\w-]+", sid), sid
    return sid[0]


def test_pages_are_served_across_workers(workers_example: WorkersExample, open_page: OpenPage, mode: str) -> None:
    query = MODES[mode][0]
    pages: list[ExamplePage] = []
    # New sessions go to the workers in turn: a few pages land on both.
    while len({worker_of(page) for page in pages}) < WORKERS:
        assert len(pages) < 6, f"six pages, all on worker {worker_of(pages[0])}"
        pages.append(open_page(workers_example.url, query))
        expect_transport(pages[-1], mode)
    t = uuid.uuid4().hex[:10]
    for index, page in enumerate(pages):
        page.emit(f"echo {index} {t}")
        page.wait_for_line(f"echo {index} {t}")
    pages[-1].broadcast(f"to every page {t}")  # from one worker, through Redis to the other's pages
    for page in pages:
        page.wait_for_line(f"to every page {t}")
    for page in pages:  # still one session each: nothing was misrouted into a reconnection
        worker_of(page)
