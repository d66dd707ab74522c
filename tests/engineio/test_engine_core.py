"""EngineCore: request classification, the reference server's 400 bodies, CORS, cookies, compression.

Pure: requests are :class:`Request` values, answers are decisions and :class:`Response` values.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping
from typing import Any

import pytest

from roomcast.engineio.server import (
    EngineConfig,
    EngineCore,
    ErrorCode,
    Handshake,
    Poll,
    Post,
    Preflight,
    Rejected,
    Request,
    Response,
    Upgrade,
    error_response,
)
from roomcast.engineio.session import SessionConfig, State

HOST = "example.com:8000"


def request(
    method: str = "GET",
    *,
    websocket: bool = False,
    scheme: str = "http",
    headers: Mapping[str, str] | None = None,
    **query: str,
) -> Request:
    q = {"EIO": "4", "transport": "websocket" if websocket else "polling", **query}
    return Request(
        method=method,
        query={k: v for k, v in q.items() if v is not None},
        headers={"host": HOST, **(headers or {})},
        websocket=websocket,
        scheme=scheme,
    )


def core(**options: Any) -> EngineCore:
    return EngineCore(EngineConfig(**options))


def body(response: Response) -> Any:
    assert ("content-type", "application/json") in response.headers
    return json.loads(response.body)


def rejected(decision: object, status: int = 400) -> Any:
    assert isinstance(decision, Rejected)
    assert decision.response.status == status
    return body(decision.response)


# -- check: the error bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("eio", [None, "", "3", "5", "4 ", "04"])
def test_unsupported_protocol_version(eio: str | None) -> None:
    decision = core().check(request(EIO=eio))  # type: ignore[arg-type]
    assert rejected(decision) == {"code": 5, "message": "Unsupported protocol version"}
    assert isinstance(decision, Rejected) and decision.log and "EIO=4" in decision.log


@pytest.mark.parametrize("transport", [None, "", "flashsocket", "POLLING", "webtransport"])
def test_unknown_transport(transport: str | None) -> None:
    decision = core().check(request(transport=transport))  # type: ignore[arg-type]
    assert rejected(decision) == {"code": 0, "message": "Transport unknown"}
    assert isinstance(decision, Rejected) and decision.log is None


def test_unknown_transport_on_websocket() -> None:
    decision = core().check(request(websocket=True, transport="polling"))
    assert rejected(decision) == {"code": 0, "message": "Transport unknown"}


def test_disabled_transports_are_unknown() -> None:
    ws_only = core(transports=("websocket",))
    assert rejected(ws_only.check(request())) == {"code": 0, "message": "Transport unknown"}
    assert ws_only.check(request(websocket=True)) == Handshake(transport="websocket")
    polling_only = core(transports=("polling",))
    assert rejected(polling_only.check(request(websocket=True))) == {"code": 0, "message": "Transport unknown"}
    assert polling_only.check(request()) == Handshake(transport="polling")


def test_websocket_transport_over_plain_http_is_a_bad_request() -> None:
    # Known transport, wrong kind of request: the reference server answers "Bad request" (code 3).
    assert rejected(core().check(request(transport="websocket"))) == {"code": 3, "message": "Bad request"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_handshake_must_be_a_get(method: str) -> None:
    assert rejected(core().check(request(method))) == {"code": 2, "message": "Bad handshake method"}


def test_unknown_sid() -> None:
    c = core()
    for req in (request(sid="nope"), request("POST", sid="nope"), request(websocket=True, sid="nope")):
        assert rejected(c.check(req)) == {"code": 1, "message": "Session ID unknown"}


def test_closed_sid_is_unknown() -> None:
    c = core()
    session = c.open_session("polling", 0.0)
    session.abort("forced close")
    assert rejected(c.check(request(sid=session.sid))) == {"code": 1, "message": "Session ID unknown"}


def test_max_connections() -> None:
    c = core(max_connections=1)
    assert c.check(request()) == Handshake(transport="polling")
    session = c.open_session("polling", 0.0)
    decision = c.check(request())
    assert rejected(decision, 503) == {"code": 4, "message": "Server full"}
    assert isinstance(decision, Rejected) and decision.log and "max_connections" in decision.log
    assert isinstance(c.check(request(sid=session.sid)), Poll)  # existing sessions go on
    c.forget(session)
    assert c.check(request()) == Handshake(transport="polling")


def test_error_response_reflects_nothing() -> None:
    response = error_response(ErrorCode.BAD_REQUEST, message="Not an accepted origin.")
    assert response.body == b'{"code":3,"message":"Not an accepted origin."}'
    assert error_response(ErrorCode.UNKNOWN_SID).body == b'{"code":1,"message":"Session ID unknown"}'
    assert error_response(ErrorCode.FORBIDDEN, status=503).status == 503


# -- check: what each good request is ----------------------------------------------------------------


def test_handshakes() -> None:
    c = core()
    assert c.check(request()) == Handshake(transport="polling")
    assert c.check(request(websocket=True)) == Handshake(transport="websocket")


def test_polling_requests_on_a_session() -> None:
    c = core()
    session = c.open_session("polling", 0.0)
    assert c.check(request(sid=session.sid)) == Poll(session=session)
    assert c.check(request("POST", sid=session.sid)) == Post(session=session)
    assert rejected(c.check(request("PUT", sid=session.sid))) == {"code": 3, "message": "Bad request"}


def test_upgrade_request() -> None:
    c = core()
    session = c.open_session("polling", 0.0)
    assert c.check(request(websocket=True, sid=session.sid)) == Upgrade(session=session)


def test_upgrade_refused_when_upgrades_are_off() -> None:
    c = core(allow_upgrades=False)
    session = c.open_session("polling", 0.0)
    assert rejected(c.check(request(websocket=True, sid=session.sid))) == {"code": 3, "message": "Bad request"}


def test_no_second_websocket_and_no_polling_on_a_websocket_session() -> None:
    c = core()
    session = c.open_session("websocket", 0.0)
    assert rejected(c.check(request(websocket=True, sid=session.sid))) == {"code": 3, "message": "Bad request"}
    assert rejected(c.check(request(sid=session.sid))) == {"code": 3, "message": "Bad request"}
    assert rejected(c.check(request("POST", sid=session.sid))) == {"code": 3, "message": "Bad request"}


def test_preflight() -> None:
    c = core()
    assert c.check(request("OPTIONS")) == Preflight()
    assert c.check(request("OPTIONS", sid="any")) == Preflight()
    # A preflight is checked like any request first.
    assert rejected(c.check(request("OPTIONS", EIO="3")))["code"] == 5


# -- sessions ----------------------------------------------------------------------------------------


def test_sessions_table_and_handshake_packets() -> None:
    c = core(ping_interval=1.5, ping_timeout=2.5, upgrade_timeout=3.5, max_http_buffer_size=100, max_send_buffer=200)
    assert c.session_config == SessionConfig(
        ping_interval=1.5, ping_timeout=2.5, upgrade_timeout=3.5, max_payload=100, max_send_buffer=200
    )
    polling = c.open_session("polling", 0.0)
    websocket = c.open_session("websocket", 0.0)
    assert polling.sid != websocket.sid and len(polling.sid) == 20
    assert c.sessions == {polling.sid: polling, websocket.sid: websocket}
    assert json.loads(c.handshake_packet(polling)[1:])["upgrades"] == ["websocket"]
    assert json.loads(c.handshake_packet(websocket)[1:])["upgrades"] == []
    assert polling.state is State.OPEN
    fields = json.loads(c.handshake_packet(c.open_session("polling", 0.0))[1:])
    assert (fields["pingInterval"], fields["pingTimeout"], fields["maxPayload"]) == (1500, 2500, 100)
    c.forget(polling)
    c.forget(polling)  # twice is fine
    assert polling.sid not in c.sessions


@pytest.mark.parametrize(
    "options", [{"allow_upgrades": False}, {"transports": ("polling",)}], ids=["no-upgrades", "polling-only"]
)
def test_no_upgrades_advertised(options: dict[str, Any]) -> None:
    c = core(**options)
    assert json.loads(c.handshake_packet(c.open_session("polling", 0.0))[1:])["upgrades"] == []


# -- CORS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "scheme", "allowed"),
    [
        (f"http://{HOST}", "http", True),
        (f"https://{HOST}", "https", True),
        (f"https://{HOST}", "wss", True),
        (f"http://{HOST}", "ws", True),
        (f"https://{HOST}", "http", False),  # scheme mismatch
        (f"http://{HOST}", "https", False),
        ("http://example.com", "http", False),  # port mismatch
        ("http://evil.example", "http", False),
        ("null", "http", False),
        ("", "http", False),
    ],
)
def test_same_origin_by_default(origin: str, scheme: str, allowed: bool) -> None:
    c = core()
    req = request(headers={"origin": origin}, scheme=scheme)
    assert c.origin_allowed(origin, req) is allowed
    decision = c.check(req)
    if allowed:
        assert decision == Handshake(transport="polling")
    else:
        assert rejected(decision) == {"code": 3, "message": "Not an accepted origin."}
        assert isinstance(decision, Rejected) and decision.log and "cors_allowed_origins" in decision.log


def test_same_origin_needs_a_host_header() -> None:
    c = core()
    req = Request(method="GET", query={"EIO": "4", "transport": "polling"}, headers={"origin": "http://a"})
    assert not c.origin_allowed("http://a", req)


def test_no_origin_header_is_not_a_cors_request() -> None:
    c = core(cors_allowed_origins="https://only.example")
    req = request()
    assert c.check(req) == Handshake(transport="polling")
    assert c.cors_headers(req) == []


def test_websocket_origin_is_checked_too() -> None:
    c = core()
    decision = c.check(request(websocket=True, headers={"origin": "http://evil.example"}))
    assert rejected(decision)["message"] == "Not an accepted origin."


@pytest.mark.parametrize(
    ("policy", "origin", "allowed"),
    [
        ("*", "http://anything.example", True),
        ("https://a.example", "https://a.example", True),
        ("https://a.example", "https://b.example", False),
        (["https://a.example", "https://b.example"], "https://b.example", True),
        (["https://a.example", "https://b.example"], "https://c.example", False),
        (("https://a.example",), "https://a.example", True),
        (lambda origin: origin.endswith(".good.example"), "https://x.good.example", True),
        (lambda origin: origin.endswith(".good.example"), "https://x.bad.example", False),
        ([], "http://anything.example", True),  # [] turns the check off
    ],
)
def test_origin_policies(policy: Any, origin: str, allowed: bool) -> None:
    c = core(cors_allowed_origins=policy)
    req = request(headers={"origin": origin})
    assert c.origin_allowed(origin, req) is allowed
    assert isinstance(c.check(req), Handshake) is allowed


def test_cors_headers_reflect_an_allowed_origin() -> None:
    c = core(cors_allowed_origins=["https://a.example"])
    assert c.cors_headers(request(headers={"origin": "https://a.example"})) == [
        ("access-control-allow-origin", "https://a.example"),
        ("vary", "Origin"),
        ("access-control-allow-credentials", "true"),
    ]


def test_cors_without_credentials() -> None:
    c = core(cors_allowed_origins="*", cors_credentials=False)
    assert c.cors_headers(request(headers={"origin": "https://a.example"})) == [
        ("access-control-allow-origin", "https://a.example"),
        ("vary", "Origin"),
    ]


def test_cors_headers_same_origin_default() -> None:
    c = core()
    headers = c.cors_headers(request(headers={"origin": f"http://{HOST}"}))
    assert ("access-control-allow-origin", f"http://{HOST}") in headers


@pytest.mark.parametrize("policy", [None, "https://a.example", ["https://a.example"], lambda o: False])
def test_no_cors_headers_for_a_refused_origin(policy: Any) -> None:
    # The refusal (400) must not carry headers that grant the foreign origin access.
    c = core(cors_allowed_origins=policy)
    assert c.cors_headers(request(headers={"origin": "https://evil.example"})) == []


def test_empty_policy_sends_no_cors_headers() -> None:
    c = core(cors_allowed_origins=[])
    req = request(headers={"origin": "https://a.example"})
    assert c.cors_headers(req) == []
    assert ("access-control-allow-origin", "https://a.example") not in c.text_response(req, "ok").headers


def test_preflight_response() -> None:
    c = core(cors_allowed_origins="*")
    req = request("OPTIONS", headers={"origin": "https://a.example", "access-control-request-headers": "x-token"})
    response = c.preflight(req)
    assert response.status == 204 and response.body == b""
    assert response.headers == [
        ("access-control-allow-origin", "https://a.example"),
        ("vary", "Origin"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "OPTIONS, GET, POST"),
        ("access-control-allow-headers", "x-token"),
    ]


def test_preflight_without_requested_headers() -> None:
    response = core(cors_allowed_origins="*").preflight(request("OPTIONS", headers={"origin": "https://a.example"}))
    assert not any(name == "access-control-allow-headers" for name, _ in response.headers)


# -- cookie ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "header"),
    [
        (None, None),
        ("", None),
        ("io", "io=SID; Path=/; HttpOnly; SameSite=Lax"),
        ("session_io", "session_io=SID; Path=/; HttpOnly; SameSite=Lax"),
        ({}, None),
        ({"name": "x"}, "x=SID; Path=/; HttpOnly; SameSite=Lax"),
        (
            {"name": "x", "path": "/app", "httponly": False, "samesite": None, "secure": True, "max_age": 60},
            "x=SID; Path=/app; Secure; Max-Age=60",
        ),
        ({"samesite": "Strict", "domain": "example.com"}, "io=SID; Path=/; HttpOnly; SameSite=Strict; Domain=example.com"),
    ],
)
def test_cookie_header(cookie: Any, header: str | None) -> None:
    result = core(cookie=cookie).cookie_header("SID")
    assert result == (None if header is None else ("set-cookie", header))


def test_cookie_option_is_not_consumed() -> None:
    options = {"name": "x", "secure": True}
    c = core(cookie=options)
    assert c.cookie_header("A") == c.cookie_header("A")
    assert options == {"name": "x", "secure": True}


# -- compression -------------------------------------------------------------------------------------

LARGE = "4" + "roomcast " * 200


def test_small_response_is_not_compressed() -> None:
    response = core().text_response(request(headers={"accept-encoding": "gzip"}), "4small")
    assert (response.status, response.body) == (200, b"4small")
    assert response.headers == [("content-type", "text/plain; charset=UTF-8")]


def test_gzip() -> None:
    response = core().text_response(request(headers={"accept-encoding": "gzip, deflate, br"}), LARGE)
    assert ("content-encoding", "gzip") in response.headers
    assert gzip.decompress(response.body) == LARGE.encode()
    assert len(response.body) < len(LARGE)


def test_deflate() -> None:
    response = core().text_response(request(headers={"accept-encoding": "deflate"}), LARGE)
    assert ("content-encoding", "deflate") in response.headers
    assert zlib.decompress(response.body) == LARGE.encode()


@pytest.mark.parametrize(
    ("options", "accept"),
    [({}, ""), ({}, "br"), ({"http_compression": False}, "gzip"), ({"compression_threshold": 10**6}, "gzip")],
)
def test_not_compressed(options: dict[str, Any], accept: str) -> None:
    response = core(**options).text_response(request(headers={"accept-encoding": accept}), LARGE)
    assert response.body == LARGE.encode()
    assert not any(name == "content-encoding" for name, _ in response.headers)


def test_threshold_counts_utf8_bytes() -> None:
    text = "4" + "€" * 400  # 1201 bytes, 401 characters
    response = core().text_response(request(headers={"accept-encoding": "gzip"}), text)
    assert gzip.decompress(response.body).decode() == text


def test_text_response_carries_cors_headers_and_status() -> None:
    c = core(cors_allowed_origins="*")
    response = c.text_response(request(headers={"origin": "https://a.example"}), "ok", status=201)
    assert response.status == 201
    assert ("access-control-allow-origin", "https://a.example") in response.headers


def test_engine_config_defaults() -> None:
    cfg = EngineConfig()
    assert (cfg.ping_interval, cfg.ping_timeout, cfg.max_http_buffer_size) == (25.0, 20.0, 1_000_000)
    assert cfg.transports == ("polling", "websocket") and cfg.allow_upgrades and cfg.http_compression
    assert cfg.cors_allowed_origins is None and cfg.cookie is None and cfg.max_connections is None
