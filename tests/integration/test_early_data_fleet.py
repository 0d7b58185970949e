"""0-RTT across a fleet: a ticket from one server carries early data to another, once.

Two ``resume serve --early-data --ticket-keys redis://...`` processes share
ticket keys and a ClientHello record (RedisReplayGuard) in one real Redis. A
client takes a ticket from server A and sends early data to server B on it (B
logs ``early-data=accepted``); the first flight of that connection, recorded
byte for byte, is then replayed 10 times to A and 10 times to B. No replay may
reach the application: the servers log one line per handler run, and the only
lines are the two real connections'.

How a first flight is recorded: the client is an ``ssl.SSLObject`` on memory
BIOs (BioClient); it offers the session, writes the early data through the
binding (``SSL_write_early_data``) and the test reads the outgoing BIO: those
bytes (ClientHello and early-data records) are the first flight. The client
sends them over a raw TCP socket and finishes its handshake; a replay sends the
same bytes on a new socket, half-closes it (so the server gets every early
record, then EOF, as from a client that leaves before the handshake ends) and
reads whatever the server answers until it closes.

The control (test_the_replay_harness_sees_unprotected_replays) runs the same
harness against ``openssl s_server -early_data``: with ``-no_anti_replay`` every
replay reaches s_server's application (it prints the early data again), with
its default stateful single-use tickets none does. So the harness can see a
replay that gets through.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest
import redis
from programs import require
from redis_server import RedisServer
from serverhelpers import ServerPKI

from resume._openssl.binding import (
    EARLY_DATA_ACCEPTED,
    EARLY_DATA_NOT_SENT,
    binding,
)
from resume.replay import RedisReplayGuard
from resume.ticketkeys import SECRET_ENV

#: How `resume serve` is told to accept early data; the replay record's bound is
#: raised from 50 ms to 1 s so that a loaded test machine cannot turn a slow
#: Redis answer into a refused early data (a refusal is what the test counts).
EARLY_DATA_FLAG = ("--early-data", "--replay-timeout", "1")
#: The early data: what an HTTP client would send as 0-RTT.
EARLY = b"GET /fleet HTTP/1.1\r\nHost: localhost\r\n\r\n"
REPLAYS = 10
#: One connection line of `resume serve`: its handler logs one as it starts.
CONNECTION_LINE = re.compile(r"127\.0\.0\.1:\d+ .*")


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


class BioClient:
    """A TLS client on memory BIOs over a raw TCP socket: the test sees every byte it sends."""

    def __init__(self, context: ssl.SSLContext, session: ssl.SSLSession | None = None) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self.incoming, self.outgoing, server_hostname="localhost", session=session
        )
        self.sock: socket.socket | None = None

    def first_flight(self, early: bytes = b"") -> bytes:
        """The bytes of the first flight: the ClientHello, and *early* as early data if given."""
        if early:
            assert binding().offered_max_early_data(self.tls) >= len(early)
            assert binding().write_early_data(self.tls, early) == len(early)
        else:
            with pytest.raises(ssl.SSLWantReadError):
                self.tls.do_handshake()
        return self.outgoing.read()

    def connect(self, port: int, flight: bytes) -> None:
        """Open the TCP connection and send *flight*."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(flight)

    def _flush(self) -> None:
        assert self.sock is not None
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _pump(self) -> None:
        # Send what TLS wrote, then feed it what the server sent (blocking, 10 s at most).
        assert self.sock is not None
        self._flush()
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.incoming.write(data)

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self._flush()

    def receive(self, size: int) -> bytes:
        """Read application data until *size* bytes came."""
        got = b""
        while len(got) < size:
            try:
                got += self.tls.read(size - len(got))
            except ssl.SSLWantReadError:
                self._pump()
        return got

    def ticket(self) -> ssl.SSLSession:
        """The session once it holds a ticket (on TLS 1.3, after a NewSessionTicket arrives)."""
        while True:
            with pytest.raises(ssl.SSLWantReadError):
                self.tls.read(1)  # processes what arrived; no application data expected
            session = self.tls.session
            if session is not None and session.has_ticket:
                return session
            self._pump()

    def close(self) -> None:
        """Send close_notify and close the socket."""
        if self.sock is None:
            return
        with suppress(ssl.SSLWantReadError, ssl.SSLError):
            self.tls.unwrap()
        with suppress(OSError):
            self._flush()
        self.sock.close()
        self.sock = None


def client_random(flight: bytes) -> bytes:
    """The ClientHello random: after the record (5) and handshake (4) headers and the version."""
    assert flight[0] == 0x16 and flight[5] == 0x01, "not a ClientHello record"
    return flight[11:43]


def replay(port: int, flight: bytes) -> bytes:
    """Send a recorded first flight on a new connection, half-close, read until the server closes.

    Returns what the server answered.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(flight)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


# -- resume serve processes ----------------------------------------------------------------


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    def stop(self) -> list[str]:
        """Ctrl-C; the lines the server logged after "listening on", once it exited."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.stderr is not None
        rest = self.proc.stderr.read()
        assert self.proc.wait(timeout=30) in (0, 130)
        assert "Traceback" not in rest, rest
        return rest.splitlines()


