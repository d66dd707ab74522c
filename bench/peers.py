"""The Python peers' own virtualenv, ``.venv-bench``, made on first use.

Flask-SocketIO, gevent and python-socketio's server live apart from the project's ``.venv`` so that
the test suite can never import them by accident (Roomcast's Flask facade must not lean on
Flask-SocketIO being installed). A stamp inside the virtualenv holds the requirement list it was
made from; when the list below changes, the next run reinstalls.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bench"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".bench-requirements"

# The peers the issue names (Flask-SocketIO 5.x with gevent and with threading, python-socketio
# 5.x on uvicorn) and what they need to serve WebSocket in each mode.
REQUIREMENTS = (
    "python-socketio>=5.11,<6",
    "python-engineio>=4.9,<5",
    "flask-socketio>=5.3,<6",
    "flask>=2.3",
    "gevent>=23.9",
    "gevent-websocket>=0.10",
    "simple-websocket>=1.0",
    "uvicorn[standard]>=0.30",
)

INSTALL_TIMEOUT = 900.0


class PeersUnavailable(RuntimeError):
    """The peers' virtualenv could not be made; the peers that need it are skipped."""


def ensure(log: Callable[[str], None] = print) -> Path:
    """The peers' Python, after making or updating ``.venv-bench`` if needed."""
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return PYTHON
    try:
        if not PYTHON.exists():
            log(f"bench: creating {VENV.relative_to(ROOT)} for the Python peers (once)")
            # Run from the project's virtualenv, venv builds on the same base interpreter.
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120,
                           capture_output=True, text=True)
            # Keep git away from it without touching the project's .gitignore.
            (VENV / ".gitignore").write_text("*\n")
        log("bench: installing the Python peers into .venv-bench: " + ", ".join(REQUIREMENTS))
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
            check=True,
            timeout=INSTALL_TIMEOUT,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-5:]
        raise PeersUnavailable(f"{' '.join(map(str, exc.cmd[:4]))}... failed: {' | '.join(tail)}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeersUnavailable(str(exc)) from exc
    STAMP.write_text(wanted)
    return PYTHON
