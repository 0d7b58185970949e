"""Time to the first response byte on new TLS 1.3 connections: resumed, and resumed with 0-RTT.

Two servers, in turn: nginx (TLS 1.3, ``ssl_early_data on``) and
``resume.trio.serve_tls(..., max_early_data=16384)`` (benchmarks/_early_server.py,
a child process that answers a request as soon as its head arrives: before the
handshake ends when it came early, as nginx does). Each sits behind
bench_http's delay proxy (its own process), which holds every chunk for half of
``--rtt`` in each direction:
the default, 0.08 s, is 40 ms each way. For each row (client), ``--requests``
GETs go on new connections that resume a session, without early data and with
it, alternating in rounds of 10 so that drift hits both alike, each mode with
its own SessionCache warmed up by one full handshake. The time is taken from
the start of the request to the response's head (the first response bytes: the
body is six bytes); for the stream rows, from the connect call to the first
response byte read. It reports the medians, their ratio (target: at most 0.6),
and the server's own record of the measured requests: nginx's
``$ssl_session_reused`` and ``$ssl_early_data`` ("1": the request came as early
data), serve_tls's ``stream.session_reused`` and ``stream.early_data``.

Each measured connection then makes a second request, not timed, before it
closes. A request that went early is answered before the handshake ends, and
nginx sends the ticket that replaces the one it used only after the client's
Finished, a round trip later: a client that closed at once would never receive
it (two 0-RTT connections per full handshake). The second request collects it,
as a keep-alive client would; both modes do the same.

Rows are ROWS[name](target, cache, early, n) -> n times in seconds; a new row
(a trio or asyncio stream, say) is one function and one line in ROWS:

    python -m benchmarks bench_early [--rtt=0.08] [--requests=50]
        [--clients=httpx-asyncio,httpx-trio,httpx-sync,trio-stream,asyncio-stream]
        [--servers=nginx,serve_tls]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx
import trio
import trustme
from nginx_server import NginxServer, NginxSite

import resume
import resume.asyncio
import resume.httpx
import resume.trio

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


def _request(target: Target, path: str, *, close: bool) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {target.host}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    ).encode("ascii")


def _complete(data: bytes | bytearray) -> bool:
    # A whole response of this benchmark's servers: the head and its six-byte body.
    _head, sep, body = data.partition(b"\r\n\r\n")
    return bool(sep) and len(body) >= 6


async def _trio_stream_one(target: Target, cache: resume.SessionCache, early: bool) -> float:
    first = _request(target, target.path, close=False)
    t0 = time.perf_counter()
    stream = await resume.trio.open_tls_stream(
        target.host, target.port, ssl_context=target.context, cache=cache,
        early_data=first if early else b"",
    )
    async with stream:
        if not early:
            await stream.send_all(first)
        data = await stream.receive_some()
        elapsed = time.perf_counter() - t0
        while not _complete(data):
            data += await stream.receive_some()
        await stream.send_all(_request(target, SECOND, close=True))
        data = b""
        while not _complete(data):
            data += await stream.receive_some()
    return elapsed


def _trio_stream(target: Target, cache: resume.SessionCache, early: bool, n: int) -> list[float]:
    async def main() -> list[float]:
        return [await _trio_stream_one(target, cache, early) for _ in range(n)]

    return trio.run(main)


async def _asyncio_stream_one(target: Target, cache: resume.SessionCache, early: bool) -> float:
    first = _request(target, target.path, close=False)
    t0 = time.perf_counter()
    reader, writer = await resume.asyncio.open_connection(
        target.host, target.port, ssl=target.context, cache=cache,
        early_data=first if early else b"",
    )
    try:
        if not early:
            writer.write(first)
        data = await reader.read(65536)
        elapsed = time.perf_counter() - t0
        while not _complete(data):
            data += await reader.read(65536)
        writer.write(_request(target, SECOND, close=True))
        data = b""
        while not _complete(data):
            data += await reader.read(65536)
    finally:
        writer.close()
        await writer.wait_closed()
    return elapsed


def _asyncio_stream(
    target: Target, cache: resume.SessionCache, early: bool, n: int
) -> list[float]:
    async def main() -> list[float]:
        return [await _asyncio_stream_one(target, cache, early) for _ in range(n)]

    return asyncio.run(main())


ROWS: dict[str, Row] = {
    "httpx-asyncio": _httpx_async("asyncio"),
    "httpx-trio": _httpx_async("trio"),
    "httpx-sync": _httpx_sync,
    "trio-stream": _trio_stream,
    "asyncio-stream": _asyncio_stream,
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


class Server(Protocol):
    """What _measure reads from a server: its log of requests (nginx's fields)."""

    def access_log(self) -> list[dict[str, Any]]: ...


class EarlyServeTLS:
    """benchmarks/_early_server.py in a child process, with a throwaway certificate."""

    def __init__(self, ca: trustme.CA) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-early-")
        d = Path(self._dir.name)
        cert = ca.issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(d / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
        ca.cert_pem.write_to_path(str(d / "ca.pem"))
        self.ca_file = str(d / "ca.pem")
        self._log: list[dict[str, Any]] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._early_server", str(d / "cert.pem"),
             str(d / "key.pem")],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        self._lines: list[str] = []
        import threading

        def pump() -> None:
            assert self._process.stdout is not None
            for line in self._process.stdout:
                self._lines.append(line)

        threading.Thread(target=pump, daemon=True).start()

    def access_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self._lines) if line.strip()]

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        self._dir.cleanup()


