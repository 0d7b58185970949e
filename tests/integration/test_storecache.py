"""A SessionCache sitting on a store (StoreLink), with real TLS handshakes on loopback.

Each "process" is a fresh SessionCache attached to one shared store (SQLite file
or a real redis-server): what one writes through, the next reads through, as
DER (SessionHandle.to_der / from_der) and offered with resume's offer(). The
server is a blocking ssl server in a thread that answers one line per
connection; every test runs under TLS 1.2 and TLS 1.3.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import ssl
import threading
import time
import warnings
import weakref
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from redis_server import RedisServer, redis_server

import resume
import resume.trio
from resume import CacheMode, SessionCache, SessionHandle
from resume._core.offer import offer
from resume._stores import link as link_module
from resume._stores.link import _plan, link_of
from resume.stores import (
    MemoryStore,
    RedisStore,
    SessionStore,
    SQLiteStore,
    StoreLink,
    StoreWarning,
    attach_store,
    context_label_digest,
)
from resume.testing import TLS_VERSIONS

__all__ = ["redis_server"]

VERSIONS = TLS_VERSIONS


class LineServer:
    """A TLS server on 127.0.0.1 that answers each connection's line, then closes cleanly."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.reused: list[bool] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.reused.append(bool(tls.session_reused))
                    line = tls.recv(1024)
                    tls.sendall(line.upper())
                    tls.recv(1)  # the client's close_notify
                    tls.unwrap()
            except (OSError, ssl.SSLError) as exc:  # pragma: no cover - reported by tests
                self.errors.append(exc)

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); then it returns.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(10)


