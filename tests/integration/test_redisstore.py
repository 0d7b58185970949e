"""RedisStore against a real redis-server: atomic takes, TTLs, a server that goes away."""

from __future__ import annotations

import contextlib
import json
import os
import socket
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
from programs import require
from redis_server import RedisServer, redis_server

import resume
from resume import StoreWarning
from resume.stores import RedisStore, StoredSession

__all__ = ["redis_server"]  # the fixture, imported for pytest

HOST = ("example.test", 443)


def session(n: int) -> bytes:
    return b"\x30\x82" + n.to_bytes(4, "big") + b"master" * 8


def client(server: RedisServer) -> Any:
    return redis.Redis.from_url(server.url)


#: The store key of these tests (the same in the worker processes).
KEY = bytes(range(32))


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from resume.stores import RedisStore
    url, go = sys.argv[1], sys.argv[2]
    store = RedisStore(url, per_key=100000, key=bytes(range(32)))
    store.get(("warm", 1))  # connect and load the salt before the race
    while not os.path.exists(go):
        time.sleep(0.001)
    got = []
    while (s := store.take(("example.test", 443))) is not None:
        got.append(s.data.hex())
    store.close()
    print(json.dumps(got))
    """
)


class TestAtomicTake:
    def test_two_clients_never_get_the_same_ticket(
        self, redis_server: RedisServer, tmp_path: Any
    ) -> None:
        """Four processes race to take 400 tickets: each ticket reaches exactly one."""
        with RedisStore(redis_server.url, key=KEY, per_key=100000) as store:
            for n in range(400):
                store.put(HOST, session(n), expires=time.time() + 600)
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, redis_server.url, str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        go.touch()
        taken: list[str] = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
            taken += json.loads(out)
        assert len(taken) == len(set(taken)) == 400


class TestLayout:
    def test_expiry_is_a_redis_ttl(self, redis_server: RedisServer) -> None:
        """Each name's keys expire in Redis at the latest entry's expiry (plus 1 s)."""
        r = client(redis_server)
        try:
            with RedisStore(redis_server.url, key=KEY, prefix="p") as store:
                store.put(HOST, session(1), expires=time.time() + 100)
                store.put(HOST, session(2), expires=time.time() + 300)
                keys = [k for k in r.keys("p:{*") if k]
                assert len(keys) == 3
                for k in keys:
                    # The store rounds the expiry up to the next millisecond and
                    # Redis counts whole milliseconds, so the TTL may read 1 ms
                    # over 301 s when the put and the PTTL share a millisecond.
                    assert 295_000 < r.pttl(k) <= 301_001
                assert r.pttl("p:salt") == -1  # the salt stays
        finally:
            r.close()

    def test_take_of_the_last_entry_leaves_no_keys(self, redis_server: RedisServer) -> None:
        """A pool emptied by take() leaves nothing behind under its name."""
        r = client(redis_server)
        try:
            with RedisStore(redis_server.url, key=KEY, prefix="p") as store:
                store.put(HOST, session(1), expires=time.time() + 100)
                assert store.take(HOST) is not None
                assert r.keys("p:{*") == []
        finally:
            r.close()

    def test_prefixes_separate_stores(self, redis_server: RedisServer) -> None:
        """Two prefixes on one server are two stores."""
        with RedisStore(redis_server.url, key=KEY, prefix="a") as a, RedisStore(
            redis_server.url, key=KEY, prefix="b"
        ) as b:
            a.put(HOST, session(1), expires=time.time() + 60)
            assert b.get(HOST) is None
            assert a.get(HOST) is not None


class TestServerDown:
    def test_down_raises_store_error_then_recovers(self, redis_server: RedisServer) -> None:
        """With the server stopped every call raises StoreError; after a restart it works again."""
        with RedisStore(redis_server.url, key=KEY, timeout=0.5) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
            redis_server.stop()
            with pytest.raises(resume.StoreError, match="failed"):
                store.take(HOST)
            with pytest.raises(resume.StoreError):
                store.put(HOST, session(2), expires=time.time() + 60)
            redis_server.start()
            # The restarted server is empty (no persistence): a miss, not an error.
            assert store.take(HOST) is None
            expires = float(int(time.time()) + 60)
            store.put(HOST, session(3), expires=expires)
            assert store.take(HOST) == StoredSession(session(3), expires)

    def test_restarted_server_keeps_running_clients_agreeing(
        self, redis_server: RedisServer
    ) -> None:
        """After an empty restart, a running client puts its salt back; a new client uses it."""
        with RedisStore(redis_server.url, key=KEY) as old:
            old.put(HOST, session(1), expires=time.time() + 60)
            redis_server.stop()
            redis_server.start()
            old.put(HOST, session(2), expires=time.time() + 60)
            with RedisStore(redis_server.url, key=KEY) as new:
                got = new.take(HOST)
                assert got is not None and got.data == session(2)

    def test_salt_changed_by_another_client(self, redis_server: RedisServer) -> None:
        """If another client re-created the salt first, a running client reloads it and retries."""
        with RedisStore(redis_server.url, key=KEY) as old:
            old.put(HOST, session(1), expires=time.time() + 60)
            r = client(redis_server)
            r.flushall()
            r.close()
            with RedisStore(redis_server.url, key=KEY) as new:
                new.put(HOST, session(2), expires=time.time() + 60)  # creates a new salt
                got = old.take(HOST)
                assert got is not None and got.data == session(2)

    def test_never_started(self) -> None:
        """A URL where nothing listens: StoreError on use, not at construction."""
        store = RedisStore("redis://127.0.0.1:1/0", key=KEY, timeout=0.5)
        with store, pytest.raises(resume.StoreError, match="failed"):
            store.get(HOST)


class TestConfiguration:
    def test_password_is_never_shown(self) -> None:
        """repr() and error messages hide the password of the URL."""
        store = RedisStore("redis://user:hunter2@127.0.0.1:1/0", key=KEY, timeout=0.5)
        with store:
            assert "hunter2" not in repr(store)
            with pytest.raises(resume.StoreError) as info:
                store.get(HOST)
            assert "hunter2" not in str(info.value)
            assert "user:***@127.0.0.1:1" in str(info.value)

    @pytest.mark.parametrize(
        "url",
        [
            "redis://user:hunter2@127.0.0.1:1/0",
            "redis://:hunter2@127.0.0.1:1/0",
            "redis://127.0.0.1:1/0?password=hunter2",
            "unix://user:hunter2@/tmp/nonexistent-redis.sock?db=0",
        ],
    )
    def test_password_never_in_repr_errors_or_warnings(self, url: str) -> None:
        """Every spelling of a Redis password is redacted from repr, errors and warnings."""
        with pytest.warns(StoreWarning) as record:
            store = RedisStore(url, timeout=0.2, insecure_unauthenticated=True)
        with store:
            shown = [repr(store), *(str(w.message) for w in record)]
            with pytest.raises(resume.StoreError) as info:
                store.get(HOST)
            shown.append(str(info.value))
        assert all("hunter2" not in text for text in shown), shown
        assert "***" in repr(store)

    def test_a_key_is_required(self) -> None:
        """Without a key (and without the opt-out) a RedisStore is refused, saying what to give."""
        with pytest.raises(ValueError, match=r"needs a key.*insecure_unauthenticated=True"):
            RedisStore("redis://127.0.0.1:1/0")

    def test_the_opt_out_warns_every_time(self) -> None:
        """insecure_unauthenticated=True works, and says what it costs at every start."""
        for _ in range(2):
            with pytest.warns(StoreWarning, match="not authenticated.*does not trust"):
                store = RedisStore("redis://127.0.0.1:1/0", insecure_unauthenticated=True)
            assert store.encrypted is False
            store.close()
        with pytest.raises(ValueError, match="not both"):
            RedisStore("redis://127.0.0.1:1/0", key=KEY, insecure_unauthenticated=True)

    def test_sessions_are_never_in_clear_in_redis(self, redis_server: RedisServer) -> None:
        """What redis-cli shows is sealed, with a key and under the opt-out alike."""
        with pytest.warns(StoreWarning):
            insecure = RedisStore(redis_server.url, prefix="i", insecure_unauthenticated=True)
        with RedisStore(redis_server.url, key=KEY, prefix="k") as keyed, insecure:
            keyed.put(HOST, session(1), expires=time.time() + 60)
            insecure.put(HOST, session(2), expires=time.time() + 60)
            r = client(redis_server)
            try:
                values = [v for k in r.keys("*:e") for v in r.hvals(k)]
            finally:
                r.close()
        assert len(values) == 2
        assert all(b"master" not in v and b"example" not in v for v in values)

    def test_bad_url(self) -> None:
        """A URL that is not Redis is a ValueError."""
        with pytest.raises(ValueError, match="Redis URL"):
            RedisStore("http://127.0.0.1/", key=KEY)

    def test_encrypted_store_shares_between_objects(self, redis_server: RedisServer) -> None:
        """Two encrypted store objects with one key read each other's sessions."""
        key = os.urandom(32)
        with RedisStore(redis_server.url, key=key) as a, RedisStore(
            redis_server.url, key=key
        ) as b:
            a.put(HOST, session(1), expires=time.time() + 60)
            got = b.take(HOST)
            assert got is not None and got.data == session(1)


