# Theory of operation: the in-memory store
# ========================================
#
# MemoryStore keeps sealed entries in a dict: name -> {entry: (seq, expires, blob)}.
# It is the default store and the reference backend the tests compare the others
# with; it lives and dies with the process. One lock makes every primitive
# atomic, so take() hands a session to one thread only. Entries are sealed like
# in every store, by default with a random key made for this object alone (a
# memory dump of the dict shows no server names and no session bytes). Expired
# entries are dropped when their name is touched and, every 256 puts, by a full
# sweep.
#
# fork(): the lock is held across it (resume._core.forks), so a child gets a
# consistent copy of the entries, its own from then on.
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Final, final

from .base import SessionStore, _new_salt

__all__ = ["MemoryStore"]

_SWEEP_EVERY: Final = 256


@final
class MemoryStore(SessionStore):
    """A :class:`SessionStore` in this process's memory (the default).

    Nothing survives the process; use :class:`SQLiteStore` or
    :class:`RedisStore` for that. Thread-safe.

    Args:
        key: the 32-byte key (see :func:`resume.stores.load_key`); None: a
            random key made for this store alone.
        key_file: read the key from this file instead.
        per_key: the most sessions kept under one cache key.
        clock: seconds since the epoch; inject a fake for tests.
        insecure_unauthenticated: seal with a key derived from the store's salt
            (see :class:`SessionStore`); for tests of that mode only.
    """

    def __init__(
        self,
        *,
        key: bytes | None = None,
        key_file: str | os.PathLike[str] | None = None,
        per_key: int = 4,
        clock: Callable[[], float] = time.time,
        insecure_unauthenticated: bool = False,
    ) -> None:
        super().__init__(key=key, key_file=key_file, per_key=per_key, clock=clock,
                         insecure_unauthenticated=insecure_unauthenticated)
        self._lock = threading.Lock()
        self._data: dict[bytes, dict[bytes, tuple[int, float, bytes]]] = {}
        self._seq = 0
        self._salt = _new_salt()

    def _fork_locks(self) -> tuple[threading.Lock, ...]:
        return (self._keys_lock, self._lock, self._limiter._lock)

    def __len__(self) -> int:
        """The number of entries held, expired ones included until they are swept."""
        with self._lock:
            return sum(len(pool) for pool in self._data.values())

    def _default_key(self) -> bytes:
        return os.urandom(32)

    def _setup(self) -> bytes:
        return self._salt

    def _live_pool(self, name: bytes, now: float) -> dict[bytes, tuple[int, float, bytes]] | None:
        pool = self._data.get(name)
        if pool is None:
            return None
        for entry in [e for e, (_, expires, _) in pool.items() if now > expires]:
            del pool[entry]
        if not pool:
            del self._data[name]
            return None
        return pool

    def _put_raw(
        self, name: bytes, entry: bytes, expires: float, blob: bytes, per_key: int, now: float
    ) -> None:
        with self._lock:
            self._seq += 1
            pool = self._data.setdefault(name, {})
            pool.pop(entry, None)
            pool[entry] = (self._seq, expires, blob)
            while len(pool) > per_key:
                del pool[next(iter(pool))]  # insertion order: the oldest first
            if self._seq % _SWEEP_EVERY == 0:
                for other in list(self._data):
                    self._live_pool(other, now)

    def _newest(self, name: bytes, now: float) -> tuple[bytes, bytes] | None:
        pool = self._live_pool(name, now)
        if pool is None:
            return None
        entry = next(reversed(pool))
        return entry, pool[entry][2]

    def _get_raw(self, name: bytes, now: float) -> tuple[bytes, bytes] | None:
        with self._lock:
            return self._newest(name, now)

    def _take_raw(self, name: bytes, now: float) -> bytes | None:
        with self._lock:
            found = self._newest(name, now)
            if found is None:
                return None
            entry, blob = found
            pool = self._data[name]
            del pool[entry]
            if not pool:
                del self._data[name]
            return blob

    def _delete_raw(self, name: bytes, entry: bytes | None) -> int:
        with self._lock:
            pool = self._data.get(name)
            if pool is None:
                return 0
            if entry is None:
                del self._data[name]
                return len(pool)
            if pool.pop(entry, None) is None:
                return 0
            if not pool:
                del self._data[name]
            return 1

    def _close_raw(self) -> None:
        with self._lock:
            self._data.clear()

    def __repr__(self) -> str:
        return f"<resume.stores.MemoryStore entries={len(self)} encrypted={self.encrypted}>"


MemoryStore.__module__ = "resume.stores"
