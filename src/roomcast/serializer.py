"""The JSON serializer interface, and its orjson and standard-library implementations.

Everything in Roomcast that needs JSON goes through a :class:`Serializer`, so that an application can
swap in another module (Flask-SocketIO's ``json=`` argument) and so that the fast one (orjson) is used
when it is installed. All implementations keep the same contract, which the codecs rely on:

``dumps(obj)``
    Compact JSON text (no spaces, non-ASCII characters kept as they are). Raises :class:`TypeError` when
    ``obj`` holds ``bytes``, ``bytearray`` or ``memoryview`` anywhere: the Socket.IO encoder first tries to
    serialize data as is and only looks for binary attachments when that fails, which keeps the common
    (text) case to a single C call. Raises :class:`ValueError` for NaN and infinities: the JSON grammar
    has no such numbers (orjson would silently write ``null``, stdlib json would write ``NaN``).

``loads(text)``
    Parses JSON text (``str``, or UTF-8 ``bytes``). Raises :class:`ValueError`, and nothing else, for
    anything that is not strict JSON or that would be unsafe to hand to an application: the ``NaN`` and
    ``Infinity`` literals, numbers too large for a float (``1e99999``), and containers nested deeper than
    :data:`MAX_DEPTH`. The depth limit protects the code that walks decoded data (placeholders, handlers)
    from recursion errors, and is the same whichever implementation parses.

Known differences: orjson rejects escaped lone surrogates
(``"\\ud800"``) where stdlib json accepts them; it reads integers beyond 64 bits as floats; it writes
``1e-7`` where stdlib writes ``1e-07``; and it serializes some types stdlib refuses (dataclasses, dates).
"""

from __future__ import annotations

import json
import math
from types import ModuleType
from typing import Any, Protocol

__all__ = [
    "MAX_DEPTH",
    "Serializer",
    "StdlibSerializer",
    "OrjsonSerializer",
    "ModuleSerializer",
    "stdlib_serializer",
    "orjson_serializer",
    "default_serializer",
    "from_module",
]

#: Deepest nesting of arrays and objects that ``loads`` accepts (``[]`` has depth 1).
MAX_DEPTH = 512

_BUFFER_TYPES = (bytes, bytearray, memoryview)


class Serializer(Protocol):
    """What Roomcast needs from a JSON implementation (see the module docstring for the contract)."""

    def dumps(self, obj: Any) -> str:
        """Serialize ``obj`` to compact JSON text."""
        ...  # pragma: no cover - protocol

    def loads(self, text: str | bytes) -> Any:
        """Parse JSON text, raising ``ValueError`` on anything invalid."""
        ...  # pragma: no cover - protocol


def _too_deep(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``obj`` nests lists and dicts more than ``limit`` levels deep.

    Walks one level at a time with no recursion, so it is safe on any input and stops at ``limit``
    levels whatever the data holds (even a cycle).
    """
    level = [obj]
    for _ in range(limit):
        below: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                below.extend(v for v in node.values() if isinstance(v, (list, dict)))
            elif isinstance(node, list):
                below.extend(v for v in node if isinstance(v, (list, dict)))
        if not below:
            return False
        level = below
    return True


def _maybe_too_deep(text: str | bytes, obj: Any) -> bool:
    """Cheap pre-check before :func:`_too_deep`: depth can't exceed the number of opening brackets."""
    if len(text) <= MAX_DEPTH:
        return False
    if isinstance(text, str):
        opening = text.count("[") + text.count("{")
    else:
        opening = text.count(b"[") + text.count(b"{")
    return opening > MAX_DEPTH and _too_deep(obj)


def _find_bad_value(obj: Any) -> Exception | None:
    """The error to raise for the first value in ``obj`` that JSON can't represent faithfully, or None.

    Looks inside lists, tuples and dict values (iteratively, bounded by :data:`MAX_DEPTH` so that a
    cycle ends the walk): a binary buffer is a ``TypeError``, a non-finite float or too deep a nesting
    a ``ValueError``.
    """
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return ValueError(f"out of range float value {value!r} is not JSON compliant")
        elif isinstance(value, _BUFFER_TYPES):
            return TypeError(f"binary value of type {type(value).__name__} is not JSON serializable")
        elif isinstance(value, (list, tuple, dict)):
            if depth >= MAX_DEPTH:
                return ValueError(f"data nested deeper than {MAX_DEPTH} levels")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return None


def _has_nonfinite(obj: Any) -> bool:
    """Whether ``obj`` (already known to be acyclic and serializable) holds a NaN or an infinity."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range of a 64-bit float")
    return value


class StdlibSerializer:
    """The standard library's :mod:`json`, held to the shared contract (the fallback when orjson is absent)."""

    __slots__ = ("_encode", "_encode_ascii", "_decode")

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
        self._encode_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        decoder = json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject_constant)
        self._decode = decoder.decode

    def dumps(self, obj: Any) -> str:
        """Serialize ``obj`` (stdlib ``TypeError`` on bytes, ``ValueError`` on NaN and cycles)."""
        try:
            text: str = self._encode(obj)
        except RecursionError:
            raise ValueError("data nested too deeply to serialize") from None
        if not text.isascii():
            # A lone surrogate (which stdlib loads produces from "\ud800") can't be encoded to UTF-8 on
            # the way out; escaping every non-ASCII character keeps the text valid and equivalent.
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = self._encode_ascii(obj)
        return text

    def loads(self, text: str | bytes) -> Any:
        """Parse strict JSON; ``bytes`` must be UTF-8 (as with orjson, unlike stdlib's sniffing)."""
        try:
            if not isinstance(text, str):
                text = text.decode("utf-8")
            obj = self._decode(text)
        except RecursionError:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        if _maybe_too_deep(text, obj):
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        return obj


