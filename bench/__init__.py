"""Roomcast's benchmark: Roomcast and its peers side by side, in one run (``python -m bench``).

Each server runs alone in its own process pinned to one core; one Node load generator
(``loadgen.js``), pinned to the other core, speaks the Socket.IO wire protocol to it. See
docs/benchmarks.md for what each scenario measures and how to read the figures.

Modules: :mod:`bench.servers` (the servers and their processes), :mod:`bench.peers` (the separate
virtualenv for the Python peers), :mod:`bench.scenarios` (driving the load generator),
:mod:`bench.report` (tables and ratios), :mod:`bench.cli` (the command line).
"""