class Pki:
    def __init__(self, version: str) -> None:
        self.version = version
        self.ca = trustme.CA()
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("localhost").configure_cert(self.server)
        self.server.minimum_version = self.server.maximum_version = VERSIONS[version]

    def client(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(ctx)
        ctx.minimum_version = ctx.maximum_version = VERSIONS[self.version]
        return ctx


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def pki(request: pytest.FixtureRequest) -> Pki:
    return Pki(request.param)


@pytest.fixture
def server(pki: Pki) -> Iterator[LineServer]:
    s = LineServer(pki.server)
    yield s
    s.close()
    assert not s.errors


_CONTEXTS: weakref.WeakKeyDictionary[SessionCache, ssl.SSLContext] = weakref.WeakKeyDictionary()


def connect(
    pki: Pki, server: LineServer, cache: SessionCache, key: Hashable,
    context: ssl.SSLContext | None = None, *, prefetch: bool = True,
) -> bool:
    """One client connection through *cache*, the way the adapters use it.

    TLS 1.3 tickets are single-use (take); TLS 1.2 sessions are lent (get1).
    After the answer arrives (and with it the TLS 1.3 tickets) and a clean
    close, the connection's session is added. Returns whether it resumed.
    """
    link = link_of(cache)
    if prefetch and link is not None:
        link.fetch(key)  # what the adapters do before a connection, in a thread
    handle = cache.take(key) if pki.version == "1.3" else cache.get1(key)
    ctx = context
    if ctx is None:  # one context per "process" (ssl ties sessions to their context)
        ctx = _CONTEXTS.get(cache)
        if ctx is None:
            ctx = _CONTEXTS[cache] = pki.client()
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        with tls:
            if handle is not None:
                offer(tls, handle)
            tls.do_handshake()
            tls.sendall(b"hello\n")
            assert tls.recv(1024) == b"HELLO\n"
            reused = bool(tls.session_reused)
            session = tls.session  # after the answer: TLS 1.3 tickets have arrived
            tls.unwrap()
    if handle is not None:
        handle.free()
    if session is not None and (session.has_ticket or session.id) and not (
        pki.version == "1.2" and reused
    ):
        fresh = SessionHandle.from_ssl(session)
        cache.add(key, fresh)
        fresh.free()
    return reused


@pytest.fixture(params=["sqlite", "redis"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> Iterator[Any]:
    made: list[SessionStore] = []

    def make(**options: Any) -> SessionStore:
        store: SessionStore
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / "s.db", **options)
        else:
            store = RedisStore(redis_server.url, **{"key": bytes(range(32)), **options})
        made.append(store)
        return store

    make.kind = request.param  # type: ignore[attr-defined]
    make.redis = redis_server  # type: ignore[attr-defined]
    yield make
    for store in made:
        store.close()


KEY = ("localhost", "test-config")


def process(store: SessionStore, **options: Any) -> tuple[SessionCache, StoreLink]:
    """A fresh client process: its own cache, attached to the shared store."""
    cache = SessionCache(mode=CacheMode.CLIENT, timeout=600)
    return cache, attach_store(cache, store, **options)


class TestWriteThroughReadThrough:
    def test_a_new_process_resumes_from_the_store(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """Process 1 connects (full); process 2, with an empty cache, resumes from the store."""
        store = make_store(key=bytes(32))
        cache1, link1 = process(store)
        assert connect(pki, server, cache1, KEY) is False
        assert link1.drain()  # writes are behind: wait for them
        assert link1.saved >= 1
        link1.close()
        cache2, link2 = process(make_store(key=bytes(32)))
        assert len(cache2) == 0
        assert connect(pki, server, cache2, KEY) is True
        assert link2.loaded == 1
        assert server.reused == [False, True]
        link2.close()

    def test_restarted_client_resumes_its_first_connections(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """20 connections, a restart, 4 more: the first connections after the restart resume."""
        cache1, link1 = process(make_store(per_key=8))
        for _ in range(20):
            connect(pki, server, cache1, KEY)
        link1.close()
        cache2, link2 = process(make_store(per_key=8))
        assert [connect(pki, server, cache2, KEY) for _ in range(4)] == [True] * 4
        link2.close()

    def test_a_ticket_goes_to_one_process_only(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """One stored session, two new processes: only one of them fetches it."""
        cache1, link1 = process(make_store())
        connect(pki, server, cache1, KEY)
        link1.detach()
        assert link1.drain()
        # Keep only the newest session in the store (TLS 1.3 servers send two tickets).
        store = make_store()
        while store.take(KEY) is not None:
            pass
        cache1.clear()
        cache1b, link1b = process(store)
        connect(pki, server, cache1b, KEY)
        link1b.detach()
        assert link1b.drain()
        cache1b.clear()
        one = store.get(KEY)
        assert one is not None
        while store.take(KEY) is not None:
            pass
        store.put(KEY, one.data, expires=one.expires)
        _, link2 = process(make_store())
        _, link3 = process(make_store())
        assert [link2.fetch(KEY), link3.fetch(KEY)] == [True, False]
        link2.detach()
        link3.detach()

    def test_a_session_used_here_leaves_the_store(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """A TLS 1.3 ticket taken from the cache is deleted from the store too."""
        store = make_store()
        cache, link = process(store)
        connect(pki, server, cache, KEY)
        assert link.drain()
        in_store = len(cache)
        assert in_store >= 1
        handle = cache.take(KEY)
        assert handle is not None
        der = handle.to_der()
        handle.free()
        assert link.drain()
        # The taken session is gone from the store: no entry holds it any more.
        remaining = []
        while (s := store.take(KEY)) is not None:
            remaining.append(s.data)
        assert der not in remaining
        assert len(remaining) == in_store - 1
        link.detach()

    def test_sync_writes_back_unused_fetched_sessions(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """A session fetched but not used up goes back to the store at close."""
        store = make_store()
        cache1, link1 = process(store)
        connect(pki, server, cache1, KEY)
        link1.close()
        cache1.clear()
        before = store.get(KEY)
        assert before is not None
        _, link2 = process(store)
        assert link2.fetch(KEY)
        link2.close()  # nothing was used: the session returns
        after = store.get(KEY)
        assert after is not None and after.data == before.data


# MemoryStore is final for users; a test may still watch one.
class WatchedStore(MemoryStore):  # type: ignore[misc]
    """A MemoryStore that records, for each call, its thread and whether it held the cache lock."""

    def __init__(self, cache: SessionCache) -> None:
        super().__init__()
        self.cache = cache
        self.calls: list[tuple[str, threading.Thread, bool]] = []

    def _record(self, name: str) -> None:
        held = self.cache._lock._is_owned()  # type: ignore[attr-defined]
        self.calls.append((name, threading.current_thread(), held))

    def put(self, key: Hashable, session: bytes, *, expires: float) -> bool:
        self._record("put")
        return super().put(key, session, expires=expires)

    def take(self, key: Hashable) -> resume.stores.StoredSession | None:
        self._record("take")
        return super().take(key)

    def delete(self, key: Hashable, session: bytes | None = None) -> int:
        self._record("delete")
        return super().delete(key, session)


class TestTheCacheDoesNoIO:
    @pytest.mark.parametrize("lookup", ["get1", "get0", "take"])
    def test_a_miss_never_asks_the_store(self, lookup: str) -> None:
        """get1, get0 and take answer from memory: a miss stays a miss, the store is not asked."""
        cache = SessionCache()
        store = WatchedStore(cache)
        MemoryStore.put(store, "k", b"session-bytes", expires=time.time() + 60)
        link = attach_store(cache, store, decode=lambda data: _fake_handle())
        assert getattr(cache, lookup)("k") is None
        assert store.calls == [] and link.loaded == 0
        assert cache.statistics().misses == 1
        assert store.get("k") is not None  # still there, for a fetch
        link.detach()

    def test_writes_run_in_the_link_thread_without_the_cache_lock(self) -> None:
        """add() and a removal only queue: another thread calls the store, without the lock."""
        cache = SessionCache()
        store = WatchedStore(cache)
        link = attach_store(cache, store, encode=lambda h: b"der of " + h.id, decode=_no_decode)
        handles = [_fake_handle() for _ in range(3)]
        for n, handle in enumerate(handles):
            assert cache.add(("k", n), handle)
        assert link.drain()
        for n, handle in enumerate(handles):
            assert cache.remove(("k", n), handle)
            handle.free()
        assert link.drain()
        assert [name for name, _, _ in store.calls] == ["put"] * 3 + ["delete"] * 3
        assert all(thread is not threading.current_thread() for _, thread, _ in store.calls)
        assert not any(held for _, _, held in store.calls)
        assert link.saved == 3 and len(store) == 0
        link.close()

    def test_fetch_holds_no_cache_lock_during_the_take(self) -> None:
        """fetch() calls the store's take() without the cache lock, then adds the session."""
        cache = SessionCache()
        store = WatchedStore(cache)
        MemoryStore.put(store, "k", b"session-bytes", expires=time.time() + 60)
        link = attach_store(cache, store, decode=lambda data: _fake_handle())
        assert link.fetch("k") is True
        assert store.calls[0][0] == "take" and store.calls[0][2] is False
        assert link.loaded == 1 and "k" in cache
        assert link.fetch("k") is False  # already in the cache: the store is not asked
        assert len(store.calls) == 1
        link.detach()
        cache.clear()

    def test_a_put_still_queued_is_cancelled_by_the_removal(self) -> None:
        """A session taken before its put ran never reaches the store, and no delete is sent."""
        cache = SessionCache()
        store = WatchedStore(cache)
        link = attach_store(cache, store, encode=lambda h: b"der", decode=_no_decode)
        handle = _fake_handle()
        with link._lock:  # hold the writer back so that the put is still queued
            cache.add("k", handle)
            taken = cache.take("k")
            assert taken is handle
            assert link.pending == 0
        taken.free()
        handle.free()
        assert link.drain()
        assert store.calls == [] and link.saved == 0
        link.close()

    def test_detached_cache_does_not_fetch(self) -> None:
        """After detach() fetch() does nothing and the store keeps its session."""
        store = MemoryStore()
        store.put("k", b"session-bytes", expires=time.time() + 60)
        cache = SessionCache()
        link = attach_store(cache, store, decode=lambda data: _fake_handle())
        link.detach()
        assert link.fetch("k") is False
        assert cache.get1("k") is None
        assert store.get("k") is not None


class TestStoreDown:
    @pytest.fixture(params=["redis"])
    def make_store(  # only Redis can go down and come back
        self, request: pytest.FixtureRequest, redis_server: RedisServer
    ) -> Iterator[Any]:
        made: list[SessionStore] = []

        def make(**options: Any) -> SessionStore:
            store = RedisStore(redis_server.url, timeout=0.5,
                               **{"key": bytes(range(32)), **options})
            made.append(store)
            return store

        make.redis = redis_server  # type: ignore[attr-defined]
        yield make
        for store in made:
            store.close()

    def test_redis_stopped_mid_run(self, pki: Pki, server: LineServer, make_store: Any) -> None:
        """Redis stops: full handshakes and one warning; it returns: so does resumption."""
        redis_server: RedisServer = make_store.redis
        cache1, link1 = process(make_store(), retry_after=0)
        connect(pki, server, cache1, KEY)
        link1.close()
        redis_server.stop()
        cache2, link2 = process(make_store(), retry_after=0)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            results = [connect(pki, server, cache2, ("other", n)) for n in range(5)]
        assert results == [False] * 5
        down = [w for w in record if issubclass(w.category, StoreWarning)]
        assert len(down) == 1, [str(w.message) for w in down]
        assert "unavailable" in str(down[0].message)
        assert link2.errors >= 5
        link2.detach()
        redis_server.start()  # empty: nothing was saved
        cache3, link3 = process(make_store(), retry_after=0)
        assert connect(pki, server, cache3, KEY) is False  # the store lost its sessions
        link3.close()
        cache4, link4 = process(make_store(), retry_after=0)
        assert connect(pki, server, cache4, KEY) is True  # and resumption is back
        link4.close()

    def test_circuit_breaker_skips_a_dead_store(self, make_store: Any) -> None:
        """After a failure the link does not touch the store until retry_after has passed."""
        redis_server: RedisServer = make_store.redis
        now = [0.0]
        cache = SessionCache(timeout=600)
        link = StoreLink(cache, make_store(), retry_after=5, clock=lambda: now[0])
        link._attach()
        redis_server.stop()
        with pytest.warns(StoreWarning, match="tried again in 5 s"):
            assert link.fetch(KEY) is False
        assert link.errors == 1 and not link.available
        assert link.fetch(KEY) is False
        assert link.errors == 1  # skipped, not tried
        redis_server.start()
        now[0] = 5.0
        assert link.available
        assert link.fetch(KEY) is False  # tried: the store answers (empty)
        assert link.errors == 1
        link.detach()


class TestSQLiteFailures:
    def test_locked_database_never_fails_a_connection(
        self, pki: Pki, server: LineServer, tmp_path: Path
    ) -> None:
        """Another process holds the write lock past the busy timeout: connections go on."""
        path = tmp_path / "s.db"
        store = SQLiteStore(path, timeout=0.05)
        len(store)  # create the tables
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            cache, link = process(store, retry_after=0)
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                results = [connect(pki, server, cache, KEY) for _ in range(3)]
            assert results == [False, True, True]  # resumption from memory still works
            assert link.errors >= 1
            down = [w for w in record if issubclass(w.category, StoreWarning)]
            assert len(down) == 1 and "locked" in str(down[0].message)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        cache.clear()  # forget memory: the next connection needs the store
        connect(pki, server, cache, KEY)  # the store works again: this session is saved
        link.close()
        cache2, link2 = process(store)
        assert connect(pki, server, cache2, KEY) is True
        link2.close()
        store.close()


class TestBadEntries:
    def test_garbage_in_the_store_means_a_full_handshake(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """An unreadable entry is dropped with a warning and the connection still succeeds."""
        store = make_store()
        name = store._name(resume.stores.key_bytes(KEY))
        store._put_raw(name, b"e" * 16, time.time() + 60, b"garbage" * 20, 4, time.time())
        cache, link = process(store)
        with pytest.warns(StoreWarning, match="not in the resume store format"):
            assert connect(pki, server, cache, KEY) is False
        assert connect(pki, server, cache, KEY) is True  # its own session now
        link.close()

    def test_undecodable_der_is_dropped(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """A well-sealed entry whose DER does not decode is dropped with a warning."""
        store = make_store()
        store.put(KEY, b"\x30\x03\x02\x01\x01", expires=time.time() + 60)
        cache, link = process(store)
        with pytest.warns(StoreWarning, match="could not be imported"):
            assert connect(pki, server, cache, KEY) is False
        assert link.dropped == 1
        assert link.drain()
        assert store.get(KEY) is not None  # the connection's own session, not the bad one
        link.close()

    def test_session_of_another_host_is_not_offered(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """An entry filed under another server's hashed name is refused, not offered."""
        store = make_store()
        cache, link = process(store)
        connect(pki, server, cache, ("other-host", 1))
        link.detach()
        assert link.drain()
        found = store._get_raw(store._name(resume.stores.key_bytes(("other-host", 1))), time.time())
        assert found is not None
        store._put_raw(
            store._name(resume.stores.key_bytes(KEY)), found[0], time.time() + 60, found[1], 4,
            time.time(),
        )
        cache2, link2 = process(store)
        with pytest.warns(StoreWarning, match="another server"):
            assert connect(pki, server, cache2, KEY) is False
        link2.close()

    def test_expired_ticket_is_not_offered(
        self, pki: Pki, server: LineServer, make_store: Any
    ) -> None:
        """A session whose stored expiry passed is not fetched; no warning."""
        now = [time.time()]
        store = make_store(clock=lambda: now[0])
        cache, link = process(store)
        connect(pki, server, cache, KEY)
        link.close()
        now[0] += 601  # past the cache timeout the entry was stored with
        cache2, link2 = process(store)
        assert link2.fetch(KEY) is False
        assert connect(pki, server, cache2, KEY) is False
        link2.close()


class TestWiring:
    def test_previous_callbacks_are_chained_and_restored(self) -> None:
        """Callbacks set before attach are still called; detach puts them back."""
        seen: list[str] = []

        def on_new(cache: SessionCache, handle: SessionHandle) -> bool:
            seen.append("new")
            return False

        def on_remove(cache: SessionCache, handle: SessionHandle) -> None:
            seen.append("remove")

        cache = SessionCache(on_new=on_new, on_remove=on_remove)
        link = attach_store(cache, MemoryStore(), encode=lambda h: b"x", decode=_no_decode)
        handle = _fake_handle()
        cache.add("k", handle)
        cache.remove("k")
        handle.free()
        assert seen == ["new", "remove"]
        link.detach()
        assert cache.on_new is on_new and cache.on_remove is on_remove

    def test_one_store_per_cache(self) -> None:
        """Attaching a second store to a cache is refused."""
        cache = SessionCache()
        link = attach_store(cache, MemoryStore())
        with pytest.raises(ValueError, match="already sits on a store"):
            attach_store(cache, MemoryStore())
        link.detach()
        attach_store(cache, MemoryStore()).detach()

    def test_export_unsupported_disables_the_link_once(self) -> None:
        """On a build without the OpenSSL binding the cache keeps working, with one warning."""

        def encode(handle: SessionHandle) -> bytes:
            raise resume.UnsupportedError("no binding here")

        cache = SessionCache()
        link = attach_store(cache, MemoryStore(), encode=encode, decode=_no_decode)
        handles = [_fake_handle() for _ in range(3)]
        with pytest.warns(StoreWarning, match="cannot be stored on this Python build"):
            added = [cache.add(("k", n), handle) for n, handle in enumerate(handles)]
        assert added == [True] * 3
        assert not link.available
        for handle in handles:
            handle.free()
        link.detach()

    def test_unregistered_client_keys_stay_in_memory(self, pki: Pki) -> None:
        """resume's keys of a context it did not see born are stored only once registered."""
        from resume._core.key import make_key

        ctx = pki.client()
        key = make_key(ctx, "localhost", 443)
        link = attach_store(SessionCache(), MemoryStore())
        assert link.store_key(key) is None
        link.register_context(ctx, label="app v1")
        stable = link.store_key(key)
        assert stable is not None
        # Another process building the same context, with the same label, agrees.
        other = pki.client()
        link2 = attach_store(SessionCache(), MemoryStore())
        link2.register_context(other, label="app v1")
        assert link2.store_key(make_key(other, "localhost", 443)) == stable
        link3 = attach_store(SessionCache(), MemoryStore())
        link3.register_context(other, label="app v2")
        assert link3.store_key(make_key(other, "localhost", 443)) != stable
        # A changed context (new digest) is not registered by itself...
        ctx.set_alpn_protocols(["h2"])
        changed = make_key(ctx, "localhost", 443)
        assert link.store_key(changed) is None
        # ... until its next connection, which registers it again with its label.
        _plan(link.cache, ctx, "localhost", 443)
        assert link.store_key(changed) == (
            "resume.SessionKey", "localhost", 443, context_label_digest(ctx, "app v1")
        )
        for lk in (link, link2, link3):
            lk.detach()


def trio_connect(server: LineServer, cache: SessionCache, ctx: ssl.SSLContext) -> bool:
    """One connection with resume.trio (which reads the store first); True if it resumed."""

    async def one() -> bool:
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", server.port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        async with stream:
            await stream.send_all(b"hello\n")
            assert await stream.receive_some() == b"HELLO\n"  # TLS 1.3 tickets came first
            return bool(stream.session_reused)

    return trio.run(one)


def born(pki: Pki) -> ssl.SSLContext:
    """A client context made by resume.create_client_context(), pinned to the test's version."""
    ctx = resume.create_client_context(cadata=pki.ca.cert_pem.bytes().decode())
    ctx.minimum_version = ctx.maximum_version = VERSIONS[pki.version]
    return ctx


def _not_persisted(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records
        if r.name == "resume" and r.levelno == logging.WARNING
        and getattr(r, "resume_reason", None) == "not persisted"
    ]


class TestWhichContextsArePersisted:
    def test_contexts_tracked_from_birth_need_no_call(
        self, pki: Pki, server: LineServer, make_store: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """create_client_context() contexts are persisted with no register_context()."""
        caplog.set_level(logging.DEBUG, logger="resume")
        cache1, link1 = process(make_store())
        assert trio_connect(server, cache1, born(pki)) is False
        link1.close()
        assert link1.saved >= 1
        cache2, link2 = process(make_store())  # another "process", its own context
        assert trio_connect(server, cache2, born(pki)) is True
        assert link2.loaded == 1
        link2.close()
        assert server.reused == [False, True]
        assert cache1.statistics().decisions == {"no session": 1}
        assert not _not_persisted(caplog)

    def test_other_contexts_say_so_once(
        self, pki: Pki, server: LineServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A context resume did not see born stays in memory; one WARNING says what to call."""
        caplog.set_level(logging.DEBUG, logger="resume")
        ctx = pki.client()
        cache, link = process(MemoryStore())
        assert [trio_connect(server, cache, ctx) for _ in range(3)] == [False, True, True]
        assert link.saved == 0
        told = _not_persisted(caplog)
        assert len(told) == 1
        assert "link.register_context(ctx, label=...)" in told[0].getMessage()
        assert "resume.create_client_context()" in told[0].getMessage()
        decisions = cache.statistics().decisions
        assert decisions["not persisted"] == 1  # not "no session": the store was skipped
        assert "no session" not in decisions
        # Vouching for it stores its next sessions.
        link.register_context(ctx, label="test")
        cache.clear()
        assert trio_connect(server, cache, ctx) is False
        link.close()
        assert link.saved >= 1
        assert len(_not_persisted(caplog)) == 1

    def test_an_untrackable_context_is_told_about_once(
        self, pki: Pki, server: LineServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An untrackable context gets its UntrackedContextWarning, not the "not persisted" log."""
        caplog.set_level(logging.WARNING, logger="resume")
        ctx = pki.client()
        resume.make_key(ctx, "localhost", 443)  # resume sees it: tracking installed
        del ctx.load_cert_chain  # and now cannot follow it
        cache, link = process(MemoryStore())
        with pytest.warns(resume.UntrackedContextWarning):
            assert trio_connect(server, cache, ctx) is False
        link.close()
        assert not _not_persisted(caplog)
        assert cache.statistics().decisions == {"untrackable context": 1}

    def test_auto_register_false(
        self, pki: Pki, server: LineServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With auto_register=False only registered contexts are stored; the log says so."""
        caplog.set_level(logging.WARNING, logger="resume")
        cache, link = process(MemoryStore(), auto_register=False)
        trio_connect(server, cache, born(pki))
        link.close()
        assert link.saved == 0
        [told] = _not_persisted(caplog)
        assert "auto_register=False" in told.getMessage()

    def test_automatic_keys_include_the_ca_directories(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Automatic store keys differ when SSL_CERT_DIR did; a label makes them agree."""
        dirs = [tmp_path / "a", tmp_path / "b"]
        for d in dirs:
            d.mkdir()
        (dirs[1] / "extra").write_text("x")  # another size and mtime

        def context_in(directory: Path) -> ssl.SSLContext:
            monkeypatch.setenv("SSL_CERT_DIR", str(directory))
            return resume.create_client_context()  # the default paths, as the env says

        def store_key(ctx: ssl.SSLContext, label: str | None = None) -> Hashable:
            link = attach_store(SessionCache(), MemoryStore())
            if label is not None:
                link.register_context(ctx, label=label)
            _plan(link.cache, ctx, "localhost", 443)
            skey = link.store_key(resume.make_key(ctx, "localhost", 443))
            link.detach()
            assert skey is not None
            return skey

        a, a2, b = context_in(dirs[0]), context_in(dirs[0]), context_in(dirs[1])
        assert store_key(a) == store_key(a2)
        assert store_key(a) != store_key(b)
        assert store_key(a, "fleet v1") == store_key(b, "fleet v1")

    def test_a_registration_stands_for_contexts_made_alike(self, pki: Pki) -> None:
        """A label given to one context holds for another made alike (one digest)."""
        first, second = born(pki), born(pki)
        link = attach_store(SessionCache(), MemoryStore())
        link.register_context(first, label="app v1")
        _plan(link.cache, second, "localhost", 443)  # no label of its own: not automatic
        assert link.store_key(resume.make_key(second, "localhost", 443)) == (
            "resume.SessionKey", "localhost", 443, context_label_digest(first, "app v1")
        )
        link.detach()

    def test_a_trust_call_after_birth_gives_a_new_key(self, pki: Pki) -> None:
        """A CA loaded into a persisted context moves its sessions to another store key."""
        ctx = born(pki)
        link = attach_store(SessionCache(), MemoryStore())
        _plan(link.cache, ctx, "localhost", 443)
        before = link.store_key(resume.make_key(ctx, "localhost", 443))
        ctx.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
        _plan(link.cache, ctx, "localhost", 443)
        after = link.store_key(resume.make_key(ctx, "localhost", 443))
        assert before is not None and after is not None and before != after
        link.detach()


class TestExit:
    def test_writes_run_inline_when_no_thread_can_start(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """At exit Python 3.12 refuses new threads: drain() performs the queued writes itself."""

        class NoThread(threading.Thread):
            def start(self) -> None:
                raise RuntimeError("can't create new thread at interpreter shutdown")

        monkeypatch.setattr(threading, "Thread", NoThread)  # the module link.py uses
        store = MemoryStore()
        cache = SessionCache()
        link = attach_store(cache, store, encode=lambda h: b"der", decode=_no_decode)
        handle = _fake_handle()
        assert cache.add("k", handle)  # queued, no writer
        handle.free()
        assert link.pending == 1
        assert link.drain()
        assert link.saved == 1 and store.get("k") is not None
        link.detach()

    def test_an_attached_link_is_closed_at_exit(self) -> None:
        """The atexit hook closes the links still attached, and only those."""
        cache = SessionCache()
        link = attach_store(cache, MemoryStore(), encode=lambda h: b"der", decode=_no_decode)
        closed = attach_store(SessionCache(), MemoryStore())
        closed.close()
        assert set(link_module._OPEN) == {link}
        link_module._close_at_exit()
        assert link_of(cache) is None and not link_module._OPEN


class _FakePayload:
    id = b"i" * 32
    time = int(time.time())
    timeout = 300
    ticket_lifetime_hint = 0
    has_ticket = False


def _fake_handle() -> SessionHandle:
    return SessionHandle._from_payload(_FakePayload())


def _no_decode(data: bytes) -> SessionHandle:
    raise AssertionError("not called")


class TestKeys:
    def test_unencodable_key_stays_in_memory(self) -> None:
        """A cache key the store cannot encode: memory only, one warning, no error."""
        cache = SessionCache()
        link = attach_store(cache, MemoryStore(), encode=lambda h: b"x" * 8, decode=_no_decode)
        handle = _fake_handle()
        key = ("host", object())
        with pytest.warns(StoreWarning, match="stay in memory"):
            assert cache.add(key, handle)
        assert link.saved == 0
        assert link.fetch(("other", object())) is False  # warned already: silent
        taken = cache.take(key)
        assert taken is handle
        taken.free()
        handle.free()
        link.detach()

    def test_oversized_session_is_skipped(self) -> None:
        """A session the store refuses (over 64 KiB) is kept in memory with a warning."""
        cache = SessionCache()
        link = attach_store(cache, MemoryStore(), encode=lambda h: b"x" * 70000,
                            decode=_no_decode)
        handle = _fake_handle()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            assert cache.add("k", handle)
            assert link.drain()  # the store refuses it in the writer thread
        down = [str(w.message) for w in record if issubclass(w.category, StoreWarning)]
        assert len(down) == 1 and down[0].startswith("a session was not stored")
        assert link.saved == 0 and len(cache) == 1
        handle.free()
        link.detach()
        cache.clear()
