"""resume._core.forks: every lock is known to the fork hooks, held weakly, waited for boundedly.

The forks themselves run in tests/integration/test_fork.py (in subprocesses);
these tests call the hooks in this process, without forking.
"""

from __future__ import annotations

import gc
import importlib
import pkgutil
import threading
import weakref
from pathlib import Path

import pytest

import resume
from resume import SessionCache
from resume._core import forks
from resume.stores import MemoryStore, attach_store

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _all_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(Path(resume.__file__).parent)], "resume."):
        if info.name.endswith("__main__"):  # runs the command line when imported
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional dependency missing: nothing of it runs
            continue
        names.append(info.name)
    return names


def _registered() -> list[object]:
    return [obj for _, obj in forks._live()]


class TestModuleLocks:
    def test_every_module_level_lock_is_in_the_table(self) -> None:
        """A lock held in a module global anywhere in resume is one the fork hooks handle."""
        import sys

        known = {(module, attribute) for _, module, attribute in forks._MODULE_LOCKS}
        found = set()
        for name in _all_modules():
            for attribute, value in vars(sys.modules[name]).items():
                if isinstance(value, _LOCK_TYPES):
                    found.add((name, attribute))
        # resume._core.cache re-binds handle's _REFLOCK: the same lock object.
        import resume._core.cache as cache_module
        import resume._core.handle as handle_module

        assert vars(cache_module)["_REFLOCK"] is handle_module._REFLOCK
        found.discard(("resume._core.cache", "_REFLOCK"))
        assert found <= known, f"module locks the fork hooks do not know: {found - known}"
        assert found, "the scan found no lock at all"

    def test_the_table_names_existing_locks(self) -> None:
        """Every entry of the table is a lock in an importable module (no stale names)."""
        import sys

        _all_modules()
        for _, module, attribute in forks._MODULE_LOCKS:
            assert isinstance(getattr(sys.modules[module], attribute), _LOCK_TYPES), (
                module, attribute,
            )

    def test_this_python_can_reinitialise_locks(self) -> None:
        """The child's reset relies on lock._at_fork_reinit (CPython >= 3.9)."""
        for lock_type in _LOCK_TYPES:
            assert hasattr(lock_type, "_at_fork_reinit")


class TestRegistration:
    def test_caches_links_and_stores_register(self) -> None:
        """A cache, a store and the link between them are all known to the hooks."""
        cache = SessionCache()
        store = MemoryStore()
        link = attach_store(cache, store)
        try:
            registered = _registered()
            assert any(obj is cache for obj in registered)
            assert any(obj is store for obj in registered)
            assert any(obj is link for obj in registered)
            locks = forks._locks(forks._live())
            ids = [id(lock) for lock in locks]
            # the cache's lock comes before its link's, the link's before the store's
            assert ids.index(id(cache._lock)) < ids.index(id(link._lock))
            assert ids.index(id(link._lock)) < ids.index(id(store._lock))
            import resume._core.handle as handle_module

            assert ids[-1] == id(handle_module._REFLOCK)
        finally:
            link.close()
            store.close()

    def test_registration_is_weak(self) -> None:
        """The hooks keep no cache alive: a dropped cache leaves the registry."""
        cache = SessionCache()
        ref = weakref.ref(cache)
        before = len(forks._entries)
        del cache
        gc.collect()
        assert ref() is None
        assert len(forks._entries) < before
        assert all(obj is not None for obj in _registered())


class TestHooks:
    def test_before_holds_every_lock_and_after_in_parent_releases_them(self) -> None:
        """Between the hooks no other thread can enter a cache; afterwards it can."""
        cache = SessionCache()
        entered = threading.Event()

        def enter() -> None:
            with cache._lock:
                entered.set()

        forks._before()
        try:
            assert any(lock is cache._lock for lock in forks._held)
            thread = threading.Thread(target=enter)
            thread.start()
            assert not entered.wait(0.05)  # held by the hook
        finally:
            forks._after_in_parent()
        assert entered.wait(30)
        thread.join()
        assert forks._held == []

    def test_before_gives_up_on_a_lock_held_too_long(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A lock another thread keeps past the budget is skipped, not waited for for ever."""
        monkeypatch.setattr(forks, "_PREPARE_BUDGET", 0.05)
        cache = SessionCache()
        taken, release = threading.Event(), threading.Event()

        def hold() -> None:
            with cache._lock:
                taken.set()
                release.wait(30)

        thread = threading.Thread(target=hold)
        thread.start()
        assert taken.wait(30)
        try:
            forks._before()
            try:
                assert not any(lock is cache._lock for lock in forks._held)
                assert forks._held  # the other locks were taken
            finally:
                forks._after_in_parent()
        finally:
            release.set()
            thread.join()

    def test_reset_reinitialises_a_lock_nobody_here_can_release(self) -> None:
        """In a child, a lock left held by a vanished thread is made usable, in place."""
        lock = threading.Lock()
        lock.acquire()  # stands for a thread of the parent that holds it
        forks._reset(lock)
        assert lock.acquire(False)
        lock.release()
        free = threading.RLock()
        forks._reset(free)  # a free lock is left as it is
        assert free.acquire(False)
        free.release()
