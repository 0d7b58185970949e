"""A fleet of TLS server processes sharing ticket keys through Redis: how often clients resume.

Four server processes (each a plain blocking ``ssl`` server with
``resume.ticketkeys.install_from_spec``) sit behind a "load balancer" that
sends each connection of one client to a random server. The client always
offers its newest session. Measured, per TLS version:

* shared keys in Redis, with a forced rotation in the middle of the run;
* shared keys in Redis, two servers, a client that offers each TLS 1.3 ticket
  once (as resume's clients do): every connection after the first should resume;
* no shared keys (each server its own random keys): about 1/N resume.

Run: ``python -m benchmarks bench_fleet [--connections=N] [--servers=N]``.
The server processes are ``python -m benchmarks.bench_fleet serve ...``; the
fleet tests (tests/integration/test_fleet.py) use the same :class:`Fleet`.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import trustme

from resume.testing import TLS_VERSIONS

VERSIONS = TLS_VERSIONS


# -- the server process ----------------------------------------------------------------


def serve(argv: list[str]) -> None:
    """One fleet server: answers each connection's line with 'NAME RESUMED KEY VERSION'."""
    parser = argparse.ArgumentParser(prog="bench_fleet serve")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--ticket-keys", default=None)
    parser.add_argument("--refresh", type=float, default=0.05)
    args = parser.parse_args(argv)

    from resume._ticketkeys.ring import install_from_spec

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    refresher = None
    if args.ticket_keys:
        refresher = install_from_spec(ctx, args.ticket_keys, refresh=args.refresh)
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"READY {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(10)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(64)
                if refresher is None:
                    key, version = "-", 0
                else:
                    key, version = refresher.ring.current.name[:4].hex(), refresher.ring.version
                reply = f"{args.name} {int(bool(tls.session_reused))} {key} {version}\n"
                tls.sendall(reply.encode())
        except (OSError, ssl.SSLError) as exc:
            print(f"connection failed: {exc}", file=sys.stderr, flush=True)


# -- the fleet, seen from the client ------------------------------------------------------


class Fleet:
    """N server processes on loopback, with or without shared ticket keys (*spec*)."""

    def __init__(self, count: int, spec: str | None, *, refresh: float = 0.05) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="resume-fleet-"))
        self.ca = trustme.CA()
        cert = self.dir / "server.pem"
        self.ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(cert))
        os.chmod(cert, 0o600)
        self.processes: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        root = str(Path(__file__).resolve().parent.parent)
        #: The fleet's ticket-key secret (Redis rings are sealed with it).
        self.secret = os.urandom(32)
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env["RESUME_TICKET_KEYS_SECRET"] = base64.b64encode(self.secret).decode()
        try:
            for i in range(count):
                command = [
                    sys.executable, "-m", "benchmarks.bench_fleet", "serve",
                    "--cert", str(cert), "--name", f"s{i}", "--refresh", str(refresh),
                ]
                if spec is not None:
                    command += ["--ticket-keys", spec]
                self.processes.append(
                    subprocess.Popen(
                        command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                        text=True, cwd=root, env=env,
                    )
                )
            for process in self.processes:
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line.startswith("READY "):
                    raise RuntimeError(f"a fleet server did not start (said {line!r})")
                self.ports.append(int(line.split()[1]))
        except BaseException:
            self.close()
            raise

    def client_context(self, version: str) -> ssl.SSLContext:
        """A client context that trusts the fleet's CA, pinned to one TLS version."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        return ctx

    def connect(
        self, ctx: ssl.SSLContext, server: int, session: ssl.SSLSession | None
    ) -> tuple[bool, str, ssl.SSLSession | None]:
        """One connection to server *server*: (resumed, the server's reply, newest session)."""
        with socket.create_connection(("127.0.0.1", self.ports[server]), timeout=10) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
                tls.sendall(b"hello\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = tls.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                # After the reply the TLS 1.3 tickets have arrived too.
                return bool(tls.session_reused), reply.decode().strip(), tls.session

    def close(self) -> None:
        """Stop every server and remove the certificate."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
        self.processes = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def hop(
    fleet: Fleet, ctx: ssl.SSLContext, rng: random.Random, count: int,
    session: ssl.SSLSession | None, keys: set[str] | None = None, *, single_use: bool = False,
) -> tuple[int, ssl.SSLSession | None]:
    """*count* connections, each to a random server; return (resumed, newest session).

    The servers' current key names (public) are added to *keys*. A *single_use*
    client offers each TLS 1.3 ticket once (RFC 8446, C.4), as resume's own
    clients do: a connection that brought no fresh ticket leaves it nothing to
    offer, and the next connection is a full handshake. (TLS 1.2 sessions are
    reusable; it keeps offering the one it has.)
    """
    resumed = 0
    for _ in range(count):
        reused, reply, new = fleet.connect(ctx, rng.randrange(len(fleet.ports)), session)
        resumed += reused
        if single_use and ctx.maximum_version == ssl.TLSVersion.TLSv1_3:
            fresh = new is not None and (session is None or new.id != session.id)
            session = new if fresh else None
        else:
            session = new or session
        if keys is not None:
            keys.add(reply.split()[2])
    return resumed, session


def main(argv: list[str]) -> None:
    """Print the resumption rate of a 4-server fleet with and without shared keys."""
    parser = argparse.ArgumentParser(prog="bench_fleet")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=4)
    args, _ = parser.parse_known_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from redis_server import RedisServer

    from resume._ticketkeys.ring import RedisKeySource

    def forget_keys(url: str) -> None:
        # Each Fleet seals its ring with a secret of its own: start each from an empty Redis.
        import redis as redis_py

        client = redis_py.Redis.from_url(url)
        try:
            client.flushall()
        finally:
            client.close()

    n = args.connections
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            for version in ("1.2", "1.3"):
                forget_keys(redis.url)
                with Fleet(args.servers, redis.url) as fleet:
                    ctx = fleet.client_context(version)
                    rng = random.Random(1)
                    start = time.perf_counter()
                    seen: set[str] = set()
                    first, session = hop(fleet, ctx, rng, n // 2, None, seen)
                    source = RedisKeySource(redis.url, secret=fleet.secret)
                    source.rotate_now()  # forced rotation mid-run; servers pick it up in 50 ms
                    source.close()
                    second, _ = hop(fleet, ctx, rng, n - n // 2, session, seen)
                    elapsed = time.perf_counter() - start
                    rate = (first + second) / n
                    print(
                        f"TLS {version}, {args.servers} servers, shared keys in Redis, forced "
                        f"rotation after {n // 2}: {first + second}/{n} resumed = {rate:.2%} "
                        f"(the first connection is always full); {len(seen)} current keys seen; "
                        f"{n / elapsed:.0f} conn/s"
                    )
                forget_keys(redis.url)
                with Fleet(2, redis.url) as fleet:
                    ctx = fleet.client_context(version)
                    resumed, _ = hop(fleet, ctx, random.Random(2), n, None, single_use=True)
                    print(
                        f"TLS {version}, 2 servers, shared keys in Redis, a client that offers "
                        f"each TLS 1.3 ticket once: {resumed}/{n - 1} resumed after the first "
                        f"= {resumed / (n - 1):.2%}"
                    )
                with Fleet(args.servers, None) as fleet:
                    ctx = fleet.client_context(version)
                    resumed, _ = hop(fleet, ctx, random.Random(1), n, None)
                    print(
                        f"TLS {version}, {args.servers} servers, no shared keys: "
                        f"{resumed}/{n} resumed = {resumed / n:.2%}"
                    )
        finally:
            redis.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        main(sys.argv[1:])