class _BinaryValue(TypeError):
    """Raised by orjson's ``default`` hook to tell a binary buffer from other unsupported types."""


def _orjson_default(obj: Any) -> Any:
    if isinstance(obj, _BUFFER_TYPES):
        raise _BinaryValue(f"binary value of type {type(obj).__name__} is not JSON serializable")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class OrjsonSerializer:
    """orjson, held to the shared contract.

    What orjson refuses but stdlib json accepts (dict keys that are not strings, integers beyond 64 bits,
    nesting deeper than 254 levels) is handed to :class:`StdlibSerializer`, so both produce the same text.
    NaN is looked for only in lists, tuples and dicts (not inside dataclasses, which stdlib refuses).
    """

    __slots__ = ("_dumps", "_loads", "_fallback")

    def __init__(self, module: ModuleType) -> None:
        self._dumps = module.dumps
        self._loads = module.loads
        self._fallback = StdlibSerializer()

    def dumps(self, obj: Any) -> str:
        """Serialize ``obj`` with orjson; see the class docstring for what falls back to stdlib json."""
        try:
            out: bytes = self._dumps(obj, default=_orjson_default)
        except TypeError as exc:
            if isinstance(exc.__cause__, _BinaryValue):
                raise exc.__cause__ from None
            return self._fallback.dumps(obj)
        text = out.decode()
        # orjson writes NaN and infinities as null; only then is the walk worth its cost. (Searched in
        # the str: ``in`` on bytes costs four times as much, through the buffer protocol.)
        if "null" in text and _has_nonfinite(obj):
            raise ValueError("out of range float values are not JSON compliant")
        return text

    def loads(self, text: str | bytes) -> Any:
        """Parse strict JSON (orjson's own errors are ``ValueError`` subclasses)."""
        obj = self._loads(text)
        if len(text) > MAX_DEPTH and _maybe_too_deep(text, obj):
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        return obj


class ModuleSerializer:
    """Any module with ``dumps`` and ``loads`` (Flask-SocketIO's ``json=`` argument), held to the contract.

    We can't know what such a module does with bytes or NaN (simplejson, for one, decodes bytes to text),
    so both directions check the data with a walk in Python. That costs time, which is the price of
    choosing a custom module; the built-in serializers don't pay it.
    """

    __slots__ = ("module",)

    def __init__(self, module: Any) -> None:
        self.module = module

    def dumps(self, obj: Any) -> str:
        """Serialize with the module, after checking ``obj`` for binary values and non-finite floats."""
        problem = _find_bad_value(obj)
        if problem is not None:
            raise problem
        out = self.module.dumps(obj)
        if isinstance(out, (bytes, bytearray)):
            out = out.decode()
        if not isinstance(out, str):
            raise TypeError(f"{self.module!r}.dumps() returned {type(out).__name__}, not str")
        return out

    def loads(self, text: str | bytes) -> Any:
        """Parse with the module; any failure, or data the contract forbids, becomes ``ValueError``."""
        try:
            if not isinstance(text, str):
                text = text.decode("utf-8")  # the contract's encoding, whatever the module would sniff
            obj = self.module.loads(text)
        except Exception as exc:  # a foreign module may raise anything; callers expect ValueError
            raise ValueError(f"invalid JSON: {exc}") from exc
        problem = _find_bad_value(obj)
        if problem is not None:
            raise ValueError(f"invalid JSON: {problem}")
        return obj


def _make_orjson_serializer() -> OrjsonSerializer | None:
    try:
        import orjson
    except ImportError:
        return None
    return OrjsonSerializer(orjson)


stdlib_serializer: StdlibSerializer = StdlibSerializer()
orjson_serializer: OrjsonSerializer | None = _make_orjson_serializer()
#: The serializer used when none is given: orjson when importable, else stdlib json.
default_serializer: Serializer = orjson_serializer or stdlib_serializer


def from_module(mod: Any) -> Serializer:
    """Wrap a Flask-SocketIO style ``json=`` module (anything with ``dumps`` and ``loads``).

    The standard ``json`` module and ``orjson`` map to the built-in serializers, ``None`` means the
    default, and the serializers of this module are returned as they are. Anything else is wrapped in
    :class:`ModuleSerializer`, even an object with the :class:`Serializer` shape, since what it does
    with bytes and NaN is unknown.
    """
    if mod is None:
        return default_serializer
    if mod is json:
        return stdlib_serializer
    if getattr(mod, "__name__", None) == "orjson" and isinstance(mod, ModuleType):
        return OrjsonSerializer(mod)
    if isinstance(mod, (StdlibSerializer, OrjsonSerializer, ModuleSerializer)):
        return mod
    if not callable(getattr(mod, "dumps", None)) or not callable(getattr(mod, "loads", None)):
        raise TypeError(f"{mod!r} has no dumps() and loads() functions")
    return ModuleSerializer(mod)
