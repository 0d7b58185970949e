# Theory of operation: the SQLite store
# =====================================
#
# SQLiteStore is the embedded store for persistence: one database file that
# survives restarts and that several processes may use at once.
#
# Files and permissions. A serialized session holds a master secret, so the file
# is created 0600 with os.open(O_CREAT | O_EXCL, 0o600) *before* SQLite opens it
# (SQLite would create it with 0644 & ~umask). SQLite's unix VFS gives the files
# it creates next to the database (the ``-wal`` write-ahead log and the ``-shm``
# shared-memory index) the permissions of the database file itself, so they are
# 0600 too; the tests check every file in the directory. An existing database
# that others may read is tightened to 0600 with a StoreWarning.
#
# Concurrency. The database is in WAL mode: readers never block the writer and
# the writer never blocks readers; writers queue on SQLite's write lock, and
# ``busy_timeout`` (the ``timeout`` argument) makes a writer wait for it instead
# of failing at once. ``synchronous=NORMAL`` is durable against a process crash
# (a power loss may lose the last transactions: acceptable for a cache of
# sessions, and it keeps a commit far below a millisecond). Every primitive is
# one statement or one ``BEGIN IMMEDIATE`` transaction:
#
#   take   DELETE ... WHERE rowid = (SELECT newest live) RETURNING blob
#          One statement is atomic: it runs under the write lock, so two
#          processes taking at once get different rows, or one gets none.
#          (RETURNING needs SQLite >= 3.35, checked at open.)
#   put    BEGIN IMMEDIATE; INSERT OR REPLACE; trim the name to per_key; COMMIT
#   setup  BEGIN IMMEDIATE; create tables; INSERT OR IGNORE the salt; COMMIT,
#          so processes starting together agree on one salt.
#
# Rows are ordered by rowid: INSERT OR REPLACE gives a re-put entry a new rowid,
# so "newest" is the largest rowid. Expired rows are skipped by every read and
# deleted by a sweep every 256 puts (indexed on expires).
#
# One connection per store object, shared by threads under a lock (sqlite3's
# check_same_thread is off for that reason).
from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Final, final

from ._errors import StoreError, UnsupportedError
from ._store import FORMAT_VERSION, SessionStore, StoreWarning, _new_salt

__all__ = ["SQLiteStore"]

