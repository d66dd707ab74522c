"""Make the README's screenshot: the example in two browsers side by side, after some traffic.

    PYTHONPATH=src .venv/bin/python -m tests.browser.screenshot [OUTPUT]   # default docs/screenshot.png

Two pages, each in its own browser context, exchange an echo, broadcasts, a room message and a file;
each page is captured, then a third page lays the two captures side by side under a caption and is
captured in turn (no image library needed). The test suite runs this with its output in a temporary
directory, so the script keeps working.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tests.browser.harness import TIMEOUT_MS, ExamplePage, ExampleServer, Traffic, launch_chromium
from tests.helpers import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DEFAULT_OUTPUT = ROOT / "docs" / "screenshot.png"
PAGE_WIDTH, PAGE_HEIGHT = 680, 900
#: Server-generated events: one or two show, between the other messages.
TICK_SECONDS = 4.0

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><style>
  body {{ margin: 0; padding: 14px 16px 16px; background: #e4e8ec; font-family: system-ui, sans-serif; }}
  p {{ margin: 0 0 10px; font-size: 15px; color: #333; }}
  .row {{ display: flex; gap: 16px; }}
  figure {{ margin: 0; }}
  figcaption {{ font-weight: bold; padding: 0 0 6px; }}
  img {{ display: block; border: 1px solid #aab; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
</style></head><body>
  <p>{caption}</p>
  <div class="row">{figures}</div>
</body></html>"""


def _settle_latency(page: ExamplePage, below_ms: float, timeout_ms: float) -> None:
    """Give the latency average a chance to forget the first, cold samples (best effort)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.page.wait_for_function(
            f"() => parseFloat(document.getElementById('latency').textContent) < {below_ms}",
            timeout=timeout_ms,
        )
    except PlaywrightTimeoutError:
        pass


def _traffic(a: ExamplePage, b: ExamplePage, settle: bool) -> None:
    """A short session: what the screenshot shows in each page's log."""
    from playwright.sync_api import expect

    a.wait_connected()
    b.wait_connected()
    a.wait_for_line(f"Client {b.text('sid')} joined")
    for page in (a, b):
        page.page.wait_for_function("() => /\\d/.test(document.getElementById('latency').textContent)")
        if settle:
            _settle_latency(page, below_ms=15, timeout_ms=8000)
    a.emit("Hello, only me")
    a.wait_for_line("Hello, only me")
    b.broadcast("Hi everyone, from B")
    a.wait_for_line("Hi everyone, from B")
    b.join("lobby")
    b.wait_for_line("lobby")
    a.send_to_room("lobby", "A to the lobby")
    b.wait_for_line("A to the lobby")
    b.upload("notes.txt", b"Roomcast sends bytes as bytes.\n" * 64, "text/plain")
    b.wait_for_line("file notes.txt")
    a.barrier(b, marker="Broadcast from A")
    for page in (a, b):
        expect(page.log_lines("Server generated event")).not_to_have_count(0)


def take_screenshot(
    output: Path = DEFAULT_OUTPUT, browser: Browser | None = None, *, settle: bool = True
) -> tuple[int, int]:
    """Serve the example, drive two pages, save the side-by-side PNG at ``output``; return its size.

    ``settle`` waits (a few seconds at most) for the latency shown to drop below 15 ms; the test
    of this script skips that.
    """
    from playwright.sync_api import expect, sync_playwright

    if browser is None:
        expect.set_options(timeout=TIMEOUT_MS)
        with sync_playwright() as playwright:
            own = launch_chromium(playwright)
            try:
                return take_screenshot(output, own, settle=settle)
            finally:
                own.close()

    with ExampleServer(tick=TICK_SECONDS) as server:
        contexts = [browser.new_context(viewport={"width": PAGE_WIDTH, "height": PAGE_HEIGHT}) for _ in range(2)]
        try:
            a, b = (ExamplePage(context, Traffic(), server.url) for context in contexts)
            _traffic(a, b, settle)
            captures = [page.page.screenshot(full_page=True) for page in (a, b)]
        finally:
            for context in contexts:
                context.close()
    figures = "".join(
        f"<figure><figcaption>Browser {name}</figcaption>"
        f'<img alt="The example page in browser {name}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for name, png in zip("AB", captures)
    )
    caption = (
        "Two browsers on examples/app.py: A's echo stays in A; B's broadcast, A's message to the room "
        "B joined and B's file echo show where they reach."
    )
    layout = browser.new_page(viewport={"width": 2 * PAGE_WIDTH + 52, "height": 600})
    try:
        layout.set_content(LAYOUT.format(caption=caption, figures=figures))
        layout.wait_for_function("() => [...document.images].every((i) => i.complete && i.naturalWidth)")
        output.parent.mkdir(parents=True, exist_ok=True)
        layout.screenshot(path=str(output), full_page=True)
        size = layout.evaluate("() => [document.body.scrollWidth, document.documentElement.scrollHeight]")
    finally:
        layout.close()
    return int(size[0]), int(size[1])


def main(argv: list[str]) -> None:
    output = Path(argv[0]) if argv else DEFAULT_OUTPUT
    width, height = take_screenshot(output)
    print(f"wrote {output} ({width}x{height})")


if __name__ == "__main__":
    main(sys.argv[1:])
