"""Stress: TLS 1.3 0-RTT clients (early_data=), a tenth abandoned mid-handshake, under -X dev.

Measured, not asserted per connection. For each client adapter (trio, asyncio)
a child ``python -X dev`` runs *connections* sequential connections through
one SessionCache, each with ``early_data=`` (one request line), against a
loopback early-data server: ``resume.trio.serve_tls(max_early_data=16384)`` in
another ``python -X dev`` child, whose handler answers the line (0.5-RTT when
it came early). Every tenth connection (``--abandon``) is abandoned
mid-handshake: it goes through a cutter beside the server that forwards the
client's first flight (ClientHello and early data) to the server, waits for
the server's first reply, and then drops both sides, so the client's handshake
fails after its early data left (the client fails the connection through the
policy) and the server sees a client leave in the middle of its handshake.
The session key is the server's port either way (``wrap_client_stream(port=)``
over the cutter's connection for trio, ``open_connection(sock=, port=)`` for
asyncio).

Each completed connection reads the answer and then on to the server's close
(``--read=eof``): the server answers early data before its handshake ends
(0.5-RTT), and its fresh TLS 1.3 ticket comes one round trip after that answer,
so a client that closes right after the answer (``--read=answer``) never gets
it, and its next connection has one ticket fewer to resume with.

Reported: crashes (an exit by signal or an unexpected exception, in the client
or the server; target none), the warnings ``-X dev`` printed, how the
completed connections' early data went (accepted, rejected, not sent), whether
every answer arrived once, and the client's RSS (``VmRSS``) after a warm-up of
a tenth of the run and at the end (target: growth under 5 MB), with the
server's RSS beside it.

    python -m benchmarks.stress_early [--connections=2000] [--abandon=0.1]
        [--clients=trio,asyncio] [--read=eof|answer]
    python -m benchmarks stress_early      # the same, through the runner

Exits 1 if a target was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
#: The early bytes the server allows (nginx's value); a request line fits.
MAX_EARLY_DATA = 16384
#: RSS growth target, KiB.
TARGET_KB = 5 * 1024


def rss_kb() -> int:
    """The resident set size of this process, in KiB (Linux ``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _pin13(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


# -- the server child ------------------------------------------------------------------


async def _server(pem: str) -> None:
    import resume.trio

    context = _pin13(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(pem)
    counts = {"handled": 0, "early": 0, "broken": 0}
    samples: list[int] = []

    async def handler(stream: resume.trio.TLSServerStream) -> None:
        counts["handled"] += 1
        counts["early"] += stream.early_data
        got = b""
        try:
            while not got.endswith(b"\n"):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                got += chunk
            await stream.send_all(b"ok " + got)
        except trio.BrokenResourceError:
            counts["broken"] += 1
        if counts["handled"] % 200 == 0:
            samples.append(rss_kb())

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                resume.trio.serve_tls, handler, 0, ssl_context=context, host="127.0.0.1",
                max_early_data=MAX_EARLY_DATA, handshake_timeout=30.0, backlog=512,
            )
        )
        cutter = (await nursery.start(partial(trio.serve_tcp, partial(_cut, server.port), 0,
                                              host="127.0.0.1")))[0]
        print(f"PORTS {server.port} {cutter.socket.getsockname()[1]}", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
        stats = server.statistics()
        print(json.dumps({
            "counts": counts, "rss_kb": samples, "end_rss_kb": rss_kb(),
            "statistics": {
                k: v for k, v in dataclasses.asdict(stats).items() if isinstance(v, int)
            },
        }), flush=True)
        nursery.cancel_scope.cancel()


async def _cut(port: int, client: trio.SocketStream) -> None:
    # Forward the client's first flight, wait for the server's first reply
    # (the server is then in its handshake), and drop both connections.
    upstream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        first = await client.receive_some(65536)
        if first:
            await upstream.send_all(first)
            await upstream.receive_some(65536)
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(upstream)
        await trio.aclose_forcefully(client)


# -- the client child ------------------------------------------------------------------


class _Run:
    """The client's tallies."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.outcomes = {"accepted": 0, "rejected": 0, "not sent": 0}
        self.answered_once = 0
        self.abandoned = 0
        self.errors: list[str] = []
        self.samples: list[int] = []
        self.warm = 0

    def sample(self, i: int) -> None:
        warmup = max(1, self.connections // 10)
        if i + 1 == warmup or (i + 1 > warmup and (i + 1 - warmup) % 200 == 0) or (
            i + 1 == self.connections
        ):
            gc.collect()
            self.samples.append(rss_kb())

    def record(self, accepted: bool | None, answer: bytes, request: bytes) -> None:
        key = {True: "accepted", False: "rejected", None: "not sent"}[accepted]
        self.outcomes[key] += 1
        if answer == b"ok " + request:
            self.answered_once += 1
        else:
            self.errors.append(f"answer {answer[:60]!r} to {request!r}")


def _abandons(i: int, abandon: float) -> bool:
    # Spread deterministically: connection i is abandoned when the running
    # count of abandons falls behind i * abandon.
    return abandon > 0 and int((i + 1) * abandon) > int(i * abandon)


async def _client_trio(args: argparse.Namespace, context: ssl.SSLContext) -> _Run:
    import resume
    import resume.trio

    run, cache = _Run(args.connections), resume.SessionCache()
    for i in range(args.connections):
        request = b"GET /%d\n" % i
        try:
            if _abandons(i, args.abandon):
                tcp = await trio.open_tcp_stream("127.0.0.1", args.cut_port)
                try:
                    stream = await resume.trio.wrap_client_stream(
                        tcp, server_hostname="localhost", port=args.port, ssl_context=context,
                        cache=cache, early_data=request,
                    )
                except trio.BrokenResourceError:
                    run.abandoned += 1
                else:
                    await stream.aclose()
                    run.errors.append("an abandoned handshake completed")
            else:
                stream = await resume.trio.open_tls_stream(
                    "127.0.0.1", args.port, server_hostname="localhost", ssl_context=context,
                    cache=cache, early_data=request,
                )
                async with stream:
                    answer = b""
                    while chunk := await stream.receive_some(4096):  # to the server's close
                        answer += chunk
                        if args.read == "answer" and answer.endswith(b"\n"):
                            break
                    run.record(stream.early_data_accepted, answer, request)
        except Exception as exc:  # counted, reported: a crash of the run
            run.errors.append(f"{type(exc).__name__}: {exc}")
        run.sample(i)
    return run


async def _client_asyncio(args: argparse.Namespace, context: ssl.SSLContext) -> _Run:
    import resume
    import resume.asyncio

    run, cache = _Run(args.connections), resume.SessionCache()
    for i in range(args.connections):
        request = b"GET /%d\n" % i
        try:
            if _abandons(i, args.abandon):
                sock = socket.create_connection(("127.0.0.1", args.cut_port))
                try:
                    _, writer = await resume.asyncio.open_connection(
                        sock=sock, port=args.port, server_hostname="localhost", ssl=context,
                        cache=cache, early_data=request,
                    )
                except (OSError, ssl.SSLError):
                    run.abandoned += 1
                    sock.close()
                else:
                    writer.abort()
                    run.errors.append("an abandoned handshake completed")
            else:
                reader, writer = await resume.asyncio.open_connection(
                    "127.0.0.1", args.port, server_hostname="localhost", ssl=context,
                    cache=cache, early_data=request,
                )
                async with writer:
                    # To the server's close, or (--read=answer) the answer line only.
                    answer = await (reader.readline() if args.read == "answer" else reader.read())
                    run.record(writer.get_extra_info("early_data_accepted"), answer, request)
        except Exception as exc:  # counted, reported: a crash of the run
            run.errors.append(f"{type(exc).__name__}: {exc}")
        run.sample(i)
    return run


def _client(args: argparse.Namespace) -> None:
    context = _pin13(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.load_verify_locations(args.ca)
    if args.adapter == "trio":
        run = trio.run(_client_trio, args, context)
    else:
        run = asyncio.run(_client_asyncio(args, context))
    print(json.dumps({
        "outcomes": run.outcomes, "answered_once": run.answered_once,
        "abandoned": run.abandoned, "errors": run.errors[:20], "error_count": len(run.errors),
        "samples_kb": run.samples,
    }), flush=True)


# -- the parent --------------------------------------------------------------------------


def _child(*args: str) -> list[str]:
    return [sys.executable, "-X", "dev", "-m", "benchmarks.stress_early", *args]


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Warning" in line]


def _one(adapter: str, args: argparse.Namespace, pem: Path, ca: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        _child("--role=server", f"--pem={pem}"), cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        line = server.stdout.readline()
        if not line.startswith("PORTS"):
            err = server.stderr.read()[-2000:] if server.stderr else ""
            print(f"{adapter}: the server did not start: {line!r} {err}")
            return False
        port, cut_port = line.split()[1:]
        start = time.monotonic()
        client = subprocess.run(
            _child("--role=client", f"--adapter={adapter}", f"--port={port}",
                   f"--cut-port={cut_port}", f"--ca={ca}", f"--connections={args.connections}",
                   f"--abandon={args.abandon}", f"--read={args.read}"),
            cwd=ROOT, env=env, text=True, capture_output=True, timeout=1800,
        )
        elapsed = time.monotonic() - start
        server_alive = server.poll() is None
        server_out, server_err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    client_warnings = _warnings(client.stderr)
    server_warnings = _warnings(server_err)
    if client.returncode != 0 or not client.stdout.strip():
        print(f"{adapter}: the client crashed (exit {client.returncode}): {client.stderr[-3000:]}")
        return False
    r = json.loads(client.stdout.strip().splitlines()[-1])
    s_lines = [x for x in server_out.splitlines() if x.startswith("{")]
    s = json.loads(s_lines[-1]) if s_lines else {}
    crashes = r["error_count"] + (0 if server_alive and server.returncode == 0 else 1)
    growth = r["samples_kb"][-1] - r["samples_kb"][0]
    s_rss = s.get("rss_kb", [])
    s_growth = (s.get("end_rss_kb", 0) - s_rss[0]) if s_rss else None
    completed = args.connections - r["abandoned"]
    good = bool(
        crashes == 0 and growth < TARGET_KB and r["answered_once"] == completed
        and r["abandoned"] == sum(_abandons(i, args.abandon) for i in range(args.connections))
    )
    mb = [round(x / 1024, 1) for x in r["samples_kb"]]
    print(
        f"{adapter:7} {args.connections} connections in {elapsed:.1f} s "
        f"({elapsed / args.connections * 1000:.2f} ms each, -X dev): "
        f"{r['abandoned']} abandoned mid-handshake, {completed} completed, "
        f"{r['answered_once']} answered once; early data {r['outcomes']}",
        flush=True,
    )
    print(
        f"        crashes {crashes} (client errors {r['error_count']}, server exit "
        f"{server.returncode}, alive until the end: {server_alive}); -X dev warnings: client "
        f"{len(client_warnings)}, server {len(server_warnings)}",
        flush=True,
    )
    for line in (r["errors"] + client_warnings[:5] + server_warnings[:5]):
        print(f"        | {line}", flush=True)
    print(
        f"        client RSS MB {mb}: growth after warm-up {growth / 1024:.2f} MB "
        f"(target < {TARGET_KB // 1024} MB); server RSS growth "
        f"{'n/a' if s_growth is None else f'{s_growth / 1024:.2f} MB'}, handler saw "
        f"{s.get('counts')}; server statistics {s.get('statistics')} -> "
        f"{'ok' if good else 'FAIL'}",
        flush=True,
    )
    return good


def main(argv: list[str]) -> None:
    """Run the stress (``python -m benchmarks stress_early``); exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stress_early")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--abandon", type=float, default=0.1)
    parser.add_argument("--clients", default="trio,asyncio")
    parser.add_argument("--read", choices=("eof", "answer"), default="eof")
    parser.add_argument("--role", choices=("parent", "server", "client"), default="parent")
    parser.add_argument("--adapter", default="trio")
    parser.add_argument("--pem")
    parser.add_argument("--ca")
    parser.add_argument("--port", type=int)
    parser.add_argument("--cut-port", type=int)
    args = parser.parse_args(argv)
    if args.role == "server":
        trio.run(_server, args.pem)
        return
    if args.role == "client":
        _client(args)
        return
    import trustme

    ca = trustme.CA()
    directory = Path(tempfile.mkdtemp(prefix="resume-stress-early-"))
    pem, ca_pem = directory / "server.pem", directory / "ca.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    print(
        f"stress_early: {args.connections} sequential TLS 1.3 connections per client with "
        f"early_data=, {args.abandon:.0%} abandoned mid-handshake, reading to {args.read}, "
        f"against serve_tls("
        f"max_early_data={MAX_EARLY_DATA}); Python {sys.version.split()[0]}, "
        f"{ssl.OPENSSL_VERSION}",
        flush=True,
    )
    ok = True
    for adapter in args.clients.split(","):
        ok &= _one(adapter.strip(), args, pem, ca_pem)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
