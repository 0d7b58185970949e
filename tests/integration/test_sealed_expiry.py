"""The sealed expiry decides (issue 18, finding 8): an expired entry cannot be revived.

A store keeps each entry's expiry twice: where the backend can use it (a SQLite
column, a Redis score) and inside the sealed header, authenticated by the key.
Whoever can write the store, even without the key, can move the backend's copy
into the future after the entry expired. The entry must still be a miss (and be
deleted), on SQLite and on a real redis-server, for get() and take(), and a
client connecting through a cache on the store (TLS 1.2 and 1.3, against
``openssl s_server``) must make a full handshake.
"""

from __future__ import annotations

import sqlite3
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import trio
from redis_server import RedisServer, redis_server
from test_cli_connect import SServer

from resume import SessionCache, StoreWarning
from resume.stores import RedisStore, SessionStore, SQLiteStore, attach_store
from resume.testing import TLS_VERSIONS, FakeClock

__all__ = ["redis_server"]  # the fixture, imported for pytest

HOST = ("example.test", 443)
SESSION = b"\x30\x82\x00\x10" + b"master secret!" * 4
KEY = bytes(range(32))
#: Far in the future, in seconds since the epoch (year 2255).
FAR = 9_000_000_000.0


def _revive_sqlite(path: Path) -> int:
    """Move every row's expiry column far into the future; return how many rows."""
    with sqlite3.connect(path) as db:
        return db.execute("UPDATE resume_sessions SET expires = ?", (FAR,)).rowcount


def _revive_redis(url: str, prefix: str = "resume") -> int:
    """Move every entry's expiry score far into the future and drop the keys' TTLs."""
    client = redis.Redis.from_url(url)
    revived = 0
    try:
        for key in client.scan_iter(match=f"{prefix}:{{*}}:x"):
            for member in client.zrange(key, 0, -1):
                assert isinstance(member, bytes)
                client.zadd(key, {member: int(FAR * 1000)}, xx=True)
                revived += 1
            base = key[: -len(b":x")]
            for suffix in (b":e", b":x", b":o"):
                client.persist(base + suffix)
        return revived
    finally:
        client.close()


def _entries_redis(url: str, prefix: str = "resume") -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(client.hlen(key) for key in client.scan_iter(match=f"{prefix}:{{*}}:e"))
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


class Backend:
    """Makes stores of one kind on one database and revives its entries."""

    def __init__(self, kind: str, directory: Path, server: RedisServer) -> None:
        self.kind = kind
        self.path = directory / "sessions.db"
        self.server = server

    def store(self, clock: Callable[[], float]) -> SessionStore:
        if self.kind == "sqlite":
            return SQLiteStore(self.path, clock=clock)
        return RedisStore(self.server.url, key=KEY, clock=clock)

    def revive(self) -> int:
        if self.kind == "sqlite":
            return _revive_sqlite(self.path)
        return _revive_redis(self.server.url)

    def entries(self) -> int:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                (count,) = db.execute("SELECT count(*) FROM resume_sessions").fetchone()
                return int(count)
        return _entries_redis(self.server.url)


@pytest.fixture
def backend(kind: str, tmp_path: Path, redis_server: RedisServer) -> Backend:
    tmp_path.chmod(0o700)
    return Backend(kind, tmp_path, redis_server)


class TestStore:
    @pytest.mark.parametrize("operation", ["get", "take"])
    def test_a_revived_entry_is_a_miss_and_is_deleted(
        self, backend: Backend, operation: str
    ) -> None:
        """An entry whose backend expiry was moved past its sealed one is not returned."""
        clock = FakeClock(time.time())
        with backend.store(clock) as store:
            assert store.put(HOST, SESSION, expires=clock() + 10)
            found = store.get(HOST)
            assert found is not None and found.data == SESSION
            clock.advance(100)
            # Revived before anyone reads it (a read would purge it from Redis).
            assert backend.revive() == 1
            with pytest.warns(StoreWarning, match="expiry there was changed"):
                assert getattr(store, operation)(HOST) is None
            assert backend.entries() == 0
            assert store.get(HOST) is None

    def test_the_newest_live_entry_behind_a_revived_one_is_returned(
        self, backend: Backend
    ) -> None:
        """A revived entry is skipped; a live one under the same key still comes back."""
        clock = FakeClock(time.time())
        live = SESSION + b"live"
        with backend.store(clock) as store:
            assert store.put(HOST, live, expires=clock() + 1000)
            assert store.put(HOST, SESSION, expires=clock() + 10)  # newer, expires sooner
            clock.advance(100)
            assert backend.revive() == 2
            with pytest.warns(StoreWarning, match="expiry there was changed"):
                found = store.take(HOST)
            assert found is not None and found.data == live
            assert backend.entries() == 0

    def test_an_entry_just_past_its_sealed_expiry_is_dropped_silently(
        self, backend: Backend
    ) -> None:
        """Past its sealed expiry by less than the rounding slack: a miss, no warning."""
        clock = FakeClock(time.time())
        with backend.store(clock) as store:
            assert store.put(HOST, SESSION, expires=clock() + 10)
            clock.advance(10.5)
            backend.revive()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert store.get(HOST) is None
            assert backend.entries() == 0


# -- through a cache and a real handshake -----------------------------------------------


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def server(version: str, tmp_path: Path) -> Iterator[SServer]:
    s = SServer(tmp_path, version)
    yield s
    s.close()


def _connect(
    server: SServer, version: str, backend: Backend, clock: Callable[[], float]
) -> bool:
    """One trio connection through a cache on a store with *clock*; True if it resumed."""
    from resume.trio import open_tls_stream

    ctx = ssl.create_default_context(cafile=str(server.cafile))
    ctx.minimum_version = ctx.maximum_version = TLS_VERSIONS[version]
    store = backend.store(clock)
    cache = SessionCache(timeout=60)
    # A fetch that the connection does not wait for would make a full handshake for
    # the wrong reason: wait for it.
    link = attach_store(cache, store, fetch_wait=60)
    link.register_context(ctx, label="sealed expiry test")

    async def one() -> bool:
        stream = await open_tls_stream("127.0.0.1", server.port, ssl_context=ctx, cache=cache,
                                       server_hostname="localhost")
        async with stream:
            await stream.send_all(b"ping\n")
            answer = b""
            while b"\n" not in answer:
                data = await stream.receive_some()
                if not data:
                    break
                answer += data
            assert answer == b"gnip\n", answer
            return bool(stream.session_reused)

    try:
        return trio.run(one)
    finally:
        link.close()
        store.close()
        cache.clear()


def test_a_revived_session_is_not_resumed(
    server: SServer, version: str, backend: Backend
) -> None:
    """After its sealed expiry, a session whose store expiry was moved on is not offered."""
    assert _connect(server, version, backend, time.time) is False
    assert _connect(server, version, backend, time.time) is True  # the store works: it resumes
    assert backend.entries() >= 1

    def later() -> float:  # an hour on: past the sealed expiry (the cache timeout, 60 s)
        return time.time() + 3600

    assert backend.revive() >= 1
    with pytest.warns(StoreWarning, match="expiry there was changed"):
        assert _connect(server, version, backend, later) is False
