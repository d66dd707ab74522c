"""Security over real sockets: the Origin policy, the allow_request hook, cookie flags, error bodies
that reflect nothing, logs that hold no session credential."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.reliability.harness import (
    TIMEOUT,
    App,
    Canary,
    Polling,
    log_problems,
    raw_ws,
    roomcast_lines,
    ws_closed,
    ws_open,
)

# -- Origin / CORS ---------------------------------------------------------------------------------


def test_foreign_origin_is_refused_by_default_with_one_line_naming_the_option(
    serve: Callable[..., App], logs: Any
) -> None:
    app = serve()
    with Canary(app) as canary, httpx.Client(timeout=TIMEOUT) as http:
        evil = {"origin": "https://evil.example"}
        r = http.get(app.url, params={"EIO": "4", "transport": "polling"}, headers=evil)
        assert r.status_code == 400 and r.json() == {"code": 3, "message": "Not an accepted origin."}
        assert "access-control-allow-origin" not in r.headers
        with pytest.raises(ConnectionError, match="403"):
            raw_ws(app.live.port, "/socket.io/?EIO=4&transport=websocket", headers=evil).close()
        # the CSRF case: a page elsewhere posting into a live session is refused too
        with Polling(app) as victim:
            victim.connect()
            r = http.post(app.url, params=victim.params(), content=b'42["echo","forged"]', headers=evil)
            assert r.status_code == 400
        # same origin is fine
        same = {"origin": app.live.url}
        r = http.get(app.url, params={"EIO": "4", "transport": "polling"}, headers=same)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == app.live.url
        canary.check()
    lines = roomcast_lines(logs.records)
    assert len(lines) == 3 and all("cors_allowed_origins" in line for line in lines), lines
    assert not log_problems(logs.records)


def test_listed_origin_is_allowed(serve: Callable[..., App]) -> None:
    app = serve(cors_allowed_origins=["https://app.example"])
    with httpx.Client(timeout=TIMEOUT) as http:
        ok = http.get(app.url, params={"EIO": "4", "transport": "polling"}, headers={"origin": "https://app.example"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert ok.headers["access-control-allow-credentials"] == "true"
        no = http.get(app.url, params={"EIO": "4", "transport": "polling"}, headers={"origin": "https://b.example"})
        assert no.status_code == 400


# -- allow_request ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["plain", "async"])
def test_allow_request_refuses_before_any_session(serve: Callable[..., App], logs: Any, flavour: str) -> None:
    calls: list[dict[str, Any]] = []

    def decide(environ: dict[str, Any]) -> bool:
        calls.append(environ)
        return environ.get("HTTP_X_TOKEN") == "good"

    async def decide_async(environ: dict[str, Any]) -> bool:
        return decide(environ)

    app = serve(allow_request=decide if flavour == "plain" else decide_async)
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(app.url, params={"EIO": "4", "transport": "polling"}, headers={"x-token": "bad"})
        assert r.status_code == 403 and r.json() == {"code": 4, "message": "Forbidden"}
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(app.ws_url(), additional_headers={"x-token": "bad"}, open_timeout=TIMEOUT).__enter__()
        assert refused.value.response.status_code == 403
        assert app.connection_count() == 0 and not app.rec.of("connect")
        # allowed: polling and WebSocket; the hook sees the handshake request only (not later polls)
        with Polling(app, **{"x-token": "good"}) as p:
            p.connect()
            p.post('421["echo",1]')
            assert p.get().text == "431[1]"
        ws = ws_connect(app.ws_url(), additional_headers={"x-token": "good"}, open_timeout=TIMEOUT).__enter__()
        assert ws.recv(TIMEOUT).startswith("0")
        ws.close()
    assert len(calls) == 4
    assert calls[0]["REQUEST_METHOD"] == "GET" and "transport=polling" in calls[0]["QUERY_STRING"]
    lines = roomcast_lines(logs.records)
    assert len(lines) == 2 and all("allow_request" in line for line in lines), lines
    assert not log_problems(logs.records)


def test_allow_request_that_fails_refuses(serve: Callable[..., App], logs: Any) -> None:
    def broken(environ: dict[str, Any]) -> bool:
        raise RuntimeError("the application's bug")

    app = serve(allow_request=broken)
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(app.url, params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 403
    # the hook's own bug is the application's: logged with its traceback
    assert [r.exc_info[0] for r in logs.records if r.exc_info] == [RuntimeError]


# -- cookies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        ("io", "io={sid}; Path=/; HttpOnly; SameSite=Lax"),
        ({"name": "rc", "secure": True, "samesite": "Strict"}, "rc={sid}; Path=/; HttpOnly; SameSite=Strict; Secure"),
    ],
)
def test_cookie_flags(serve: Callable[..., App], cookie: Any, expected: str) -> None:
    app = serve(cookie=cookie)
    with Polling(app) as p:
        r = p.http.get(app.url, params={"EIO": "4", "transport": "polling"})
        sid = json.loads(r.text[1:])["sid"]
        assert r.headers["set-cookie"] == expected.format(sid=sid)
    ws = ws_connect(app.ws_url(), open_timeout=TIMEOUT).__enter__()
    with ws:
        sid = json.loads(ws.recv(TIMEOUT)[1:])["sid"]
        assert ws.response.headers["set-cookie"] == expected.format(sid=sid)


def test_no_cookie_by_default(serve: Callable[..., App]) -> None:
    app = serve()
    with httpx.Client(timeout=TIMEOUT) as http:
        r = http.get(app.url, params={"EIO": "4", "transport": "polling"})
    assert "set-cookie" not in r.headers


# -- error bodies ----------------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>&\"'"


@pytest.mark.parametrize(
    ("method", "params", "body"),
    [
        ("GET", {"EIO": HOSTILE, "transport": "polling"}, None),
        ("GET", {"EIO": "4", "transport": HOSTILE}, None),
        ("GET", {"EIO": "4", "transport": "polling", "sid": HOSTILE}, None),
        ("POST", {"EIO": "4", "transport": "polling", "sid": HOSTILE}, HOSTILE),
        ("PUT", {"EIO": "4", "transport": "polling", HOSTILE: HOSTILE}, HOSTILE),
        ("POST", {"EIO": "4", "transport": "polling", "sid": "{live}"}, "<script>"),
        ("POST", {"EIO": "4", "transport": "polling", "sid": "{live}"}, "4a\x1e<b>"),
        ("POST", {"EIO": "4", "transport": "polling", "sid": "{live}"}, b"4\xff<"),
    ],
)
def test_error_bodies_reflect_no_markup(
    serve: Callable[..., App], method: str, params: dict[str, str], body: Any
) -> None:
    app = serve()
    with Polling(app) as p:
        p.connect()
        params = {k: v.replace("{live}", p.sid) for k, v in params.items()}
        content = body.encode() if isinstance(body, str) else body
        r = p.http.request(method, app.url, params=params, content=content)
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert not set("<>&") & set(r.text), r.text
    assert set(r.json()) == {"code", "message"}


# -- logs ------------------------------------------------------------------------------------------


def test_logs_hold_no_session_id(serve: Callable[..., App], logs: Any) -> None:
    """An Engine.IO sid is a credential (whoever has it can poll and post as the client): log lines name
    a session by a short prefix only. Offences of every kind, then a look at every record."""
    app = serve(max_http_buffer_size=1000, connect_timeout=0.3)
    sids: list[str] = []
    with Polling(app) as p:
        p.connect()
        sids.append(p.sid)
        p.post(b"\xff")  # invalid UTF-8
    with Polling(app) as p:
        p.connect()
        sids.append(p.sid)
        p.post("4" * 2000)  # too large
    with Polling(app) as p:
        sids.append(p.handshake()["sid"])
        p.post('42["x",NaN]')  # Socket.IO parse error... before any namespace
    ws = ws_open(app)
    ws.send("9")
    ws_closed(ws)
    ws = ws_open(app, namespace=None)
    ws_closed(ws)  # connect timeout
    lines = roomcast_lines(logs.records)
    assert len(lines) >= 4, lines
    text = "\n".join(lines) + "\n".join(str(r.args) for r in logs.records)
    for sid in sids:
        assert sid not in text
        assert any(sid[:6] in line for line in lines)
