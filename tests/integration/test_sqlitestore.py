"""SQLiteStore: file permissions, several processes at once, restarts, bad files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import resume
from resume.stores import SQLiteStore, StoredSession, StoreWarning

HOST = ("example.test", 443)


def session(n: int) -> bytes:
    return b"\x30\x82" + n.to_bytes(4, "big") + b"master" * 8


def modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask: the store must not rely on the caller's umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


class TestPermissions:
    @pytest.mark.usefixtures("umask_zero")
    def test_every_file_is_0600_while_in_use(self, tmp_path: Path) -> None:
        """The database, its -wal and its -shm are all 0600, even with umask 0."""
        path = tmp_path / "s.db"
        with SQLiteStore(path) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
            assert store.take(HOST) is not None
            found = modes(tmp_path)
            assert {"s.db", "s.db-wal", "s.db-shm"} <= set(found)
            assert set(found.values()) == {0o600}, found
        assert set(modes(tmp_path).values()) == {0o600}

    @pytest.mark.usefixtures("umask_zero")
    def test_encrypted_store_files_too(self, tmp_path: Path) -> None:
        """The same holds with a key configured (no other file, such as a key, is written)."""
        with SQLiteStore(tmp_path / "e.db", key=os.urandom(32)) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
            assert set(modes(tmp_path).values()) == {0o600}
            assert all(name.startswith("e.db") for name in modes(tmp_path))

    def test_loose_existing_file_is_tightened_with_a_warning(self, tmp_path: Path) -> None:
        """An existing store readable by others becomes 0600, with a StoreWarning."""
        path = tmp_path / "s.db"
        SQLiteStore(path).close()
        path.chmod(0o644)
        with pytest.warns(StoreWarning, match="readable by other users"):
            store = SQLiteStore(path)
        store.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_directory_missing(self, tmp_path: Path) -> None:
        """A path in a missing directory is a StoreError naming the file."""
        with pytest.raises(resume.StoreError, match="cannot create session store"):
            SQLiteStore(tmp_path / "nope" / "s.db")

    def test_a_directory_is_not_a_store(self, tmp_path: Path) -> None:
        """A directory given as the path is refused."""
        with pytest.raises(resume.StoreError):
            SQLiteStore(tmp_path)

    @pytest.mark.parametrize("path", [":memory:", ""])
    def test_memory_path_is_refused(self, path: str) -> None:
        """':memory:' is not a file (nothing would persist): use MemoryStore."""
        with pytest.raises(ValueError, match="MemoryStore"):
            SQLiteStore(path)
        assert not os.path.exists(":memory:")

    def test_old_sqlite_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without RETURNING (SQLite < 3.35) the store refuses cleanly."""
        monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
        with pytest.raises(resume.UnsupportedError, match=r"3\.35"):
            SQLiteStore(tmp_path / "s.db")
        assert not (tmp_path / "s.db").exists()


NOBODY = 65534


def snapshot(path: Path) -> tuple[int, int, bytes]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, path.read_bytes()


