"""Soak and fault suite for resume (opt-in: ``nox -s soak`` or ``python -m benchmarks.soak``).

Measured, not asserted per connection; each part prints its figures and a
verdict, and the process exits 1 if a part failed its target. Parts:

* ``leak``: sequential resumed connections per TLS version through each client
  adapter (trio, asyncio) against ``serve_tls`` (``tests/leakcheck.py`` in a
  subprocess), RSS sampled every 2,000 after a warm-up of a tenth of the run;
  target: growth after warm-up <= 5 MB.
* ``concurrent``: 1,000 trio clients at once against ``serve_tls`` (two waves,
  the second resuming); target: every connection succeeds.
* ``slowloris``: 400 connections that send 5 bytes of a ClientHello and stall,
  against each server (trio ``serve_tls``, asyncio ``start_server``, each in a
  child process, handshake_timeout 2 s), while a legitimate client connects;
  target: the client succeeds while they stall, and the server drops them all.
* ``fds``: ``serve_tls`` in a child process with RLIMIT_NOFILE lowered to 96;
  200 idle TCP connections exhaust its descriptors; target: once they are gone
  a TLS client connects and resumes again, and the server is still running.
* ``redis``: Redis killed and restarted under a session store (client
  connections go on while it is down, resuming from the in-memory cache; a
  new process after the restart makes one full handshake, since a Redis
  restarted empty holds nothing, and resumes from then on) and under a
  ticket-key fleet (tests/test_fleet.py, real redis-server, rotation and restart).

    python -m benchmarks.soak [--parts=leak,concurrent,slowloris,fds,redis]
        [--connections=20000] [--concurrent=1000] [--loris=400]
"""

# ruff: noqa: B023 -- the closures in the loops run within their own iteration
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio
import trustme

import resume
import resume.asyncio
import resume.trio

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
PARTS = ("leak", "concurrent", "slowloris", "fds", "redis")


class Pki:
    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.dir = Path(tempfile.mkdtemp(prefix="resume-soak-"))
        self.pem = self.dir / "server.pem"
        self.cert.private_key_and_cert_chain_pem.write_to_path(str(self.pem))
        self.ca_pem = self.dir / "ca.pem"
        self.clients: dict[str, ssl.SSLContext] = {}
        self.ca.cert_pem.write_to_path(str(self.ca_pem))

    def client(self, version: str = "1.3") -> ssl.SSLContext:
        """The client context of *version* (one per version: sessions belong to it)."""
        found = self.clients.get(version)
        if found is not None:
            return found
        ctx = self.clients[version] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(self.ca_pem))
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        return ctx


def server_context(pem: str, version: str = "1.3") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


# -- a server in a child process ------------------------------------------------------


