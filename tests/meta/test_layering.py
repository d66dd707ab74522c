"""The layering DESIGN.md promises: the protocol cores import no I/O, and the public names are pinned."""

from __future__ import annotations

import ast
import pathlib

import roomcast

SRC = pathlib.Path(roomcast.__file__).parent
SANS_IO = ["engineio", "socketio"]
#: Sans-I/O modules inside packages that also do I/O (checked with the same rule).
SANS_IO_MODULES = {"socketio": [SRC / "adapters" / "messages.py"]}
FORBIDDEN = {"asyncio", "uvicorn", "flask", "redis", "websockets", "httpx", "threading", "socket", "a2wsgi"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:
            # relative imports out of the package: only roomcast's own sans-I/O modules are allowed
            names.add("roomcast." + node.module.split(".")[0])
    return names


def test_sans_io_packages_import_no_io() -> None:
    checked = 0
    for package in SANS_IO:
        for path in [*(SRC / package).glob("*.py"), *SANS_IO_MODULES.get(package, [])]:
            imported = _imports(path)
            bad = imported & FORBIDDEN
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"
            outside = {n for n in imported if n.startswith("roomcast.")} - {
                "roomcast.exceptions",
                "roomcast.serializer",
                "roomcast.engineio",
                "roomcast.socketio",
            }
            assert not outside, f"{path.relative_to(SRC)} reaches into {sorted(outside)}"
            checked += 1
    assert checked >= 5


def test_public_names_are_exported() -> None:
    for name in roomcast.__all__:
        assert getattr(roomcast, name) is not None
    for name in ("AsyncServer", "ASGIApp", "AsyncNamespace", "EngineServer", "ConnectionRefusedError"):
        assert name in roomcast.__all__