class TestFilesOpenedSafely:
    """Issue 8, finding 5: the store never trusts, follows or changes a file it should not."""

    @pytest.mark.parametrize("which", ["s.db", "s.db-wal", "s.db-shm", "s.db-journal", "s.db.key"])
    def test_symlink_is_refused_and_its_target_untouched(
        self, tmp_path: Path, which: str
    ) -> None:
        """A link at the database (or a file beside it) is refused; what it points to stays."""
        important = tmp_path / "important.conf"
        important.write_bytes(b"do not touch\n")
        important.chmod(0o644)
        before = snapshot(important)
        if which != "s.db":
            SQLiteStore(tmp_path / "s.db").close()
            (tmp_path / which).unlink(missing_ok=True)
        (tmp_path / which).symlink_to(important)
        with pytest.raises(resume.StoreError, match=f"'{tmp_path / which}' is a symbolic link"):
            SQLiteStore(tmp_path / "s.db")
        assert snapshot(important) == before

    def test_file_of_another_user_is_refused_untouched(self, tmp_path: Path) -> None:
        """A database owned by another uid (nobody) is refused before any change."""
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        path = tmp_path / "s.db"
        SQLiteStore(path, key=os.urandom(32)).close()
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o644)
        before = snapshot(path)
        with pytest.raises(resume.StoreError, match=f"owned by uid {NOBODY}, not by this user"):
            SQLiteStore(path, key=os.urandom(32))
        assert snapshot(path) == before

    def test_key_file_of_another_user_is_refused(self, tmp_path: Path) -> None:
        """The default key file owned by nobody is refused: it could be the attacker's."""
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        path = tmp_path / "s.db"
        SQLiteStore(path).close()
        os.chown(tmp_path / "s.db.key", NOBODY, NOBODY)
        with pytest.raises(resume.StoreError, match=r"s\.db\.key' is owned by uid 65534"):
            SQLiteStore(path)

    @pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
    def test_database_writable_by_others_is_refused_not_tightened(
        self, tmp_path: Path, mode: int
    ) -> None:
        """A database others could have written is refused, not chmod-ed and trusted."""
        path = tmp_path / "s.db"
        with SQLiteStore(path) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
        path.chmod(mode)
        before = snapshot(path)
        expected = rf"writable by group or others \(mode {mode:04o}"
        with pytest.raises(resume.StoreError, match=expected):
            SQLiteStore(path)
        assert snapshot(path) == before

    def test_garbage_file_is_refused_untouched(self, tmp_path: Path) -> None:
        """A file that is not a SQLite database is refused before any mode change."""
        path = tmp_path / "notes.txt"
        path.write_bytes(b"my notes, not a database\n" * 10)
        path.chmod(0o644)
        before = snapshot(path)
        with pytest.raises(resume.StoreError, match="is not a SQLite database"):
            SQLiteStore(path)
        assert snapshot(path) == before
        assert not (tmp_path / "notes.txt.key").exists()

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o666])
    def test_loose_key_file_is_refused(self, tmp_path: Path, mode: int) -> None:
        """A key file group or others may read or write is refused, saying chmod 600."""
        path = tmp_path / "s.db"
        SQLiteStore(path).close()
        (tmp_path / "s.db.key").chmod(mode)
        with pytest.raises(resume.StoreError, match="chmod 600"):
            SQLiteStore(path)

    def test_world_writable_directory_is_refused(self, tmp_path: Path) -> None:
        """A directory anyone may write (not sticky) could have its files swapped: refused."""
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        with pytest.raises(resume.StoreError, match="writable by everybody and not sticky"):
            SQLiteStore(shared / "s.db")
        shared.chmod(0o1777)  # sticky, like /tmp: others cannot replace our files
        SQLiteStore(shared / "s.db").close()

    @pytest.mark.usefixtures("umask_zero")
    def test_default_key_file_is_made_on_first_use_and_kept(self, tmp_path: Path) -> None:
        """PATH.key is created 0600 on first use; the next store object reads the same key."""
        path = tmp_path / "s.db"
        with SQLiteStore(path) as store:
            assert store.default_key_file == tmp_path / "s.db.key"
            store.put(HOST, session(1), expires=time.time() + 60)
        key_file = tmp_path / "s.db.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        first = key_file.read_bytes()
        assert len(bytes.fromhex(first.decode())) == 32
        with SQLiteStore(path) as store:
            got = store.take(HOST)
        assert got is not None and got.data == session(1)
        assert key_file.read_bytes() == first
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    def test_stores_made_together_agree_on_one_key(self, tmp_path: Path) -> None:
        """Processes that create the key file at once all end up with the same key."""
        path = tmp_path / "s.db"
        code = ("import sys; from resume.stores import SQLiteStore; "
                "s = SQLiteStore(sys.argv[1]); print(s._user_key.hex()); s.close()")
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(4)]
        keys = {p.communicate(timeout=60)[0].strip() for p in procs}
        assert len(keys) == 1 and all(p.returncode == 0 for p in procs)
        assert (tmp_path / "s.db.key").read_text().strip() == keys.pop()

    def test_format_1_database_is_emptied_with_a_warning(self, tmp_path: Path) -> None:
        """Entries of the old unauthenticated format are dropped when the file is opened."""
        path = tmp_path / "s.db"
        with SQLiteStore(path) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
            store.put(("b", 1), session(2), expires=time.time() + 60)
        conn = sqlite3.connect(path)
        conn.execute("UPDATE resume_meta SET value = 1 WHERE name = 'format'")
        conn.commit()
        conn.close()
        with SQLiteStore(path) as store:
            with pytest.warns(StoreWarning, match="2 entries in the old unauthenticated format 1"):
                assert store.get(HOST) is None
            assert len(store) == 0
            store.put(HOST, session(3), expires=time.time() + 60)
        with SQLiteStore(path) as store:  # migrated once: no second warning
            got = store.get(HOST)
            assert got is not None and got.data == session(3)