@contextlib.contextmanager
def redis_process(directory: Path, *args: str, ping: Any) -> Iterator[None]:
    """A redis-server with extra *args* (a Unix socket, TLS); *ping* makes a client to wait with."""
    proc = subprocess.Popen(
        [require("redis-server"), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            probe = ping()
            try:
                with contextlib.suppress(redis.RedisError, OSError):
                    if probe.ping():
                        break
            finally:
                probe.close()
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.02)  # polling a process that is starting: no event to await
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def round_trip(url: str) -> None:
    """Put a session through a store on *url* and take it back."""
    with RedisStore(url, key=KEY) as store:
        store.put(HOST, session(7), expires=time.time() + 60)
        got = store.take(HOST)
    assert got is not None and got.data == session(7)


class TestConnections:
    """resume's own Redis client against a real redis-server: logins, databases, transports."""

    def test_acl_user_and_password(self, redis_server: RedisServer) -> None:
        """redis://USER:PASSWORD@ logs in as that ACL user; a wrong password is a StoreError."""
        r = client(redis_server)
        try:
            r.acl_setuser("alice", enabled=True, passwords=["+s3cret"], keys=["*"],
                          commands=["+@all"])
        finally:
            r.close()
        base = f"127.0.0.1:{redis_server.port}/0"
        round_trip(f"redis://alice:s3cret@{base}")
        round_trip(f"redis://{base}?username=alice&password=s3cret")
        with RedisStore(f"redis://alice:wrong@{base}", key=KEY) as store, pytest.raises(
            resume.StoreError, match="AUTH failed: WRONGPASS"
        ) as info:
            store.get(HOST)
        assert "wrong" not in str(info.value).replace("WRONGPASS", "")

    def test_requirepass(self, redis_server: RedisServer) -> None:
        """redis://:PASSWORD@ (no user) logs in as the default user."""
        r = client(redis_server)
        try:
            r.config_set("requirepass", "s3cret")
        finally:
            r.close()
        round_trip(f"redis://:s3cret@127.0.0.1:{redis_server.port}/0")
        with RedisStore(redis_server.url, key=KEY) as store, pytest.raises(
            resume.StoreError, match="NOAUTH"
        ):
            store.get(HOST)

    def test_database_number(self, redis_server: RedisServer) -> None:
        """/3 selects database 3: the store's keys are there and not in database 0."""
        round_trip(f"redis://127.0.0.1:{redis_server.port}/3")
        db3 = redis.Redis(port=redis_server.port, db=3)
        db0 = client(redis_server)
        try:
            assert db3.exists("resume:salt") and not db0.exists("resume:salt")
        finally:
            db3.close()
            db0.close()

    def test_scripts_flushed_on_the_server(self, redis_server: RedisServer) -> None:
        """After SCRIPT FLUSH (or a restart) EVALSHA's NOSCRIPT is answered with EVAL."""
        with RedisStore(redis_server.url, key=KEY) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
            r = client(redis_server)
            try:
                r.script_flush()
            finally:
                r.close()
            got = store.take(HOST)
        assert got is not None and got.data == session(1)

    def test_an_idle_connection_killed_is_replaced(self, redis_server: RedisServer) -> None:
        """CLIENT KILL on the store's pooled connection: the next call reconnects and works."""
        with RedisStore(redis_server.url, key=KEY) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
            r = client(redis_server)
            try:
                assert r.client_kill_filter(_type="normal", skipme=True) >= 1
            finally:
                r.close()
            got = store.take(HOST)
        assert got is not None and got.data == session(1)

    def test_all_pooled_connections_dead_after_a_restart(self, redis_server: RedisServer) -> None:
        """Two idle connections, a restart: the next call drops both and reconnects once."""
        from resume._stores.redisclient import RedisClient

        client_ = RedisClient(redis_server.url, timeout=5.0)
        try:
            waiter = threading.Thread(target=lambda: client_.call("BLPOP", "go", 5))
            waiter.start()  # holds its connection until the push below, made on another
            assert client_.call("RPUSH", "go", "now") == 1
            waiter.join(10)
            assert len(client_._idle) == 2
            redis_server.stop()
            redis_server.start()
            assert client_.call("PING") == "PONG"
        finally:
            client_.close()

    def test_unix_socket(self, tmp_path: Path) -> None:
        """unix:///PATH?db=N reaches a server on a Unix socket."""
        path = tmp_path / "redis.sock"
        with redis_process(
            tmp_path, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700",
            ping=lambda: redis.Redis(unix_socket_path=str(path)),
        ):
            round_trip(f"unix://{path}?db=2")

    def test_tls(self, tmp_path: Path) -> None:
        """rediss:// with ssl_ca_certs verifies the server's certificate and name."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        other = trustme.CA()
        other.cert_pem.write_to_path(str(tmp_path / "other.pem"))
        port = free_port()
        with redis_process(
            tmp_path, "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(tmp_path / "cert.pem"),
            "--tls-key-file", str(tmp_path / "key.pem"),
            "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no",
            ping=lambda: redis.Redis(
                host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(tmp_path / "ca.pem")
            ),
        ):
            round_trip(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'ca.pem'}")
            untrusted = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'other.pem'}"
            with RedisStore(untrusted, key=KEY) as store, pytest.raises(
                resume.StoreError, match="CERTIFICATE_VERIFY_FAILED"
            ):
                store.get(HOST)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("redis://127.0.0.1:6379/0?socket_timeout=5", "unknown parameter 'socket_timeout'"),
            ("redis://127.0.0.1:6379/x", "database .* is not a number"),
            ("redis:///0", "names no host"),
            ("redis://127.0.0.1:99999/0", "not a Redis URL"),
            ("redis://127.0.0.1/0?ssl_ca_certs=/x", "ssl_\\* parameters need rediss://"),
            ("rediss://127.0.0.1/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be"),
        ],
    )
    def test_urls_resume_cannot_use(self, url: str, message: str) -> None:
        """A URL resume cannot use is a ValueError at construction, saying why."""
        with pytest.raises(ValueError, match=message):
            RedisStore(url, key=KEY)


FORKER = textwrap.dedent(
    """
    import os, sys, time
    from resume.stores import RedisStore
    store = RedisStore(sys.argv[1], key=bytes(range(32)))
    store.put(("example.test", 443), b"0" * 40, expires=time.time() + 60)
    pid = os.fork()
    if pid == 0:  # the child: its own connection, not the parent's pooled one
        found = store.get(("example.test", 443))
        os._exit(0 if found is not None else 3)
    _, status = os.waitpid(pid, 0)
    found = store.get(("example.test", 443))
    print(os.waitstatus_to_exitcode(status), found is not None)
    """
)


def test_a_forked_child_opens_its_own_connection(redis_server: RedisServer) -> None:
    """After fork() parent and child both use the store; neither speaks on the other's socket."""
    done = subprocess.run(
        [sys.executable, "-c", FORKER, redis_server.url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]
