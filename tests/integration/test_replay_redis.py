"""RedisReplayGuard against a real redis-server: one use per ClientHello, fleet-wide.

The record is an atomic ``SET NX PX`` (RFC 8446, 8.2), so of any number of
guards, threads or processes asking about the same random within the window,
exactly one is told it is the first. A Redis that is down, silent, or refuses
the login answers False (early data refused) and is logged once per outage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from fake_redis import FakeRedis
from programs import require
from redis_server import RedisServer, redis_server
from serverhelpers import ServerPKI

from resume import StoreError
from resume._openssl.binding import (
    EARLY_DATA_ACCEPTED,
    EARLY_DATA_REJECTED,
    OP_NO_ANTI_REPLAY,
    READ_EARLY_DATA_FINISH,
    binding,
)
from resume.replay import RedisReplayGuard
from resume.ticketkeys import TicketKeyRing, install_ticket_keys

__all__ = ["redis_server"]  # the fixture, imported for pytest

#: A generous per-call bound where the test is about the record, not the bound:
#: two cores shared by several test workers can stretch a loopback round trip.
ROOMY = 5.0


def random_of(n: int, salt: bytes = b"") -> bytes:
    """A 32-byte stand-in for a ClientHello random, the same in every process."""
    return hashlib.sha256(salt + n.to_bytes(4, "big")).digest()


def client(server: RedisServer, db: int = 0) -> Any:
    return redis.Redis(port=server.port, db=db)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def guard_on(url: str, **kwargs: Any) -> Iterator[RedisReplayGuard]:
    guard = RedisReplayGuard(url, **kwargs)
    try:
        yield guard
    finally:
        guard.close()


class TestRecord:
    def test_first_use_then_replay(self, redis_server: RedisServer) -> None:
        """The first use of a random is True; the same random again is False."""
        with guard_on(redis_server.url, timeout=ROOMY) as guard:
            assert guard.first_use(random_of(1)) is True
            assert guard.first_use(random_of(1)) is False
            assert guard.first_use(random_of(1)) is False
        assert (guard.accepted, guard.replays, guard.errors) == (1, 2, 0)

    def test_different_randoms_are_independent(self, redis_server: RedisServer) -> None:
        """Each random has its own record."""
        with guard_on(redis_server.url, timeout=ROOMY) as guard:
            assert [guard.first_use(random_of(n)) for n in range(10)] == [True] * 10
            assert [guard.first_use(random_of(n)) for n in range(10)] == [False] * 10

    @pytest.mark.parametrize("window", [11.0, 30.0, 120.5])
    def test_the_record_expires_after_the_window(
        self, redis_server: RedisServer, window: float
    ) -> None:
        """The key carries a Redis TTL of the window, and holds no ClientHello bytes."""
        with guard_on(redis_server.url, window=window, timeout=ROOMY) as guard:
            guard.first_use(random_of(1))
            key = guard.key(random_of(1))
        r = client(redis_server)
        try:
            ttl = r.pttl(key)
            assert window * 1000 - 5000 < ttl <= window * 1000 + 1
            assert r.get(key) == b"1"
            assert r.keys("*") == [key.encode()]
        finally:
            r.close()

    def test_after_expiry_the_random_is_new_again(self, redis_server: RedisServer) -> None:
        """Once Redis drops the key (the window is over), the random counts as a first use."""
        with guard_on(redis_server.url, timeout=ROOMY) as guard:
            assert guard.first_use(random_of(1)) is True
            r = client(redis_server)
            try:
                r.pexpire(guard.key(random_of(1)), 1)  # the window, passed at once
                deadline = time.monotonic() + 10
                while r.exists(guard.key(random_of(1))):
                    assert time.monotonic() < deadline, "Redis did not expire the key"
                    time.sleep(0.001)  # Redis expires keys on its own clock: poll
            finally:
                r.close()
            assert guard.first_use(random_of(1)) is True

    def test_two_guards_share_the_record(self, redis_server: RedisServer) -> None:
        """Two guards (two servers of a fleet) on one Redis: a random is new to only one."""
        with guard_on(redis_server.url, timeout=ROOMY) as a, guard_on(
            redis_server.url, timeout=ROOMY
        ) as b:
            assert a.first_use(random_of(1)) is True
            assert b.first_use(random_of(1)) is False
            assert b.first_use(random_of(2)) is True
            assert a.first_use(random_of(2)) is False

    def test_prefixes_separate_records(self, redis_server: RedisServer) -> None:
        """Guards with different prefixes (two fleets on one Redis) do not see each other."""
        with guard_on(redis_server.url, prefix="a", timeout=ROOMY) as a, guard_on(
            redis_server.url, prefix="b", timeout=ROOMY
        ) as b:
            assert a.first_use(random_of(1)) is True
            assert b.first_use(random_of(1)) is True
            assert a.key(random_of(1)).startswith("a:")

    def test_threads_racing_on_one_random(self, redis_server: RedisServer) -> None:
        """Eight threads on one guard ask about the same randoms: one True per random."""
        with guard_on(redis_server.url, timeout=ROOMY) as guard:
            start = threading.Barrier(8)
            results: list[list[bool]] = []

            def worker() -> None:
                start.wait(10)
                results.append([guard.first_use(random_of(n)) for n in range(20)])

            threads = [threading.Thread(target=worker) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        assert len(results) == 8
        assert [sum(column) for column in zip(*results, strict=True)] == [1] * 20
        assert (guard.accepted, guard.replays, guard.errors) == (20, 140, 0)


WORKER = textwrap.dedent(
    """
    import json, os, sys, hashlib
    from resume.replay import RedisReplayGuard
    guard = RedisReplayGuard(sys.argv[1], timeout=float(sys.argv[2]))
    assert guard.first_use(os.urandom(32))  # connected, before the race
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    results = [guard.first_use(hashlib.sha256(b"race" + n.to_bytes(4, "big")).digest())
               for n in range(20)]
    print(json.dumps(results), flush=True)
    """
)


def test_two_processes_same_randoms_exactly_one_wins(redis_server: RedisServer) -> None:
    """Two processes (two servers) race on 20 randoms: each is new to exactly one of them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_server.url, str(ROOMY)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in procs:  # release both at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [a + b for a, b in zip(*results, strict=True)] == [1] * 20
    assert sum(results[0]) + sum(results[1]) == 20