class TestRestarts:
    def test_sessions_survive_reopening(self, tmp_path: Path) -> None:
        """Closing and reopening (a restarted process) keeps sessions, salt and key."""
        key = os.urandom(32)
        expires = float(int(time.time()) + 600)
        with SQLiteStore(tmp_path / "s.db", key=key) as store:
            for n in range(3):
                store.put(HOST, session(n), expires=expires)
        with SQLiteStore(tmp_path / "s.db", key=key) as store:
            assert len(store) == 3
            assert store.take(HOST) == StoredSession(session(2), expires)

    def test_purge_removes_expired_rows(self, tmp_path: Path) -> None:
        """purge() deletes what has expired and keeps the rest."""
        now = [1_800_000_000.0]
        with SQLiteStore(tmp_path / "s.db", clock=lambda: now[0]) as store:
            store.put(HOST, session(1), expires=now[0] + 10)
            store.put(("b", 1), session(2), expires=now[0] + 100)
            now[0] += 50
            assert store.purge() == 1
            assert len(store) == 1

    def test_wrong_format_version_in_meta(self, tmp_path: Path) -> None:
        """A database written by a future format is refused with a clear StoreError."""
        path = tmp_path / "s.db"
        with SQLiteStore(path) as store:
            store.put(HOST, session(1), expires=time.time() + 60)
        conn = sqlite3.connect(path)
        conn.execute("UPDATE resume_meta SET value = 99 WHERE name = 'format'")
        conn.commit()
        conn.close()
        with SQLiteStore(path) as store, pytest.raises(resume.StoreError, match="format 99"):
            store.get(HOST)


# A worker process: open the store, wait for the go file, then take (or put) in a loop.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from resume.stores import SQLiteStore
    path, mode, go, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = SQLiteStore(path, per_key=100000)
    while not os.path.exists(go):
        time.sleep(0.001)
    got = []
    if mode == "take":
        while (s := store.take(("example.test", 443))) is not None:
            got.append(s.data.hex())
    else:
        for n in range(count):
            data = (os.getpid().to_bytes(4, "big") + n.to_bytes(4, "big")) * 4
            store.put(("example.test", 443), data, expires=time.time() + 600)
            got.append(data.hex())
    store.close()
    print(json.dumps(got))
    """
)


def run_workers(path: Path, mode: str, workers: int, count: int = 0) -> list[list[str]]:
    go = path.with_name("go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), mode, str(go), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    go.unlink()
    return results


class TestSeveralProcesses:
    def test_concurrent_takes_hand_each_session_to_one_process(self, tmp_path: Path) -> None:
        """Four processes taking from one pool at once: every session goes out exactly once."""
        path = tmp_path / "s.db"
        with SQLiteStore(path, per_key=100000) as store:
            for n in range(400):
                store.put(HOST, session(n), expires=time.time() + 600)
        results = run_workers(path, "take", 4)
        taken = [item for result in results for item in result]
        assert len(taken) == len(set(taken)) == 400
        assert set(taken) == {session(n).hex() for n in range(400)}

    def test_concurrent_puts_lose_nothing(self, tmp_path: Path) -> None:
        """Four processes putting at once: no 'database is locked', every session stored."""
        path = tmp_path / "s.db"
        SQLiteStore(path).close()
        results = run_workers(path, "put", 4, 100)
        put = {item for result in results for item in result}
        with SQLiteStore(path, per_key=100000) as store:
            stored = set()
            while (s := store.take(HOST)) is not None:
                stored.add(s.data.hex())
        assert stored == put
        assert len(put) == 400
