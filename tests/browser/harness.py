"""Headless Debian chromium driven by Playwright, against the example app (examples/app.py).

Shared by the browser tests (conftest.py) and the screenshot script (screenshot.py):

- ``launch_chromium`` starts the system's chromium (never a Playwright-downloaded build) with the flags
  that keep it off the network: the machine has none, and without them chromium tries to reach Google.
- ``ExampleServer`` runs ``examples/demo.py`` (what ``make demo`` runs) in a subprocess on a free port;
  it can stop and start again on the same port, for the reconnection test.
- ``ExamplePage`` wraps one page of the example with the actions a user takes (fill a form, submit,
  pick a file) and the conditions a test waits for (a line in the log, the connection state).
- ``requests_leaving_the_machine`` lists what a page asked of hosts other than this machine.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tests.helpers import ROOT
from tests.helpers.servers import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, Request, WebSocket

#: Debian's chromium; ROOMCAST_CHROMIUM points elsewhere (another Chromium build, not a download).
CHROMIUM = os.environ.get("ROOMCAST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No traffic of chromium's own (update checks, sync, field trials): the machine has no internet.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIENT_LIBRARY = ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
DEMO = ROOT / "examples" / "demo.py"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
#: How long a test waits for something the page should show (ms). Generous: CI machines have 2 cores.
TIMEOUT_MS = 10_000


def chromium_installed() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, with no network traffic of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


class ExampleServer(ServerProcess):
    """``python examples/demo.py --port P`` (``socketio.run(app)``) on a free 127.0.0.1 port.

    ``tick`` sets DEMO_TICK_SECONDS, the period of the server-generated events.
    """

    def __init__(self, *, tick: float = 5.0, port: int | None = None) -> None:
        env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "DEMO_TICK_SECONDS": str(tick)}
        super().__init__(name="example", port=port, env=env)

    def argv(self) -> Sequence[str]:
        return [sys.executable, str(DEMO), "--port", str(self.port)]


@dataclass
class Traffic:
    """What a browser context sent: requests (and POST bodies), WebSockets (and their binary frames),
    and the script errors its pages raised."""

    requests: list[str] = field(default_factory=list)
    posts: list[bytes] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    binary_frames_sent: list[bytes] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> None:
        context.on("request", self._request)

    def watch_page(self, page: Page) -> None:
        page.on("websocket", self._websocket)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)
        if request.method == "POST":
            self.posts.append(request.post_data_buffer or b"")

    def _websocket(self, ws: WebSocket) -> None:
        self.websockets.append(ws.url)
        ws.on("framesent", self._frame_sent)

    def _frame_sent(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.binary_frames_sent.append(payload)


def requests_leaving_the_machine(urls: Sequence[str]) -> list[str]:
    """The URLs among ``urls`` that go to a host other than this machine (data: URLs stay local)."""
    leaving = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            leaving.append(url)
    return leaving


class ExamplePage:
    """One browser page showing the example, in a browser context of its own."""

    def __init__(self, context: BrowserContext, traffic: Traffic, base_url: str, query: str = "") -> None:
        self.context = context
        self.traffic = traffic
        self.page = context.new_page()
        traffic.watch_page(self.page)
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.goto(base_url + "/" + query)

    # -- what the page shows --------------------------------------------------------------------

    def locator(self, selector: str) -> Locator:
        return self.page.locator(selector)

    def text(self, element_id: str) -> str:
        return self.page.locator(f"#{element_id}").inner_text()

    def log(self) -> list[str]:
        """The lines of the page's log, oldest first (the page shows the newest first)."""
        return list(reversed(self.page.locator("#log li").all_inner_texts()))

    def log_lines(self, text: str) -> Locator:
        return self.page.locator("#log li").filter(has_text=text)

    def wait_connected(self) -> str:
        """Wait until the page says it is connected and shows its id; return the id (``socket.id``)."""
        from playwright.sync_api import expect

        expect(self.page.locator("#connection")).to_have_attribute("data-state", "connected")
        expect(self.page.locator("#sid")).not_to_have_text("–")
        return self.text("sid")

    def wait_for_line(self, text: str, count: int = 1) -> None:
        """Wait until exactly ``count`` log lines contain ``text``."""
        from playwright.sync_api import expect

        expect(self.log_lines(text)).to_have_count(count)

    def lacks(self, text: str) -> bool:
        return not any(text in line for line in self.log())

    # -- what a user does -----------------------------------------------------------------------

    def submit(self, form: str, **fields: str) -> None:
        """Fill the form's fields (by input id) and press its button."""
        for input_id, value in fields.items():
            self.page.locator(f"#{input_id}").fill(value)
        self.page.locator(f"#{form} button[type=submit]").click()

    def emit(self, text: str) -> None:
        self.submit("emit", **{"emit-data": text})

    def broadcast(self, text: str) -> None:
        self.submit("broadcast", **{"broadcast-data": text})

    def join(self, room: str) -> None:
        self.submit("join", **{"join-room": room})

    def leave(self, room: str) -> None:
        self.submit("leave", **{"leave-room": room})

    def send_to_room(self, room: str, text: str) -> None:
        self.submit("send-room", **{"send-room-name": room, "send-room-data": text})

    def upload(self, name: str, data: bytes, mime_type: str = "application/octet-stream") -> None:
        picked = {"name": name, "mimeType": mime_type, "buffer": data}
        self.page.locator("#upload-file").set_input_files(picked)  # type: ignore[arg-type]
        self.page.locator("#upload button[type=submit]").click()

    def disconnect(self) -> None:
        self.page.locator("#disconnect button[type=submit]").click()

    def barrier(self, *others: ExamplePage, marker: str) -> None:
        """Broadcast ``marker`` and wait until this page and ``others`` show it.

        One socket's events are handled in arrival order and each client's messages are sent in
        order, so once the marker is in, anything sent to these pages before it is in too: an
        absence checked after the barrier is an absence.
        """
        self.broadcast(marker)
        for page in (self, *others):
            page.wait_for_line(marker)
