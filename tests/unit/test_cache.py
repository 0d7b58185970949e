"""SessionCache: the session cache rules of an SSL_CTX, with a fake clock and real sessions."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import TypeVar

import pytest
from corehelpers import VERSIONS, FakeClock, make_pki, memory_session

from resume import (
    CacheMode,
    CacheStatistics,
    DoubleFreeError,
    SessionCache,
    SessionError,
    SessionHandle,
    UseAfterFreeError,
)

T = TypeVar("T")


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def session(request: pytest.FixtureRequest) -> ssl.SSLSession:
    got = memory_session(make_pki(request.param))
    return got


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Handles:
    """Makes handles over one real session and frees whatever the test left."""

    def __init__(self, session: ssl.SSLSession) -> None:
        self.session = session
        self.made: list[SessionHandle] = []

    def __call__(self) -> SessionHandle:
        h = SessionHandle.from_ssl(self.session)
        self.made.append(h)
        return h

    def cached(self, cache: SessionCache, key: object) -> SessionHandle:
        """A new handle added to *cache* under *key*, whose only reference is the cache's."""
        h = self()
        assert cache.add(key, h)
        h.free()
        return h

    def cleanup(self) -> None:
        for h in self.made:
            while not h.freed:
                owner = h.owner
                if owner is not None:
                    owner.remove(h._key, h)
                else:
                    h.free()


@pytest.fixture
def make(session: ssl.SSLSession) -> Iterator[Handles]:
    handles = Handles(session)
    yield handles
    handles.cleanup()


def _record(into: list[T], item: T) -> bool:
    """An on_new callback body: note the item, keep no reference."""
    into.append(item)
    return False


def stats(cache: SessionCache) -> CacheStatistics:
    return cache.statistics()


class TestConstruction:
    def test_openssl_defaults(self) -> None:
        """size 1024*20 and timeout 300 s, as an SSL_CTX starts."""
        cache = SessionCache()
        assert cache.size == 20480
        assert cache.timeout == 300.0
        assert cache.mode == CacheMode.CLIENT
        assert len(cache) == 0

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"size": -1}, "size"),
            ({"timeout": 0}, "timeout"),
            ({"per_key": 0}, "per_key"),
        ],
    )
    def test_bad_settings_are_rejected(self, kwargs: dict[str, float], message: str) -> None:
        """Nonsense settings raise ValueError naming the setting."""
        with pytest.raises(ValueError, match=message):
            SessionCache(**kwargs)  # type: ignore[arg-type]

    def test_repr_and_public_module(self) -> None:
        """Objects report resume.SessionCache, not the private module."""
        assert SessionCache.__module__ == "resume"
        assert repr(SessionCache(size=0)).startswith("<resume.SessionCache mode=")


