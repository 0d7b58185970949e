"""Benchmarks for resume; run them all with ``python -m benchmarks`` (or ``nox -s benchmarks``)."""
