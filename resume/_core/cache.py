# Theory of operation: the session cache
# ======================================
#
# SessionCache is the session cache of an OpenSSL ``SSL_CTX`` rebuilt in Python,
# I/O-free, for sessions wrapped in SessionHandle. The rules come from
# SSL_CTX_set_session_cache_mode(3), SSL_CTX_flush_sessions(3),
# SSL_get_session(3) and SSL_CTX_sess_set_new_cb(3); where a rule cannot apply to
# a Python-side cache the docstring of CacheMode says so.
#
# References. The cache owns exactly one reference to every handle in it and is
# that handle's ``owner``: add() takes it with up_ref(); the cache drops it with
# SessionHandle._cache_release() when the entry leaves (remove, expiry, flush,
# eviction); take() hands it to the caller instead. get1() gives the caller a new
# reference (SSL_get1_session), get0() only lends the handle (SSL_get0_session):
# a borrowed handle stays valid until the cache next changes.
#
# Layout. Three structures, each O(1) or O(log n) per operation:
#
#   _pools   OrderedDict key -> list of handles, oldest first, newest last.
#            A key may hold several sessions (a TLS 1.3 server sends two tickets
#            per connection); at most ``per_key`` are kept, the oldest dropped.
#            The OrderedDict order is the recency of keys: a hit or an add moves
#            the key to the end, so the least recently used key is first and
#            capacity eviction pops from the front.
#   _heap    a binary heap of (expires, seq, handle): the expiry index. flush()
#            pops only what has expired, so removing k of n entries costs
#            O(k log n), not a scan of n. Entries are deleted lazily: a heap
#            entry whose handle left the cache (or was re-timed) is skipped when
#            popped, and the heap is rebuilt when stale entries outnumber live
#            ones.
#   handle   the entry data lives on the handle itself (_owner, _key, _expires):
#            a session is in at most one cache, as in OpenSSL, so there is no
#            separate entry object.
#
# Expiry. An entry expires at the earliest of: added + cache timeout, the
# session's own time + timeout, time + ticket lifetime hint (when it has a
# ticket), and added + 7 days (RFC 8446 4.6.1 caps ticket lifetimes at one week).
# As in OpenSSL an entry is expired when now > expires. An expired entry is never
# returned: a look-up that meets one removes it and counts a timeout.
#
# Automatic flushing. OpenSSL runs SSL_CTX_flush_sessions() every 255 new
# sessions unless SSL_SESS_CACHE_NO_AUTO_CLEAR is set; so does add().
#
# Callbacks run while the cache lock is held (an RLock, so a callback may call
# back into the cache) and after the cache's own state is consistent.
#
# fork(). Every cache registers itself, weakly, with resume._core.forks: the
# lock is held across a fork() and released on both sides, or re-initialised
# in the child when a thread that the child does not have held it, so a child
# forked while other threads use the cache can use it at once. The look-up
# paths are unchanged by this (no check per call).
#
# No I/O. The cache never reaches a store: a look-up answers from memory only,
# under a lock held for microseconds, so it is safe on an event loop. An
# external store (resume.stores.attach_store) fills the cache from outside,
# off the event loop, and its callbacks only queue work for a thread of its own
# (resume._stores.link): nothing waits for a store while the lock is held.
from __future__ import annotations

import enum
import heapq
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final, final

from . import forks, why
from .errors import SessionError
from .handle import _REFLOCK, SessionHandle
from .limits import MAX_LIFETIME

__all__ = ["CacheMode", "CacheStatistics", "SessionCache"]

#: OpenSSL flushes its cache every 255 new sessions ("(i & 0xff) == 0xff").
AUTO_CLEAR_EVERY: Final = 255


