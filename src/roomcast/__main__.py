"""``python -m roomcast``: the ``roomcast`` command (see :mod:`roomcast.cli`)."""

from .cli import main

main()
