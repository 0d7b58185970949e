"""fork() while threads use resume (issue 18, finding 6): no deadlock, no lost session.

Each test runs a script in a new ``python -X dev`` process (forking the test
process itself, with its own threads, would test pytest more than resume):

* threads hammer a SessionCache (and, in the "link" flavour, a cache sitting on
  a SQLite store, whose writer thread is busy too) while the main thread forks
  60 times; each child uses the cache (and the link) and exits. The parent
  waits for each child with a generous timeout and counts the ones that never
  finish: deadlocks.
* a child that stores a session through a store link inherited from its parent
  writes it to the store (a SQLite file, a real redis-server); this test
  process reads it back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer, redis_server

from resume import SessionCache, StoreError
from resume._stores import link as link_module
from resume.stores import MemoryStore, RedisStore, SQLiteStore, attach_store

__all__ = ["redis_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")

FORKS = 60

HAMMER = textwrap.dedent(
    """
    import json, os, sys, threading, time, warnings
    # Python 3.12+ warns that forking a threaded process may deadlock: that is the test.
    warnings.filterwarnings("ignore", ".*multi-threaded.*fork", DeprecationWarning)
    from resume import SessionCache, SessionHandle
    from resume.stores import SQLiteStore, attach_store
    from resume.testing import ThrowawayPKI, memory_handshake

    flavour, version, forks, directory = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    pki = ThrowawayPKI("localhost")
    client, _ = memory_handshake(pki.client_context(version), pki.server_context(version))
    session = client.session
    cache = SessionCache(size=64, per_key=2)
    store = link = None
    if flavour == "link":
        store = SQLiteStore(os.path.join(directory, "sessions.db"))
        link = attach_store(cache, store)
    stop = threading.Event()

    def hammer(n):
        i = 0
        while not stop.is_set():
            h = SessionHandle.from_ssl(session)
            cache.add((n, i % 50), h)
            h.free()
            got = cache.get1((n, (i * 7) % 50))
            if got is not None:
                got.free()
            taken = cache.take((n, (i * 3) % 50))
            if taken is not None:
                taken.free()
            cache.statistics()
            i += 1

    def child():
        h = SessionHandle.from_ssl(session)
        cache.add(("child", os.getpid()), h)
        h.free()
        got = cache.get1(("child", os.getpid()))
        got.free()
        if link is not None and not link.drain(30):
            return 3
        cache.clear()
        return 0

    threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    deadlocks = failed = done = 0
    for _ in range(forks):
        time.sleep(0.002)
        pid = os.fork()
        if pid == 0:
            try:
                code = child()
            except BaseException:
                code = 4
            os._exit(code)
        deadline = time.monotonic() + 20
        while True:
            ended, status = os.waitpid(pid, os.WNOHANG)
            if ended:
                failed += os.waitstatus_to_exitcode(status) != 0
                break
            if time.monotonic() > deadline:
                deadlocks += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)  # polling a child process: no event to await
        done += 1
        if deadlocks >= 3:
            break  # enough to fail; do not wait 20 s for each of the rest
    stop.set()
    for thread in threads:
        thread.join()
    if link is not None:
        link.close()
        store.close()
    cache.clear()
    print(json.dumps({"forks": done, "deadlocks": deadlocks, "failed": failed}))
    """
)

CHILD_LINK = textwrap.dedent(
    """
    import json, os, sys, threading, warnings
    warnings.filterwarnings("ignore", ".*multi-threaded.*fork", DeprecationWarning)
    from resume import SessionCache, SessionHandle
    from resume.stores import RedisStore, SQLiteStore, attach_store
    from resume.testing import ThrowawayPKI, memory_handshake

    version, spec = sys.argv[1], sys.argv[2]
    pki = ThrowawayPKI("localhost")

    def handle():
        client, _ = memory_handshake(pki.client_context(version), pki.server_context(version))
        return SessionHandle.from_ssl(client.session)

    store = (SQLiteStore(spec[7:]) if spec.startswith("sqlite:")
             else RedisStore(spec, key=bytes(range(32))))
    cache = SessionCache(timeout=3600)
    link = attach_store(cache, store)
    h = handle()
    cache.add("parent", h)
    h.free()
    assert link.drain(30)  # the writer thread is alive, idle, when the process forks
    direct = handle()
    store.put("direct", direct.to_der(), expires=direct.time + 3000)
    direct.free()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fetched = link.fetch("direct")  # read through the child's store connection
            h = handle()
            cache.add("child", h)
            h.free()
            drained = link.drain(30)
            link.close(30)
            code = 0 if fetched and drained else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    link.close()
    after = store.get("parent") is not None  # the parent's connection still works
    store.close()
    cache.clear()
    print(json.dumps({"child": os.waitstatus_to_exitcode(status), "parent_reads": after}))
    """
)


def _run(script: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("version", ["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("flavour", ["cache", "link"])
def test_children_forked_while_threads_use_the_cache_never_deadlock(
    flavour: str, version: str, tmp_path: Path
) -> None:
    """60 forks while 3 threads hammer the cache: every child uses it and exits."""
    os.chmod(tmp_path, 0o700)
    result = _run(HAMMER, flavour, version, str(FORKS), str(tmp_path))
    assert result == {"forks": FORKS, "deadlocks": 0, "failed": 0}


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("version", ["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def test_a_child_store_link_writes_its_sessions(
    version: str, kind: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    """A child stores a session through its parent's link; another process reads it."""
    os.chmod(tmp_path, 0o700)
    path = tmp_path / "sessions.db"
    spec = f"sqlite:{path}" if kind == "sqlite" else redis_server.url
    result = _run(CHILD_LINK, version, spec)
    assert result == {"child": 0, "parent_reads": True}
    store = SQLiteStore(path) if kind == "sqlite" else RedisStore(spec, key=bytes(range(32)))
    with store:
        assert store.get("child") is not None  # written by the child
        assert store.get("direct") is not None  # fetched by the child, put back at its close
        assert store.get("parent") is not None
    if kind == "sqlite":
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