class TestAdd:
    @pytest.mark.manpage(
        "SSL_SESSION_free:notes-2",
        "SSL_CTX_set_session_cache_mode:notes-1",
        "SSL_CTX_set_session_cache_mode:notes-11",
        "SSL_get_session:notes-20",
    )
    def test_add_takes_a_reference_and_becomes_the_owner(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """The cache holds its own reference and links the session to itself."""
        cache = SessionCache(clock=clock)
        h = make()
        assert cache.add("k", h) is True
        assert h.refcount == 2
        assert h.owner is cache
        assert len(cache) == 1
        assert "k" in cache
        h.free()
        assert h.refcount == 1
        assert not h.freed
        got = cache.get1("k")
        assert got is h
        got.free()

    @pytest.mark.manpage(
        "SSL_get_session:notes-21", "d2i_SSL_SESSION:desc-3", "d2i_SSL_SESSION:desc-4"
    )
    def test_a_session_has_one_owner(self, make: Handles) -> None:
        """Adding a cached handle to another cache or key raises; dup() it instead."""
        first, second = SessionCache(), SessionCache()
        h = make()
        first.add("k", h)
        with pytest.raises(SessionError, match="another session cache"):
            second.add("k", h)
        with pytest.raises(SessionError, match="this session cache under another key"):
            first.add("other", h)
        assert first.add("k", h) is False
        assert h.refcount == 2
        copy = h.dup()
        assert second.add("k", copy)
        assert copy.owner is second
        copy.free()

    def test_a_freed_handle_cannot_be_added(self) -> None:
        """add() of a freed handle raises UseAfterFreeError, in every mode."""
        h = SessionHandle.new()
        h.free()
        for mode in (CacheMode.CLIENT, CacheMode.OFF):
            with pytest.raises(UseAfterFreeError):
                SessionCache(mode=mode).add("k", h)

    @pytest.mark.manpage("SSL_get_session:notes-4", "SSL_get_session:notes-10")
    def test_a_session_that_cannot_resume_is_not_cached(self) -> None:
        """An empty session (like a TLS 1.3 session before its ticket) is not added."""
        seen: list[SessionHandle] = []
        cache = SessionCache(on_new=lambda c, h: _record(seen, h))
        h = SessionHandle.new()
        assert not h.is_resumable
        assert cache.add("k", h) is False
        assert h.refcount == 1
        assert seen == []
        h.free()

    def test_an_already_expired_session_is_not_added(self, make: Handles) -> None:
        """A session past its own expiry is refused, and the caller keeps its reference."""
        clock = FakeClock(now=make.session.time + make.session.timeout + 10.0)
        cache = SessionCache(clock=clock)
        h = make()
        assert cache.add("k", h) is False
        assert h.refcount == 1 and h.owner is None


class TestLookups:
    @pytest.mark.manpage(
        "SSL_get_session:desc-4",
        "SSL_get_session:notes-18",
        "SSL_get_session:ret-3",
        "SSL_CTX_set_session_cache_mode:notes-4",
    )
    def test_get1_returns_one_session_with_a_new_reference(self, make: Handles) -> None:
        """get1() hands the caller one session and one reference of its own."""
        cache = SessionCache()
        h = make.cached(cache, "k")
        got = cache.get1("k")
        assert got is h
        assert h.refcount == 2
        assert stats(cache).hits == 1
        got.free()
        assert h.refcount == 1

    @pytest.mark.manpage(
        "SSL_get_session:desc-1",
        "SSL_get_session:desc-2",
        "SSL_get_session:desc-3",
        "SSL_get_session:notes-14",
    )
    def test_get0_lends_the_session_without_a_reference(self, make: Handles) -> None:
        """get0() returns the cached session itself and leaves the count alone."""
        cache = SessionCache()
        h = make.cached(cache, "k")
        borrowed = cache.get0("k")
        assert borrowed is h
        assert h.refcount == 1
        assert stats(cache).hits == 1

    @pytest.mark.manpage(
        "SSL_get_session:desc-2",
        "SSL_get_session:notes-15",
        "SSL_SESSION_free:notes-4",
        "SSL_SESSION_free:notes-6",
        "SSL_SESSION_free:notes-7",
    )
    def test_freeing_a_borrowed_session_raises_and_changes_nothing(self, make: Handles) -> None:
        """free() of a get0() handle would drop the cache's reference: it raises, count kept."""
        cache = SessionCache()
        h = make.cached(cache, "k")
        borrowed = cache.get0("k")
        assert borrowed is not None
        with pytest.raises(DoubleFreeError, match=r"get0\(\)"):
            borrowed.free()
        assert h.refcount == 1
        assert h.owner is cache
        assert cache.get0("k") is h

    @pytest.mark.manpage("SSL_get_session:notes-15", "SSL_get_session:notes-16")
    def test_a_borrowed_session_dies_with_its_entry(self, make: Handles) -> None:
        """A get0() handle becomes invalid when the cache drops the entry."""
        cache = SessionCache()
        make.cached(cache, "k")
        borrowed = cache.get0("k")
        assert borrowed is not None
        assert cache.remove("k")
        assert borrowed.freed
        with pytest.raises(UseAfterFreeError):
            borrowed.up_ref()

    @pytest.mark.manpage("SSL_get_session:ret-2")
    def test_a_miss_returns_none_and_counts(self) -> None:
        """No session for the key: None from get1, get0 and take, each a miss."""
        cache = SessionCache()
        assert cache.get1("k") is None
        assert cache.get0("k") is None
        assert cache.take("k") is None
        assert stats(cache).misses == 3
        assert stats(cache).hits == 0

    @pytest.mark.manpage("SSL_get_session:notes-13")
    def test_take_hands_over_the_cache_reference(self, make: Handles) -> None:
        """take() removes the entry: a TLS 1.3 ticket is offered once."""
        removed: list[SessionHandle] = []
        cache = SessionCache(on_remove=lambda c, h: removed.append(h))
        h = make.cached(cache, "k")
        got = cache.take("k")
        assert got is h
        assert h.refcount == 1
        assert h.owner is None
        assert removed == [h]
        assert cache.take("k") is None
        assert stats(cache).taken == 1
        got.free()
        assert h.freed

    @pytest.mark.manpage(
        "SSL_get_session:notes-6",
        "SSL_get_session:notes-7",
        "SSL_get_session:notes-11",
    )
    def test_a_key_keeps_several_sessions_newest_first(self, make: Handles) -> None:
        """Two tickets for one connection are both kept; the newest is served first."""
        new_seen: list[SessionHandle] = []
        cache = SessionCache(per_key=2, on_new=lambda c, h: _record(new_seen, h))
        first, second, third = make(), make(), make()
        cache.add("k", first)
        cache.add("k", second)
        assert new_seen == [first, second]
        assert len(cache) == 2
        assert cache.get0("k") is second
        cache.add("k", third)
        assert len(cache) == 2
        assert stats(cache).replaced == 1
        assert first.owner is None
        assert cache.take("k") is third
        assert cache.take("k") is second
        assert cache.take("k") is None
        third.free()
        second.free()

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-2")
    def test_caches_are_independent(self, make: Handles) -> None:
        """Sessions are unique to each cache, as they are to each SSL_CTX."""
        a, b = SessionCache(), SessionCache()
        a.add("k", make())
        assert b.get0("k") is None
        assert a.get0("k") is not None


class TestExpiry:
    def test_an_entry_expires_timeout_seconds_after_it_was_added(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """At added + timeout the entry is still served; just after, it is gone and counted."""
        cache = SessionCache(timeout=60, clock=clock)
        cache.add("k", make())
        clock.advance(60)
        assert cache.get0("k") is not None
        clock.advance(0.001)
        assert cache.get0("k") is None
        s = stats(cache)
        assert (s.timeouts, s.number, s.misses) == (1, 0, 1)

    def test_the_session_lifetime_bounds_the_entry(self, make: Handles) -> None:
        """An entry never outlives time + timeout of its session, nor 7 days."""
        session = make.session
        clock = FakeClock(now=float(session.time))
        cache = SessionCache(timeout=10 * 24 * 3600, clock=clock)
        h = make()
        cache.add("k", h)
        limit = session.time + min(session.timeout, session.ticket_lifetime_hint or session.timeout)
        assert h._expires == limit
        clock.now = limit + 1
        assert cache.get1("k") is None

    def test_no_entry_lives_past_seven_days(self) -> None:
        """RFC 8446's one-week cap holds even when the session and cache allow more."""

        class LongLived:
            id = b"\x01"
            time = 0
            timeout = 10**9
            ticket_lifetime_hint = 0
            has_ticket = False

        clock = FakeClock(now=1000.0)
        cache = SessionCache(timeout=10**8, clock=clock)
        h = SessionHandle._from_payload(LongLived())
        cache.add("k", h)
        assert h._expires == 1000.0 + 7 * 24 * 3600
        h.free()
        cache.clear()

    @pytest.mark.manpage(
        "SSL_CTX_flush_sessions:desc-1",
        "SSL_CTX_flush_sessions:notes-2",
        "SSL_CTX_flush_sessions:notes-4",
        "SSL_get_session:notes-17",
    )
    def test_flush_removes_what_expired_at_the_given_time(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """flush(now) removes exactly the entries expired at now and frees them."""
        cache = SessionCache(timeout=100, clock=clock)
        old = make.cached(cache, "old")
        clock.advance(50)
        young = make.cached(cache, "young")
        assert cache.flush(clock.now + 60) == 1
        assert old.freed
        assert not young.freed
        assert cache.flush() == 0
        clock.advance(200)
        assert cache.flush() == 1
        assert young.freed
        assert stats(cache).timeouts == 2

    @pytest.mark.manpage(
        "SSL_get_session:notes-18",
        "SSL_get_session:notes-19",
        "SSL_SESSION_free:notes-5",
    )
    def test_a_get1_reference_survives_the_flush(self, make: Handles, clock: FakeClock) -> None:
        """A session kept with get1() stays in memory after its entry expires; one free ends it."""
        cache = SessionCache(timeout=10, clock=clock)
        make.cached(cache, "k")
        kept = cache.get1("k")
        assert kept is not None
        clock.advance(11)
        assert cache.flush() == 1
        assert not kept.freed
        assert kept.owner is None
        assert kept.is_resumable
        kept.free()
        assert kept.freed
        with pytest.raises(DoubleFreeError):
            kept.free()

    @pytest.mark.manpage(
        "SSL_CTX_flush_sessions:notes-5", "SSL_CTX_flush_sessions:notes-6"
    )
    def test_flush_checks_only_the_cache_and_tells_on_remove(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """Sessions outside the cache are untouched; each removal calls on_remove first."""
        removed: list[tuple[SessionHandle, bool]] = []
        cache = SessionCache(timeout=10, clock=clock)
        cache.on_remove = lambda c, h: removed.append((h, h.freed))
        inside, outside = make(), make()
        cache.add("k", inside)
        inside.free()
        clock.advance(20)
        assert cache.flush() == 1
        assert removed == [(inside, False)]
        assert inside.freed
        assert not outside.freed

    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:notes-19",
        "SSL_CTX_flush_sessions:notes-3",
    )
    def test_the_cache_flushes_itself_every_255_additions(self, make: Handles) -> None:
        """Without NO_AUTO_CLEAR, the 255th add flushes expired entries."""
        clock = FakeClock()
        cache = SessionCache(timeout=10, clock=clock, size=0)
        first = make.cached(cache, "first")
        clock.advance(11)
        for i in range(253):
            cache.add(i, make())
        assert stats(cache).timeouts == 0
        assert not first.freed
        cache.add("last", make())
        assert first.freed
        assert stats(cache).timeouts == 1

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-20")
    def test_no_auto_clear_leaves_flushing_to_the_application(self, make: Handles) -> None:
        """With NO_AUTO_CLEAR nothing is flushed until flush() is called."""
        clock = FakeClock()
        cache = SessionCache(mode=CacheMode.CLIENT | CacheMode.NO_AUTO_CLEAR, timeout=10,
                             clock=clock, size=0)
        first = make.cached(cache, "first")
        clock.advance(11)
        for i in range(600):
            cache.add(i, make())
        assert not first.freed
        assert cache.flush() == 1
        assert first.freed

    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:notes-29",
        "SSL_CTX_set_session_cache_mode:notes-30",
    )
    def test_update_time_counts_the_timeout_from_the_last_use(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """With UPDATE_TIME each hit renews the entry; without it, it expires on schedule."""
        renewing = SessionCache(mode=CacheMode.CLIENT | CacheMode.UPDATE_TIME, timeout=10,
                                clock=clock)
        plain = SessionCache(timeout=10, clock=clock)
        renewing.add("k", make())
        plain.add("k", make())
        for _ in range(3):
            clock.advance(8)
            assert renewing.get0("k") is not None
        assert plain.get0("k") is None
        assert renewing.flush() == 0
        clock.advance(11)
        assert renewing.flush() == 1


class TestCapacity:
    @pytest.mark.manpage("SSL_CTX_flush_sessions:notes-1")
    def test_over_capacity_the_least_recently_used_go(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """At the size limit the least recently used entry is dropped and counted cache_full."""
        cache = SessionCache(size=2, clock=clock)
        a, b, c = make(), make(), make()
        cache.add("a", a)
        cache.add("b", b)
        for h in (a, b):
            h.free()
        assert cache.get0("a") is a  # "a" is now the most recently used
        cache.add("c", c)
        assert b.freed
        assert not a.freed
        assert cache.keys() == ["a", "c"]
        assert stats(cache).cache_full == 1

    def test_size_zero_is_unlimited(self, make: Handles) -> None:
        """size=0 keeps everything."""
        cache = SessionCache(size=0)
        for i in range(500):
            make.cached(cache, i)
        assert len(cache) == 500
        assert stats(cache).cache_full == 0
        assert cache.clear() == 500


class TestModes:
    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:desc-1",
        "SSL_CTX_set_session_cache_mode:desc-2",
        "SSL_CTX_set_session_cache_mode:ret-1",
        "SSL_CTX_set_session_cache_mode:ret-2",
    )
    def test_set_mode_returns_the_previous_mode(self) -> None:
        """set_mode() sets the mode and returns the old one; mode reads the current one."""
        cache = SessionCache()
        assert cache.set_mode(CacheMode.BOTH) == CacheMode.CLIENT
        assert cache.mode == CacheMode.BOTH
        assert cache.set_mode(CacheMode.OFF) == CacheMode.BOTH
        current: CacheMode = cache.mode
        assert current == CacheMode.OFF

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-10")
    def test_off_caches_nothing(self, make: Handles) -> None:
        """OFF: add returns False and nothing is kept or referenced."""
        cache = SessionCache(mode=CacheMode.OFF)
        h = make()
        assert cache.add("k", h) is False
        assert h.refcount == 1
        assert h.owner is None
        assert cache.get0("k") is None
        assert len(cache) == 0

    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:notes-14",
        "SSL_CTX_set_session_cache_mode:notes-18",
        "SSL_CTX_set_session_cache_mode:notes-28",
    )
    def test_flag_values_and_combinations(self, make: Handles) -> None:
        """The flags are OpenSSL's values; BOTH and NO_INTERNAL are the unions."""
        assert CacheMode.BOTH == CacheMode.CLIENT | CacheMode.SERVER == 0x3
        both_internal = CacheMode.NO_INTERNAL_LOOKUP | CacheMode.NO_INTERNAL_STORE
        assert both_internal == CacheMode.NO_INTERNAL
        flags = (CacheMode.OFF, CacheMode.NO_AUTO_CLEAR, CacheMode.UPDATE_TIME)
        assert [int(m) for m in flags] == [0, 0x80, 0x400]
        for mode in (CacheMode.SERVER, CacheMode.BOTH):
            cache = SessionCache(mode=mode)
            assert cache.add("k", make())
            assert cache.get0("k") is not None

    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:notes-7",
        "SSL_CTX_set_session_cache_mode:notes-15",
        "SSL_CTX_set_session_cache_mode:notes-21",
    )
    def test_no_internal_lookup_skips_the_memory_of_a_server_cache(self, make: Handles) -> None:
        """SERVER | NO_INTERNAL_LOOKUP stores sessions but look-ups do not find them."""
        cache = SessionCache(mode=CacheMode.SERVER | CacheMode.NO_INTERNAL_LOOKUP)
        assert cache.add("k", make())
        assert len(cache) == 1
        assert cache.get1("k") is None
        assert stats(cache).misses == 1
        cache.set_mode(CacheMode.SERVER)
        assert cache.get0("k") is not None

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-23")
    def test_no_internal_lookup_has_no_effect_on_clients(self, make: Handles) -> None:
        """With CLIENT set the flag changes nothing."""
        cache = SessionCache(mode=CacheMode.CLIENT | CacheMode.NO_INTERNAL_LOOKUP)
        cache.add("k", make())
        assert cache.get0("k") is not None

    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:notes-24",
        "SSL_CTX_set_session_cache_mode:notes-25",
        "SSL_CTX_set_session_cache_mode:notes-26",
    )
    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-1", "SSL_CTX_sess_set_get_cb:notes-7")
    def test_no_internal_store_only_feeds_the_external_cache(self, make: Handles) -> None:
        """Normally a session goes to memory and on_new; NO_INTERNAL_STORE keeps only on_new."""
        external: list[SessionHandle] = []

        def keep(cache: SessionCache, h: SessionHandle) -> bool:
            external.append(h)
            return True  # keeps the reference it was given

        normal = SessionCache(on_new=keep)
        h = make()
        assert normal.add("k", h)
        assert external == [h] and h.refcount == 3
        skipping = SessionCache(mode=CacheMode.CLIENT | CacheMode.NO_INTERNAL_STORE, on_new=keep)
        g = make()
        assert skipping.add("k", g) is False
        assert external == [h, g]
        assert len(skipping) == 0
        assert g.refcount == 2 and g.owner is None
        for kept in external:
            kept.free()


