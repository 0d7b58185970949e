"""DER export and import: to_der / from_der operations per second, and the fuzzing rate.

Run: ``python -m benchmarks bench_der [--seconds=S]``. Per TLS version it prints:

* ``to_der`` of an ``ssl.SSLSession`` handle (``i2d_SSL_SESSION``; a fresh handle
  each time, since a handle caches its bytes), and of a DER-born handle;
* ``from_der`` + ``free`` (``d2i_SSL_SESSION``, the sanity checks, ``SSL_SESSION_free``);
* the rate of the fuzz test's inputs (tests/unit/test_der_fuzz.py's mutator).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path


def rate(func: Callable[[], object], seconds: float) -> float:
    """Calls of *func* per second, over about *seconds*."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            func()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main(argv: list[str]) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="bench_der")
    parser.add_argument("--seconds", type=float, default=1.0)
    args, _ = parser.parse_known_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from corehelpers import handshake, make_pki
    from test_der_fuzz import Mutator, run

    from resume import SessionHandle

    seeds = []
    for version in ("1.2", "1.3"):
        pki = make_pki(version)
        session, _ = handshake(pki)
        native = SessionHandle.from_ssl(session)
        der = native.to_der()
        native.free()
        seeds.append(der)
        imported = SessionHandle.from_der(der)

        def export_ssl(session: object = session) -> None:
            h = SessionHandle.from_ssl(session)  # type: ignore[arg-type]
            h.to_der()
            h.free()

        def export_native(payload: object = imported.payload) -> None:
            payload.to_der()  # type: ignore[attr-defined]

        def import_free(der: bytes = der) -> None:
            SessionHandle.from_der(der).free()

        print(f"TLS {version}: session DER is {len(der)} bytes")
        for label, func in (
            ("to_der (ssl.SSLSession, new handle each)", export_ssl),
            ("to_der (DER-born session)", export_native),
            ("from_der + free", import_free),
        ):
            print(f"  {label:<42} {rate(func, args.seconds):>10,.0f}/s")
        imported.free()
    start = time.perf_counter()
    tally = run(seeds, 0, 20_000)
    elapsed = time.perf_counter() - start
    print(
        f"fuzz (test_der_fuzz mutator, fixed seed): {20_000 / elapsed:,.0f} inputs/s "
        f"({tally['refused']} refused, {tally['accepted']} accepted and round-tripped)"
    )
    mutate = Mutator(seeds, random.Random(0))
    print(f"  of which generating inputs alone: {rate(mutate, args.seconds / 2):,.0f}/s")
