"""``roomcast run`` and ``socketio.run`` tune the cyclic garbage collector before serving
(roomcast.cli.tune_gc); ROOMCAST_GC=default keeps Python's settings. Each case runs in a child
interpreter, so the test process keeps its own collector settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from roomcast.cli import GC_THRESHOLD

PROBE = (
    "import gc, json; default = gc.get_threshold(); from roomcast.cli import tune_gc; tune_gc(); "
    "print(json.dumps({'default': default, 'now': gc.get_threshold(), 'frozen': gc.get_freeze_count()}))"
)


def probe(**env: str) -> dict[str, list[int] | int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True, timeout=30)
    result: dict[str, list[int] | int] = json.loads(out.stdout)
    return result


def test_tune_gc_freezes_startup_objects_and_raises_the_first_threshold() -> None:
    result = probe(ROOMCAST_GC="")
    default, now = result["default"], result["now"]
    assert isinstance(default, list) and isinstance(now, list)
    assert now[0] == max(default[0], GC_THRESHOLD)
    assert now[1:] == default[1:]
    assert isinstance(result["frozen"], int) and result["frozen"] > 1000  # the modules imported so far


@pytest.mark.parametrize("value", ["default", "DEFAULT"])
def test_roomcast_gc_default_keeps_pythons_settings(value: str) -> None:
    result = probe(ROOMCAST_GC=value)
    assert result["now"] == result["default"]
    assert result["frozen"] == 0
