"""Binary attachments of Socket.IO packets: taking buffers out, and putting them back.

The spec's packet format is ``<type>[<# of binary attachments>-]...[JSON payload without binary]`` plus
the attachments, each sent as its own Engine.IO binary message. In the JSON, each buffer is replaced by
``{"_placeholder":true,"num":N}``, N counting the buffers in depth-first order::

    51-["hello",{"_placeholder":true,"num":0}]   +   <Buffer 01 02 03>

:func:`deconstruct` is the sending side. On the receiving side, :func:`locate_placeholders` checks the
placeholders as soon as the text part arrives (so a bad packet is refused before its attachments are
buffered) and remembers where each one sits; :func:`reconstruct` fills them in once all buffers came.
"""

from __future__ import annotations

from typing import Any, Union

from ..exceptions import ProtocolError

__all__ = ["Slot", "deconstruct", "locate_placeholders", "reconstruct"]

_BUFFER_TYPES = (bytes, bytearray, memoryview)

#: Where a placeholder sits: the list or dict that holds it, and its index or key there.
Slot = tuple[Any, Union[int, str]]


def deconstruct(data: Any) -> tuple[Any, list[bytes]]:
    """Return a copy of ``data`` with each buffer replaced by a placeholder, and the buffers in order.

    Lists, tuples and dict values are searched at any depth; the caller's data is not modified.
    ``bytearray`` and ``memoryview`` are copied to ``bytes``, so later changes to them by the
    application can't alter a packet already queued for sending.
    """
    buffers: list[bytes] = []

    def walk(value: Any) -> Any:
        if isinstance(value, _BUFFER_TYPES):
            buffers.append(value if type(value) is bytes else bytes(value))
            return {"_placeholder": True, "num": len(buffers) - 1}
        if isinstance(value, (list, tuple)):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        return value

    return walk(data), buffers


def _placeholder_num(placeholder: dict[str, Any], count: int) -> int:
    """Validate one placeholder object and return its attachment number."""
    num = placeholder.get("num")
    if len(placeholder) != 2 or type(num) is not int:
        keys = ", ".join(sorted(placeholder))[:40]
        raise ProtocolError(
            'malformed attachment placeholder: expected {"_placeholder":true,"num":<integer>}, '
            f"got an object with keys {keys}"
            + ("" if "num" not in placeholder else f" and num of type {type(num).__name__}")
        )
    if not 0 <= num < count:
        raise ProtocolError(
            f"attachment placeholder num {num if abs(num) < 10**15 else '(huge)'} is out of range: "
            f"the packet announced {count} attachment{'' if count == 1 else 's'}"
        )
    return num


def locate_placeholders(data: Any, count: int) -> list[Slot]:
    """Find the placeholders in decoded ``data``; return slot ``n`` for attachment ``n``.

    Raises :class:`ProtocolError` if a placeholder is malformed, points past ``count``, is used twice,
    or if an attachment has no placeholder: every announced attachment must be referenced exactly once,
    as the reference encoder does. Like it, an object counts as a placeholder when its ``_placeholder``
    member is ``true``; other objects are plain data. The walk is iterative, so depth is no concern.
    """
    slots: list[Slot | None] = [None] * count
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, dict):
                if value.get("_placeholder") is True:
                    num = _placeholder_num(value, count)
                    if slots[num] is not None:
                        raise ProtocolError(f"attachment {num} is referenced by more than one placeholder")
                    slots[num] = (node, key)
                else:
                    stack.append(value)
            elif isinstance(value, list):
                stack.append(value)
    found: list[Slot] = []
    for num, slot in enumerate(slots):
        if slot is None:
            raise ProtocolError(f"attachment {num} of {count} has no placeholder in the packet")
        found.append(slot)
    return found


def reconstruct(slots: list[Slot], buffers: list[bytes]) -> None:
    """Put ``buffers[n]`` where placeholder ``n`` was (``slots`` from :func:`locate_placeholders`)."""
    for (container, key), buffer in zip(slots, buffers):
        container[key] = buffer
