"""Fixtures for the browser tests: chromium, the example server, pages each in their own context.

Requirements (skip with a reason, fail under CI=true): the ``playwright`` Python package, Debian's
chromium (``make test`` installs it; never a Playwright browser download), and the npm-installed
socket.io-client that the page loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.harness import (
    CHROMIUM,
    CLIENT_LIBRARY,
    TIMEOUT_MS,
    ExamplePage,
    ExampleServer,
    Traffic,
    chromium_installed,
    launch_chromium,
    requests_leaving_the_machine,
)
from tests.helpers.require import require, require_module

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def require_browser() -> None:
    require_module("playwright", "install the test extras (it needs no browser download)")
    require(
        chromium_installed(),
        f"chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium; `make test` does it)",
    )
    require(
        CLIENT_LIBRARY.is_file(),
        "socket.io-client is missing from node_modules: run `npm ci` (or `make test`)",
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per test module. Not per session: Playwright's sync API keeps an event loop
    running in this thread while it is open, which would break later tests that call asyncio.run()."""
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def example(browser: Browser) -> Iterator[ExampleServer]:
    """The example app, shared by a module's tests (each test uses its own rooms and texts)."""
    with ExampleServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., ExamplePage]]:
    """``open_page(url, query="")``: a page of the example in a new browser context, connected.

    At teardown, checks what every page did: no request left the machine and no script error.
    """
    opened: list[tuple[ExamplePage, Traffic]] = []

    def open_(base_url: str, query: str = "", wait: bool = True) -> ExamplePage:
        traffic = Traffic()
        context = browser.new_context(viewport={"width": 760, "height": 1000})
        traffic.watch(context)
        page = ExamplePage(context, traffic, base_url, query)
        opened.append((page, traffic))
        if wait:
            page.wait_connected()
        return page

    yield open_
    for page, _ in opened:
        page.context.close()
    for _, traffic in opened:
        assert requests_leaving_the_machine(traffic.requests + traffic.websockets) == []
        assert traffic.page_errors == []
