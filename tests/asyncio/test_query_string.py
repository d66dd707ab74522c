"""The query string of an ASGI request, parsed as ``parse_qsl`` parses it (with or without its fast path)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from roomcast.asyncio.asgi import query_dict


def expected(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def test_engine_io_query() -> None:
    raw = b"EIO=4&transport=polling&t=PzXk1a2&sid=Qx-_0aZ9Qx-_0aZ9Qx-_"
    assert query_dict({"query_string": raw}) == {
        "EIO": "4", "transport": "polling", "t": "PzXk1a2", "sid": "Qx-_0aZ9Qx-_0aZ9Qx-_",
    }


def test_edge_cases_match_parse_qsl() -> None:
    for raw in [b"", b"&", b"a", b"a=", b"=b", b"a=1&a=2", b"a==b", b"a=1&&b=2", b"a;b=c", b"name=a%20b",
                b"name=a+b", b"a%3Db=c", b"\xe9=\xff"]:
        assert query_dict({"query_string": raw}) == expected(raw), raw


def test_missing_query_string() -> None:
    assert query_dict({}) == {}


@given(st.text(alphabet="ab=&%+;2F0\u00e9 ", max_size=30))
def test_any_query_matches_parse_qsl(text: str) -> None:
    raw = text.encode("latin-1")
    assert query_dict({"query_string": raw}) == expected(raw)
