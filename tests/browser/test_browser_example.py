"""The example (examples/app.py) in real browsers: headless Debian chromium, driven by Playwright.

What a user sees with two browsers open on the page: "Echo" comes back to the sender alone,
"Broadcast" reaches both, a room message reaches the room's members only, the disconnect button
disconnects (and the server knows), a picked file travels as binary and its echo matches, the page
reconnects by itself when the server restarts. Each scenario runs with the client's default
transports (long-polling, then the upgrade to WebSocket) and forced to long-polling
(``?transport=polling``, a browser without WebSocket). Each page has its own browser context.

Absence is asserted after a barrier: a broadcast sent later by the same client that every page
has received (see ``ExamplePage.barrier``). No fixed sleeps: every wait is a condition with a deadline.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.harness import ExamplePage, ExampleServer, requests_leaving_the_machine

if TYPE_CHECKING:
    from playwright.sync_api import Browser

OpenPage = Callable[..., ExamplePage]

#: The page's query string per mode, and the transport the page must show once connected.
MODES = {
    "default": ("", "websocket"),
    "polling": ("?transport=polling", "polling"),
}


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def expect_transport(page: ExamplePage, mode: str) -> None:
    """The page shows the mode's transport; forced long-polling never opened a WebSocket."""
    from playwright.sync_api import expect

    expect(page.locator("#transport")).to_have_text(MODES[mode][1])
    if mode == "polling":
        assert page.traffic.websockets == []
    else:
        assert [urlsplit(url).path for url in page.traffic.websockets] == ["/socket.io/"]


def token() -> str:
    return uuid.uuid4().hex[:10]


def test_emit_broadcast_rooms_and_disconnect(example: ExampleServer, open_page: OpenPage, mode: str) -> None:
    from playwright.sync_api import expect

    query = MODES[mode][0]
    a, b = open_page(example.url, query), open_page(example.url, query)
    sid_a, sid_b = a.wait_connected(), b.wait_connected()
    assert sid_a != sid_b
    expect_transport(a, mode)
    expect_transport(b, mode)
    # The server announced B to A (A was connected first).
    a.wait_for_line(f"Client {sid_b} joined")
    t = token()

    # "Echo" reaches the sender alone.
    a.emit(f"only for A {t}")
    a.wait_for_line(f"only for A {t}")
    a.barrier(b, marker=f"barrier 1 {t}")
    assert b.lacks(f"only for A {t}")

    # "Broadcast" reaches both, once each.
    b.broadcast(f"B to everyone {t}")
    a.wait_for_line(f"B to everyone {t}")
    b.wait_for_line(f"B to everyone {t}")

    # A room message reaches its members only: A joins, B (not a member) sends.
    room = f"room-{t}"
    a.join(room)
    a.wait_for_line(room)  # "In rooms: <sid>, room-…": the server confirmed the join
    assert sid_a in a.log_lines(room).inner_text()
    b.send_to_room(room, f"to the room {t}")
    a.wait_for_line(f"to the room {t}")
    b.barrier(a, marker=f"barrier 2 {t}")
    assert b.lacks(f"to the room {t}")

    # After leaving, A no longer gets the room's messages.
    a.leave(room)
    expect(a.log_lines("In rooms:")).to_have_count(2)
    b.send_to_room(room, f"after leave {t}")
    b.barrier(a, marker=f"barrier 3 {t}")
    assert a.lacks(f"after leave {t}") and b.lacks(f"after leave {t}")

    # Round-trip latency is measured and shown.
    expect(a.locator("#latency")).to_have_text(re.compile(r"^\d+\.\d$"))

    # The disconnect button: A shows the goodbye, then is disconnected by the server, whose
    # disconnect handler announces it to B with the reason it saw.
    a.disconnect()
    a.wait_for_line("Disconnected!")
    expect(a.locator("#connection")).to_have_text("disconnected (io server disconnect)")
    b.wait_for_line(f"Client {sid_a} left (server namespace disconnect)")
    # B is still served; the transport did not change under the traffic.
    b.emit(f"B still here {t}")
    b.wait_for_line(f"B still here {t}")
    expect_transport(b, mode)


