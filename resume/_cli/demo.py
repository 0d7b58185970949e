# ``resume demo``: the main job in one command, on loopback, in a second or two.
#
# It starts serve_tls (or the asyncio start_server) on 127.0.0.1 with throwaway
# trustme certificates, connects N times through ONE SessionCache with the
# resuming client, and reports per connection whether the session was resumed
# and how long the TLS handshake took (the TCP connect is made first and not
# counted). Each connection sends a line and reads the echo, as a real request
# would, so TLS 1.3 tickets are read and stored.
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import ssl
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import trio

from .._adapters.server_settings import ServerStatistics
from .._core.cache import SessionCache
from .._core.handle import SessionHandle
from .._testing import ThrowawayPKI
from ._common import count, plural

__all__ = ["register", "run"]

_DESCRIPTION = """\
See TLS session resumption at work, with nothing to set up: start a TLS server
on 127.0.0.1 with throwaway certificates, connect to it COUNT times through one
session cache, and print for each connection whether it resumed and how long
its handshake took, then a summary: the resumption rate, the median full and
resumed handshake, the cache's statistics and the session handles still alive.
The first connection makes a full handshake; every later one should resume.
"""

_EPILOG = """\
examples:
  resume demo                  # 20 connections, TLS 1.3, trio
  resume demo --tls 1.2        # TLS 1.2: resumption also saves a round trip
  resume demo --count 100      # more connections
  resume demo --asyncio        # the same through resume.asyncio
  resume demo --json | python -m json.tool   # machine-readable
"""


def register(subparsers: Any) -> None:
    """Register the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch resumption work on loopback (start here)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tls", choices=("1.2", "1.3"), default="1.3", help="the TLS version to use (default: 1.3)"
    )
    parser.add_argument(
        "--count",
        type=count,
        default=20,
        metavar="N",
        help="how many connections to make (default: 20)",
    )
    parser.add_argument(
        "--asyncio",
        action="store_true",
        help="use resume.asyncio (open_connection, start_server) instead of trio",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Row:
    """One connection of the demo."""

    connection: int
    tls_version: str | None
    resumed: bool
    handshake_ms: float


_MESSAGE = b"hello, resume\n"


# -- trio ---------------------------------------------------------------------------


async def _trio_echo(stream: Any) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


async def _trio_run(
    count: int, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, cache: SessionCache
) -> tuple[list[Row], ServerStatistics]:
    from .._adapters.trio_server import serve_tls
    from ..trio import wrap_client_stream

    rows = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_tls, _trio_echo, 0, ssl_context=server_ctx, host="127.0.0.1")
        )
        for number in range(1, count + 1):
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            started = time.perf_counter()
            stream = await wrap_client_stream(
                tcp,
                server_hostname="localhost",
                port=server.port,
                ssl_context=client_ctx,
                cache=cache,
            )
            elapsed = time.perf_counter() - started
            try:
                await stream.send_all(_MESSAGE)
                got = b""
                while len(got) < len(_MESSAGE):
                    chunk = await stream.receive_some()
                    if not chunk:
                        break
                    got += chunk
                rows.append(Row(number, stream.version(), stream.session_reused, elapsed * 1e3))
            finally:
                await stream.aclose()
        stats = server.statistics()
        server.close()
    return rows, stats


# -- asyncio ------------------------------------------------------------------------


async def _asyncio_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _asyncio_run(
    count: int, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, cache: SessionCache
) -> tuple[list[Row], ServerStatistics]:
    from .._adapters.asyncio_server import start_server
    from ..asyncio import open_connection

    loop = asyncio.get_running_loop()
    rows = []
    async with await start_server(_asyncio_echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        for number in range(1, count + 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", server.port))
            except BaseException:
                sock.close()
                raise
            started = time.perf_counter()
            reader, writer = await open_connection(
                sock=sock,
                port=server.port,
                ssl=client_ctx,
                cache=cache,
                server_hostname="localhost",
            )
            elapsed = time.perf_counter() - started
            try:
                writer.write(_MESSAGE)
                await reader.readexactly(len(_MESSAGE))
                ssl_object = writer.get_extra_info("ssl_object")
                rows.append(Row(number, ssl_object.version(), writer.session_reused, elapsed * 1e3))
            finally:
                writer.close()
                await writer.wait_closed()
        stats = server.statistics()
    return rows, stats


# -- report -------------------------------------------------------------------------


def _live_handles() -> int:
    # Session handles still alive in this process (the cache's, at the end).
    return sum(1 for obj in gc.get_objects() if isinstance(obj, SessionHandle) and not obj.freed)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def build_report(
    rows: list[Row], server: ServerStatistics, cache: SessionCache, adapter: str, tls: str
) -> dict[str, Any]:
    """The demo's figures as one JSON-ready dict."""
    full = [r.handshake_ms for r in rows if not r.resumed]
    resumed = [r.handshake_ms for r in rows if r.resumed]
    resumable = max(len(rows) - 1, 0)
    return {
        "adapter": adapter,
        "tls_version": rows[0].tls_version if rows else f"TLSv{tls}",
        "connections": len(rows),
        "resumed": len(resumed),
        "resumable": resumable,
        "resumption_rate": round(len(resumed) / resumable, 4) if resumable else None,
        "full_handshake_ms": _median(full),
        "resumed_handshake_ms": _median(resumed),
        "rows": [{**asdict(r), "handshake_ms": round(r.handshake_ms, 3)} for r in rows],
        "cache": asdict(cache.statistics()),
        "server": {k: v for k, v in asdict(server).items() if k != "session_stats"},
        "live_handles": _live_handles(),
    }


