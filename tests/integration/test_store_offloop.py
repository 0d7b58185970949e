"""No store I/O on the event loop: a store that hangs never stalls the other tasks.

A heartbeat task wakes every 10 ms while a client connects again and again
(its cache emptied before each connection, so each one asks the store) to
``openssl s_server``, through ``resume.trio.open_tls_stream`` and
``resume.asyncio.open_connection``, TLS 1.2 and 1.3, while the store is
unavailable:

* SQLite: another process holds an exclusive lock on the database file for
  3 s (``BEGIN EXCLUSIVE``, then sleeping); the store waits up to its 5 s busy
  timeout for it.
* Redis: the store's address is a TCP listener on loopback that accepts and
  never answers (a proxy in front of a real redis-server, switched to silent);
  the store waits up to its 1 s socket timeout per call.

The largest gap between two heartbeats stays under 100 ms and every connection
completes, with a full handshake. When the store is back, a new client process
resumes from what this one stored. (The one timed assertion of the suite: the
issue asks for it, and on the old code the gaps were seconds.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from redis_server import RedisServer, redis_server
from test_cli_connect import SServer

import resume.asyncio
import resume.trio
from resume import SessionCache, SessionHandle
from resume.stores import (
    MemoryStore,
    RedisStore,
    SessionStore,
    SQLiteStore,
    StoredSession,
    StoreLink,
    attach_store,
)

__all__ = ["redis_server"]

#: The most a heartbeat may be late (the issue's bound).
MAX_GAP = 0.100
#: How long the store stays unavailable while connections go on.
OUTAGE = 3.0
#: The store key every client "process" of a test shares.
STORE_KEY = os.urandom(32)
LABEL = "offloop test"

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    sys.stdin.readline()  # then hold on until the test says so
    db.execute("ROLLBACK")
    db.close()
    """
)