def child_server(kind: str, pem: str, nofile: int) -> None:
    """Run a server, print its port, serve until stdin closes (the child side)."""
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    ctx = server_context(pem)
    if kind == "trio":

        async def handler(stream: resume.trio.TLSServerStream) -> None:
            data = await stream.receive_some(100)
            await stream.send_all(data[::-1])

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(partial(
                    resume.trio.serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1",
                    handshake_timeout=2.0, backlog=1024,
                ))
                print(server.port, flush=True)
                await trio.to_thread.run_sync(sys.stdin.read)
                print(json.dumps(vars(server.statistics())), flush=True)
                nursery.cancel_scope.cancel()

        trio.run(main)
    else:
        import asyncio

        async def cb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(100)
            writer.write(data[::-1])
            await writer.drain()

        async def amain() -> None:
            server = await resume.asyncio.start_server(
                cb, "127.0.0.1", 0, ssl=ctx, handshake_timeout=2.0, backlog=1024
            )
            print(server.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            print(json.dumps(vars(server.statistics())), flush=True)
            server.close()

        asyncio.run(amain())


class Child:
    def __init__(self, kind: str, pki: Pki, nofile: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soak", f"--child={kind}", f"--pem={pki.pem}",
             f"--nofile={nofile}"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        line = self.proc.stdout.readline()
        self.proc.wait(30)
        return json.loads(line) if line.strip() else {}


def blocking_client(pki: Pki, port: int, session: ssl.SSLSession | None = None,
                    timeout: float = 10.0) -> tuple[bool, ssl.SSLSession | None, float]:
    """One TLS connection with the standard library; (resumed, session, seconds)."""
    start = time.monotonic()
    ctx = pki.client()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, ctx.wrap_socket(
        raw, server_hostname="localhost", session=session
    ) as tls:
        tls.sendall(b"ping")
        assert tls.recv(100) == b"gnip"
        return tls.session_reused, tls.session, time.monotonic() - start


# -- the parts ------------------------------------------------------------------------------


def part_leak(args: argparse.Namespace) -> bool:
    ok = True
    for client in ("trio", "asyncio"):
        for version in ("1.2", "1.3"):
            out = subprocess.run(
                [sys.executable, str(ROOT / "tests" / "leakcheck.py"),
                 f"--connections={args.connections}", "--every=2000", f"--tls={version}",
                 f"--client={client}"],
                capture_output=True, text=True, check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            good = r["growth_kb"] <= 5 * 1024 and r["reused"] == args.connections - 1
            ok &= good
            mb = [round(s / 1024, 1) for s in r["samples_kb"]]
            print(f"leak {client:7} TLS {version}: {r['connections']} connections, "
                  f"{r['reused']} resumed, native={r['native']}, RSS MB {mb}, "
                  f"growth {r['growth_kb'] / 1024:.2f} MB {'ok' if good else 'FAIL'}", flush=True)
    return ok


def part_concurrent(args: argparse.Namespace, pki: Pki) -> bool:
    ok = True
    for version in ("1.2", "1.3"):
        client_ctx = pki.client(version)
        cache = resume.SessionCache()
        results: list[list[bool]] = []

        async def one(port: int, wave: list[bool], errors: list[BaseException]) -> None:
            try:
                stream = await resume.trio.open_tls_stream(
                    "127.0.0.1", port, server_hostname="localhost", ssl_context=client_ctx,
                    cache=cache,
                )
                async with stream:
                    await stream.send_all(b"ping")
                    assert await stream.receive_some(100) == b"gnip"
                    wave.append(stream.session_reused)
            except BaseException as exc:
                errors.append(exc)

        async def main() -> tuple[list[BaseException], float]:
            ctx = server_context(str(pki.pem), version)

            async def handler(stream: resume.trio.TLSServerStream) -> None:
                data = await stream.receive_some(100)
                await stream.send_all(data[::-1])

            errors: list[BaseException] = []
            start = time.monotonic()
            async with trio.open_nursery() as outer:
                server = await outer.start(partial(
                    resume.trio.serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1",
                    backlog=2048, handshake_timeout=60.0,
                ))
                for _ in range(2):
                    wave: list[bool] = []
                    async with trio.open_nursery() as nursery:
                        for _ in range(args.concurrent):
                            nursery.start_soon(one, server.port, wave, errors)
                    results.append(wave)
                outer.cancel_scope.cancel()
            return errors, time.monotonic() - start

        errors, seconds = trio.run(main)
        good = not errors and all(len(w) == args.concurrent for w in results)
        ok &= good
        print(f"concurrent TLS {version}: 2 waves of {args.concurrent} trio clients in "
              f"{seconds:.1f} s; ok {[len(w) for w in results]}, resumed "
              f"{[sum(w) for w in results]}, errors {len(errors)}"
              f"{' (' + repr(errors[0]) + ')' if errors else ''} {'ok' if good else 'FAIL'}",
              flush=True)
        cache.clear()
    return ok


def part_slowloris(args: argparse.Namespace, pki: Pki) -> bool:
    ok = True
    hello_start = bytes([0x16, 0x03, 0x01, 0x02, 0x00])  # a record header, then nothing
    for kind in ("trio", "asyncio"):
        child = Child(kind, pki)
        slow = []
        for _ in range(args.loris):
            s = socket.create_connection(("127.0.0.1", child.port))
            s.sendall(hello_start)
            slow.append(s)
        time.sleep(0.2)
        _, session, first = blocking_client(pki, child.port)
        resumed, _, second = blocking_client(pki, child.port, session)
        dropped = 0
        deadline = time.monotonic() + 10
        for s in slow:
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                if s.recv(100) == b"":
                    dropped += 1
            except ConnectionResetError:
                dropped += 1
            except OSError:
                pass
            s.close()
        stats = child.stop()
        good = dropped == args.loris and resumed
        ok &= good
        print(f"slowloris {kind:7}: {args.loris} stalled; legitimate client full "
              f"{first * 1000:.0f} ms, resumed={resumed} {second * 1000:.0f} ms; dropped "
              f"{dropped}/{args.loris} within handshake_timeout+; server stats {stats} "
              f"{'ok' if good else 'FAIL'}", flush=True)
    return ok


def part_fds(args: argparse.Namespace, pki: Pki) -> bool:
    child = Child("trio", pki, nofile=96)
    _, session, _ = blocking_client(pki, child.port)
    idle = [socket.create_connection(("127.0.0.1", child.port)) for _ in range(200)]
    time.sleep(0.5)
    during = "n/a"
    try:
        r, _, _ = blocking_client(pki, child.port, session, timeout=1.0)
        during = f"succeeded (resumed={r})"
    except OSError as exc:
        during = f"failed as expected ({type(exc).__name__})"
    for s in idle:
        s.close()
    recovered = False
    start = time.monotonic()
    while time.monotonic() - start < 15 and not recovered:
        try:
            recovered, _, _ = blocking_client(pki, child.port, session, timeout=2.0)
        except OSError:
            time.sleep(0.2)
    took = time.monotonic() - start
    alive = child.alive()
    stats = child.stop()
    good = recovered and alive
    print(f"fds: RLIMIT_NOFILE 96, 200 idle connections; a client during exhaustion "
          f"{during}; after they closed, resumed again in {took:.1f} s: {recovered}; server "
          f"alive: {alive}; stats {stats} {'ok' if good else 'FAIL'}", flush=True)
    return good


def part_redis(args: argparse.Namespace, pki: Pki) -> bool:
    sys.path.insert(0, str(ROOT / "tests"))
    from redis_server import RedisServer

    from resume.stores import RedisStore, attach_store

    ok = True
    with tempfile.TemporaryDirectory() as d, RedisServer(Path(d)) as redis_server:
        for version in ("1.2", "1.3"):
            client_ctx = pki.client(version)
            phases: dict[str, list[bool]] = {"up": [], "down": [], "back": [], "new": []}
            errors: list[BaseException] = []

            async def main() -> None:
                ctx = server_context(str(pki.pem), version)

                async def handler(stream: resume.trio.TLSServerStream) -> None:
                    data = await stream.receive_some(100)
                    await stream.send_all(data[::-1])

                async def connect(cache: resume.SessionCache, phase: str) -> None:
                    try:
                        stream = await resume.trio.open_tls_stream(
                            "127.0.0.1", port, server_hostname="localhost",
                            ssl_context=client_ctx, cache=cache,
                        )
                        async with stream:
                            await stream.send_all(b"ping")
                            assert await stream.receive_some(100) == b"gnip"
                            phases[phase].append(stream.session_reused)
                    except BaseException as exc:
                        errors.append(exc)

                async with trio.open_nursery() as nursery:
                    server = await nursery.start(partial(
                        resume.trio.serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1"))
                    port = server.port
                    store = RedisStore(redis_server.url, key=bytes(32), timeout=0.5)
                    cache = resume.SessionCache()
                    link = attach_store(cache, store)
                    for _ in range(50):
                        await connect(cache, "up")
                    await trio.to_thread.run_sync(redis_server.stop)
                    for _ in range(50):
                        await connect(cache, "down")
                    await trio.to_thread.run_sync(redis_server.start)
                    for _ in range(50):
                        await connect(cache, "back")
                    await trio.to_thread.run_sync(link.drain)
                    # A new process (empty cache) resumes from the restarted store.
                    cache2 = resume.SessionCache()
                    link2 = attach_store(cache2, store)
                    for _ in range(5):
                        await connect(cache2, "new")
                    link.close()
                    link2.close()
                    cache.clear()
                    cache2.clear()
                    store.close()
                    nursery.cancel_scope.cancel()

            trio.run(main)
            good = not errors and all(len(v) == (5 if k == "new" else 50)
                                      for k, v in phases.items()) and all(phases["new"][1:])
            ok &= good
            print(f"redis store TLS {version}: resumed up {sum(phases['up'])}/50, down "
                  f"{sum(phases['down'])}/50, back {sum(phases['back'])}/50, new process "
                  f"{sum(phases['new'])}/5; failed connections {len(errors)} "
                  f"{'ok' if good else 'FAIL'}", flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_fleet.py::test_fleet_resumes_everywhere",
         "tests/test_ticketkeys.py", "-k", "down", "tests/test_redisstore.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr
    print(f"redis fleet and store restart tests: {last} "
          f"{'ok' if out.returncode == 0 else 'FAIL'}", flush=True)
    return ok and out.returncode == 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--loris", type=int, default=400)
    parser.add_argument("--child")
    parser.add_argument("--pem")
    parser.add_argument("--nofile", type=int, default=0)
    args = parser.parse_args(argv)
    if args.child:
        child_server(args.child, args.pem, args.nofile)
        return 0
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"soak: python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, load average "
          f"{os.getloadavg()}", flush=True)
    pki = Pki()
    ok = True
    for part in args.parts.split(","):
        start = time.monotonic()
        good = part_leak(args) if part == "leak" else globals()[f"part_{part}"](args, pki)
        ok &= good
        print(f"-- {part}: {'ok' if good else 'FAIL'} in {time.monotonic() - start:.0f} s",
              flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
