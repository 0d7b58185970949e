"""Session store benchmarks: store round trips, and resumption after a client restart.

Targets (issue 5):
* store round trip (put + take) overhead per connection: SQLite <= 0.5 ms, Redis on
  loopback <= 1 ms (a real redis-server started here);
* a client restarted with a SQLite or Redis store: >= 99% of its first connections
  resume (TLS 1.2 and TLS 1.3, against ``openssl s_server``, through
  ``resume.trio.open_tls_stream``).

Run: ``python -m benchmarks bench_stores`` (``--quick`` for fewer rounds).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import trio
import trustme

from resume import CacheMode, SessionCache
from resume.stores import MemoryStore, RedisStore, SessionStore, SQLiteStore, attach_store
from resume.testing import TLS_VERSIONS

_VERSIONS = TLS_VERSIONS


# -- servers ---------------------------------------------------------------------------


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    # The tests' fixture module (imported by name: mypy sees tests/ as top level).
    RedisServer = importlib.import_module("tests.redis_server").RedisServer

    with RedisServer(directory) as server:
        yield server.url


@contextmanager
def s_server(directory: Path, version: str, ca: trustme.CA) -> Iterator[int]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("bench_stores needs the openssl command")
    pem = directory / f"server{version}.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", str(pem), "-rev",
         "-tls1_3" if version == "1.3" else "-tls1_2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    port = 0
    for raw in proc.stdout:
        match = re.match(rb"ACCEPT\s+\S*:(\d+)", raw)
        if match:
            port = int(match.group(1))
            break
    drain = threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True)
    drain.start()
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait()
        drain.join(5)
        proc.stdout.close()


# -- real sessions ---------------------------------------------------------------------


def client_context(ca: trustme.CA, version: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = _VERSIONS[version]
    return ctx


async def one_connection(port: int, ctx: ssl.SSLContext, cache: SessionCache) -> bool:
    from resume.trio import open_tls_stream

    stream = await open_tls_stream("127.0.0.1", port, ssl_context=ctx, cache=cache,
                                   server_hostname="localhost")
    async with stream:
        await stream.send_all(b"hello\n")
        answer = b""
        while b"\n" not in answer:
            data = await stream.receive_some()
            if not data:
                break
            answer += data
        return bool(stream.session_reused)


def real_der(port: int, ctx: ssl.SSLContext) -> bytes:
    cache = SessionCache(timeout=3600)
    trio.run(one_connection, port, ctx, cache)
    handle = cache.take(cache.keys()[0])
    assert handle is not None
    der = handle.to_der()
    handle.free()
    return der


# -- benchmark 1: put + take --------------------------------------------------------------


def round_trips(store: SessionStore, der: bytes, n: int) -> list[float]:
    """Seconds per put + take pair, n pairs over 64 keys."""
    keys = [(f"host{i}.example", 443, "0" * 32) for i in range(64)]
    out = []
    clock = time.perf_counter
    expires = time.time() + 3600
    for i in range(n):
        key = keys[i % 64]
        t0 = clock()
        store.put(key, der, expires=expires)
        got = store.take(key)
        out.append(clock() - t0)
        assert got is not None
    return out


def report_round_trips(name: str, samples: list[float], target_ms: float | None) -> None:
    samples = sorted(samples)
    med = statistics.median(samples) * 1e3
    p99 = samples[int(len(samples) * 0.99)] * 1e3
    verdict = ""
    if target_ms is not None:
        verdict = f"  target <= {target_ms} ms: {'PASS' if med <= target_ms else 'FAIL'}"
    print(f"  {name:<34} median {med:.3f} ms  p99 {p99:.3f} ms  (n={len(samples)}){verdict}")


def link_cost(store: SessionStore, der: bytes, n: int) -> tuple[list[float], list[float]]:
    """Seconds per connection of the store work a StoreLink adds, with real DER.

    One restarted connection's worth, in two parts. On the event loop: the
    adapter's check before the connect (is a fetch worth a thread?), the cache
    handing the fetched session out (take), and the connection's new session
    added (to_der + a queued put). In a thread: the fetch (store take +
    from_der + cache add). The queued writes are drained between connections,
    outside the timing.
    """
    on_loop, fetching = [], []
    clock = time.perf_counter
    key = ("localhost", 443, "bench")
    for _ in range(n):
        cache = SessionCache(timeout=3600)
        link = attach_store(cache, store)
        store.put(key, der, expires=time.time() + 3600)
        t0 = clock()
        assert link._fetch_plan(key)
        t1 = clock()
        link.fetch(key)  # what the adapters run in a thread
        t2 = clock()
        handle = cache.take(key)
        assert handle is not None
        fresh = handle.dup()
        handle.free()
        cache.add(key, fresh)  # write-behind: to_der + a queued put
        t3 = clock()
        on_loop.append((t1 - t0) + (t3 - t2))
        fetching.append(t2 - t1)
        fresh.free()
        link.drain()
        link.detach()
        cache.clear()
        link.drain()
        store.delete(key)
    return on_loop, fetching


# -- benchmark 2: restart -----------------------------------------------------------------


def restart_rate(
    make_store: Callable[[], SessionStore], port: int, ca: trustme.CA, version: str,
    restarts: int, per_run: int = 3,
) -> tuple[int, int]:
    """A client connects, 'restarts' (new cache, new store object, new SSLContext), and so on.

    Each run makes *per_run* connections. Returns (resumed, connections): how many
    of the first connections after the restarts resumed.
    """
    resumed = 0

    def process(count: int) -> list[bool]:
        ctx = client_context(ca, version)
        cache = SessionCache(mode=CacheMode.CLIENT, timeout=3600)
        store = make_store()
        link = attach_store(cache, store)
        link.register_context(ctx, label="bench")
        results = []
        try:
            for _ in range(count):  # open_tls_stream fetches from the store first
                results.append(trio.run(one_connection, port, ctx, cache))
        finally:
            link.close()
            store.close()
            cache.clear()
        return results

    process(1)  # the very first run: a full handshake that fills the store
    for _ in range(restarts):
        resumed += sum(process(per_run))
    return resumed, restarts * per_run


def subprocess_restart_rate(
    spec: list[str], port: int, cafile: Path, version: str, runs: int
) -> int:
    """The same with real processes: ``resume connect`` run *runs* times after a first run."""
    import json

    def run() -> bool:
        out = subprocess.run(
            [sys.executable, "-m", "resume", "connect", f"localhost:{port}", "--cafile",
             str(cafile), "--tls", version, "--sessions", *spec, "--json"],
            capture_output=True, text=True, check=True,
        ).stdout
        return bool(json.loads(out)["resumed"])

    run()
    return sum(run() for _ in range(runs))


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    n = 2000 if quick else 10000
    restarts = 100 if quick else 400
    runs = 10 if quick else 30
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cafile = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(cafile))
        with redis_server(tmp) as url, s_server(tmp, "1.2", ca) as port12, s_server(
            tmp, "1.3", ca
        ) as port13:
            ports = {"1.2": port12, "1.3": port13}
            print("store round trip, put + take of a real DER session (one thread):")
            key = os.urandom(32)
            key_file = tmp / "redis.key"
            key_file.write_bytes(os.urandom(32).hex().encode())
            key_file.chmod(0o600)
            for version in ("1.2", "1.3"):
                der = real_der(ports[version], client_context(ca, version))
                print(f" TLS {version} session, {len(der)} bytes of DER:")
                # Since issue 8 every store seals with AES-GCM under a key that is not
                # in the store: the first rows use each backend's default (MemoryStore: a
                # random key; SQLiteStore: PATH.key; RedisStore has none: a key file).
                for label, store, target in (
                    ("MemoryStore", MemoryStore(), None),
                    ("MemoryStore, AES-GCM", MemoryStore(key=key), None),
                    ("SQLiteStore", SQLiteStore(tmp / f"rt{version}.db"), 0.5),
                    ("SQLiteStore, AES-GCM", SQLiteStore(tmp / f"rte{version}.db", key=key), 0.5),
                    ("RedisStore (loopback)",
                     RedisStore(url, prefix=f"rt{version}", key_file=key_file), 1.0),
                    ("RedisStore (loopback), AES-GCM",
                     RedisStore(url, key=key, prefix=f"rte{version}"), 1.0),
                ):
                    with store:
                        round_trips(store, der, 200)  # warm up
                        report_round_trips(label, round_trips(store, der, n), target)
                for label, store in (
                    ("SQLiteStore", SQLiteStore(tmp / f"lk{version}.db", key=key)),
                    ("RedisStore", RedisStore(url, key=key, prefix=f"lk{version}")),
                ):
                    with store:
                        link_cost(store, der, 200)
                        on_loop, fetching = link_cost(store, der, n // 2)
                        report_round_trips(f"{label}, AES-GCM, link, on the loop", on_loop, None)
                        report_round_trips(f"{label}, AES-GCM, link, fetch (thread)", fetching,
                                           None)
                        both = [a + b for a, b in zip(on_loop, fetching, strict=True)]
                        report_round_trips(f"{label}, AES-GCM, link, both", both, None)

            print(f"client restarts: the first 3 connections after each of {restarts} restarts "
                  f"(new cache, store object and SSLContext), open_tls_stream vs openssl s_server:")
            for version in ("1.2", "1.3"):
                for label, factory in (
                    ("SQLiteStore", lambda v=version: SQLiteStore(tmp / f"restart{v}.db")),
                    ("RedisStore",
                     lambda v=version: RedisStore(url, prefix=f"restart{v}", key_file=key_file)),
                ):
                    got, total = restart_rate(factory, ports[version], ca, version, restarts)
                    rate = 100.0 * got / total
                    print(f"  TLS {version} {label:<12} {got}/{total} resumed = {rate:.1f}%  "
                          f"target >= 99%: {'PASS' if rate >= 99 else 'FAIL'}")
            print(f"process restarts: 'resume connect' run {runs} times after a first run:")
            for version in ("1.2", "1.3"):
                for label, spec in (("sqlite", [f"sqlite:{tmp / f'cli{version}.db'}"]),
                                    ("redis", [url.replace("/0", "/1"),
                                               "--store-key-file", str(key_file)])):
                    got = subprocess_restart_rate(spec, ports[version], cafile, version, runs)
                    rate = 100.0 * got / runs
                    print(f"  TLS {version} {label:<12} {got}/{runs} resumed = {rate:.1f}%  "
                          f"target >= 99%: {'PASS' if rate >= 99 else 'FAIL'}")


if __name__ == "__main__":
    main(sys.argv[1:])