class SilentProxy:
    """A TCP listener on 127.0.0.1 in front of a redis-server: it forwards, or it goes silent.

    Silent, it accepts connections and never answers: new connections are
    held open unread, and requests on connections already open are swallowed.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.silent = False
        self._sockets: list[socket.socket] = []
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
                if self.silent:
                    self._held.append(client)
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                self._threads.append(pump)
                pump.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if self.silent:
                continue  # swallowed: this request is never answered
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def speak(self) -> None:
        """Forward again; the connections accepted while silent are closed (the client sees EOF)."""
        with self._lock:
            self.silent = False
            held, self._held = self._held, []
        for sock in held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(10)


class Outage:
    """Makes a store unavailable (``begin``) and available again (``end``)."""

    def __init__(self, kind: str, tmp_path: Path, redis: RedisServer) -> None:
        self.kind = kind
        self.path = tmp_path / "sessions.db"
        self.proxy = SilentProxy(redis.port) if kind == "redis" else None
        self.locker: subprocess.Popen[str] | None = None

    def store(self) -> SessionStore:
        if self.proxy is not None:
            return RedisStore(self.proxy.url, key=STORE_KEY)
        return SQLiteStore(self.path, key=STORE_KEY)

    def begin(self) -> float:
        """Make the store unavailable; return the monotonic time it will be for OUTAGE s from."""
        if self.proxy is not None:
            self.proxy.silent = True
            return time.monotonic()
        self.locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(self.path), str(OUTAGE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.locker.stdout is not None
        assert self.locker.stdout.readline() == "locked\n"
        return time.monotonic()

    def end(self) -> None:
        if self.proxy is not None:
            self.proxy.speak()
        elif self.locker is not None:
            locker, self.locker = self.locker, None
            assert locker.stdin is not None and locker.stdout is not None
            locker.stdin.close()  # EOF: the locker rolls back and exits
            assert locker.wait(20) == 0
            locker.stdout.close()

    def close(self) -> None:
        self.end()
        if self.proxy is not None:
            self.proxy.close()


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SServer]:
    s = SServer(tmp_path, request.param)
    s.version = request.param  # type: ignore[attr-defined]
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "redis"])
def outage(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> Iterator[Outage]:
    o = Outage(request.param, tmp_path, redis_server)
    yield o
    o.close()


# -- one client connection, with each library ------------------------------------------

Connect = Callable[[SServer, Any, SessionCache], Awaitable[bool]]


async def trio_connect(server: SServer, ctx: Any, cache: SessionCache) -> bool:
    stream = await resume.trio.open_tls_stream(
        "127.0.0.1", server.port, ssl_context=ctx, cache=cache, server_hostname="localhost"
    )
    async with stream:
        await stream.send_all(b"ping\n")
        answer = b""
        while b"\n" not in answer:
            data = await stream.receive_some()
            assert data, "the server closed before answering"
            answer += data
        assert answer == b"gnip\n"
        return stream.session_reused


async def asyncio_connect(server: SServer, ctx: Any, cache: SessionCache) -> bool:
    reader, writer = await resume.asyncio.open_connection(
        "127.0.0.1", server.port, ssl=ctx, cache=cache, server_hostname="localhost"
    )
    async with writer:
        writer.write(b"ping\n")
        assert await reader.readline() == b"gnip\n"
        return writer.session_reused


def client_context(server: SServer) -> Any:
    import ssl

    ctx = ssl.create_default_context(cafile=str(server.cafile))
    version = server.version  # type: ignore[attr-defined]
    tls = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = tls
    return ctx


def run_with_heartbeat(
    library: str, body: Callable[[], Awaitable[list[bool]]]
) -> tuple[list[float], list[bool]]:
    """Run *body* beside a task that sleeps 10 ms in a loop; return how late each beat was."""
    gaps: list[float] = []

    async def heartbeat_trio(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        last = time.monotonic()
        task_status.started()
        while True:
            await trio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last - 0.01)
            last = now

    async def heartbeat_asyncio() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last - 0.01)
            last = now

    async def main_trio() -> list[bool]:
        async with trio.open_nursery() as nursery:
            await nursery.start(heartbeat_trio)
            result = await body()
            nursery.cancel_scope.cancel()
        return result

    async def main_asyncio() -> list[bool]:
        beat = asyncio.ensure_future(heartbeat_asyncio())
        await asyncio.sleep(0)
        try:
            return await body()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    result = trio.run(main_trio) if library == "trio" else asyncio.run(main_asyncio())
    return gaps, result


def client_process(store: SessionStore, ctx: Any, **options: Any) -> tuple[SessionCache, StoreLink]:
    cache = SessionCache(timeout=600)
    link = attach_store(cache, store, **options)
    link.register_context(ctx, label=LABEL)
    return cache, link


@pytest.mark.parametrize("library", ["trio", "asyncio"])
def test_an_unavailable_store_never_stalls_the_loop(
    library: str, server: SServer, outage: Outage
) -> None:
    """Store locked / silent for 3 s: heartbeats stay under 100 ms apart, connections complete."""
    connect: Connect = trio_connect if library == "trio" else asyncio_connect
    run = trio.run if library == "trio" else lambda f, *a: asyncio.run(f(*a))
    ctx = client_context(server)
    store = outage.store()
    cache, link = client_process(store, ctx, retry_after=0.5)
    # The store works and holds this client's session.
    assert run(connect, server, ctx, cache) is False
    assert link.drain(10) and link.saved >= 1

    until = outage.begin() + OUTAGE

    async def while_unavailable() -> list[bool]:
        results: list[bool] = []
        while time.monotonic() < until or len(results) < 3:
            cache.clear()  # forget memory: each connection asks the store
            results.append(await connect(server, ctx, cache))
        return results

    with warnings.catch_warnings(record=True):  # "store unavailable" warnings, from threads
        warnings.simplefilter("always")
        gaps, results = run_with_heartbeat(library, while_unavailable)
        outage.end()
        # The store is back. Let this process's threads finish with it (a call
        # that hung must time out), then make one connection whose session is stored.
        link.close(20)
    print(f"{len(results)} connections, largest heartbeat gap {max(gaps) * 1000:.1f} ms")
    assert max(gaps) < MAX_GAP, f"the event loop stalled for {max(gaps) * 1000:.0f} ms"
    assert len(gaps) >= OUTAGE / 0.02  # the heartbeat ran all along
    assert results == [False] * len(results)  # all complete, all full handshakes
    cache.clear()
    store.close()

    store2 = outage.store()
    cache2, link2 = client_process(store2, ctx)
    run(connect, server, ctx, cache2)  # its session (or the one it resumed) is stored
    link2.close(10)
    assert link2.saved >= 1
    cache2.clear()
    store2.close()
    # A new process, with a generous wait (this checks that the store serves
    # again, not how fast): its first connection resumes from the store.
    store3 = outage.store()
    cache3, link3 = client_process(store3, ctx, fetch_wait=5.0)
    assert run(connect, server, ctx, cache3) is True
    assert link3.loaded == 1
    link3.close()
    cache3.clear()
    store3.close()


# -- a store held back on purpose: what a slow store does to connections --------------------


# MemoryStore is final for users; a test may still hold one back.
class GatedStore(MemoryStore):  # type: ignore[misc]
    """A MemoryStore whose take() (and put(), if asked) wait until ``gate`` is set."""

    def __init__(self, *, gate_puts: bool = False) -> None:
        super().__init__(key=STORE_KEY)
        self.gate = threading.Event()
        self.gate_puts = gate_puts
        self.take_threads: list[threading.Thread] = []
        self.put_entered = threading.Event()

    def take(self, key: Hashable) -> StoredSession | None:
        self.take_threads.append(threading.current_thread())
        assert self.gate.wait(30)
        return super().take(key)

    def put(self, key: Hashable, session: bytes, *, expires: float) -> bool:
        if self.gate_puts:
            self.put_entered.set()
            assert self.gate.wait(30)
        return super().put(key, session, expires=expires)


def fill(store: SessionStore, server: SServer, ctx: Any) -> None:
    """One client process that connects once and leaves its session in *store*."""
    cache, link = client_process(store, ctx)
    assert trio.run(trio_connect, server, ctx, cache) is False
    link.close(10)
    assert link.saved >= 1
    cache.clear()


@pytest.mark.parametrize("library", ["trio", "asyncio"])
class TestSlowStore:
    def test_a_late_fetch_warms_the_cache_for_the_next_connection(
        self, library: str, server: SServer
    ) -> None:
        """Past fetch_wait: a full handshake; the fetch lands later, off the loop."""
        connect: Connect = trio_connect if library == "trio" else asyncio_connect
        run = trio.run if library == "trio" else lambda f, *a: asyncio.run(f(*a))
        ctx = client_context(server)
        store = GatedStore()
        store.gate.set()
        fill(store, server, ctx)
        store.gate.clear()  # from now on take() waits until the test lets it go
        cache, link = client_process(store, ctx, fetch_wait=0.05)
        assert run(connect, server, ctx, cache) is False  # it did not wait for the store
        assert link.loaded == 0
        assert [t is threading.main_thread() for t in store.take_threads] == [False, False]
        store.gate.set()
        link.close(10)  # waits for the fetch in flight: it lands in the cache
        assert link.loaded == 1
        cache.clear()

    def test_a_fetch_is_used_when_it_comes_in_time(self, library: str, server: SServer) -> None:
        """A store that answers within fetch_wait: the first connection of a new process resumes."""
        connect: Connect = trio_connect if library == "trio" else asyncio_connect
        run = trio.run if library == "trio" else lambda f, *a: asyncio.run(f(*a))
        ctx = client_context(server)
        store = GatedStore()
        store.gate.set()
        fill(store, server, ctx)
        cache, link = client_process(store, ctx, fetch_wait=10.0)
        assert run(connect, server, ctx, cache) is True
        assert link.loaded == 1
        link.close(10)
        cache.clear()


class TestWriteQueue:
    def test_a_full_queue_drops_the_oldest_put_and_never_waits(self) -> None:
        """A blocked store: add() still returns at once; the oldest queued puts are dropped."""
        store = GatedStore(gate_puts=True)
        cache = SessionCache()
        link = attach_store(cache, store, queue_size=2, encode=lambda h: h.id, decode=_no_decode)
        handles = [_handle(n) for n in range(5)]
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            assert cache.add(("k", 0), handles[0])
            assert store.put_entered.wait(10)  # the writer is stuck in this put
            assert all(cache.add(("k", n), h) for n, h in enumerate(handles) if n)
            assert link.drain(0.05) is False
            assert link.pending == 3  # one put in progress, two queued
            store.gate.set()
            assert link.drain(10)
        full = [w for w in record if "write queue is full" in str(w.message)]
        assert len(full) == 1  # rate-limited
        assert link.queue_full == 2 and link.saved == 3
        stored = sorted(
            s.data for n in range(5) if (s := store.get(("k", n))) is not None
        )
        # The first put was in progress; of the four queued, the two newest were kept.
        assert stored == sorted(h.id for h in (handles[0], handles[3], handles[4]))
        for h in handles:
            h.free()
        link.close()
        cache.clear()

    def test_close_waits_a_bounded_time_for_a_hung_store(self) -> None:
        """close() gives up after its timeout when the store hangs; nothing leaks."""
        store = GatedStore(gate_puts=True)
        cache = SessionCache()
        link = attach_store(cache, store, encode=lambda h: h.id, decode=_no_decode)
        handle = _handle(1)
        cache.add("k", handle)
        handle.free()
        link.close(0.05)
        assert not store.gate.is_set()  # close() returned while the store still hung
        assert link.pending == 1
        store.gate.set()  # the writer finishes its put, then exits (detached)
        assert link.drain(10)
        assert link.saved == 1
        cache.clear()

    @pytest.mark.parametrize(
        ("option", "value"), [("fetch_wait", -1.0), ("fetch_wait", float("nan")), ("queue_size", 0)]
    )
    def test_bad_options_are_refused(self, option: str, value: float) -> None:
        """A negative wait or an empty queue is a clear ValueError."""
        options: dict[str, Any] = {option: value}
        with pytest.raises(ValueError, match=option):
            attach_store(SessionCache(), MemoryStore(), **options)


class _Payload:
    time = int(time.time())
    timeout = 300
    ticket_lifetime_hint = 0
    has_ticket = False

    def __init__(self, n: int) -> None:
        self.id = b"session %d" % n


def _handle(n: int) -> SessionHandle:
    return SessionHandle._from_payload(_Payload(n))


def _no_decode(data: bytes) -> SessionHandle:
    raise AssertionError("not called")
