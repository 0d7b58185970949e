# Theory of operation: the SQLite store
# =====================================
#
# SQLiteStore is the embedded store for persistence: one database file that
# survives restarts and that several processes may use at once.
#
# Files and permissions (issue 8, finding 5). Whoever can write the database
# could plant sessions, so the file is never trusted blindly (resume._stores.safefile):
#
# * a new database is created 0600 with os.open(O_CREAT | O_EXCL | O_NOFOLLOW)
#   *before* SQLite opens it (SQLite would create it with 0644 & ~umask);
# * an existing one is opened with O_NOFOLLOW (a symbolic link is refused, and
#   the file it points to is left as it was), then checked on the descriptor,
#   in this order and before any change: a regular file, owned by this user,
#   not writable by group or others, starting with the SQLite header
#   "SQLite format 3\0" (or empty). Only then is a file that others may read
#   tightened to 0600, with a StoreWarning;
# * the files SQLite keeps beside it (``-wal``, ``-shm``, ``-journal``) get the
#   same checks if they exist (SQLite gives the ones it creates the database's
#   owner and mode); a directory that everybody may write without the sticky
#   bit is refused;
# * after SQLite opened the path, the path must still be the file checked.
#
# The key (issue 8, finding 2). Sessions are sealed with a key that is not in
# the database (resume._stores.base): given, or by default the key file
# ``PATH.key`` beside the database, made on first use (0600, O_EXCL, written
# to a temporary name and linked into place, so processes that start together
# share one key) and held to the same checks as a key file given by the user.
#
# Format. resume_meta holds the store's salt and its format (2). A database of
# format 1 (resume before issue 8: entries that anyone with the salt could
# forge) is emptied when first opened, with a StoreWarning: its entries are
# never trusted.
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
#
# fork(). SQLite forbids using a connection in a child process that was opened
# before the fork (https://www.sqlite.org/howtocorrupt.html, section 2.6): POSIX
# locks belong to a process, so the child does not hold the locks its copy of
# the connection believes it holds, and a connection opened in the child would
# share that belief (SQLite keeps one record of the locks per file and process).
# The store registers with resume._core.forks, which holds its lock across the
# fork, so the inherited connection is idle. In the child it is closed at once,
# which clears that record without touching the parent (closing only drops the
# child's own locks; the parent's shared lock keeps the child from
# checkpointing or removing the WAL), and the next operation opens a new
# connection to the same file, checked again to be the file the store was
# opened on. An inherited connection found inside a transaction (a thread of
# the parent held it past the fork budget) is set aside instead, never used.

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

from .._core.errors import StoreError, UnsupportedError
from .base import FORMAT_VERSION, SessionStore, StoreWarning, _new_salt
from .safefile import check_directory, check_file, load_or_create_key, open_checked

__all__ = ["SQLiteStore"]

_SWEEP_EVERY: Final = 256
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_MIN_SQLITE: Final = (3, 35, 0)
#: Connections inherited inside a transaction from a parent process: never used.
_INHERITED: list[sqlite3.Connection] = []

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


def _tighten(fd: int, st: os.stat_result, path: Path) -> None:
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        os.fchmod(fd, 0o600)
        warnings.warn(
            f"session store file {str(path)!r} was readable by other users "
            f"(mode {mode:04o}); it is now 0600",
            StoreWarning,
            stacklevel=5,
        )


def _open_private(path: Path) -> tuple[int, int]:
    """Create the database file 0600, or check the one there; return its (device, inode).

    Nothing is changed in a file before it passed every check (see the module's
    theory of operation).
    """
    check_directory(path.parent, f"session store {str(path)!r}")
    try:
        fd = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        fd = open_checked(path, "session store", private=False)
        try:
            st = os.fstat(fd)
            head = os.pread(fd, len(_SQLITE_HEADER), 0)
            if head and head != _SQLITE_HEADER:
                raise StoreError(
                    f"session store {str(path)!r} is not a SQLite database; refusing to use it"
                )
            _tighten(fd, st, path)
        finally:
            os.close(fd)
    else:
        try:
            os.fchmod(fd, 0o600)  # in case the umask removed owner bits
            st = os.fstat(fd)
        finally:
            os.close(fd)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        try:
            side_fd = open_checked(side, "session store file", private=False)
        except FileNotFoundError:
            continue
        try:
            _tighten(side_fd, os.fstat(side_fd), side)
        finally:
            os.close(side_fd)
    return st.st_dev, st.st_ino


#: SQLite's result codes (``sqlite3.SQLITE_FULL`` and friends exist from Python 3.11).
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_IOERR);
    # a ROLLBACK then fails with "no transaction is active" and would hide them.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


