"""HTTP clients with and without resume, over an emulated round trip, against nginx.

A delay proxy (its own process, so its CPU is not the client's) sits on loopback
in front of nginx and holds every chunk for half the round trip in each
direction (``--rtt``, 40 ms by default). For each client -- httpx on asyncio,
httpx on trio, httpx sync, aiohttp, requests -- it makes ``--requests`` requests,
each on a new connection (``Connection: close``), with resume (a SessionCache)
and without (``cache=False``), alternating in rounds of 10 so that drift hits
both alike, on TLS 1.2 and 1.3. It reports the median request latency, the round
trips saved (the difference of the medians over the RTT), the client CPU per
request, and the server's count of resumed requests (nginx's
``$ssl_session_reused``). Targets: on TLS 1.2 a resumed request is at least 0.9
RTT faster at the median; the client CPU per request is lower with resume on
both versions.

Then a burst, the pool's case (issue 15): one client makes a warm-up request,
then ``BURST`` (10) concurrent requests to an endpoint that holds each response
200 ms (nginx proxies ``/slow?delay=200`` to a plain backend that waits), so the
pool opens new connections beside the pooled one -- requests from a
ThreadPoolExecutor(10) on one Session, httpx sync from one on one Client, the
async clients from tasks. Three modes side by side, alternating, ``--bursts``
times each with a fresh cache: without resume (``cache=False``), a
SessionCache at its defaults (each TLS 1.3 ticket used once), and
SessionCache(tls13_ticket_reuse=True). It reports, from nginx's record
(``$connection`` and ``$ssl_session_reused``), how many of the new connections
resumed, the sessions the cache held after the warm-up, the median time of the
burst (warm-up excluded) and its ratio to the burst without resume. Targets:
every new connection resumes on TLS 1.2 and with ticket reuse; on TLS 1.3 at
its defaults, at least as many as the cache held tickets after the warm-up.

Then the store: two new processes in turn each make one request with a SQLite
store attached to their cache; the second one's first request must resume.

    python -m benchmarks bench_http [--rtt=0.04] [--requests=100] [--bursts=5]
        [--tls=1.2,1.3] [--clients=httpx-asyncio,httpx-trio,httpx-sync,aiohttp,requests]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import aiohttp
import httpx
import requests
import trio
import trustme
from http_backend import HTTPBackend
from nginx_server import NginxServer, NginxSite, free_port

import resume
import resume.aiohttp
import resume.httpx
import resume.requests

CLIENTS = ["httpx-asyncio", "httpx-trio", "httpx-sync", "aiohttp", "requests"]
ROUND = 10

# -- the delay proxy (run in a child process) -------------------------------------------


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(pump())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        task.cancel()
    finally:
        writer.close()


async def _proxy(listen: int, target: int, rtt: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer, rtt / 2), _pipe(up_reader, writer, rtt / 2),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def _start_proxy(target: int, rtt: float) -> tuple[subprocess.Popen[str], int]:
    port = free_port(("127.0.0.1",))
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_http", "--proxy-child",
         str(port), str(target), str(rtt)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, port


# -- the clients --------------------------------------------------------------------------

Batch = Callable[[str, ssl.SSLContext, int, object], list[float]]

#: The CA file of the server under test (requests takes a path).
_CA_FILE: list[str] = []
CLOSE = {"Connection": "close"}


def _httpx_async(runner: str) -> Batch:
    def batch(url: str, context: ssl.SSLContext, n: int, cache: object) -> list[float]:
        times: list[float] = []

        async def main() -> None:
            transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=context)
            async with httpx.AsyncClient(transport=transport) as client:
                for _ in range(n):
                    t0 = time.perf_counter()
                    (await client.get(url, headers=CLOSE)).raise_for_status()
                    times.append(time.perf_counter() - t0)

        if runner == "trio":
            trio.run(main)
        else:
            asyncio.run(main())
        return times

    return batch


def _httpx_sync(url: str, context: ssl.SSLContext, n: int, cache: object) -> list[float]:
    times: list[float] = []
    with httpx.Client(transport=resume.httpx.HTTPTransport(cache=cache, verify=context)) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get(url, headers=CLOSE).raise_for_status()
            times.append(time.perf_counter() - t0)
    return times


def _aiohttp(url: str, context: ssl.SSLContext, n: int, cache: object) -> list[float]:
    times: list[float] = []

    async def main() -> None:
        connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(n):
                t0 = time.perf_counter()
                async with session.get(url, headers=CLOSE) as r:
                    await r.read()
                    r.raise_for_status()
                times.append(time.perf_counter() - t0)

    asyncio.run(main())
    return times


def _requests(url: str, context: ssl.SSLContext, n: int, cache: object) -> list[float]:
    times: list[float] = []
    ca_file = _CA_FILE[0]
    with requests.Session() as session:
        session.mount("https://", resume.requests.HTTPAdapter(cache=cache))
        for _ in range(n):
            t0 = time.perf_counter()
            session.get(url, verify=ca_file, headers=CLOSE).raise_for_status()
            times.append(time.perf_counter() - t0)
    return times


BATCHES: dict[str, Batch] = {
    "httpx-asyncio": _httpx_async("asyncio"),
    "httpx-trio": _httpx_async("trio"),
    "httpx-sync": _httpx_sync,
    "aiohttp": _aiohttp,
    "requests": _requests,
}


def _measure(
    name: str, url: str, context: ssl.SSLContext, n: int, server: NginxServer
) -> dict[str, tuple[float, float, str]]:
    batch = BATCHES[name]
    cache = resume.SessionCache(mode=resume.CacheMode.CLIENT)
    batch(url, context, 2, cache)  # warm up: imports, first handshake, a session
    results: dict[str, tuple[list[float], float, str]] = {
        "full": ([], 0.0, ""), "resume": ([], 0.0, "")
    }
    done = 0
    while done < n:
        size = min(ROUND, n - done)
        for mode in ("full", "resume") if done % (2 * ROUND) == 0 else ("resume", "full"):
            since = len(server.access_log())
            cpu0 = time.process_time()
            times = batch(url, context, size, False if mode == "full" else cache)
            cpu = time.process_time() - cpu0
            time.sleep(0.05)  # nginx logs after the response went out
            flags = "".join(e["reused"] for e in server.access_log()[since:])
            old = results[mode]
            results[mode] = (old[0] + times, old[1] + cpu, old[2] + flags)
        done += size
    return {
        mode: (statistics.median(t), cpu / len(t), flags)
        for mode, (t, cpu, flags) in results.items()
    }


# -- the burst: new connections beside a pooled one --------------------------------------------

BURST = 10
HOLD_MS = 200
WARM_PATH = "/?warm-up"
SLOW_PATH = f"/slow?delay={HOLD_MS}"
#: Each burst: (seconds the burst took, sessions cached after the warm-up).
Burst = Callable[[str, ssl.SSLContext, object], tuple[float, int]]


def _cached(cache: object) -> int:
    return len(cache) if isinstance(cache, resume.SessionCache) else 0


def _async_burst(runner: str, client: str) -> Burst:
    def burst(base: str, context: ssl.SSLContext, cache: object) -> tuple[float, int]:
        out: list[tuple[float, int]] = []

        async def httpx_main() -> None:
            transport = resume.httpx.AsyncHTTPTransport(cache=cache, verify=context)
            async with httpx.AsyncClient(transport=transport) as c:

                async def get(path: str) -> None:
                    (await c.get(base + path)).raise_for_status()

                await get(WARM_PATH)
                cached = _cached(cache)
                t0 = time.perf_counter()
                if runner == "trio":
                    async with trio.open_nursery() as nursery:
                        for _ in range(BURST):
                            nursery.start_soon(get, SLOW_PATH)
                else:
                    await asyncio.gather(*(get(SLOW_PATH) for _ in range(BURST)))
                out.append((time.perf_counter() - t0, cached))

        async def aiohttp_main() -> None:
            connector = resume.aiohttp.TCPConnector(cache=cache, ssl=context)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def get(path: str) -> None:
                    async with session.get(base + path) as r:
                        await r.read()
                        r.raise_for_status()

                await get(WARM_PATH)
                cached = _cached(cache)
                t0 = time.perf_counter()
                await asyncio.gather(*(get(SLOW_PATH) for _ in range(BURST)))
                out.append((time.perf_counter() - t0, cached))

        main: Callable[[], Coroutine[Any, Any, None]] = (
            aiohttp_main if client == "aiohttp" else httpx_main
        )
        if runner == "trio":
            trio.run(main)
        else:
            asyncio.run(main())
        return out[0]

    return burst


def _threaded_burst(get: Callable[[str], None], base: str, cache: object) -> tuple[float, int]:
    get(base + WARM_PATH)
    cached = _cached(cache)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(BURST) as pool:
        list(pool.map(get, [base + SLOW_PATH] * BURST))
    return time.perf_counter() - t0, cached


def _httpx_sync_burst(base: str, context: ssl.SSLContext, cache: object) -> tuple[float, int]:
    transport = resume.httpx.HTTPTransport(cache=cache, verify=context)
    with httpx.Client(transport=transport) as c:

        def get(url: str) -> None:
            c.get(url).raise_for_status()

        return _threaded_burst(get, base, cache)


def _requests_burst(base: str, context: ssl.SSLContext, cache: object) -> tuple[float, int]:
    ca_file = _CA_FILE[0]
    with requests.Session() as session:
        session.mount("https://", resume.requests.HTTPAdapter(cache=cache))

        def get(url: str) -> None:
            session.get(url, verify=ca_file).raise_for_status()

        return _threaded_burst(get, base, cache)


BURSTS: dict[str, Burst] = {
    "httpx-asyncio": _async_burst("asyncio", "httpx"),
    "httpx-trio": _async_burst("trio", "httpx"),
    "httpx-sync": _httpx_sync_burst,
    "aiohttp": _async_burst("asyncio", "aiohttp"),
    "requests": _requests_burst,
}
BURST_MODES = ("off", "defaults", "reuse")


def _new_connections(server: NginxServer, since: int) -> tuple[int, int]:
    """(new connections, resumed ones) of one burst, from nginx's record."""
    for _ in range(500):  # nginx logs a request after its response went out
        log = server.access_log()[since:]
        if len(log) >= 1 + BURST:
            break
        time.sleep(0.01)
    warm = {e["connection"] for e in log if e["request"].split(" ")[1] == WARM_PATH}
    first: dict[str, bool] = {}
    for e in log:
        if e["connection"] not in warm:
            first.setdefault(e["connection"], e["reused"] == "r")
    return len(first), sum(first.values())


