"""Binary attachments (roomcast.socketio.binary): taking buffers out and putting them back."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.exceptions import ProtocolError
from roomcast.socketio.binary import deconstruct, locate_placeholders, reconstruct


def ph(num: int) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


def test_deconstruct_numbers_buffers_depth_first() -> None:
    data = ["ev", {"a": [b"0", {"b": bytearray(b"1")}], "c": memoryview(b"2")}, (b"3", [[b"4"]])]
    stripped, buffers = deconstruct(data)
    assert stripped == ["ev", {"a": [ph(0), {"b": ph(1)}], "c": ph(2)}, [ph(3), [[ph(4)]]]]
    assert buffers == [b"0", b"1", b"2", b"3", b"4"]
    assert all(type(buffer) is bytes for buffer in buffers)


def test_deconstruct_same_buffer_twice_gives_two_attachments() -> None:
    buffer = b"same"
    stripped, buffers = deconstruct([buffer, buffer])
    assert stripped == [ph(0), ph(1)]
    assert buffers == [buffer, buffer]
    assert buffers[0] is buffer  # bytes are immutable: no copy


def test_deconstruct_without_buffers() -> None:
    data = ["ev", {"a": (1, None)}, "text"]
    assert deconstruct(data) == (["ev", {"a": [1, None]}, "text"], [])
    assert deconstruct(b"top") == (ph(0), [b"top"])
    assert deconstruct("plain") == ("plain", [])


def test_locate_and_reconstruct() -> None:
    data = ["ev", {"a": [ph(1), {"b": ph(0)}]}, ph(2), {"_placeholder": False, "num": 9}]
    slots = locate_placeholders(data, 3)
    assert [(type(container).__name__, key) for container, key in slots] == [("dict", "b"), ("list", 0), ("list", 2)]
    reconstruct(slots, [b"zero", b"one", b"two"])
    assert data == ["ev", {"a": [b"one", {"b": b"zero"}]}, b"two", {"_placeholder": False, "num": 9}]


def test_round_trip() -> None:
    data = ["ev", [[[b"deep"]]], {"k": {"k": b"x"}}, b""]
    stripped, buffers = deconstruct(data)
    reconstruct(locate_placeholders(stripped, len(buffers)), buffers)
    assert stripped == data


def test_locate_is_iterative() -> None:
    # Deeper than the recursion limit: no RecursionError (serializers stop at 512 levels, but a custom
    # serializer might not).
    data: Any = [ph(0)]
    for _ in range(5000):
        data = [data]
    slots = locate_placeholders(data, 1)
    reconstruct(slots, [b"bottom"])
    inner = data
    for _ in range(5000):
        inner = inner[0]
    assert inner == [b"bottom"]


@pytest.mark.parametrize(
    ("data", "count", "match"),
    [
        ([{"_placeholder": True}], 1, "malformed attachment placeholder"),
        ([{"_placeholder": True, "num": None}], 1, "num of type NoneType"),
        ([{"_placeholder": True, "nom": 0}], 1, "keys _placeholder, nom"),
        ([ph(3)], 3, "num 3 is out of range: the packet announced 3 attachments"),
        ([ph(0), [ph(0)]], 2, "attachment 0 is referenced by more than one placeholder"),
        ([ph(0)], 2, "attachment 1 of 2 has no placeholder"),
        ([], 1, "attachment 0 of 1 has no placeholder"),
    ],
)
def test_locate_refuses(data: Any, count: int, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        locate_placeholders(data, count)
