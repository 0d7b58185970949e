"""Run every ``benchmarks/bench_*.py`` and ``stress_*.py`` module (or those named).

Each module exposes ``main(argv: list[str]) -> None`` and prints its figures.

    python -m benchmarks [BENCH ...] [--option=value ...]
    python -m benchmarks --help        # the benchmarks, and what they need
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

#: What a benchmark imports that ``pip install .`` does not bring.
_INSTALL = "pip install -e '.[test]'"


def _names() -> list[str]:
    here = Path(__file__).parent
    kinds = ("bench_", "stress_")
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith(kinds))


def _summary(name: str) -> str:
    # The first line of the module's docstring, read without importing it.
    path = Path(__file__).parent / f"{name}.py"
    text = path.read_text(encoding="utf-8").lstrip()
    if text.startswith('"""'):
        return text[3:].split("\n", 1)[0].strip().rstrip('"').strip()
    return ""


def _help() -> None:
    print(__doc__.strip())
    print("\nbenchmarks:")
    for name in _names():
        print(f"  {name:<26} {_summary(name)}")
    print(f"\nThey need the test extras (httpx, aiohttp, requests, ...): {_INSTALL}")


def run(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        _help()
        return 0
    names = _names()
    chosen = [a for a in argv if not a.startswith("-")] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"python -m benchmarks: no benchmark {unknown[0]!r} (see --help)", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(
                f"python -m benchmarks: {name} needs the {exc.name} package: {_INSTALL}",
                file=sys.stderr,
            )
            return 2
        module.main([a for a in argv if a.startswith("-")])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run(sys.argv[1:]))
    except BrokenPipeError:  # ``python -m benchmarks --help | head``
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing to flush
        sys.exit(1)