def _measure_burst(
    name: str, base: str, context: ssl.SSLContext, bursts: int, server: NginxServer
) -> dict[str, tuple[float, int, int, int]]:
    """Per mode: (median burst seconds, new connections, resumed ones, most cached)."""
    burst = BURSTS[name]
    burst(base, context, False)  # warm up: imports, the pool, the backend
    times: dict[str, list[float]] = {mode: [] for mode in BURST_MODES}
    counts = {mode: [0, 0, 0] for mode in BURST_MODES}
    for i in range(bursts):
        for mode in BURST_MODES if i % 2 == 0 else BURST_MODES[::-1]:
            cache: object = False
            if mode != "off":
                cache = resume.SessionCache(
                    mode=resume.CacheMode.CLIENT, tls13_ticket_reuse=mode == "reuse"
                )
            since = len(server.access_log())
            elapsed, cached = burst(base, context, cache)
            new, resumed = _new_connections(server, since)
            times[mode].append(elapsed)
            c = counts[mode]
            c[0], c[1], c[2] = c[0] + new, c[1] + resumed, max(c[2], cached)
    return {
        mode: (statistics.median(times[mode]), counts[mode][0], counts[mode][1], counts[mode][2])
        for mode in BURST_MODES
    }


# -- the store: a new process's first request ------------------------------------------------


