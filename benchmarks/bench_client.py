"""The resume trio client against a hand-written trio loop that reuses sessions itself.

Both talk to the same ``openssl s_server -rev`` (RSA-2048 or ECDSA certificate),
side by side in one run, over sequential connections that each do a handshake
and one small request/response (a line, reversed by the server), then close.

* ``hand``: ``trio.open_tcp_stream`` + ``trio.SSLStream``; before the handshake it
  sets ``session`` to the session it kept from the previous connection, and
  after the response it keeps ``stream.session``: the least a program can do.
* ``resume``: ``resume.trio.open_tls_stream`` with a ``SessionCache``.
* ``full``: ``resume.trio.open_tls_stream`` with ``cache=False``.

The runs alternate in many short rounds (hand, resume, resume, hand, ...) so that
drift in the machine's speed hits both alike; each figure is the median of its
rounds. Besides connections per second (wall clock) it reports the client's CPU
time per connection, which other load on the machine disturbs less. The target
is resume/hand >= 1.10. The same pair runs for asyncio: a hand-written
``asyncio.open_connection`` loop (an SSLContext subclass whose ``wrap_bio`` passes
``session=``) against ``resume.asyncio.open_connection``.

    python -m benchmarks bench_client [--connections=N] [--rounds=R]
        [--key=rsa|ecdsa] [--tls=1.2,1.3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import re
import shutil
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import trio
import trustme

import resume
import resume.asyncio
import resume.trio
from resume.testing import TLS_VERSIONS

VERSIONS = TLS_VERSIONS


class SServer:
    """``openssl s_server -rev`` on a free loopback port."""

    def __init__(self, cert: trustme.LeafCert, version: str) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise SystemExit("bench_client needs the openssl command")
        self._dir = tempfile.TemporaryDirectory()
        pem = Path(self._dir.name) / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        self.proc = subprocess.Popen(
            [openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", str(pem), "-rev",
             "-tls1_3" if version == "1.3" else "-tls1_2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self.port = 0
        for raw in self.proc.stdout:
            m = re.match(rb"ACCEPT\s+\S*:(\d+)", raw)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise SystemExit("openssl s_server did not start")
        stdout = self.proc.stdout
        self._drain = threading.Thread(target=lambda: [None for _ in stdout], daemon=True)
        self._drain.start()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self._drain.join()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._dir.cleanup()


LINE = b"GET /resume-benchmark\n"
REPLY = LINE[:-1][::-1] + b"\n"


async def _read_line(stream: trio.abc.ReceiveStream) -> bytes:
    got = b""
    while not got.endswith(b"\n"):
        chunk = await stream.receive_some()
        if not chunk:
            raise RuntimeError("server closed early")
        got += chunk
    return got


#: (wall conn/s, client CPU us per connection, resumed count) of one round.
Round = tuple[float, float, int]


async def hand_loop(port: int, ctx: ssl.SSLContext, n: int, state: list[ssl.SSLSession]) -> Round:
    """A trio client that keeps the last session itself (in *state*, across rounds)."""
    session: ssl.SSLSession | None = state[0] if state else None
    reused = 0
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(n):
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, ctx, server_hostname="localhost")
        if session is not None:
            stream.session = session
        await stream.do_handshake()
        await stream.send_all(LINE)
        if await _read_line(stream) != REPLY:
            raise RuntimeError("bad reply")
        reused += stream.session_reused
        new = stream.session
        if new is not None and (new.has_ticket or new.id):
            session = new
        await stream.aclose()
    if session is not None:
        state[:] = [session]
    return _round(n, start, cpu, reused)


def _round(n: int, start: float, cpu: float, reused: int) -> Round:
    wall = time.perf_counter() - start
    return n / wall, (time.process_time() - cpu) / n * 1e6, reused


async def resume_loop(
    port: int, ctx: ssl.SSLContext, n: int, cache: resume.SessionCache | bool
) -> Round:
    """The resume client: open_tls_stream through a cache (or cache=False)."""
    reused = 0
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(n):
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        await stream.send_all(LINE)
        if await _read_line(stream) != REPLY:
            raise RuntimeError("bad reply")
        reused += stream.session_reused
        await stream.aclose()
    return _round(n, start, cpu, reused)


class HandContext(ssl.SSLContext):
    """What a hand-written asyncio client must do to resume: pass session= to wrap_bio."""

    next_session: ssl.SSLSession | None = None

    def wrap_bio(  # type: ignore[override]
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
        server_hostname: str | None = None, session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname,
            session=self.next_session if session is None else session,
        )


async def hand_asyncio_loop(port: int, ctx: HandContext, n: int) -> Round:
    """An asyncio client that keeps the last session itself (on its context)."""
    reused = 0
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(n):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
        )
        writer.write(LINE)
        if await reader.readline() != REPLY:
            raise RuntimeError("bad reply")
        obj = writer.get_extra_info("ssl_object")
        reused += obj.session_reused
        new = obj.session
        if new is not None and (new.has_ticket or new.id):
            ctx.next_session = new
        writer.close()
        await writer.wait_closed()
    return _round(n, start, cpu, reused)


async def resume_asyncio_loop(
    port: int, ctx: ssl.SSLContext, n: int, cache: resume.SessionCache
) -> Round:
    """The resume asyncio client: resume.asyncio.open_connection through a cache."""
    reused = 0
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(n):
        reader, writer = await resume.asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost"
        )
        writer.write(LINE)
        if await reader.readline() != REPLY:
            raise RuntimeError("bad reply")
        reused += resume.asyncio.session_info(writer).session_reused
        writer.close()
        await writer.wait_closed()
    return _round(n, start, cpu, reused)


def client_context(ca: trustme.CA, version: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    ca.configure_trust(ctx)
    return ctx


def run_version(args: argparse.Namespace, version: str) -> dict[str, float]:
    key_type = trustme.KeyType.RSA if args.key == "rsa" else trustme.KeyType.ECDSA
    ca = trustme.CA(key_type=key_type)
    cert = ca.issue_cert("localhost", "127.0.0.1", key_type=key_type)
    server = SServer(cert, version)
    try:
        n, rounds = args.connections, args.rounds
        hand_ctx = client_context(ca, version)
        resume_ctx = client_context(ca, version)
        full_ctx = client_context(ca, version)
        cache = resume.SessionCache()
        hand: list[Round] = []
        resumed: list[Round] = []
        full: list[Round] = []
        hand_state: list[ssl.SSLSession] = []

        async def main() -> None:
            # Warm up both paths (imports, first handshake, caches).
            await hand_loop(server.port, hand_ctx, 20, hand_state)
            await resume_loop(server.port, resume_ctx, 20, cache)
            for i in range(rounds):
                # Alternate which goes first, so neither always follows the other.
                if i % 2:
                    resumed.append(await resume_loop(server.port, resume_ctx, n, cache))
                    hand.append(await hand_loop(server.port, hand_ctx, n, hand_state))
                else:
                    hand.append(await hand_loop(server.port, hand_ctx, n, hand_state))
                    resumed.append(await resume_loop(server.port, resume_ctx, n, cache))
                if i % 2 == 0:
                    full.append(await resume_loop(server.port, full_ctx, n, False))
                    assert full[-1][2] == 0

        trio.run(main)
        hand_ctx_a = HandContext(ssl.PROTOCOL_TLS_CLIENT)
        hand_ctx_a.minimum_version = hand_ctx_a.maximum_version = VERSIONS[version]
        ca.configure_trust(hand_ctx_a)
        resume_ctx_a = client_context(ca, version)
        cache_a = resume.SessionCache()
        hand_a: list[Round] = []
        resumed_a: list[Round] = []

        async def amain() -> None:
            await hand_asyncio_loop(server.port, hand_ctx_a, 20)
            await resume_asyncio_loop(server.port, resume_ctx_a, 20, cache_a)
            for i in range(rounds):
                pair = [
                    (hand_a, lambda: hand_asyncio_loop(server.port, hand_ctx_a, n)),
                    (resumed_a, lambda: resume_asyncio_loop(server.port, resume_ctx_a, n, cache_a)),
                ]
                for into, run in pair[:: -1 if i % 2 else 1]:
                    into.append(await run())

        asyncio.run(amain())
        if args.profile:
            prof = cProfile.Profile()

            async def profiled() -> None:
                prof.enable()
                await resume_loop(server.port, resume_ctx, n, cache)
                prof.disable()

            trio.run(profiled)
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            print(out.getvalue())
    finally:
        server.close()
    total = rounds * n
    med = statistics.median
    return {
        "hand": med(r[0] for r in hand),
        "resume": med(r[0] for r in resumed),
        "full": med(r[0] for r in full),
        "hand_cpu": med(r[1] for r in hand),
        "resume_cpu": med(r[1] for r in resumed),
        "resume_rate": sum(r[2] for r in resumed) / total,
        "hand_rate": sum(r[2] for r in hand) / total,
        "ahand": med(r[0] for r in hand_a),
        "aresume": med(r[0] for r in resumed_a),
        "ahand_cpu": med(r[1] for r in hand_a),
        "aresume_cpu": med(r[1] for r in resumed_a),
        "aresume_rate": sum(r[2] for r in resumed_a) / total,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_client", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50, help="connections per round")
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per client")
    parser.add_argument("--key", choices=["rsa", "ecdsa"], default="rsa")
    parser.add_argument("--tls", default="1.2,1.3", help="comma-separated TLS versions")
    parser.add_argument("--profile", action="store_true", help="cProfile one resume round")
    args = parser.parse_args(argv)
    key_name = "RSA-2048" if args.key == "rsa" else "ECDSA P-256"
    print(
        f"openssl s_server -rev, {key_name}, {args.rounds} rounds x {args.connections} "
        f"sequential connections (handshake + one line each); medians of rounds"
    )
    print(
        f"{'TLS':5} {'hand conn/s':>12} {'resume conn/s':>14} {'ratio':>6} {'resumed':>8} "
        f"{'hand cpu us':>12} {'resume cpu us':>14} {'cpu ratio':>9} "
        f"{'full conn/s':>12} {'resumed/full':>13}"
    )
    for version in args.tls.split(","):
        r = run_version(args, version.strip())
        print(
            f"{version:5} {r['hand']:12.0f} {r['resume']:14.0f} {r['resume'] / r['hand']:6.3f} "
            f"{r['resume_rate']:8.1%} {r['hand_cpu']:12.0f} {r['resume_cpu']:14.0f} "
            f"{r['hand_cpu'] / r['resume_cpu']:9.3f} "
            f"{r['full']:12.0f} {r['resume'] / r['full']:13.2f}",
            flush=True,
        )
        print(
            f"{'':5} asyncio: hand {r['ahand']:.0f}/s, resume {r['aresume']:.0f}/s, ratio "
            f"{r['aresume'] / r['ahand']:.3f}, resumed {r['aresume_rate']:.1%}, cpu us hand "
            f"{r['ahand_cpu']:.0f} resume {r['aresume_cpu']:.0f}, cpu ratio "
            f"{r['ahand_cpu'] / r['aresume_cpu']:.3f}",
            flush=True,
        )
    print(
        "ratio = resume/hand connections per second (target >= 1.10); cpu ratio = "
        "hand/resume client CPU time per connection (the client's own cost, less "
        "sensitive to other load on the machine)"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