def _print_table(report: dict[str, Any]) -> None:
    out = sys.stdout
    print(
        f"resume demo: {plural(report['connections'], 'connection')} to a loopback TLS server "
        f"({report['adapter']}, {report['tls_version']}), one session cache\n",
        file=out,
    )
    print(f"{'#':>5}  {'TLS':<8}  {'resumed':<7}  {'handshake ms':>12}", file=out)
    for row in report["rows"]:
        print(
            f"{row['connection']:>5}  {row['tls_version'] or '?':<8}  "
            f"{'yes' if row['resumed'] else 'no':<7}  {row['handshake_ms']:>12.2f}",
            file=out,
        )
    rate = report["resumption_rate"]
    print(file=out)
    if rate is None:
        print("resumed: n/a (one connection, and the first one is a full handshake)", file=out)
    else:
        print(
            f"resumed: {report['resumed']} of {plural(report['resumable'], 'connection')} "
            f"that could resume ({100 * rate:.0f}%)",
            file=out,
        )

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} ms"

    print(
        f"median handshake: full {ms(report['full_handshake_ms'])}, "
        f"resumed {ms(report['resumed_handshake_ms'])}",
        file=out,
    )
    cache = report["cache"]
    print(
        f"cache: {plural(cache['number'], 'session')} under {plural(cache['keys'], 'key')}; "
        f"{plural(cache['hits'], 'hit')}, {plural(cache['misses'], 'miss', 'misses')}, "
        f"{cache['added']} added, "
        f"{cache['taken']} taken",
        file=out,
    )
    server = report["server"]
    print(
        f"server: {server['accepted']} accepted, {server['resumed']} resumed, "
        f"{server['full']} full, {server['failed']} failed",
        file=out,
    )
    print(f"live session handles: {report['live_handles']} (held by the cache)", file=out)


def run(args: argparse.Namespace) -> int:
    """Run ``resume demo``; return the exit code."""
    certs = ThrowawayPKI()
    server_ctx = certs.server_context(args.tls)
    client_ctx = certs.client_context(args.tls)
    cache = SessionCache()
    try:
        if args.asyncio:
            rows, server = asyncio.run(_asyncio_run(args.count, server_ctx, client_ctx, cache))
        else:
            rows, server = trio.run(_trio_run, args.count, server_ctx, client_ctx, cache)
        report = build_report(rows, server, cache, "asyncio" if args.asyncio else "trio", args.tls)
    finally:
        cache.clear()
    try:
        if args.json:
            json.dump(report, sys.stdout, indent=2)
            print()
        else:
            _print_table(report)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
    return 0