def _store_child(db: str, url: str, ca_file: str) -> None:
    from resume.stores import SQLiteStore, attach_store

    cache = resume.SessionCache(mode=resume.CacheMode.CLIENT)
    store = SQLiteStore(db)
    link = attach_store(cache, store)
    context = resume.create_client_context(cafile=ca_file)
    transport = resume.httpx.HTTPTransport(cache=cache, verify=context)
    link.register_context(context, label="bench_http")
    with httpx.Client(transport=transport) as client:
        client.get(url, headers=CLOSE).raise_for_status()
    link.close()
    store.close()
    decisions = cache.statistics().decisions
    cache.clear()
    print(f"resumed={decisions.get('accepted', 0) == 1}")


def _store_check(url: str, ca_file: str) -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        db = str(Path(d) / "sessions.db")
        out = []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_http", "--store-child", db, url,
                 ca_file],
                capture_output=True, text=True, check=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
            out.append(done.stdout.strip())
        return out


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--proxy-child":
        asyncio.run(_proxy(int(argv[1]), int(argv[2]), float(argv[3])))
        return
    if argv and argv[0] == "--store-child":
        _store_child(argv[1], argv[2], argv[3])
        return
    parser = argparse.ArgumentParser(prog="bench_http", description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, default=0.040, help="emulated round trip (s)")
    parser.add_argument("--requests", type=int, default=100, help="requests per client and mode")
    parser.add_argument("--bursts", type=int, default=5, help="bursts per client and mode")
    parser.add_argument("--tls", default="1.2,1.3", help="comma-separated TLS versions")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args(argv)
    rtt = args.rtt
    ca = trustme.CA()
    print(
        f"nginx behind a delay proxy (RTT {rtt * 1000:.0f} ms), {args.requests} requests per "
        "client and mode, each on a new connection; medians"
    )
    print(
        f"{'TLS':5} {'client':14} {'full ms':>8} {'resumed ms':>10} {'RTT saved':>9} "
        f"{'CPU full ms':>11} {'CPU res ms':>10} {'resumed (server)':>16}"
    )
    burst_rows: list[str] = []
    store_line = ""
    with HTTPBackend() as backend:
        slow = f"location /slow {{ proxy_pass http://127.0.0.1:{backend.port}; }}"
        for version in args.tls.split(","):
            site = NginxSite(protocols=(f"TLSv{version}",), extra=slow)
            with NginxServer(ca, [site]) as server:
                proxy, port = _start_proxy(server.port(), rtt)
                try:
                    url = f"https://localhost:{port}/"
                    context = resume.create_client_context(cafile=server.ca_file)
                    _CA_FILE[:] = [str(server.ca_file)]
                    for name in args.clients.split(","):
                        r = _measure(name, url, context, args.requests, server)
                        full, res = r["full"], r["resume"]
                        saved = (full[0] - res[0]) / rtt
                        print(
                            f"{version:5} {name:14} {full[0] * 1000:8.1f} "
                            f"{res[0] * 1000:10.1f} {saved:9.2f} {full[1] * 1000:11.2f} "
                            f"{res[1] * 1000:10.2f} "
                            f"{res[2].count('r'):>7}/{len(res[2])} (full {full[2].count('r')})",
                            flush=True,
                        )
                    for name in args.clients.split(",") if args.bursts > 0 else []:
                        b = _measure_burst(name, url[:-1], context, args.bursts, server)
                        burst_rows.append(_burst_row(version, name, b))
                    if version == args.tls.split(",")[-1]:
                        first, second = _store_check(url, str(server.ca_file))
                        store_line = f"store: first process {first}, second process {second}"
                finally:
                    proxy.kill()
                    proxy.wait()
    if burst_rows:
        print(
            f"burst: a warm-up request, then {BURST} concurrent requests held {HOLD_MS} ms by "
            f"the server; {args.bursts} bursts per client and mode, a fresh cache each; new "
            "connections resumed / opened (server's record; most sessions cached after the "
            "warm-up); median burst ms and its ratio to the burst without resume"
        )
        print(
            f"{'TLS':5} {'client':14} {'off':>7} {'defaults':>13} {'reuse':>13} "
            f"{'off ms':>7} {'def ms':>7} {'reuse ms':>8} {'def/off':>7} {'reuse/off':>9}"
        )
        for row in burst_rows:
            print(row)
    if store_line:
        print(store_line)


def _burst_row(version: str, name: str, b: dict[str, tuple[float, int, int, int]]) -> str:
    off, de, re = b["off"], b["defaults"], b["reuse"]

    def count(m: tuple[float, int, int, int], cached: bool = True) -> str:
        text = f"{m[2]}/{m[1]}"
        return f"{text} ({m[3]})" if cached else text

    return (
        f"{version:5} {name:14} {count(off, False):>7} {count(de):>13} {count(re):>13} "
        f"{off[0] * 1000:7.0f} {de[0] * 1000:7.0f} {re[0] * 1000:8.0f} "
        f"{de[0] / off[0]:7.2f} {re[0] / off[0]:9.2f}"
    )

if __name__ == "__main__":
    main(sys.argv[1:])