class TestChildState:
    """What each object does in a child, checked by calling its hook here (no fork)."""

    def test_a_link_forgets_the_parents_threads(self) -> None:
        """Writer, thread pool, fetches in flight: the child has none; queued writes are done."""
        cache = SessionCache()
        store = MemoryStore()
        link = attach_store(cache, store)
        try:
            link._fetch_executor()  # what an asyncio fetch makes
            with link._lock:
                write = link_module._Write(True, "k", b"der", 0.0)
                link._queue.append(write)  # a write the parent's writer has not done yet
                link._fetching = 2
            link._fork_child()
            assert link._executor is None
            assert link._writer is None and not link._writing
            assert link._fetching == 0
            assert not link._queue and write.state == link_module._DONE
            assert link.pending == 0
            assert link._cond.acquire(False)  # a condition on the link's lock, usable
            link._cond.release()
        finally:
            link.close()
            store.close()

    def test_a_sqlite_store_opens_a_new_connection(self, tmp_path: Path) -> None:
        """The inherited connection is closed and never used; the next call opens another."""
        os.chmod(tmp_path, 0o700)
        with SQLiteStore(tmp_path / "sessions.db") as store:
            assert store.put("k", b"session", expires=9_000_000_000)
            inherited = store._conn
            assert inherited is not None
            store._fork_child()
            assert store._conn is None
            with pytest.raises(sqlite3.ProgrammingError):  # closed, not just set aside
                inherited.execute("SELECT 1")
            found = store.get("k")
            assert found is not None and found.data == b"session"
            assert store._conn is not None and store._conn is not inherited
        with pytest.raises(StoreError, match="closed"):
            store.get("k")


TICKETS = textwrap.dedent(
    """
    import json, os
    from resume import SessionCache, SessionHandle
    from resume._core.policy import mark_single_use
    from resume.testing import ThrowawayPKI, memory_handshake

    pki = ThrowawayPKI("localhost")
    cache = SessionCache()
    for version, key in (("1.2", "tls12"), ("1.3", "tls13")):
        client, _ = memory_handshake(pki.client_context(version), pki.server_context(version))
        handle = SessionHandle.from_ssl(client.session)
        if version == "1.3":
            mark_single_use(handle)
        cache.add(key, handle)
        handle.free()
    pid = os.fork()
    if pid == 0:
        os.write(1, json.dumps({"child": sorted(map(str, cache.keys()))}).encode() + b"\\n")
        os._exit(0)
    os.waitpid(pid, 0)
    print(json.dumps({"parent": sorted(map(str, cache.keys()))}))
    """
)


def test_a_child_lets_its_copies_of_single_use_tickets_go() -> None:
    """After fork() only the parent may offer a TLS 1.3 ticket; TLS 1.2 sessions stay in both."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", TICKETS],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    said = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"child": ["tls12"]} in said
    assert {"parent": ["tls12", "tls13"]} in said