def _logged(server: Server, since: int, path: str, expect: int) -> list[dict[str, str]]:
    # The measured requests' lines (nginx logs a request after its response went out).
    lines: list[dict[str, str]] = []
    for _ in range(300):
        lines = [e for e in server.access_log()[since:] if e["request"].split()[1] == path]
        if len(lines) >= expect:
            break
        time.sleep(0.01)
    return lines


def _measure(
    name: str, host: str, port: int, context: ssl.SSLContext, n: int, server: Server
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


def _table(
    names: list[str], port: int, context: ssl.SSLContext, n: int, server: Server
) -> None:
    for name in names:
        r = _measure(name, "localhost", port, context, n, server)
        res, early = r["resumed"], r["early"]
        count = len(res.times)
        print(
            f"{name:14} {res.median * 1000:10.1f} {early.median * 1000:9.1f} "
            f"{early.median / res.median:6.2f}  "
            f"{res.reused + early.reused:>11}/{2 * count} "
            f"{res.early:>16}/{count} {early.early:>15}/{count}",
            flush=True,
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_early", description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, default=0.080, help="emulated round trip (s)")
    parser.add_argument("--requests", type=int, default=50, help="requests per row and mode")
    parser.add_argument("--clients", default=",".join(ROWS), help="comma-separated rows")
    parser.add_argument("--servers", default="nginx,serve_tls", help="nginx and/or serve_tls")
    args = parser.parse_args(argv)
    names = args.clients.split(",")
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"no row {unknown[0]!r} (rows: {', '.join(ROWS)})")
    servers = args.servers.split(",")
    if not servers or any(s not in ("nginx", "serve_tls") for s in servers):
        parser.error("--servers takes nginx and/or serve_tls")
    ca = trustme.CA()
    print(
        f"TLS 1.3 behind a delay proxy (RTT {args.rtt * 1000:.0f} ms, {args.rtt * 500:.0f} ms "
        f"each way); {args.requests} requests per row and mode, each on a new connection "
        "that resumes; median time to the response head"
    )
    header = (
        f"{'client':14} {'resumed ms':>10} {'0-RTT ms':>9} {'ratio':>6}  "
        f"{'server: resumed':>15} {'early (resumed mode)':>20} {'early (0-RTT mode)':>18}"
    )
    if "nginx" in servers:
        print("\nnginx, ssl_early_data on")
        print(header)
        site = NginxSite(protocols=("TLSv1.3",), extra="ssl_early_data on;")
        with NginxServer(ca, [site]) as nginx:
            proxy, port = _start_proxy(nginx.port(), args.rtt)
            try:
                context = resume.create_client_context(cafile=nginx.ca_file)
                _table(names, port, context, args.requests, nginx)
            finally:
                proxy.kill()
                proxy.wait()
    if "serve_tls" in servers:
        print("\nresume.trio.serve_tls, max_early_data=16384")
        print(header)
        ours = EarlyServeTLS(ca)
        try:
            proxy, port = _start_proxy(ours.port, args.rtt)
            try:
                context = resume.create_client_context(cafile=ours.ca_file)
                _table(names, port, context, args.requests, ours)
            finally:
                proxy.kill()
                proxy.wait()
        finally:
            ours.close()


if __name__ == "__main__":
    main(sys.argv[1:])