class CacheMode(enum.IntFlag):
    """The session cache mode flags of ``SSL_CTX_set_session_cache_mode()``.

    The values are OpenSSL's ``SSL_SESS_CACHE_*`` constants. What each means for a
    :class:`SessionCache`:

    * ``OFF``: nothing is cached; :meth:`SessionCache.add` returns False and look-ups miss.
    * ``CLIENT``: client sessions are cached. As in OpenSSL the application (here,
      the :mod:`resume.trio` and :mod:`resume.asyncio` adapters) chooses which
      session to offer; the cache key says which server a session is for.
    * ``SERVER``: server sessions are cached. The :mod:`resume` servers use
      OpenSSL's own cache inside :mod:`ssl` for this; a Python cache in this mode
      is for applications that keep server sessions themselves.
    * ``BOTH``: ``CLIENT | SERVER``.
    * ``NO_AUTO_CLEAR``: no automatic :meth:`SessionCache.flush` every 255 additions.
    * ``NO_INTERNAL_LOOKUP``: look-ups skip the in-memory entries and miss (the
      application asks its external store itself, as OpenSSL's get-session
      callback would). As in OpenSSL it has no effect on clients: it applies
      only when ``CLIENT`` is not set.
    * ``NO_INTERNAL_STORE``: :meth:`SessionCache.add` does not keep the session in
      memory; the ``on_new`` callback (the external cache) still sees it.
    * ``NO_INTERNAL``: both of the above.
    * ``UPDATE_TIME``: a hit renews the entry's lifetime from the time of use
      (never past the session's own expiry).
    """

    OFF = 0x0000
    CLIENT = 0x0001
    SERVER = 0x0002
    BOTH = 0x0003
    NO_AUTO_CLEAR = 0x0080
    NO_INTERNAL_LOOKUP = 0x0100
    NO_INTERNAL_STORE = 0x0200
    NO_INTERNAL = 0x0300
    UPDATE_TIME = 0x0400


@final
@dataclass(frozen=True)
class CacheStatistics:
    """A snapshot of a :class:`SessionCache`'s counters.

    The first five are named after ``SSL_CTX_sess_number()`` and its siblings
    (``SSL_CTX_sess_hits()``, ``_misses()``, ``_timeouts()``, ``_cache_full()``).
    """

    #: Sessions in the cache now.
    number: int
    #: Look-ups (get1, get0, take) that found a usable session.
    hits: int
    #: Look-ups that found none.
    misses: int
    #: Entries removed because they had expired (on look-up or flush).
    timeouts: int
    #: Entries dropped because the cache was at its size limit.
    cache_full: int
    #: Sessions added (add() calls that stored a session).
    added: int
    #: Sessions handed out by take().
    taken: int
    #: Entries dropped by remove().
    removed: int
    #: Entries dropped because their key already held ``per_key`` sessions.
    replaced: int
    #: Distinct keys in the cache now.
    keys: int
    #: Resumption decisions of the client connections that used this cache, by
    #: reason ("offered", "no session", "expired", "ticket already used",
    #: "other configuration", "store unavailable", "untrackable context",
    #: "context changed", "accepted", "declined"); only reasons met so far.
    #: See :doc:`/howto/why-no-resumption`.
    decisions: Mapping[str, int] = field(default_factory=dict)


OnNew = Callable[["SessionCache", SessionHandle], bool]
OnRemove = Callable[["SessionCache", SessionHandle], None]


