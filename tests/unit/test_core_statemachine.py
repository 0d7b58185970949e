"""Random walks over handles and caches, checked against a small model.

A Hypothesis RuleBasedStateMachine drives real SessionHandles (over a real TLS
session) and a SessionCache with a fake clock through add, get1, get0, take,
remove, dup, up_ref, free, flush and clock moves. After every step: counts match
the model, nothing the cache holds is freed, a handle is freed exactly when its
last reference went, misuse raised the right error, and the statistics add up.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field

import pytest
from corehelpers import FakeClock, make_pki, memory_session
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from resume import DoubleFreeError, SessionCache, SessionError, SessionHandle, UseAfterFreeError

SIZE = 4
PER_KEY = 2
TIMEOUT = 10.0
KEYS = st.sampled_from(["a", "b", "c", "d", "e"])


@functools.cache
def real_session() -> ssl.SSLSession:
    session = memory_session(make_pki("1.2"))
    return session


@dataclass
class Model:
    """What the cache should hold: key -> [(handle, expires)], oldest first, keys in LRU order."""

    pools: dict[str, list[tuple[SessionHandle, float]]] = field(default_factory=dict)
    refs: dict[int, int] = field(default_factory=dict)  # id(handle) -> expected refcount
    hits: int = 0
    misses: int = 0
    timeouts: int = 0
    cache_full: int = 0
    taken: int = 0
    removed: int = 0
    replaced: int = 0
    added: int = 0

    def number(self) -> int:
        return sum(len(p) for p in self.pools.values())

    def touch(self, key: str) -> None:
        self.pools[key] = self.pools.pop(key)

    def drop(self, key: str, index: int) -> SessionHandle:
        handle, _ = self.pools[key].pop(index)
        if not self.pools[key]:
            del self.pools[key]
        return handle


class CacheMachine(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.cache = SessionCache(size=SIZE, per_key=PER_KEY, timeout=TIMEOUT, clock=self.clock)
        self.model = Model()
        self.all: list[SessionHandle] = []

    # -- helpers -------------------------------------------------------------------

    def deref(self, handle: SessionHandle) -> None:
        self.model.refs[id(handle)] -= 1

    def cached(self, handle: SessionHandle) -> tuple[str, int] | None:
        for key, pool in self.model.pools.items():
            for index, (h, _) in enumerate(pool):
                if h is handle:
                    return key, index
        return None

    def model_find(self, key: str) -> SessionHandle | None:
        m = self.model
        pool = m.pools.get(key)
        if not pool:
            m.misses += 1
            return None
        now = self.clock.now
        if now > pool[-1][1]:
            for h, expires in list(pool):
                if now > expires:
                    m.drop(key, [x for x, _ in m.pools[key]].index(h))
                    self.deref(h)
                    m.timeouts += 1
                    if key not in m.pools:
                        break
            if key not in m.pools:
                m.misses += 1
                return None
        m.touch(key)
        m.hits += 1
        return m.pools[key][-1][0]

    # -- rules ---------------------------------------------------------------------

    def _new_handle(self) -> SessionHandle:
        h = SessionHandle.from_ssl(real_session())
        self.all.append(h)
        self.model.refs[id(h)] = 1
        return h

    @initialize(target=handles)
    def first(self) -> SessionHandle:
        return self._new_handle()

    @rule(target=handles)
    def make(self) -> SessionHandle:
        return self._new_handle()

    @rule(target=handles, h=handles)
    def dup(self, h: SessionHandle) -> SessionHandle:
        if self.model.refs[id(h)] <= 0:
            with pytest.raises(UseAfterFreeError):
                h.dup()
            return h
        copy = h.dup()
        assert copy.owner is None
        self.all.append(copy)
        self.model.refs[id(copy)] = 1
        return copy

    @rule(h=handles)
    def up_ref(self, h: SessionHandle) -> None:
        if self.model.refs[id(h)] <= 0:
            with pytest.raises(UseAfterFreeError):
                h.up_ref()
        else:
            assert h.up_ref() == 1
            self.model.refs[id(h)] += 1

    @rule(h=handles)
    def free(self, h: SessionHandle) -> None:
        count = self.model.refs[id(h)]
        in_cache = self.cached(h) is not None
        if count <= 0 or (count == 1 and in_cache):
            with pytest.raises(DoubleFreeError):
                h.free()
        else:
            h.free()
            self.deref(h)

    @rule(key=KEYS, h=handles)
    def add(self, key: str, h: SessionHandle) -> None:
        m = self.model
        if m.refs[id(h)] <= 0:
            with pytest.raises(UseAfterFreeError):
                self.cache.add(key, h)
            return
        where = self.cached(h)
        if where is not None:
            if where[0] == key:
                assert self.cache.add(key, h) is False
            else:
                with pytest.raises(SessionError):
                    self.cache.add(key, h)
            return
        assert self.cache.add(key, h) is True
        m.refs[id(h)] += 1
        m.added += 1
        m.pools.setdefault(key, []).append((h, self.clock.now + TIMEOUT))
        m.touch(key)
        if len(m.pools[key]) > PER_KEY:
            self.deref(m.drop(key, 0))
            m.replaced += 1
        while m.number() > SIZE:
            self.deref(m.drop(next(iter(m.pools)), 0))
            m.cache_full += 1

    @rule(key=KEYS)
    def get1(self, key: str) -> None:
        expected = self.model_find(key)
        got = self.cache.get1(key)
        assert got is expected
        if got is not None:
            self.model.refs[id(got)] += 1

    @rule(key=KEYS)
    def get0(self, key: str) -> None:
        expected = self.model_find(key)
        assert self.cache.get0(key) is expected

    @rule(key=KEYS)
    def take(self, key: str) -> None:
        expected = self.model_find(key)
        got = self.cache.take(key)
        assert got is expected
        if got is not None:
            self.model.drop(key, len(self.model.pools[key]) - 1)
            self.model.taken += 1
            assert got.owner is None

    @rule(key=KEYS)
    def remove(self, key: str) -> None:
        m = self.model
        pool = m.pools.pop(key, None)
        assert self.cache.remove(key) is (pool is not None)
        for h, _ in pool or []:
            self.deref(h)
            m.removed += 1

    @rule(seconds=st.sampled_from([0.5, 3.0, 6.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def flush(self) -> None:
        m = self.model
        now = self.clock.now
        expected = 0
        for key in list(m.pools):
            for h, expires in list(m.pools.get(key, [])):
                if now > expires:
                    index = [x for x, _ in m.pools[key]].index(h)
                    self.deref(m.drop(key, index))
                    expected += 1
        m.timeouts += expected
        assert self.cache.flush() == expected

    @rule(h=consumes(handles))
    def forget(self, h: SessionHandle) -> None:
        """Stop using a handle in later steps (it is still checked at teardown)."""

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def counts_match_the_model(self) -> None:
        for h in self.all:
            expected = self.model.refs[id(h)]
            assert expected >= 0
            assert h.refcount == expected
            assert h.freed is (expected == 0)

    @invariant()
    def nothing_the_cache_holds_is_freed(self) -> None:
        for pool in self.model.pools.values():
            for h, _ in pool:
                assert not h.freed
                assert h.owner is self.cache

    @invariant()
    def statistics_add_up(self) -> None:
        s = self.cache.statistics()
        m = self.model
        assert (s.number, s.hits, s.misses, s.timeouts, s.cache_full) == (
            m.number(), m.hits, m.misses, m.timeouts, m.cache_full,
        )
        assert (s.added, s.taken, s.removed, s.replaced) == (
            m.added, m.taken, m.removed, m.replaced,
        )
        assert s.added == s.number + s.taken + s.removed + s.replaced + s.timeouts + s.cache_full
        assert len(self.cache) == s.number
        assert s.keys == len(m.pools)

    def teardown(self) -> None:
        # Drop every reference the walk left, so nothing warns as leaked.
        self.cache.clear()
        for h in self.all:
            while not h.freed:
                h.free()


CacheMachine.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCacheMachine = CacheMachine.TestCase