class TestCallbacks:
    @pytest.mark.manpage("SSL_get_session:notes-9")
    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-5", "SSL_CTX_sess_set_get_cb:notes-6")
    def test_on_new_reference_rules(self, make: Handles) -> None:
        """on_new gets a reference; returning False lets the cache free it, True keeps it."""
        seen: list[int] = []
        cache = SessionCache(on_new=lambda c, h: _record(seen, h.refcount))
        h = make()
        cache.add("k", h)
        assert seen == [3]  # caller + cache + the callback's own
        assert h.refcount == 2

    def test_on_new_that_raises_leaves_counts_right(self, make: Handles) -> None:
        """An exception in on_new propagates; its reference is freed and the entry stays."""

        def boom(cache: SessionCache, h: SessionHandle) -> bool:
            raise RuntimeError("store down")

        cache = SessionCache(on_new=boom)
        h = make()
        with pytest.raises(RuntimeError, match="store down"):
            cache.add("k", h)
        assert h.refcount == 2
        assert cache.get0("k") is h

    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:desc-2",
        "SSL_CTX_sess_set_get_cb:desc-3",
        "SSL_CTX_sess_set_get_cb:notes-15",
    )
    def test_on_remove_sees_a_valid_handle_for_each_removal(
        self, make: Handles, clock: FakeClock
    ) -> None:
        """remove, eviction and expiry all report the handle while it is still valid."""
        removed: list[tuple[str, bool]] = []
        cache = SessionCache(size=1, timeout=5, clock=clock,
                             on_remove=lambda c, h: removed.append((str(h._key), h.freed)))
        for key in ("a", "b"):
            make.cached(cache, key)
        assert cache.remove("b")
        assert not cache.remove("b")
        make.cached(cache, "c")
        clock.advance(6)
        assert cache.get0("c") is None
        assert removed == [("a", False), ("b", False), ("c", False)]
        s = stats(cache)
        assert (s.cache_full, s.removed, s.timeouts) == (1, 1, 1)

    def test_remove_one_handle_of_a_key(self, make: Handles) -> None:
        """remove(key, handle) drops that session only; a stranger handle is not removed."""
        cache = SessionCache()
        a, b, stranger = make(), make(), make()
        cache.add("k", a)
        cache.add("k", b)
        assert not cache.remove("k", stranger)
        assert cache.remove("k", a)
        assert a.owner is None and b.owner is cache
        assert len(cache) == 1


class TestStatistics:
    def test_statistics_is_a_frozen_snapshot(self, make: Handles) -> None:
        """The snapshot does not change with the cache and cannot be changed."""
        cache = SessionCache()
        snap = cache.statistics()
        cache.add("k", make())
        assert snap.number == 0
        assert cache.statistics().number == 1
        with pytest.raises(AttributeError):
            snap.number = 5  # type: ignore[misc]
        assert CacheStatistics.__module__ == "resume"


class TestGarbageCollection:
    def test_a_dropped_cache_releases_its_references(self, make: Handles) -> None:
        """A cache that goes away frees what only it held, as SSL_CTX_free does."""
        cache = SessionCache()
        h = make()
        kept = make()
        cache.add("k", h)
        cache.add("j", kept)
        h.free()
        del cache
        assert h.freed
        assert kept.refcount == 1
        assert kept.owner is None
