"""Engine.IO server decisions that don't need I/O: request checks, handshake, CORS, cookies, compression.

The I/O layer turns an HTTP request or WebSocket handshake into a :class:`Request`, asks
:meth:`EngineCore.check` what it is, and acts on the answer. Every refusal is a :class:`Response`
built here, with the status and JSON body (``{"code": .., "message": ..}``) that the reference server
gives, so that clients see the same errors whatever serves them.
"""

from __future__ import annotations

import gzip
import json
import secrets
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import urlsplit

from .session import Session, SessionConfig

__all__ = [
    "EngineConfig",
    "Request",
    "Response",
    "Handshake",
    "Poll",
    "Post",
    "Preflight",
    "Upgrade",
    "Rejected",
    "Decision",
    "EngineCore",
    "ErrorCode",
]

OriginPolicy = Union[None, str, Sequence[str], Callable[[str], bool]]


class ErrorCode:
    """Error codes of the reference server's 400 responses, with their messages."""

    UNKNOWN_TRANSPORT = (0, "Transport unknown")
    UNKNOWN_SID = (1, "Session ID unknown")
    BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
    BAD_REQUEST = (3, "Bad request")
    FORBIDDEN = (4, "Forbidden")
    UNSUPPORTED_PROTOCOL_VERSION = (5, "Unsupported protocol version")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Engine.IO server options; defaults are the reference server's (Flask-SocketIO's names)."""

    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_http_buffer_size: int = 1_000_000
    max_send_buffer: int = 16_000_000
    transports: tuple[str, ...] = ("polling", "websocket")
    allow_upgrades: bool = True
    cookie: None | str | Mapping[str, Any] = None
    cors_allowed_origins: OriginPolicy = None
    cors_credentials: bool = True
    http_compression: bool = True
    compression_threshold: int = 1024
    max_connections: int | None = None
    #: ``callable(environ) -> bool`` (or an awaitable bool), asked before each handshake, before any
    #: session exists (Node's ``allowRequest``); False refuses it with 403. The I/O layer calls it.
    allow_request: Callable[[dict[str, Any]], Any] | None = None

    def session_config(self) -> SessionConfig:
        return SessionConfig(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            upgrade_timeout=self.upgrade_timeout,
            max_payload=self.max_http_buffer_size,
            max_send_buffer=self.max_send_buffer,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What the core needs to know of an HTTP request or a WebSocket handshake."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    websocket: bool = False
    scheme: str = "http"


@dataclass(slots=True, kw_only=True)
class Response:
    """An HTTP response to send as is."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Handshake:
    """Open a new session on ``transport``."""

    transport: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """A long-polling GET for ``session``."""

    session: Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Post:
    """A long-polling POST for ``session``."""

    session: Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Upgrade:
    """A WebSocket that wants to take over the polling ``session``."""

    session: Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Preflight:
    """A CORS preflight (``OPTIONS``) to answer with :meth:`EngineCore.preflight`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """Refuse the request; ``log`` is one line for the server log (None: not worth logging)."""

    response: Response
    log: str | None = None


Decision = Union[Handshake, Poll, Post, Upgrade, Preflight, Rejected]


def error_response(code: tuple[int, str], status: int = 400, message: str | None = None) -> Response:
    """The reference server's JSON error body.

    A ``message`` may quote a character or two of the offending input (``unknown Engine.IO packet type
    '<'``), so ``<``, ``>`` and ``&`` are written as JSON escapes and the body is marked ``nosniff``:
    whatever a browser makes of it, it never holds markup from the request.
    """
    body = json.dumps({"code": code[0], "message": message or code[1]}, separators=(",", ":"))
    if message:
        body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Response(
        status=status,
        body=body.encode(),
        headers=[("content-type", "application/json"), ("x-content-type-options", "nosniff")],
    )


class EngineCore:
    """The sessions table and every per-request decision of an Engine.IO server."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.session_config = config.session_config()
        self.sessions: dict[str, Session] = {}
        #: What every session id starts with: a worker's index under ``roomcast run --workers N``,
        #: which routes its clients' connections to it (see :mod:`roomcast.supervisor`).
        self.sid_prefix = ""
        self._upgrades = ["websocket"] if config.allow_upgrades and "websocket" in config.transports else []

    # -- decisions ------------------------------------------------------------------------------

    def check(self, request: Request) -> Decision:
        """Classify a request, or reject it as the reference server would."""
        q = request.query
        if q.get("EIO") != "4":
            return Rejected(
                response=error_response(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION),
                log="unsupported Engine.IO protocol version (only EIO=4 is served)",
            )
        transport = q.get("transport")
        if request.websocket:
            if transport != "websocket" or "websocket" not in self.config.transports:
                return Rejected(response=error_response(ErrorCode.UNKNOWN_TRANSPORT))
        elif transport not in self.config.transports:
            return Rejected(response=error_response(ErrorCode.UNKNOWN_TRANSPORT))
        elif transport != "polling":
            # A known transport on the wrong kind of request (websocket without the upgrade).
            return Rejected(response=error_response(ErrorCode.BAD_REQUEST))
        origin = request.headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, request):
            return Rejected(
                response=error_response(ErrorCode.BAD_REQUEST, message="Not an accepted origin."),
                log="refused a request from a foreign origin: allow it with the cors_allowed_origins option",
            )
        if request.method == "OPTIONS" and not request.websocket:
            return Preflight()
        sid = q.get("sid")
        if sid is None:
            if request.method != "GET":
                return Rejected(response=error_response(ErrorCode.BAD_HANDSHAKE_METHOD))
            limit = self.config.max_connections
            if limit is not None and len(self.sessions) >= limit:
                return Rejected(
                    response=error_response(ErrorCode.FORBIDDEN, status=503, message="Server full"),
                    log=f"refused a connection: max_connections ({limit}) reached",
                )
            return Handshake(transport=transport)
        session = self.sessions.get(sid)
        if session is None or session.closed:
            return Rejected(response=error_response(ErrorCode.UNKNOWN_SID))
        if request.websocket:
            if session.transport != "polling" or not self._upgrades:
                return Rejected(response=error_response(ErrorCode.BAD_REQUEST))
            return Upgrade(session=session)
        if session.transport != "polling":
            return Rejected(response=error_response(ErrorCode.BAD_REQUEST))
        if request.method == "GET":
            return Poll(session=session)
        if request.method == "POST":
            return Post(session=session)
        return Rejected(response=error_response(ErrorCode.BAD_REQUEST))

    def origin_allowed(self, origin: str, request: Request) -> bool:
        """Apply ``cors_allowed_origins``: same-origin by default, '*', a list, or a callable."""
        policy = self.config.cors_allowed_origins
        if policy is None:
            host = request.headers.get("host")
            parts = urlsplit(origin)
            secure = request.scheme in ("https", "wss")
            return host is not None and parts.netloc == host and (parts.scheme == "https") == secure
        if isinstance(policy, str):
            return policy == "*" or policy == origin
        if callable(policy):
            return bool(policy(origin))
        if not policy:  # an empty list turns the check (and the CORS headers) off
            return True
        return origin in policy

    # -- sessions -------------------------------------------------------------------------------

    def open_session(self, transport: str, now: float) -> Session:
        sid = self.sid_prefix + secrets.token_urlsafe(15)
        while sid in self.sessions:  # pragma: no cover - 120 random bits
            sid = self.sid_prefix + secrets.token_urlsafe(15)
        session = Session(sid, transport, self.session_config, now)
        self.sessions[sid] = session
        return session

    def handshake_packet(self, session: Session) -> str:
        return session.handshake(self._upgrades if session.transport == "polling" else [])

    def forget(self, session: Session) -> None:
        self.sessions.pop(session.sid, None)

    # -- response details -----------------------------------------------------------------------

    def cors_headers(self, request: Request) -> list[tuple[str, str]]:
        """The CORS headers for an allowed origin; none for a refused one (its 400 must not grant it
        access) nor when the policy is ``[]``."""
        origin = request.headers.get("origin")
        policy = self.config.cors_allowed_origins
        if origin is None or (policy is not None and not isinstance(policy, str) and not callable(policy)
                              and not policy):
            return []
        if not self.origin_allowed(origin, request):
            return []
        headers = [("access-control-allow-origin", origin), ("vary", "Origin")]
        if self.config.cors_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def preflight(self, request: Request) -> Response:
        headers = self.cors_headers(request)
        headers.append(("access-control-allow-methods", "OPTIONS, GET, POST"))
        wanted = request.headers.get("access-control-request-headers")
        if wanted:
            headers.append(("access-control-allow-headers", wanted))
        return Response(status=204, headers=headers)

    def cookie_header(self, sid: str) -> tuple[str, str] | None:
        """The ``set-cookie`` header of a handshake, when the ``cookie`` option asks for one."""
        cookie = self.config.cookie
        if not cookie:
            return None
        opts: dict[str, Any] = {"name": cookie} if isinstance(cookie, str) else dict(cookie)
        name = opts.pop("name", "io")
        parts = [f"{name}={sid}", f"Path={opts.pop('path', '/')}"]
        if opts.pop("httponly", True):
            parts.append("HttpOnly")
        same_site = opts.pop("samesite", "Lax")
        if same_site:
            parts.append(f"SameSite={same_site}")
        if opts.pop("secure", False):
            parts.append("Secure")
        for key, value in opts.items():
            parts.append(f"{key.replace('_', '-').title()}={value}")
        return ("set-cookie", "; ".join(parts))

    def text_response(self, request: Request, text: str, *, status: int = 200) -> Response:
        """A polling response: UTF-8 text, compressed when the client accepts it and it pays."""
        body = text.encode()
        headers = [("content-type", "text/plain; charset=UTF-8")]
        if self.config.http_compression and len(body) >= self.config.compression_threshold:
            accepted = request.headers.get("accept-encoding", "")
            if "gzip" in accepted:
                body = gzip.compress(body, compresslevel=5)
                headers.append(("content-encoding", "gzip"))
            elif "deflate" in accepted:
                body = zlib.compress(body, 5)
                headers.append(("content-encoding", "deflate"))
        headers.extend(self.cors_headers(request))
        return Response(status=status, body=body, headers=headers)