def test_a_picked_file_goes_as_binary_and_its_echo_matches(
    example: ExampleServer, open_page: OpenPage, mode: str
) -> None:
    query, transport = MODES[mode]
    page = open_page(example.url, query)
    expect_transport(page, mode)
    # Every byte value (0x00 and invalid UTF-8 included), 100 KiB in all.
    data = bytes(range(256)) * 400
    digest = hashlib.sha256(data).hexdigest()
    page.upload("every-byte.bin", data)
    page.wait_for_line(f"file every-byte.bin: {len(data)} bytes, sha256 {digest} (echo intact)")
    # It travelled as binary: a WebSocket binary frame holding the bytes, or over long-polling
    # a "b"-prefixed base64 packet (Engine.IO v4's binary in a text payload) in a POST body.
    if transport == "websocket":
        assert data in page.traffic.binary_frames_sent
    else:
        encoded = b"b" + base64.b64encode(data)
        assert any(encoded in body for body in page.traffic.posts)
    # A file over the limit is refused by the page, before anything is sent.
    page.upload("too-big.bin", bytes(512 * 1024 + 1))
    page.wait_for_line("File too-big.bin is over 524288 bytes.")


def test_the_page_reconnects_after_a_server_restart(open_page: OpenPage, mode: str) -> None:
    from playwright.sync_api import expect

    with ExampleServer() as server:
        page = open_page(server.url, MODES[mode][0])
        first_sid = page.wait_connected()
        expect_transport(page, mode)
        server.stop()
        expect(page.locator("#connection")).not_to_have_attribute("data-state", "connected")
        server.start()
        # The client reconnects by itself (the Manager's reconnection), under a new id.
        second_sid = page.wait_connected()
        assert second_sid != first_sid
        t = token()
        page.emit(f"after the restart {t}")
        page.wait_for_line(f"after the restart {t}")
        expect(page.locator("#transport")).to_have_text(MODES[mode][1])


def test_the_page_is_local_and_labelled(example: ExampleServer, open_page: OpenPage) -> None:
    page = open_page(example.url)
    page.wait_for_line("I joined")
    requests = page.traffic.requests
    paths = {urlsplit(url).path for url in requests}
    # The check below is not vacuous: the page, the client library and Socket.IO were recorded.
    assert {"/", "/vendor/socket.io.min.js", "/socket.io/"} <= paths
    assert any(parse_qs(urlsplit(url).query).get("transport") == ["polling"] for url in requests)
    assert requests_leaving_the_machine(requests + page.traffic.websockets) == []
    assert requests_leaving_the_machine(["https://cdn.socket.io/4.8.1/socket.io.min.js"]) != []
    # Every form control has a label, and the labels name them (what a screen reader announces).
    unlabelled = page.page.evaluate(
        "() => [...document.querySelectorAll('input, select, textarea')]"
        ".filter((e) => e.labels.length === 0).map((e) => e.id || e.name)"
    )
    assert unlabelled == []
    labels = ("Emit to me", "Broadcast", "Join room", "Leave room", "Send to room", "Message", "Close room")
    for label in labels:
        assert page.page.get_by_label(label, exact=True).count() == 1, label
    assert page.page.get_by_label(re.compile(r"^Send a file")).get_attribute("type") == "file"
    # Buttons are named by their text.
    for name in ("Echo", "Broadcast", "Join", "Leave", "Send", "Close", "Upload", "Disconnect"):
        assert page.page.get_by_role("button", name=name, exact=True).count() == 1, name
    assert page.page.locator("html").get_attribute("lang") == "en"


def test_the_screenshot_script_works(browser: Browser, tmp_path: Path) -> None:
    from tests.browser.screenshot import take_screenshot

    output = tmp_path / "screenshot.png"
    width, height = take_screenshot(output, browser, settle=False)
    assert output.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert width > 1000 and height > 500
