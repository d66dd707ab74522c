"""The official Socket.IO Admin UI (npm ``@socket.io/admin-ui``, served locally by
tests/apps/admin_app.py) in chromium, logged in to a Roomcast server instrumented with
``sio.instrument()``: it connects, and lists a client that connects and the room it joins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

import roomcast
from tests.apps.admin_app import UI
from tests.helpers.require import require
from tests.helpers.servers import RoomcastServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route


@pytest.fixture(scope="module")
def admin_server(browser: Browser) -> Iterator[RoomcastServer]:
    require((UI / "index.html").is_file(), "@socket.io/admin-ui is missing from node_modules: run `npm ci`")
    with RoomcastServer("tests.apps.admin_app:app", name="admin-ui") as server:
        yield server  # type: ignore[misc]


def test_the_admin_ui_logs_in_and_lists_sockets_and_rooms(browser: Browser, admin_server: RoomcastServer) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def offline(route: Route) -> None:  # its fonts and icons come from CDNs: not here
        route.abort()

    context.route("https://**/*", offline)
    client, later = roomcast.Client(reconnection=False), roomcast.Client(reconnection=False)
    try:
        client.connect(admin_server.url, transports=["websocket"], wait_timeout=5)
        assert client.call("join", "lobby", timeout=5) == "joined"
        page.goto(f"{admin_server.url}/ui/index.html")
        page.get_by_label("Server URL").fill(admin_server.url)
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Connect").click()
        expect(page.get_by_text("Invalid credentials")).to_be_visible()
        page.get_by_label("Password").fill("roomcast")
        page.get_by_role("button", name="Connect").click()
        expect(page.get_by_role("banner")).to_contain_text("Status: connected")

        page.get_by_role("link", name="Sockets").click()
        expect(page.get_by_role("cell", name=client.get_sid())).to_be_visible()  # (from all_sockets)
        later.connect(admin_server.url, transports=["polling"], wait_timeout=5)
        expect(page.get_by_role("cell", name=later.get_sid())).to_be_visible()  # (socket_connected, live)
        page.get_by_role("link", name="Rooms").click()
        expect(page.get_by_role("cell", name="lobby")).to_be_visible()
        assert errors == []
    finally:
        client.disconnect()
        later.disconnect()
        context.close()