@final
class SQLiteStore(SessionStore):
    """A :class:`SessionStore` in one SQLite database file: persistence for one host.

    The file (and SQLite's ``-wal`` and ``-shm`` files beside it) is created with
    mode 0600. Several processes may use the same file at once; :meth:`take`
    is atomic across them. Sessions survive restarts until they expire.

    The files are opened safely: a symbolic link is refused, and so is a file
    owned by another user, writable by group or others, or that is not a
    SQLite database, with a one-line :class:`~resume.StoreError` naming the
    path, before anything is changed. Sessions are sealed with a key kept
    outside the database: by default the key file ``PATH.key`` beside it, made
    (0600) on first use.

    Args:
        path: the database file; created if missing (its directory must exist).
        key: the 32-byte key (see :func:`resume.stores.load_key`); None: the
            key in ``PATH.key``, made on first use.
        key_file: read the key from this file instead.
        per_key: the most sessions kept under one cache key.
        timeout: seconds to wait for another process's write lock
            (SQLite's ``busy_timeout``).
        clock: seconds since the epoch; inject a fake for tests.
        insecure_unauthenticated: make no key file and seal with a key derived
            from the database's salt (see :class:`SessionStore`): anyone who
            can write the file can then plant sessions. Warns every time.

    Calls block for the time of one SQLite statement (tens of microseconds; up
    to *timeout* while another process holds the write lock); under a cache
    (:func:`attach_store`) the adapters make them in a thread, never on an event loop.

    Raises:
        ValueError: *path* is ``":memory:"`` or empty.
        UnsupportedError: the SQLite library is older than 3.35 (no ``RETURNING``).
        StoreError: the file cannot be created, is a symbolic link, belongs to
            another user, may be written by others or is not a SQLite
            database; or the key file is refused likewise.
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
        insecure_unauthenticated: bool = False,
    ) -> None:
        self._conn: sqlite3.Connection | None = None
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
            identity = _open_private(self._path)
        except OSError as exc:
            raise StoreError(
                f"cannot create session store {str(self._path)!r}: {exc.strerror}"
            ) from None
        self._identity = identity
        self._timeout = timeout
        self._reopen = False
        super().__init__(key=key, key_file=key_file, per_key=per_key, clock=clock,
                         insecure_unauthenticated=insecure_unauthenticated)
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # Open the checked file (again, in a child after fork()).
        try:
            conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open session store {str(self._path)!r}: {exc}") from None
        try:
            st = os.lstat(self._path)
            check_file(st, self._path, "session store", private=False)
            if (st.st_dev, st.st_ino) != self._identity:
                raise StoreError(
                    f"session store {str(self._path)!r} was replaced while it was opened"
                )
        except (OSError, StoreError) as exc:
            conn.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open session store {str(self._path)!r}: "
                             f"{exc.strerror}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._fail(exc, f"cannot open session store {str(self._path)!r}") from None
        return conn

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def default_key_file(self) -> Path:
        """Where the store keeps its key when none is given: ``PATH.key``."""
        return self._path.with_name(self._path.name + ".key")

    def _default_key(self) -> bytes:
        key, _ = load_or_create_key(self.default_key_file)
        return key

    def _describe(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"

    def _db(self) -> sqlite3.Connection:
        # Called with self._lock held.
        conn = self._conn
        if conn is None:
            if not self._reopen:
                raise StoreError(f"{self._describe()} is closed")
            conn = self._conn = self._connect()  # the first use in a child process
            self._reopen = False
        return conn

    def _fork_locks(self) -> tuple[threading.Lock, ...]:
        return (self._keys_lock, self._lock, self._limiter._lock)

    def _fork_child(self) -> None:
        # The parent's connection must not be used here (see the top).
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._reopen = True
        if conn.in_transaction:
            _INHERITED.append(conn)
            return
        try:
            conn.close()
        except sqlite3.Error:  # pragma: no cover - close of an idle connection
            _INHERITED.append(conn)

    def _fail(self, exc: sqlite3.Error, doing: str | None = None) -> StoreError:
        # A full disk and an I/O error say so and name the file.
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if code == _SQLITE_FULL or (code is None and "disk is full" in str(exc)):
            return StoreError(f"cannot write session store {str(self._path)!r}: the disk is full")
        if code is not None and code & 0xFF == _SQLITE_IOERR:
            return StoreError(
                f"cannot write session store {str(self._path)!r}: I/O error "
                "(disk full, file size limit or a failing disk?)"
            )
        return StoreError(f"{doing or self._describe() + ' failed'}: {exc}")

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
                    dropped = 0
                    if rows.get("format") == 1:
                        # Format 1 entries could be forged with the salt: never trust them.
                        dropped = conn.execute("DELETE FROM resume_sessions").rowcount
                        conn.execute("UPDATE resume_meta SET value = ? WHERE name = 'format'",
                                     (FORMAT_VERSION,))
                        rows["format"] = FORMAT_VERSION
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
        if dropped:
            self._warn("legacy", f"{dropped} entries in the old unauthenticated format 1 "
                                 f"were dropped; they are not trusted")
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
                    _rollback(conn)
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
            self._reopen = False
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