@contextmanager
def serve(pki: ServerPKI, *extra: str, env: dict[str, str]) -> Iterator[Served]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "resume", "serve", "--port", "0",
         "--cert", str(pki.cert_file), "--key", str(pki.key_file), *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        text=True, env={**os.environ, **env},
    )
    try:
        assert proc.stderr is not None
        preamble = ""
        found = None
        while line := proc.stderr.readline():
            found = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
            if found:
                break
            preamble += line
        assert found, preamble
        yield Served(proc, int(found.group(1)))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_fleet_accepts_0rtt_across_servers_and_refuses_every_replay(
    pki: ServerPKI, version: str, tmp_path: Path
) -> None:
    """A ticket from A carries 0-RTT to B; its first flight replayed 20 times runs nothing.

    On TLS 1.2 there is no early data: the ticket resumes on B without any
    (``early-data=none``), and its replayed ClientHello runs nothing either.
    """
    context = pki.client_context(version)
    with ExitStack() as stack:
        store = stack.enter_context(RedisServer(tmp_path))
        env = {SECRET_ENV: base64.b64encode(os.urandom(32)).decode()}
        args = ("--tls", version, "--ticket-keys", store.url, *EARLY_DATA_FLAG)
        a = stack.enter_context(serve(pki, *args, env=env))
        b = stack.enter_context(serve(pki, *args, env=env))

        # 1. A full handshake with A: a ticket (sealed with the fleet's keys).
        first = BioClient(context)
        first.connect(a.port, first.first_flight())
        first.handshake()
        session = first.ticket()
        first.close()
        max_early = binding().session_max_early_data(binding().session_ptr(session))

        # 2. That ticket, with early data, to B: the first flight is recorded.
        hop = BioClient(context, session)
        early = EARLY if version == "1.3" else b""
        flight = hop.first_flight(early)
        hop.connect(b.port, flight)
        hop.handshake()
        status = binding().early_data_status(hop.tls)
        reused = hop.tls.session_reused
        if not early:
            hop.tls.write(EARLY)  # TLS 1.2: the request goes after the handshake
        echoed = hop.receive(len(EARLY))
        hop.close()

        # 3. The recorded first flight, replayed to both servers.
        answers = [replay(server.port, flight) for server in (a, b) for _ in range(REPLAYS)]

        keys = redis.Redis(port=store.port)
        try:
            record = keys.keys("resume:replay:*")
            guard_key = RedisReplayGuard(store.url).key(client_random(flight))
        finally:
            keys.close()
        a_lines, b_lines = a.stop(), b.stop()

    assert reused and echoed == EARLY
    # Every replay got an answer that starts with a handshake record (a ServerHello):
    # the server went on with the handshake instead of failing the connection.
    assert all(answer[:1] == b"\x16" for answer in answers)
    a_runs = [line for line in a_lines if CONNECTION_LINE.fullmatch(line)]
    b_runs = [line for line in b_lines if CONNECTION_LINE.fullmatch(line)]
    # One handler run per real connection; none for the 20 replays.
    assert len(a_runs) == 1 and len(b_runs) == 1, (a_lines, b_lines)
    assert f"TLSv{version} full handshake early-data=none" in a_runs[0], a_runs
    assert f"TLSv{version} resumed" in b_runs[0], b_runs
    if version == "1.3":
        assert max_early > 0
        assert status == EARLY_DATA_ACCEPTED
        assert "early-data=accepted" in b_runs[0]
        # The record of the fleet: one ClientHello, kept in the Redis of the ticket keys.
        assert record == [guard_key.encode()]
    else:
        assert max_early == 0
        assert status == EARLY_DATA_NOT_SENT
        assert "early-data=none" in b_runs[0]
        assert record == []
    # The replays were accepted connections that failed their handshake.
    for lines in (a_lines, b_lines):
        summary = next(line for line in lines if line.startswith("served "))
        assert summary.startswith(f"served {REPLAYS + 1} connections"), summary
        assert f"{REPLAYS} failed" in summary, summary


# -- the control: the harness sees a replay that gets through ------------------------------


@pytest.mark.parametrize(("anti_replay", "runs"), [(False, 1 + 3), (True, 1)])
def test_the_replay_harness_sees_unprotected_replays(
    pki: ServerPKI, anti_replay: bool, runs: int
) -> None:
    """openssl s_server -early_data: 3 replays reach it without anti-replay, none with it.

    TLS 1.3 only: early data does not exist in TLS 1.2.
    """
    marker = b"EARLY-MARKER-7f3a"
    connections = 2 + 3  # the ticket, the 0-RTT connection, three replays
    proc = subprocess.Popen(
        [require("openssl"), "s_server", "-accept", "127.0.0.1:0", "-tls1_3",
         "-cert", str(pki.cert_file), "-key", str(pki.key_file), "-early_data",
         "-naccept", str(connections), *([] if anti_replay else ["-no_anti_replay"])],
        stdin=subprocess.PIPE,  # s_server ends a connection when its stdin ends
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        port = None
        while line := proc.stdout.readline():
            found = re.match(rb"ACCEPT 127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "s_server did not say where it listens"
        context = pki.client_context("1.3")
        first = BioClient(context)
        first.connect(port, first.first_flight())
        first.handshake()
        session = first.ticket()
        first.close()
        hop = BioClient(context, session)
        flight = hop.first_flight(marker)
        hop.connect(port, flight)
        hop.handshake()
        assert binding().early_data_status(hop.tls) == EARLY_DATA_ACCEPTED
        hop.close()
        for _ in range(3):
            replay(port, flight)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
    assert out.count(marker) == runs, out.decode(errors="replace")[-2000:]
