"""Shared test helpers: requirement checks, server processes, the Node client peer."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (tests/helpers/ is two levels below it)."""
