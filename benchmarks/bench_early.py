"""Time to the first response byte on new TLS 1.3 connections: resumed, and resumed with 0-RTT.

nginx (TLS 1.3, ``ssl_early_data on``) sits behind bench_http's delay proxy (its
own process), which holds every chunk for half of ``--rtt`` in each direction:
the default, 0.08 s, is 40 ms each way. For each row (client), ``--requests``
GETs go on new connections that resume a session, without early data and with
it, alternating in rounds of 10 so that drift hits both alike, each mode with
its own SessionCache warmed up by one full handshake. The time is taken from
the start of the request to the response's head (the first response bytes: the
body is six bytes). It reports the medians, their ratio (target: at most 0.6),
and nginx's own record of the measured requests: ``$ssl_session_reused`` and
``$ssl_early_data`` ("1": the request came as early data).

Each measured connection then makes a second request, not timed, before it
closes. A request that went early is answered before the handshake ends, and
nginx sends the ticket that replaces the one it used only after the client's
Finished, a round trip later: a client that closed at once would never receive
it (two 0-RTT connections per full handshake). The second request collects it,
as a keep-alive client would; both modes do the same.

Rows are ROWS[name](target, cache, early, n) -> n times in seconds; a new row
(a trio or asyncio stream, say) is one function and one line in ROWS:

    python -m benchmarks bench_early [--rtt=0.08] [--requests=50]
        [--clients=httpx-asyncio,httpx-trio,httpx-sync]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx
import trio
import trustme
from nginx_server import NginxServer, NginxSite

import resume
import resume.httpx

from .bench_http import _start_proxy

ROUND = 10
#: The untimed second request of each connection (it collects the fresh ticket).
SECOND = "/second"


@dataclass(frozen=True)
class Target:
    """Where a row connects: the delay proxy in front of nginx, and what to ask for."""

    host: str
    port: int
    context: ssl.SSLContext
    #: The measured request's path (it names the mode, for nginx's log).
    path: str

    def url(self, path: str) -> str:
        return f"https://{self.host}:{self.port}{path}"


#: A row: (target, cache, early data on, n) -> n times to the response head, in
#: seconds, each on a new connection followed by one untimed request (SECOND).
Row = Callable[[Target, resume.SessionCache, bool, int], list[float]]


async def _httpx_async_one(target: Target, cache: resume.SessionCache, early: bool) -> float:
    # One new connection: the measured request, then the second one.
    transport = resume.httpx.AsyncHTTPTransport(
        cache=cache, verify=target.context, early_data=early
    )
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", target.url(target.path))
        t0 = time.perf_counter()
        response = await client.send(request, stream=True)
        elapsed = time.perf_counter() - t0
        await response.aread()
        response.raise_for_status()
        (await client.get(target.url(SECOND))).raise_for_status()
    return elapsed


def _httpx_async(runner: str) -> Row:
    def row(target: Target, cache: resume.SessionCache, early: bool, n: int) -> list[float]:
        async def main() -> list[float]:
            return [await _httpx_async_one(target, cache, early) for _ in range(n)]

        return trio.run(main) if runner == "trio" else asyncio.run(main())

    return row


def _httpx_sync_one(target: Target, cache: resume.SessionCache, early: bool) -> float:
    transport = resume.httpx.HTTPTransport(cache=cache, verify=target.context, early_data=early)
    with httpx.Client(transport=transport) as client:
        request = client.build_request("GET", target.url(target.path))
        t0 = time.perf_counter()
        response = client.send(request, stream=True)
        elapsed = time.perf_counter() - t0
        response.read()
        response.raise_for_status()
        client.get(target.url(SECOND)).raise_for_status()
    return elapsed


def _httpx_sync(target: Target, cache: resume.SessionCache, early: bool, n: int) -> list[float]:
    return [_httpx_sync_one(target, cache, early) for _ in range(n)]


ROWS: dict[str, Row] = {
    "httpx-asyncio": _httpx_async("asyncio"),
    "httpx-trio": _httpx_async("trio"),
    "httpx-sync": _httpx_sync,
}

MODES = ("resumed", "early")


@dataclass
class Result:
    """One row's figures in one mode."""

    times: list[float]
    #: nginx's flags for the measured requests: ``$ssl_session_reused`` and ``$ssl_early_data``.
    reused: int = 0
    early: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _logged(server: NginxServer, since: int, path: str, expect: int) -> list[dict[str, str]]:
    # The measured requests' lines (nginx logs a request after its response went out).
    lines: list[dict[str, str]] = []
    for _ in range(300):
        lines = [e for e in server.access_log()[since:] if e["request"].split()[1] == path]
        if len(lines) >= expect:
            break
        time.sleep(0.01)
    return lines


def _measure(
    name: str, host: str, port: int, context: ssl.SSLContext, n: int, server: NginxServer
) -> dict[str, Result]:
    row = ROWS[name]
    results: dict[str, Result] = {}
    targets: dict[str, Target] = {}
    caches: dict[str, resume.SessionCache] = {}
    for mode in MODES:
        results[mode] = Result([])
        targets[mode] = Target(host, port, context, f"/?{name}-{mode}")
        caches[mode] = resume.SessionCache(mode=resume.CacheMode.CLIENT)
        row(Target(host, port, context, "/warm-up"), caches[mode], mode == "early", 1)
    done = 0
    while done < n:
        size = min(ROUND, n - done)
        order = MODES if done % (2 * ROUND) == 0 else MODES[::-1]
        for mode in order:
            since = len(server.access_log())
            result = results[mode]
            result.times += row(targets[mode], caches[mode], mode == "early", size)
            lines = _logged(server, since, targets[mode].path, size)
            result.reused += sum(e["reused"] == "r" for e in lines)
            result.early += sum(e["early"] == "1" for e in lines)
        done += size
    return results


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_early", description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, default=0.080, help="emulated round trip (s)")
    parser.add_argument("--requests", type=int, default=50, help="requests per row and mode")
    parser.add_argument("--clients", default=",".join(ROWS), help="comma-separated rows")
    args = parser.parse_args(argv)
    names = args.clients.split(",")
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"no row {unknown[0]!r} (rows: {', '.join(ROWS)})")
    ca = trustme.CA()
    site = NginxSite(protocols=("TLSv1.3",), extra="ssl_early_data on;")
    print(
        f"nginx, TLS 1.3, ssl_early_data on, behind a delay proxy (RTT {args.rtt * 1000:.0f} "
        f"ms, {args.rtt * 500:.0f} ms each way); {args.requests} requests per row and mode, "
        "each on a new connection that resumes; median time to the response head"
    )
    print(
        f"{'client':14} {'resumed ms':>10} {'0-RTT ms':>9} {'ratio':>6}  "
        f"{'server: resumed':>15} {'early (resumed mode)':>20} {'early (0-RTT mode)':>18}"
    )
    with NginxServer(ca, [site]) as server:
        proxy, port = _start_proxy(server.port(), args.rtt)
        try:
            context = resume.create_client_context(cafile=server.ca_file)
            for name in names:
                r = _measure(name, "localhost", port, context, args.requests, server)
                res, early = r["resumed"], r["early"]
                n = len(res.times)
                print(
                    f"{name:14} {res.median * 1000:10.1f} {early.median * 1000:9.1f} "
                    f"{early.median / res.median:6.2f}  "
                    f"{res.reused + early.reused:>11}/{2 * n} "
                    f"{res.early:>16}/{n} {early.early:>15}/{n}",
                    flush=True,
                )
        finally:
            proxy.kill()
            proxy.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
