"""The JSON serializer contract (roomcast.serializer), checked on every implementation."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast import serializer as serializer_module
from roomcast.serializer import (
    MAX_DEPTH,
    ModuleSerializer,
    OrjsonSerializer,
    StdlibSerializer,
    default_serializer,
    from_module,
    orjson_serializer,
    stdlib_serializer,
)

# A Flask-SocketIO style json= module: plain functions, nothing Roomcast knows about.
compact_json_module = SimpleNamespace(
    dumps=functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False), loads=json.loads
)


def _require_orjson() -> Any:
    if orjson_serializer is None:
        if os.environ.get("CI") == "true":
            pytest.fail("orjson is not installed (it is in the test extras)")
        pytest.skip("orjson is not installed")
    return orjson_serializer


@pytest.fixture(params=["orjson", "stdlib", "module"])
def ser(request: pytest.FixtureRequest) -> Any:
    if request.param == "orjson":
        return _require_orjson()
    if request.param == "stdlib":
        return stdlib_serializer
    return from_module(compact_json_module)


def nested_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- dumps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        (None, "null"),
        ([], "[]"),
        ({"a": [1, "é", True, None, 1.5]}, '{"a":[1,"é",true,null,1.5]}'),
        (["chat", {"user": "bob", "text": "日本語 ✓ 🎉"}], '["chat",{"user":"bob","text":"日本語 ✓ 🎉"}]'),
        (("tuple", 2), '["tuple",2]'),
        ("quote\" and \\ and \n", '"quote\\" and \\\\ and \\n"'),
        ({"nullable": "null"}, '{"nullable":"null"}'),
        ({1: "int key", None: "None key", 1.5: "float key"}, '{"1":"int key","null":"None key","1.5":"float key"}'),
        (2**70, str(2**70)),
    ],
)
def test_dumps_is_compact_and_the_same_everywhere(ser: Any, obj: Any, text: str) -> None:
    assert ser.dumps(obj) == text


@pytest.mark.parametrize(
    ("obj", "text"),
    [("\ud800", '"\\ud800"'), (["é", "\udfff"], '["\\u00e9","\\udfff"]'), ("é", '"é"')],
)
def test_dumps_escapes_lone_surrogates(obj: Any, text: str) -> None:
    # stdlib loads turns "\ud800" into a lone surrogate, which can't be encoded to UTF-8 on the way
    # out: such text is written with every non-ASCII character escaped instead.
    for ser in (_require_orjson(), stdlib_serializer):
        assert ser.dumps(obj) == text
        assert stdlib_serializer.loads(ser.dumps(obj)) == obj


@pytest.mark.parametrize("buffer", [b"\x01", bytearray(b"\x01"), memoryview(b"\x01"), b""])
@pytest.mark.parametrize("wrap", [lambda b: b, lambda b: ["x", {"deep": [1, b]}], lambda b: ({"k": b},)])
def test_dumps_raises_type_error_on_binary_anywhere(ser: Any, buffer: Any, wrap: Any) -> None:
    with pytest.raises(TypeError):
        ser.dumps(wrap(buffer))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_dumps_refuses_non_finite_floats(ser: Any, value: float) -> None:
    with pytest.raises(ValueError):
        ser.dumps(["x", {"n": [None, value]}])


def test_dumps_raises_type_error_on_unserializable(ser: Any) -> None:
    with pytest.raises(TypeError, match="set"):
        ser.dumps(["x", {1, 2}])


def test_dumps_refuses_cycles_with_value_error(ser: Any) -> None:
    cycle: list[Any] = ["x"]
    cycle.append(cycle)
    with pytest.raises(ValueError):
        ser.dumps(cycle)


def test_dumps_of_deep_data() -> None:
    # orjson stops at 254 levels and hands over to stdlib json; stdlib fails past the recursion limit.
    for ser in (_require_orjson(), stdlib_serializer):
        assert ser.dumps(nested_list(300)) == "[" * 300 + "]" * 300
        with pytest.raises(ValueError, match="nested too deeply"):
            ser.dumps(nested_list(sys.getrecursionlimit() + 10))


def test_module_serializer_checks_depth_on_dumps() -> None:
    ser = from_module(compact_json_module)
    assert ser.dumps(nested_list(MAX_DEPTH)) == "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(ValueError, match="deeper than 512"):
        ser.dumps(nested_list(MAX_DEPTH + 1))


def test_module_serializer_decodes_bytes_output() -> None:
    orjson = pytest.importorskip("orjson")
    ser = from_module(SimpleNamespace(dumps=orjson.dumps, loads=orjson.loads))
    assert isinstance(ser, ModuleSerializer)
    assert ser.dumps({"a": "é"}) == '{"a":"é"}'


def test_module_serializer_requires_text_output() -> None:
    ser = from_module(SimpleNamespace(dumps=lambda obj: 42, loads=json.loads))
    with pytest.raises(TypeError, match="returned int, not str"):
        ser.dumps([1])


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or abs(f) >= 1e-4)
)
ordinary_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


@settings(max_examples=300, deadline=None)
@given(ordinary_json)
def test_orjson_and_stdlib_write_the_same_text(obj: Any) -> None:
    orjson_ser = _require_orjson()
    text = stdlib_serializer.dumps(obj)
    assert orjson_ser.dumps(obj) == text
    assert from_module(compact_json_module).dumps(obj) == text


def test_small_floats_differ_only_in_spelling() -> None:
    # Known and harmless: orjson writes 1e-7 where Python's repr writes 1e-07; both parse back the same.
    orjson_ser = _require_orjson()
    for value in (1e-7, 1e-5, 6.8e-6):
        assert orjson_ser.loads(stdlib_serializer.dumps(value)) == value
        assert stdlib_serializer.loads(orjson_ser.dumps(value)) == value


# -- loads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[NaN]",
        "Infinity",
        '{"a":-Infinity}',
        "1e99999",
        "[-1e99999]",
        "",
        "[1,]",
        "{'a':1}",
        "[1] x",
        '"\x01"',  # raw control character in a string
        "\ufeff[]",
    ],
)
def test_loads_rejects_with_value_error(ser: Any, text: str) -> None:
    with pytest.raises(ValueError):
        ser.loads(text)
    with pytest.raises(ValueError):
        ser.loads(text.encode("utf-8"))


@pytest.mark.parametrize("opening", ["[", '{"k":'])
def test_loads_depth_limit_is_512_everywhere(ser: Any, opening: str) -> None:
    closing = "]" if opening == "[" else "}"

    def text(depth: int) -> str:
        return opening * (depth - 1) + "[]" + closing * (depth - 1)

    assert ser.loads(text(MAX_DEPTH)) is not None
    for depth in (MAX_DEPTH + 1, 1100, 100_000):
        with pytest.raises(ValueError):
            ser.loads(text(depth))
        with pytest.raises(ValueError):
            ser.loads(text(depth).encode())


def test_loads_many_shallow_containers(ser: Any) -> None:
    # More than 512 opening brackets but only 2 levels deep: fine.
    many: list[Any] = [[]] * 600 + [{"a": {}}] * 600
    assert ser.loads(json.dumps(many)) == many
    assert ser.loads('"' + "[" * 1000 + '"') == "[" * 1000


def test_loads_bytes_must_be_utf8(ser: Any) -> None:
    assert ser.loads('["é"]'.encode()) == ["é"]
    with pytest.raises(ValueError):
        ser.loads(b'["\xff"]')
    with pytest.raises(ValueError):
        ser.loads('["é"]'.encode("utf-16"))


def test_loads_plain_values(ser: Any) -> None:
    assert ser.loads('{"a":[1,2.5,true,false,null,"x"]}') == {"a": [1, 2.5, True, False, None, "x"]}
    assert ser.loads(" 12 ") == 12


def test_module_serializer_turns_any_failure_into_value_error() -> None:
    def broken(text: Any) -> Any:
        raise KeyError("boom")

    ser = from_module(SimpleNamespace(dumps=json.dumps, loads=broken))
    with pytest.raises(ValueError, match="boom"):
        ser.loads("[]")


@settings(max_examples=200, deadline=None)
@given(ordinary_json)
def test_loads_inverts_dumps(obj: Any) -> None:
    for ser in (_require_orjson(), stdlib_serializer, from_module(compact_json_module)):
        text = ser.dumps(obj)
        # orjson reads integers beyond 64 bits as floats; JSON peers (JavaScript) can't send them exactly.
        assert ser.loads(text) == json.loads(text)


# -- choosing a serializer --------------------------------------------------------------------------


def test_default_is_orjson_when_importable() -> None:
    _require_orjson()
    assert isinstance(default_serializer, OrjsonSerializer)


def test_fallback_to_stdlib_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` raise ImportError
    assert serializer_module._make_orjson_serializer() is None


def test_from_module() -> None:
    assert from_module(json) is stdlib_serializer
    assert from_module(None) is default_serializer
    assert from_module(stdlib_serializer) is stdlib_serializer
    wrapped = from_module(compact_json_module)
    assert isinstance(wrapped, ModuleSerializer)
    assert from_module(wrapped) is wrapped
    orjson = pytest.importorskip("orjson")
    assert isinstance(from_module(orjson), OrjsonSerializer)
    assert isinstance(StdlibSerializer(), StdlibSerializer)


@pytest.mark.parametrize("mod", [object(), SimpleNamespace(dumps=json.dumps), SimpleNamespace(dumps=1, loads=2)])
def test_from_module_needs_dumps_and_loads(mod: Any) -> None:
    with pytest.raises(TypeError, match="dumps"):
        from_module(mod)
