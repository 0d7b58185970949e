"""Run every ``benchmarks/bench_*.py`` module (or those named on the command line).

Each module exposes ``main(argv: list[str]) -> None`` and prints its figures.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def run(argv: list[str]) -> None:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    chosen = [a for a in argv if not a.startswith("-")] or names
    for name in chosen:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main([a for a in argv if a.startswith("-")])


if __name__ == "__main__":
    run(sys.argv[1:])