class TestOutage:
    def test_redis_stopped_refuses_then_comes_back(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Redis stopped: False, one warning however many calls; restarted: True again."""
        with guard_on(redis_server.url, timeout=ROOMY) as guard, caplog.at_level(
            logging.INFO, logger="resume.replay"
        ):
            assert guard.first_use(random_of(1)) is True  # a pooled connection now
            redis_server.stop()
            clock = [time.monotonic()]
            guard._clock = lambda: clock[0]
            results = []
            for n in range(2, 12):
                results.append(guard.first_use(random_of(n)))
                clock[0] += 10  # past every back-off: each call asks the dead Redis
            assert results == [False] * 10 and guard.down
            assert guard.errors == 10
            redis_server.start()
            assert guard.first_use(random_of(99)) is True
            assert not guard.down
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "refusing early data" in warnings[0].getMessage()
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
            f"replay record: Redis at {redis_server.url} is back; early data is accepted again"
        ]

    def test_nothing_listening(self, caplog: pytest.LogCaptureFixture) -> None:
        """A closed port: every call returns False; one warning; no call during the back-off."""
        url = f"redis://127.0.0.1:{free_port()}/0"
        with guard_on(url) as guard, caplog.at_level(logging.WARNING, logger="resume.replay"):
            now = time.monotonic()
            guard._clock = lambda: now  # the back-off never ends on its own: deterministic
            assert [guard.first_use(random_of(n)) for n in range(20)] == [False] * 20
        assert guard.errors == 20 and guard.down
        assert len(caplog.records) == 1
        assert "Connection refused" in caplog.records[0].getMessage()

    def test_connect_opens_the_connection_first_use_then_reuses(
        self, redis_server: RedisServer
    ) -> None:
        """connect() opens one connection; the first first_use() then opens none."""
        r = redis.Redis(host="127.0.0.1", port=redis_server.port)
        try:

            def received() -> int:
                # Connections the server has accepted so far (this client's included).
                return int(r.info("stats")["total_connections_received"])

            with guard_on(redis_server.url, timeout=ROOMY) as guard:
                before = received()
                guard.connect()
                assert received() == before + 1
                assert guard.first_use(random_of(1)) is True
                assert received() == before + 1
        finally:
            r.close()

    def test_connect_to_nothing_raises_a_store_error_without_the_password(self) -> None:
        """connect() to a closed port: a StoreError whose message hides the password."""
        url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
        with guard_on(url) as guard, pytest.raises(StoreError) as info:
            guard.connect(timeout=1.0)
        assert "hunter2secret" not in str(info.value)

    def test_silent_redis_is_cut_off_by_the_timeout(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A Redis that accepts and never answers: False once the 50 ms deadline ends."""
        with FakeRedis("silent") as fake, guard_on(fake.url) as guard, caplog.at_level(
            logging.WARNING, logger="resume.replay"
        ):
            now = time.monotonic()
            guard._clock = lambda: now  # the back-off never ends on its own: deterministic
            assert guard.first_use(random_of(1)) is False
            assert fake.accepted == 1
            assert guard.first_use(random_of(2)) is False  # backed off: no new connection
            assert fake.accepted == 1
        assert len(caplog.records) == 1
        assert "no complete answer within 0.05 s" in caplog.records[0].getMessage()

    @pytest.mark.parametrize("mode", ["trickle", "endless_array", "garbage", "wrong_type"])
    def test_hostile_redis_refuses(self, mode: str) -> None:
        """Replies that are slow, endless, not RESP or of the wrong type: False, counted."""
        with FakeRedis(mode) as fake, guard_on(fake.url) as guard:
            assert guard.first_use(random_of(1)) is False
        assert (guard.accepted, guard.replays, guard.errors) == (0, 0, 1)


class TestLogins:
    def test_requirepass(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """redis://:PASSWORD@ logs in; no password or a wrong one refuses, never logging it."""
        r = client(redis_server)
        try:
            r.config_set("requirepass", "s3cret-pw")
        finally:
            r.close()
        base = f"127.0.0.1:{redis_server.port}/0"
        with guard_on(f"redis://:s3cret-pw@{base}", timeout=ROOMY) as guard:
            assert guard.first_use(random_of(1)) is True
            assert "s3cret-pw" not in repr(guard)
        with caplog.at_level(logging.WARNING, logger="resume.replay"):
            with guard_on(f"redis://{base}") as guard:
                assert guard.first_use(random_of(2)) is False
            with guard_on(f"redis://:wrong-pw@{base}") as guard:
                assert guard.first_use(random_of(3)) is False
                assert "wrong-pw" not in repr(guard)
        assert "NOAUTH" in caplog.records[0].getMessage()
        assert "WRONGPASS" in caplog.records[1].getMessage()
        assert "wrong-pw" not in caplog.text and "***" in caplog.records[1].getMessage()

    def test_acl_user_with_only_set_on_its_prefix(self, redis_server: RedisServer) -> None:
        """An ACL user allowed SET on PREFIX:* and nothing else is enough."""
        r = client(redis_server)
        try:
            r.acl_setuser("fleet", enabled=True, passwords=["+fleet-pw"],
                          keys=["resume:replay:*"], commands=["+set"])
        finally:
            r.close()
        url = f"redis://fleet:fleet-pw@127.0.0.1:{redis_server.port}/0"
        with guard_on(url, timeout=ROOMY) as guard:
            assert guard.first_use(random_of(1)) is True
            assert guard.first_use(random_of(1)) is False
            assert repr(guard).startswith(
                f"<resume.replay.RedisReplayGuard 'redis://fleet:***@127.0.0.1:{redis_server.port}"
            )

    def test_database_number(self, redis_server: RedisServer) -> None:
        """/3 keeps the record in database 3."""
        url = f"redis://127.0.0.1:{redis_server.port}/3"
        with guard_on(url, timeout=ROOMY) as guard:
            assert guard.first_use(random_of(1)) is True
            key = guard.key(random_of(1))
        db3, db0 = client(redis_server, 3), client(redis_server, 0)
        try:
            assert db3.exists(key) and not db0.exists(key)
        finally:
            db3.close()
            db0.close()

    @pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
    def test_tls(self, tmp_path: Path, version: str) -> None:
        """rediss:// with ssl_ca_certs: the record works over TLS 1.2 and 1.3."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        port = free_port()
        proc = subprocess.Popen(
            [require("redis-server"), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path), "--port", "0", "--tls-port", str(port),
             "--tls-cert-file", str(tmp_path / "cert.pem"),
             "--tls-key-file", str(tmp_path / "key.pem"),
             "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no",
             "--tls-protocols", version],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        try:
            url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'ca.pem'}"
            deadline = time.monotonic() + 10
            while True:  # wait for the server to listen
                with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", port), timeout=1
                ):
                    break
                assert proc.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not listen"
                time.sleep(0.02)  # polling a process that is starting: no event to await
            with guard_on(url, timeout=ROOMY) as guard:
                assert guard.first_use(random_of(1)) is True
                assert guard.first_use(random_of(1)) is False
                conn = guard._client._idle[0]
                assert conn.sock.version() == version  # type: ignore[attr-defined]
        finally:
            proc.terminate()
            proc.wait(10)



# -- the guard as the gate of real server contexts (OpenSSL's allow-early-data callback) ---


class Gated:
    """A TLS 1.3 server context sharing *ring*'s ticket keys, gated by a RedisReplayGuard."""

    def __init__(self, pki: ServerPKI, ring: TicketKeyRing, guard: RedisReplayGuard) -> None:
        self.context = pki.server_context("1.3")
        install_ticket_keys(self.context, ring)
        self.context.options |= OP_NO_ANTI_REPLAY  # stateless tickets; the guard decides
        binding().set_max_early_data(self.context, 16384)
        binding().set_early_data_gate(self.context, guard.first_use)
        self.guard = guard


def _move(src: ssl.MemoryBIO, dst: ssl.MemoryBIO) -> None:
    data = src.read()
    if data:
        dst.write(data)


def early_handshake(
    server: Gated, client: ssl.SSLObject, c_in: ssl.MemoryBIO, c_out: ssl.MemoryBIO,
    flight: bytes,
) -> tuple[bytes, int]:
    """Run a server on *flight*, then finish the handshake with *client*.

    Returns the early bytes the server read and its early-data status.
    """
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = server.context.wrap_bio(s_in, s_out, server_side=True)
    s_in.write(flight)
    early = b""
    for _ in range(20):  # bounded: each round moves one flight
        try:
            status, data = binding().read_early_data(tls, 16384)
        except ssl.SSLWantReadError:
            _move(s_out, c_in)
            with contextlib.suppress(ssl.SSLWantReadError):
                client.do_handshake()
            _move(c_out, s_in)
            continue
        early += data
        if status == READ_EARLY_DATA_FINISH:
            break
    for _ in range(20):
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            _move(s_out, c_in)
            with contextlib.suppress(ssl.SSLWantReadError):
                client.do_handshake()
            _move(c_out, s_in)
    _move(s_out, c_in)
    return early, binding().early_data_status(tls)


def test_the_guard_gates_real_handshakes_across_a_fleet(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Two server contexts, shared keys, one Redis: 0-RTT once, every replay refused by the gate.

    TLS 1.3 only (early data does not exist in TLS 1.2). The replays run
    through OpenSSL's allow-early-data callback into RedisReplayGuard.first_use.
    """
    pki = ServerPKI()
    ring = TicketKeyRing()
    a = Gated(pki, ring, RedisReplayGuard(redis_server.url, timeout=ROOMY))
    b = Gated(pki, ring, RedisReplayGuard(redis_server.url, timeout=ROOMY))
    client_ctx = pki.client_context("1.3")

    # A ticket from A (full handshake, then read the NewSessionTicket).
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    first = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        first.do_handshake()
    early_handshake(a, first, c_in, c_out, c_out.read())
    with pytest.raises(ssl.SSLWantReadError):
        first.read(1)
    session = first.session
    assert session is not None and session.has_ticket

    # 0-RTT on B with A's ticket; the first flight is recorded.
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    hop = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    binding().write_early_data(hop, b"GET / HTTP/1.1\r\n\r\n")
    flight = c_out.read()
    early, status = early_handshake(b, hop, c_in, c_out, flight)
    assert early == b"GET / HTTP/1.1\r\n\r\n" and status == EARLY_DATA_ACCEPTED
    assert hop.session_reused and binding().early_data_status(hop) == EARLY_DATA_ACCEPTED
    assert (b.guard.accepted, b.guard.replays) == (1, 0)

    # The same first flight to A and to B: the gate refuses, nothing is read early.
    for server in (a, b, a, b):
        c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ghost = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
        s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = server.context.wrap_bio(s_in, s_out, server_side=True)
        s_in.write(flight)
        status_, data = binding().read_early_data(tls, 16384)
        assert (status_, data) == (READ_EARLY_DATA_FINISH, b"")
        assert s_out.read()[:1] == b"\x16"  # the handshake goes on (a ServerHello)
        assert binding().early_data_status(tls) == EARLY_DATA_REJECTED
        del ghost
    assert (a.guard.accepted, a.guard.replays, a.guard.errors) == (0, 2, 0)
    assert (b.guard.accepted, b.guard.replays, b.guard.errors) == (1, 2, 0)
    for gated in (a, b):
        gated.guard.close()

