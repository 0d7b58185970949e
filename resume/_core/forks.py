# Theory of operation: locks across fork()
# ========================================
#
# fork() copies a process with one thread only, the one that called it. A lock
# that another thread held at that moment stays held in the child for ever, with
# nobody left to release it: the child's first look-up in a SessionCache that a
# thread of the parent was using deadlocks (issue 18, finding 6). The data the
# lock guarded may be half-changed in the child, too.
#
# The remedy is the one the standard library uses for its own locks (logging,
# concurrent.futures) and glibc for malloc's: os.register_at_fork() hooks that
#
#   before          acquire every lock of resume, outermost first, so that no
#                   other thread is inside a critical section when the process
#                   is copied: the child inherits consistent data;
#   after, parent   release them;
#   after, child    release them, then try every lock once more: a lock still
#                   held belongs to a thread that does not exist in the child,
#                   and is re-initialised in place (``lock._at_fork_reinit()``,
#                   what threading does for its own locks, so every name bound
#                   to it sees the fresh lock); then each registered object
#                   fixes the rest of its per-process state (a store link
#                   forgets its writer thread and thread pool, a SQLite store
#                   opens a new connection on next use).
#
# The wait in "before" is bounded: all the acquisitions of one fork share a
# budget of _PREPARE_BUDGET seconds, after which the remaining locks are only
# tried. A lock held that long is held by a thread blocked in a user callback
# (a cache holds its lock for microseconds otherwise, and calls callbacks only
# when its own state is consistent) or by a thread waiting for a lock that the
# forking thread holds; the child re-initialises it, which is safe for the same
# reason. A fork is therefore never delayed by more than the budget and never
# deadlocks, in the parent or in the child.
#
# What is registered. Objects that own locks (SessionCache, StoreLink,
# SessionStore) call register() when they are made, and are held weakly: an
# entry goes when its object goes, so the hooks keep nothing alive.
# Registration takes no lock (a dict keyed by a ticket from a counter; the hooks
# copy it, retrying if a garbage collection changed it meanwhile). Module-level
# locks are named in _MODULE_LOCKS, looked up in sys.modules when a fork
# happens (a module not imported yet has nothing to protect). tests/unit/
# test_forks.py checks that every module-level lock of resume is in that table.
#
# Order. Locks nest in one order, and "before" takes them in it: a cache's lock
# (the link's callbacks run under it), then a store link's, then the module
# locks (the link registry, the default cache, the context keys, the decision
# counters, the OpenSSL probe), then a store's (never taken under the ones
# before), and the reference-count lock of the session handles, innermost, last.
#
# Cost. Nothing on the hot paths: a cache look-up takes the same lock, the same
# way, as without fork support; registering costs one weak reference per object
# made. A fork costs one acquire and release per lock.
from __future__ import annotations

import itertools
import os
import sys
import time
import weakref
from collections.abc import Iterable
from typing import Any, Final, Protocol

__all__ = ["CACHE", "LINK", "MODULE", "REFCOUNT", "STORE", "ForkAware", "register"]


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class ForkAware(Protocol):
    """An object that owns locks and per-process state (a cache, a link, a store)."""

    def _fork_locks(self) -> Iterable[_Lock]:
        """The object's locks, outermost first."""
        ...

    def _fork_child(self) -> None:
        """In the child, after its locks are usable: fix the rest of the object's state."""
        ...


#: Levels, in the order locks nest (see the top).
CACHE: Final = 0
LINK: Final = 1
MODULE: Final = 2
STORE: Final = 3
REFCOUNT: Final = 4

#: Every module-level lock of resume: (level, module, attribute).
_MODULE_LOCKS: Final = (
    (MODULE, "resume._stores.link", "_LINKS_LOCK"),
    (MODULE, "resume._core.defaults", "_LOCK"),
    (MODULE, "resume._core.key", "_LOCK"),
    (MODULE, "resume._core.why", "_LOCK"),
    (MODULE, "resume._openssl.binding", "_lock"),
    (REFCOUNT, "resume._core.handle", "_REFLOCK"),
)

#: Seconds that "before" may wait, in all, for locks other threads hold.
_PREPARE_BUDGET: Final = 1.0

# ticket -> (level, weak reference to a registered object)
_entries: dict[int, tuple[int, weakref.ref[Any]]] = {}
_tickets = itertools.count()
# The locks "before" acquired, released after the fork on both sides.
_held: list[_Lock] = []


def register(obj: ForkAware, level: int) -> None:
    """Make *obj*'s locks safe across fork(); *obj* is held weakly."""
    ticket = next(_tickets)  # atomic under the GIL: no lock needed

    def forget(_ref: object, ticket: int = ticket, entries: dict[Any, Any] = _entries) -> None:
        entries.pop(ticket, None)

    _entries[ticket] = (level, weakref.ref(obj, forget))


def _live() -> list[tuple[int, ForkAware]]:
    # The registered objects still alive, in registration order. A garbage
    # collection during the copy may drop an entry: copy again.
    for _ in range(8):
        try:
            entries = list(_entries.values())
        except RuntimeError:  # pragma: no cover - "dictionary changed size"
            continue
        break
    else:  # pragma: no cover
        return []
    found = []
    for level, ref in entries:
        obj = ref()
        if obj is not None:
            found.append((level, obj))
    return found


def _locks(objects: list[tuple[int, ForkAware]]) -> list[_Lock]:
    # Every lock, outermost first.
    ranked: list[tuple[int, _Lock]] = []
    for level, obj in objects:
        try:
            ranked.extend((level, lock) for lock in obj._fork_locks())
        except AttributeError:  # a half-built object: its locks do not exist yet
            continue
    for level, module_name, attribute in _MODULE_LOCKS:
        lock = getattr(sys.modules.get(module_name), attribute, None)
        if lock is not None:
            ranked.append((level, lock))
    ranked.sort(key=lambda pair: pair[0])  # stable: registration order within a level
    seen: set[int] = set()
    ordered = []
    for _, lock in ranked:
        if id(lock) not in seen:
            seen.add(id(lock))
            ordered.append(lock)
    return ordered


def _before() -> None:
    held: list[_Lock] = []
    try:
        deadline = time.monotonic() + _PREPARE_BUDGET
        for lock in _locks(_live()):
            remaining = deadline - time.monotonic()
            # Past the budget, only try (see the top).
            if lock.acquire(True, remaining) if remaining > 0 else lock.acquire(False):
                held.append(lock)
    finally:
        _held[:] = held


def _release_held() -> None:
    held = list(_held)
    _held.clear()
    for lock in reversed(held):
        lock.release()


def _after_in_parent() -> None:
    _release_held()


def _reset(lock: _Lock) -> None:
    # In the child: a lock nobody here can release is made new, in place.
    if lock.acquire(False):
        lock.release()
        return
    reinit = getattr(lock, "_at_fork_reinit", None)  # CPython >= 3.9, as threading uses
    if reinit is not None:
        reinit()


def _after_in_child() -> None:
    released = {id(lock) for lock in _held}
    _release_held()
    objects = _live()
    for lock in _locks(objects):
        if id(lock) not in released:  # a lock "before" could not take, or a newer one
            _reset(lock)
    failed: list[Exception] = []
    for _, obj in objects:
        try:
            obj._fork_child()
        except AttributeError:  # a half-built object
            continue
        except Exception as exc:  # one object's failure must not skip the others
            failed.append(exc)
    if failed:
        raise failed[0]  # reported by os.fork() as an unraisable exception


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child
    )