@final
class SessionCache:
    """A session cache with the rules of an OpenSSL ``SSL_CTX``.

    Args:
        mode: the :class:`CacheMode` flags (``SSL_CTX_set_session_cache_mode()``).
        size: the most sessions kept; 0 means no limit
            (``SSL_CTX_sess_set_cache_size()``; OpenSSL's default is 1024*20).
        timeout: seconds an entry lives after it is added (``SSL_CTX_set_timeout()``;
            OpenSSL's default is 300).
        clock: returns the time in seconds since the epoch; inject a fake for tests.
        per_key: the most sessions kept under one key (TLS 1.3 servers send
            several single-use tickets per connection).
        on_new: called as ``on_new(cache, handle)`` for each new session, with a
            reference of its own; return True to keep that reference (and free it
            later) or False to let the cache free it (``SSL_CTX_sess_set_new_cb()``).
        on_remove: called as ``on_remove(cache, handle)`` when an entry leaves the
            cache; the handle is valid during the call and the callback must not
            free it (``SSL_CTX_sess_set_remove_cb()``).
        tls13_ticket_reuse: lend TLS 1.3 tickets like TLS 1.2 sessions instead of
            using each one once (see :attr:`tls13_ticket_reuse`).

    Keys are any hashable value; :mod:`resume.trio` and :mod:`resume.asyncio`
    use a key that names the peer and every TLS setting that matters.

    A cache is thread-safe, and stays usable in a child process made with
    ``os.fork()`` while other threads were using it: the child inherits a
    consistent copy of its entries.
    """

    def __init__(
        self,
        *,
        mode: CacheMode = CacheMode.CLIENT,
        size: int = 1024 * 20,
        timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
        per_key: int = 4,
        on_new: OnNew | None = None,
        on_remove: OnRemove | None = None,
        tls13_ticket_reuse: bool = False,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0 (0 means unlimited), got {size}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if per_key < 1:
            raise ValueError(f"per_key must be >= 1, got {per_key}")
        self._set_flags(CacheMode(mode))
        self._size = size
        self._timeout = float(timeout)
        self._clock = clock
        self._per_key = per_key
        self._tls13_ticket_reuse = bool(tls13_ticket_reuse)
        self.on_new: OnNew | None = on_new
        self.on_remove: OnRemove | None = on_remove
        self._lock = threading.RLock()
        self._wref = weakref.ref(self)
        self._pools: OrderedDict[Hashable, list[SessionHandle]] = OrderedDict()
        self._heap: list[tuple[float, int, SessionHandle]] = []
        self._seq = 0
        self._number = 0
        self._since_flush = 0
        self._hits = self._misses = self._timeouts = self._cache_full = 0
        self._added = self._taken = self._removed = self._replaced = 0
        # What the client policy (resume._core.policy, resume._core.why) keeps
        # with the cache it serves; no I/O, and no effect on look-ups here.
        #: key -> True when the newest session stored under it is a TLS 1.3 ticket.
        self._client_hints: dict[Hashable, bool] = {}
        #: Resumption decisions of client connections, by reason.
        self._decisions: dict[str, int] = {}
        #: (peer, port) -> the configuration digest last used there (bounded).
        self._last_digest: dict[tuple[str, int], str] = {}
        #: Set by a store link while attached: why the store brings nothing for
        #: a key ("not persisted", "store unavailable"), or None (resume._core.why).
        self._store_reason: Callable[[Hashable], str | None] | None = None
        forks.register(self, forks.CACHE)

    # -- configuration ------------------------------------------------------------

    @property
    def tls13_ticket_reuse(self) -> bool:
        """True if the client policy offers a TLS 1.3 ticket more than once.

        By default each TLS 1.3 ticket is offered once and then dropped (RFC 8446,
        appendix C.4: a reused ticket lets a network observer link the
        connections), and every ticket a server sends is kept, up to
        :attr:`per_key`. With ``tls13_ticket_reuse=True`` a ticket is lent like a
        TLS 1.2 session, as Go's client does: a server that accepts reuse then
        resumes every connection even if it sends tickets only after full
        handshakes (Node.js, lighttpd), at the cost of that linkability. A
        reused ticket that the server declines is dropped like any declined
        session.
        """
        return self._tls13_ticket_reuse

    @property
    def mode(self) -> CacheMode:
        """The cache mode (``SSL_CTX_get_session_cache_mode()``)."""
        return self._mode

    def set_mode(self, mode: CacheMode) -> CacheMode:
        """Set the cache mode and return the previous one (``SSL_CTX_set_session_cache_mode()``)."""
        with self._lock:
            previous = self._mode
            self._set_flags(CacheMode(mode))
        return previous

    def _set_flags(self, mode: CacheMode) -> None:
        # IntFlag arithmetic runs in Python and costs about a microsecond per
        # operation; the hot paths read these plain booleans instead.
        self._mode = mode
        self._enabled = bool(mode & CacheMode.BOTH)
        self._store_internal = not mode & CacheMode.NO_INTERNAL_STORE
        self._auto_clear = not mode & CacheMode.NO_AUTO_CLEAR
        self._lookup_internal = not (
            mode & CacheMode.NO_INTERNAL_LOOKUP and not mode & CacheMode.CLIENT
        )
        self._update_time = bool(mode & CacheMode.UPDATE_TIME)
        self._plain_lookup = self._lookup_internal and not self._update_time

    @property
    def size(self) -> int:
        """The most sessions kept, 0 for no limit (``SSL_CTX_sess_get_cache_size()``)."""
        return self._size

    @property
    def timeout(self) -> float:
        """Seconds an entry lives after it is added (``SSL_CTX_get_timeout()``)."""
        return self._timeout

    @property
    def per_key(self) -> int:
        """The most sessions kept under one key."""
        return self._per_key

    # -- adding -------------------------------------------------------------------

    def add(self, key: Hashable, handle: SessionHandle) -> bool:
        """Cache *handle* under *key*; return True if it was stored.

        Mirrors ``SSL_CTX_add_session()``: the cache takes a reference of its own
        (:meth:`SessionHandle.up_ref`) and becomes the handle's
        :attr:`~SessionHandle.owner`; the caller keeps its reference. Over
        :attr:`size`, the least recently used entries are dropped and counted as
        ``cache_full``. Returns False, storing nothing, when the mode is ``OFF`` or
        has ``NO_INTERNAL_STORE`` (``on_new`` still sees the session then), when
        the session is not resumable (:attr:`SessionHandle.is_resumable`; a TLS
        1.3 session read before its ticket arrived), when the handle is already in
        this cache under *key*, or when the session has already expired.

        Raises:
            UseAfterFreeError: *handle* is freed.
            SessionError: *handle* is in a cache under another key or in another
                cache (a session has one owner; :meth:`~SessionHandle.dup` it).
        """
        self._lock.acquire()  # explicit calls: half the cost of a with block
        try:
            session = handle._session
            if session is None:
                handle._live("add()")  # raises UseAfterFreeError
            assert session is not None
            if not self._enabled or not (session.has_ticket or session.id):
                return False  # off, or not resumable: nothing was established to cache
            owner = handle._owner
            if owner is not None:
                if owner is self._wref and handle._key == key:
                    return False
                raise SessionError(
                    f"{handle!r} is already in {'this' if owner is self._wref else 'another'} "
                    f"session cache under another key; a session has one owner. "
                    f"Add a dup() of it instead."
                )
            now = self._clock()
            expires = now + self._timeout
            born = session.time
            if born:
                limit = born + session.timeout
                if session.has_ticket:
                    hint = session.ticket_lifetime_hint
                    if hint and born + hint < limit:
                        limit = born + hint
                if limit < expires:
                    expires = limit
            if now + MAX_LIFETIME < expires:
                expires = now + MAX_LIFETIME
            if now > expires:
                return False
            stored = self._store_internal
            if stored:
                _REFLOCK.acquire()  # up_ref(), inlined: this is the hot path
                handle._refcount += 1
                _REFLOCK.release()
                handle._owner = self._wref
                handle._key = key
                handle._expires = expires
                pools = self._pools
                pool = pools.get(key)
                if pool is None:
                    pools[key] = [handle]
                else:
                    pool.append(handle)
                    pools.move_to_end(key)
                    if len(pool) > self._per_key:
                        self._drop(pool[0], pool, 0)
                        self._replaced += 1
                self._seq = seq = self._seq + 1
                heapq.heappush(self._heap, (expires, seq, handle))
                self._number = number = self._number + 1
                self._added += 1
                if number > self._size and self._size:
                    # A full cache drops one entry per add; the common case (the
                    # least recently used key holds one session, no on_remove)
                    # is inlined, the rest goes through _evict_to().
                    lru_key = next(iter(pools))
                    lru_pool = pools[lru_key]
                    if len(lru_pool) == 1 and self.on_remove is None and number == self._size + 1:
                        victim = lru_pool[0]
                        del pools[lru_key]
                        self._number = number - 1
                        self._cache_full += 1
                        _REFLOCK.acquire()  # victim._cache_release(), inlined
                        victim._owner = None
                        count = victim._refcount
                        victim._refcount = count - 1
                        _REFLOCK.release()
                        if count == 1:
                            victim._release()
                    else:
                        self._evict_to(self._size)
                if len(self._heap) > 2 * self._number + 64:
                    self._compact()
            if self.on_new is not None:
                self._call_on_new(handle)
            if self._auto_clear:
                self._since_flush += 1
                if self._since_flush >= AUTO_CLEAR_EVERY:
                    self._since_flush = 0
                    self._flush(now)
            return stored
        finally:
            self._lock.release()

    def _call_on_new(self, handle: SessionHandle) -> None:
        # SSL_CTX_sess_set_new_cb's rule: the callback gets a reference of its
        # own and returns whether it keeps it.
        assert self.on_new is not None
        handle.up_ref()
        try:
            kept = self.on_new(self, handle)
        except BaseException:
            handle.free()
            raise
        if not kept:
            handle.free()

    def _evict_to(self, size: int) -> None:
        pools = self._pools
        while self._number > size:
            key = next(iter(pools))  # the least recently used key comes first
            pool = pools[key]
            self._drop(pool[0], pool, 0)
            self._cache_full += 1

    # -- looking up ---------------------------------------------------------------

    def _find(self, key: Hashable) -> SessionHandle | None:
        # The newest unexpired session under key; expired ones met on the way out.
        pool = self._pools.get(key)
        if pool is None or not self._lookup_internal:
            self._misses += 1
            return None
        now = self._clock()
        handle = pool[-1]
        if now > handle._expires:
            # Anything older than an expired newest entry may have a later expiry
            # (a session-imposed limit), so check each one.
            for h in [h for h in pool if now > h._expires]:
                self._drop(h, pool, pool.index(h))
                self._timeouts += 1
            self._compact()
            if not pool:
                self._misses += 1
                return None
            handle = pool[-1]
        if self._update_time:
            self._renew(handle, now)
        self._pools.move_to_end(key)
        self._hits += 1
        return handle

    def get1(self, key: Hashable) -> SessionHandle | None:
        """Return the newest usable session under *key* with a new reference, or None.

        Mirrors ``SSL_get1_session()``: the caller owns the new reference and must
        :meth:`~SessionHandle.free` it. The entry stays in the cache (a TLS 1.2
        session may be offered again); use :meth:`take` for single-use tickets.
        Counts a hit or a miss.
        """
        self._lock.acquire()
        try:
            pool = self._pools.get(key)
            if pool is not None and self._plain_lookup:
                # The common case, inlined: the newest entry is fresh.
                handle: SessionHandle | None = pool[-1]
                assert handle is not None
                if self._clock() <= handle._expires:
                    self._pools.move_to_end(key)
                    self._hits += 1
                else:
                    handle = self._find(key)
            else:
                handle = self._find(key)
            if handle is not None:
                _REFLOCK.acquire()
                handle._refcount += 1
                _REFLOCK.release()
            return handle
        finally:
            self._lock.release()

    def get0(self, key: Hashable) -> SessionHandle | None:
        """Return the newest usable session under *key*, borrowed, or None.

        Mirrors ``SSL_get0_session()``: no reference is added, so the handle is
        only valid until the cache next changes (an add, a removal, a flush, an
        expiry). Do not :meth:`~SessionHandle.free` it; call
        :meth:`~SessionHandle.up_ref` at once to keep it. Counts a hit or a miss.
        """
        self._lock.acquire()
        try:
            return self._find(key)
        finally:
            self._lock.release()

    def take(self, key: Hashable) -> SessionHandle | None:
        """Remove the newest usable session under *key* and hand over the cache's reference.

        The single-use path for TLS 1.3 tickets (RFC 8446, appendix C.4): the
        session leaves the cache, ``on_remove`` is called, and the caller owns the
        reference the cache held and must free it. Counts a hit or a miss.
        """
        with self._lock:
            handle = self._find(key)
            if handle is None:
                return None
            pool = self._pools[key]
            self._unlink(handle, pool, len(pool) - 1)
            self._taken += 1
            self._compact()
            if self.on_remove is not None:
                self.on_remove(self, handle)
            return handle

    def __contains__(self, key: object) -> bool:
        return key in self._pools

    def __len__(self) -> int:
        return self._number

    def keys(self) -> list[Hashable]:
        """The keys that hold sessions, least recently used first."""
        with self._lock:
            return list(self._pools)

    # -- removing -----------------------------------------------------------------

    def remove(self, key: Hashable, handle: SessionHandle | None = None) -> bool:
        """Drop the cache's reference to the sessions under *key*; True if any was there.

        With *handle*, drop only that session. Mirrors
        ``SSL_CTX_remove_session()``: ``on_remove`` is called for each, and a
        session whose other references are gone is freed.
        """
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                return False
            if handle is None:
                victims = list(pool)
            elif handle._owner is self._wref and handle._key == key:
                victims = [handle]
            else:
                return False
            for victim in victims:
                self._drop(victim, pool, pool.index(victim))
                self._removed += 1
            self._compact()
            return True

    def flush(self, now: float | None = None) -> int:
        """Remove every entry expired at *now* (default: the clock); return how many.

        Mirrors ``SSL_CTX_flush_sessions()``: ``on_remove`` is called for each
        removed entry, each counts as a timeout. The expiry index makes this cost
        O(k log n) for k expired entries of n.
        """
        with self._lock:
            return self._flush(self._clock() if now is None else now)

    def clear(self) -> int:
        """Remove every entry, as freeing the ``SSL_CTX`` does; return how many."""
        with self._lock:
            count = 0
            for pool in list(self._pools.values()):
                while pool:
                    self._drop(pool[-1], pool, len(pool) - 1)
                    count += 1
            self._heap.clear()
            return count

    def _flush(self, now: float) -> int:
        heap = self._heap
        wref = self._wref
        count = 0
        while heap and now > heap[0][0]:
            expires, _, handle = heapq.heappop(heap)
            if handle._owner is not wref or handle._expires != expires:
                continue  # stale: the entry left or was re-timed
            pool = self._pools[handle._key]
            self._drop(handle, pool, pool.index(handle))
            self._timeouts += 1
            count += 1
        return count

    def _renew(self, handle: SessionHandle, now: float) -> None:
        session = handle._live("renew")
        expires = now + self._timeout
        if session.time:
            expires = min(expires, session.time + session.timeout)
        expires = min(expires, now + MAX_LIFETIME)
        if expires > handle._expires:
            handle._expires = expires
            self._seq += 1
            heapq.heappush(self._heap, (expires, self._seq, handle))

    def _unlink(self, handle: SessionHandle, pool: list[SessionHandle], index: int) -> None:
        # Take the entry out of the structures; the reference is not touched.
        del pool[index]
        if not pool:
            del self._pools[handle._key]
        handle._owner = None  # _key stays readable: on_remove may want it
        self._number -= 1

    def _compact(self) -> None:
        # Lazy deletion leaves stale heap entries; rebuild when they outnumber
        # the live ones, so the heap stays O(n) in size (amortised O(1) per op).
        heap = self._heap
        if len(heap) > 2 * self._number + 64:
            wref = self._wref
            self._heap = [e for e in heap if e[2]._owner is wref and e[2]._expires == e[0]]
            heapq.heapify(self._heap)

    def _drop(self, handle: SessionHandle, pool: list[SessionHandle], index: int) -> None:
        # An entry leaves: unlink it, tell on_remove, then release the cache's ref.
        self._unlink(handle, pool, index)
        try:
            if self.on_remove is not None:
                self.on_remove(self, handle)
        finally:
            handle._cache_release()

    # -- fork() (resume._core.forks) ----------------------------------------------

    def _fork_locks(self) -> tuple[threading.RLock]:
        return (self._lock,)

    def _fork_child(self) -> None:
        # The entries are the parent's sessions, still valid, except that a
        # single-use TLS 1.3 ticket now sits in two processes, and each could
        # offer it (RFC 8446, C.4): the child lets its copies go, quietly (no
        # on_remove: a store under the cache still holds the parent's entries).
        for pool in list(self._pools.values()):
            for handle in [h for h in pool if h._single_use]:
                self._unlink(handle, pool, pool.index(handle))
                self._removed += 1
                handle._cache_release()
        self._compact()

    # -- statistics ---------------------------------------------------------------

    def statistics(self) -> CacheStatistics:
        """A frozen snapshot of the counters (``SSL_CTX_sess_number()`` and siblings)."""
        with self._lock:
            return CacheStatistics(
                number=self._number,
                hits=self._hits,
                misses=self._misses,
                timeouts=self._timeouts,
                cache_full=self._cache_full,
                added=self._added,
                taken=self._taken,
                removed=self._removed,
                replaced=self._replaced,
                keys=len(self._pools),
                decisions=why.decisions(self),
            )

    def __repr__(self) -> str:
        return (
            f"<resume.SessionCache mode={self._mode!r} sessions={self._number} "
            f"size={self._size or 'unlimited'} timeout={self._timeout:g}s>"
        )

    def __del__(self) -> None:
        # A cache that goes away drops the references it owns, as SSL_CTX_free()
        # flushes its cache, so its handles do not report themselves as leaked.
        try:
            pools = self._pools
        except AttributeError:  # pragma: no cover - half-built instance
            return
        for pool in pools.values():
            for handle in pool:
                handle._cache_release()
        pools.clear()


CacheMode.__module__ = "resume"
CacheStatistics.__module__ = "resume"
SessionCache.__module__ = "resume"
