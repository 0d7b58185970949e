"""Core benchmarks: cache round trips, indexed flush, and memory per cached handle.

Targets (issue 2): add + get1 + free >= 300,000 round trips/s; flush removing 1,000
expired entries from a cache of 100,000 <= 5 ms; <= 600 bytes per cached handle
beyond the ssl.SSLSession itself.
"""

from __future__ import annotations

import gc
import ssl
import statistics
import sys
import time
import tracemalloc

from resume import SessionCache, SessionHandle
from resume.testing import FakeClock, ThrowawayPKI, loopback_handshake


def _real_session() -> ssl.SSLSession:
    pki = ThrowawayPKI()
    session, _ = loopback_handshake(pki.client_context("1.2"), pki.server_context("1.2"))
    return session


def bench_round_trips(session: ssl.SSLSession, n: int = 300_000) -> float:
    """add + get1 + free on a default cache (evicting once full); returns ops/s."""
    cache = SessionCache()
    handles = [SessionHandle.from_ssl(session) for _ in range(n)]
    keys = [(f"host{i % 50_000}.example", 443) for i in range(n)]
    gc.disable()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for key, h in zip(keys, handles, strict=True):
            cache.add(key, h)
            got = cache.get1(key)
            got.free()  # type: ignore[union-attr]
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        gc.enable()
    print(f"  run: {n / elapsed:,.0f} round trips/s wall clock, {n / cpu:,.0f} per CPU-second")
    cache.clear()
    for h in handles:
        h.free()
    return n / elapsed


def bench_lifecycle(session: ssl.SSLSession, n: int = 200_000) -> float:
    """from_ssl + add + free (caller) + take + free, the TLS 1.3 ticket path; returns ops/s."""
    cache = SessionCache()
    key = ("example.org", 443)
    start = time.perf_counter()
    for _ in range(n):
        h = SessionHandle.from_ssl(session)
        cache.add(key, h)
        h.free()
        got = cache.take(key)
        got.free()  # type: ignore[union-attr]
    return n / (time.perf_counter() - start)


def bench_flush(session: ssl.SSLSession, total: int = 100_000, expired: int = 1_000,
                runs: int = 7) -> list[float]:
    """Time flush() removing `expired` of `total` entries; returns milliseconds per run."""
    times = []
    for _ in range(runs):
        clock = FakeClock()
        cache = SessionCache(size=0, timeout=300, clock=clock)
        for i in range(total):
            if i == expired:
                clock.now += 100
            h = SessionHandle.from_ssl(session)
            cache.add(i, h)
            h.free()
        clock.now += 300 - 100 + 0.5
        gc.collect()
        start = time.perf_counter()
        removed = cache.flush()
        times.append((time.perf_counter() - start) * 1000)
        assert removed == expired, removed
        assert len(cache) == total - expired
        cache.clear()
    return times


def bench_memory(session: ssl.SSLSession, n: int = 100_000) -> tuple[float, float]:
    """Bytes per cached handle beyond the SSLSession: (without the key object, with it)."""
    keys = [(f"host{i}.example", 443) for i in range(n)]
    key_bytes = sum(sys.getsizeof(k) + sys.getsizeof(k[0]) for k in keys)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = SessionCache(size=0)
    for key in keys:
        h = SessionHandle.from_ssl(session)
        cache.add(key, h)
        h.free()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_handle = (after - before) / n
    cache.clear()
    return per_handle, per_handle + key_bytes / n


def main(argv: list[str]) -> None:
    session = _real_session()
    rates = sorted(bench_round_trips(session, 200_000) for _ in range(5))
    rt = statistics.median(rates)
    print(f"add + get1 + free round trips/s: median {rt:,.0f} of 5 runs "
          f"(best {rates[-1]:,.0f}, worst {rates[0]:,.0f})  (target >= 300,000: "
          f"{'met' if rt >= 300_000 else 'MISSED'})")
    life = bench_lifecycle(session)
    print(f"from_ssl + add + free + take + free per second: {life:,.0f}")
    times = bench_flush(session)
    med = statistics.median(times)
    print(f"flush 1,000 expired of 100,000: median {med:.2f} ms, min {min(times):.2f}, "
          f"max {max(times):.2f} over {len(times)} runs  (target <= 5 ms: "
          f"{'met' if med <= 5 else 'MISSED'})")
    mem, mem_with_key = bench_memory(session)
    print(f"memory per cached handle beyond the SSLSession: {mem:.0f} bytes "
          f"({mem_with_key:.0f} with a (str, int) key)  (target <= 600: "
          f"{'met' if mem <= 600 else 'MISSED'})")


if __name__ == "__main__":
    main(sys.argv[1:])