_SWEEP_EVERY: Final = 256
_MIN_SQLITE: Final = (3, 35, 0)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS resume_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS resume_sessions (
    name    BLOB NOT NULL,
    entry   BLOB NOT NULL,
    expires REAL NOT NULL,
    blob    BLOB NOT NULL,
    UNIQUE (name, entry)
);
CREATE INDEX IF NOT EXISTS resume_sessions_expires ON resume_sessions (expires);
"""


def _create_private(path: Path) -> None:
    # Create the file 0600 before SQLite sees it; tighten an existing loose one.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StoreError(f"{str(path)!r} is not a regular file") from None
            if st.st_mode & 0o077:
                os.fchmod(fd, 0o600)
                warnings.warn(
                    f"session store {str(path)!r} was readable by other users "
                    f"(mode {st.st_mode & 0o777:04o}); it is now 0600",
                    StoreWarning,
                    stacklevel=4,
                )
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            try:
                if side.stat().st_mode & 0o077:
                    side.chmod(0o600)
            except FileNotFoundError:
                pass
        return
    try:
        os.fchmod(fd, 0o600)  # in case the umask removed owner bits
    finally:
        os.close(fd)


@final
class SQLiteStore(SessionStore):
    """A :class:`SessionStore` in one SQLite database file: persistence for one host.

    The file (and SQLite's ``-wal`` and ``-shm`` files beside it) is created with
    mode 0600. Several processes may use the same file at once; :meth:`take`
    is atomic across them. Sessions survive restarts until they expire.

    Args:
        path: the database file; created if missing (its directory must exist).
        key: the 32-byte encryption key (see :func:`resume.stores.load_key`);
            None keeps sessions unencrypted (names are still hashed).
        key_file: read the key from this file instead.
        per_key: the most sessions kept under one cache key.
        timeout: seconds to wait for another process's write lock
            (SQLite's ``busy_timeout``).
        clock: seconds since the epoch; inject a fake for tests.

    Calls block for the time of one SQLite statement (tens of microseconds; up
    to *timeout* while another process holds the write lock).

    Raises:
        ValueError: *path* is ``":memory:"`` or empty.
        UnsupportedError: the SQLite library is older than 3.35 (no ``RETURNING``).
        StoreError: the file cannot be created or is not a SQLite database.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | None = None,
        key_file: str | os.PathLike[str] | None = None,
        per_key: int = 4,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(key=key, key_file=key_file, per_key=per_key, clock=clock)
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise UnsupportedError(
                f"SQLiteStore needs SQLite >= 3.35 for atomic take (DELETE ... RETURNING); "
                f"this Python has SQLite {sqlite3.sqlite_version}"
            )
        if os.fspath(path) in (":memory:", ""):
            raise ValueError("SQLiteStore needs a file path; for memory, use MemoryStore")
        self._path = Path(path)
        self._lock = threading.Lock()
        self._puts = 0
        try:
            _create_private(self._path)
        except OSError as exc:
            raise StoreError(
                f"cannot create session store {str(self._path)!r}: {exc.strerror}"
            ) from None
        try:
            conn = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open session store {str(self._path)!r}: {exc}") from None
        self._conn: sqlite3.Connection | None = conn
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            self._conn = None
            raise StoreError(f"cannot open session store {str(self._path)!r}: {exc}") from None

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def _describe(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"

    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self._describe()} is closed")
        return conn

    def _fail(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"{self._describe()} failed: {exc}")

    def _setup(self) -> bytes:
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT OR IGNORE INTO resume_meta VALUES ('salt', ?), ('format', ?)",
                        (_new_salt(), FORMAT_VERSION),
                    )
                    rows = dict(conn.execute("SELECT name, value FROM resume_meta"))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        salt = rows.get("salt")
        if not isinstance(salt, bytes) or len(salt) < 16:
            raise StoreError(f"{self._describe()} has a damaged salt; delete the file")
        if rows.get("format") != FORMAT_VERSION:
            raise StoreError(
                f"{self._describe()} was written in format {rows.get('format')!r}; this "
                f"resume reads format {FORMAT_VERSION}"
            )
        return salt

    def _put_raw(
        self, name: bytes, entry: bytes, expires: float, blob: bytes, per_key: int, now: float
    ) -> None:
        with self._lock:
            conn = self._db()
            self._puts += 1
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "INSERT OR REPLACE INTO resume_sessions (name, entry, expires, blob) "
                        "VALUES (?, ?, ?, ?)",
                        (name, entry, expires, blob),
                    )
                    # Plain "?" placeholders: numbered ones ("?1") with a sequence are
                    # deprecated since Python 3.12 and an error from 3.14 on.
                    conn.execute(
                        "DELETE FROM resume_sessions WHERE name = ? AND rowid NOT IN "
                        "(SELECT rowid FROM resume_sessions WHERE name = ? "
                        "ORDER BY rowid DESC LIMIT ?)",
                        (name, name, per_key),
                    )
                    if self._puts % _SWEEP_EVERY == 0:
                        conn.execute("DELETE FROM resume_sessions WHERE expires < ?", (now,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._fail(exc) from None

    def _get_raw(self, name: bytes, now: float) -> tuple[bytes, bytes] | None:
        with self._lock:
            try:
                row = self._db().execute(
                    "SELECT entry, blob FROM resume_sessions WHERE name = ? AND expires >= ? "
                    "ORDER BY rowid DESC LIMIT 1",
                    (name, now),
                ).fetchone()
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    def _take_raw(self, name: bytes, now: float) -> bytes | None:
        with self._lock:
            try:
                row = self._db().execute(
                    "DELETE FROM resume_sessions WHERE rowid = (SELECT rowid FROM "
                    "resume_sessions WHERE name = ? AND expires >= ? ORDER BY rowid DESC "
                    "LIMIT 1) RETURNING blob",
                    (name, now),
                ).fetchone()
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        return None if row is None else bytes(row[0])

    def _delete_raw(self, name: bytes, entry: bytes | None) -> int:
        with self._lock:
            try:
                if entry is None:
                    cur = self._db().execute(
                        "DELETE FROM resume_sessions WHERE name = ?", (name,)
                    )
                else:
                    cur = self._db().execute(
                        "DELETE FROM resume_sessions WHERE name = ? AND entry = ?", (name, entry)
                    )
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        return max(cur.rowcount, 0)

    def purge(self) -> int:
        """Delete every expired entry now; return how many went.

        Puts do this every 256 calls; call it yourself for a store that is
        mostly read.

        Raises:
            StoreError: the database failed.
        """
        self._check_open()
        with self._lock:
            try:
                cur = self._db().execute(
                    "DELETE FROM resume_sessions WHERE expires < ?", (self._clock(),)
                )
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        return max(cur.rowcount, 0)

    def __len__(self) -> int:
        """The number of rows held, expired ones included until they are swept."""
        self._keys()  # creates the tables on first use
        with self._lock:
            try:
                (count,) = self._db().execute("SELECT count(*) FROM resume_sessions").fetchone()
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        return int(count)

    def _close_raw(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"<resume.stores.SQLiteStore {str(self._path)!r} encrypted={self.encrypted}>"


SQLiteStore.__module__ = "resume.stores"
