"""``python -m bench``: see :mod:`bench.cli`."""

from __future__ import annotations

from .cli import main

main()
