# Theory of operation: a SessionCache sitting on a SessionStore
# =============================================================
#
# OpenSSL lets an application put an external session cache behind an
# SSL_CTX's own: the new-session callback writes each new session out, the
# get-session callback is asked on a miss, the remove callback hears about
# sessions that leave (SSL_CTX_sess_set_new_cb(3)). StoreLink does the same for a
# SessionCache and a SessionStore, with one rule on top: a store is slow I/O (a
# SQLite file that another process has locked waits up to its busy timeout, a
# Redis that stops answering up to its socket timeout), so no store call ever
# runs on an event loop or under the cache's lock. SessionCache itself does no
# I/O at all; the link works around it:
#
#   fetch          before a connection, off the loop. The adapters await
#                  fetch_for_trio() / fetch_for_asyncio() before the TCP connect;
#                  in a thread, StoreLink.fetch() takes one session from the
#                  store (atomically: a single-use TLS 1.3 ticket goes to one
#                  process), imports it with SessionHandle.from_der() and adds it
#                  to the cache. The connection waits at most ``fetch_wait``
#                  seconds; past that it goes on (a full handshake) and the
#                  thread's late result still lands in the cache, for the next
#                  connection. The key of a fetch is a hint computed before the
#                  connect: which session is offered is decided later, from the
#                  cache, with the key of the moment the SSL object is made, so a
#                  fetch under a stale key is simply never offered.
#   write-behind   on_new and on_remove, which the cache calls under its lock, only
#                  export the session (CPU, no I/O) and queue a put or a delete;
#                  one worker thread per link performs them in order. The queue
#                  is bounded (``queue_size``): when it is full the oldest queued
#                  put is dropped (a lost session costs one full handshake
#                  later), with a rate-limited StoreWarning; nobody waits.
#   consumption    a session that leaves the cache (taken for a connection,
#                  removed, expired) is deleted from the store too, so a ticket
#                  used here is not used again by another process. When its put is
#                  still queued, the put is cancelled instead: the session never
#                  reaches the store. A session that came from the store is not
#                  there any more (fetch took it) and is skipped.
#   write-back     sync() / close(): sessions fetched from the store and not used
#                  are queued to be put back, and the queue is drained with a
#                  bounded wait, so a TLS 1.2 session that this process reused with
#                  get1() survives its exit.
#
# Store keys. A cache key must mean the same thing in every process that shares
# the store, and a session offered from the store skips the certificate check
# of the process that offers it: so a store key must mean "verified the same
# way". resume's client key (SessionKey: peer, port, digest) carries a random
# per-SSLContext token for the contexts resume did not see born, so on its own
# it never matches in another process. The link maps it to (peer, port,
# persisted digest), the digest of the one key table without the token, plus a
# label (resume._core.key.persisted_digests), for two kinds of contexts:
#
#   automatic   a context tracked from birth (resume.create_client_context(),
#               resume.default_ssl_context(), the integrations' contexts): resume
#               saw every setting made on it, so the table describes it fully
#               except for what its CA directories hold; the label is then
#               key.birth_record(), the state (name, size, mtime) of the CA
#               directories and default verify paths its trust calls read, as
#               SSL_CERT_FILE and SSL_CERT_DIR named them. Another process gets
#               the same store key only with the same table AND the same CA
#               directories (so on one host; hosts whose directories differ
#               share through register_context and a label instead);
#   registered  a context given to register_context(context, label=...): its
#               owner vouches that what resume cannot see (settings made before
#               resume saw the context, the contents of a CA directory) is the
#               same wherever the label is. The label is remembered with the
#               context, so a later change of a tracked setting (a new digest) is
#               registered again under the same label.
#
# Any other context (ssl.create_default_context() and friends: settings made
# before resume first saw them, a CA directory or SSL_CERT_DIR among them, are
# invisible) stays in memory, and the link says so once per context, as a
# WARNING on the ``resume`` logger with the call that fixes it; its misses say
# "not persisted" (resume._core.why) instead of "no session". Untrackable
# contexts are never persisted (their UntrackedContextWarning says so).
#
# Learning. A SessionKey does not name its context, so the link learns contexts
# where the adapters and integrations hand it one: in _plan(), before every
# connection (no I/O: a digest already seen costs one set look-up; a new one,
# one persisted digest). Keys that are not SessionKeys are stored as they are;
# ``key_map=`` replaces all of this.
#
# Exit. A link still attached when the interpreter exits is closed by an atexit
# hook (at most _EXIT_WAIT seconds for all links together), so a script that
# never calls close() still leaves its sessions in the store, fetched ones
# written back. Where no thread can be started any more (Python 3.12 refuses at
# exit), the queued writes are performed in the closing thread.
#
# Failures never fail a connection. A StoreError (the store is down) makes the
# link skip the store for ``retry_after`` seconds (a circuit breaker, so a dead
# Redis does not cost a timeout per connection) and emits one StoreWarning per
# minute at most; the fetch brings nothing and the connection does a full
# handshake. When the store answers again, resumption comes back by itself.
# Sessions that cannot be exported or imported are skipped with a warning.
#
# Threads and locks. The cache's lock is taken before the link's, never the
# other way round, and neither is held during a store call. At most
# _MAX_FETCHES fetches of one link run at once: a connection that finds them
# all busy (a hung store) does not start another, so a hung store holds a few
# threads, not one per connection. The writer thread exits when the link is
# detached and its queue is empty, or after _IDLE_EXIT seconds without work.
# A warning raised in one of these threads (the warning filters may turn a
# StoreWarning into an exception) is dropped there: it must not kill the
# thread, and nobody would see it.
#
# fork(). A link registers itself with resume._core.forks, which holds its lock
# across a fork() (after the cache's) and makes it usable in the child. The
# link's threads stay in the parent, so in the child the link forgets them: no
# writer thread (the next write starts one), no thread pool for asyncio
# fetches (made again on demand), no fetch in flight. Writes that were queued
# in the parent at the fork are the parent's to perform: the child drops its
# copy of the queue and counts them as done (a session the child then
# consumes is deleted from the store, as if it had seen the put land). The
# store handles its own connection (a SQLite store opens a new one in the
# child; redis-py's pool reconnects by itself when it sees a new process id).
# So a link used in a child works as in the parent: its sessions reach the
# store, once the child drains or closes the link before it exits.
from __future__ import annotations

import atexit
import collections
import concurrent.futures
import contextlib
import ssl
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Hashable
from typing import Final, final

from .._core import forks, why
from .._core.cache import SessionCache
from .._core.defaults import resolve_cache
from .._core.errors import ResumeError, StoreError, UnsupportedError
from .._core.handle import SessionHandle
from .._core.key import (
    SessionKey,
    birth_record,
    connection_key,
    persisted_digests,
    tracked_from_birth,
)
from .base import SessionStore, _WarnLimiter, key_bytes

__all__ = [
    "StoreLink",
    "attach_store",
    "context_label_digest",
    "fetch_for_asyncio",
    "fetch_for_trio",
    "link_of",
]

#: Seconds between warnings of one kind from a link.
_WARN_INTERVAL: Final = 60.0
#: Cache keys whose store key is remembered (the memo is cleared when full).
_MEMO_SIZE: Final = 4096
#: Fetches of one link that may run at once (threads a hung store can hold).
_MAX_FETCHES: Final = 4
#: Seconds the writer thread waits for work before it exits (it restarts on demand).
_IDLE_EXIT: Final = 10.0
#: Seconds the atexit hook gives all links together to write their sessions out.
_EXIT_WAIT: Final = 3.0
#: The label prefix of contexts persisted without register_context() (see the top).
_AUTOMATIC: Final = "resume automatic v1\0"

KeyMap = Callable[[Hashable], Hashable | None]


#: SSL_SESSION_get_protocol_version() of a TLS 1.3 session.
_TLS1_3_VERSION: Final = 0x0304


def _mark_single_use(handle: SessionHandle) -> None:
    # A TLS 1.3 ticket fetched from the store must be offered once (RFC 8446,
    # C.4). The client policy (resume._core.policy) keeps the set of single-use
    # handles; tell it about this one, which it did not store itself.
    if getattr(handle.payload, "protocol_version", 0) != _TLS1_3_VERSION:
        return
    from .._core.policy import mark_single_use

    mark_single_use(handle)


def context_label_digest(context: ssl.SSLContext, label: str = "") -> str:
    """A digest of *context*'s client settings and *label*, the same in every process.

    It hashes the same table of settings as the in-process session key (see
    :class:`~resume.SessionKey`: verification, trust, protocol bounds,
    options, host flags, post-handshake authentication, ciphers, client
    certificate, ALPN list, ...) without the context's random per-object
    token, plus *label*. *label* stands for what resume cannot see (the
    contents of a CA directory, say): change it when those change.

    Raises:
        ValueError: *context* is untrackable (see
            :class:`~resume.UntrackedContextWarning`, emitted once): its
            sessions must not be persisted.
    """
    stable = persisted_digests(context, label)[1]
    if stable is None:
        raise ValueError("the sessions of this SSLContext cannot be persisted: resume cannot "
                         "know its full state (see the UntrackedContextWarning)")
    return stable


# The states of a queued write.
_QUEUED, _STARTED, _DONE, _CANCELLED = range(4)


@final
class _Write:
    # One put or delete waiting for the writer thread.
    __slots__ = ("der", "expires", "ok", "put", "skey", "state")

    def __init__(self, put: bool, skey: Hashable, der: bytes, expires: float) -> None:
        self.put = put
        self.skey = skey
        self.der = der
        self.expires = expires
        self.state = _QUEUED
        self.ok = False


# cache -> its link, both held weakly: a cache and its link (which refer to
# each other) dropped without detach() go away, and their entry here with them.
_LINKS: weakref.WeakKeyDictionary[SessionCache, weakref.ref[StoreLink]] = (
    weakref.WeakKeyDictionary()
)
_LINKS_LOCK = threading.Lock()
# The links attached now, for the atexit hook (weakly: a dropped link is not kept).
_OPEN: weakref.WeakSet[StoreLink] = weakref.WeakSet()


def _close_at_exit() -> None:
    # See "Exit" at the top. Quiet: a store that is down or closed at exit
    # costs the sessions of this run, and a warning now would reach nobody
    # who can act on it.
    deadline = time.monotonic() + _EXIT_WAIT
    for link in list(_OPEN):
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            link.close(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(_close_at_exit)


def link_of(cache: SessionCache) -> StoreLink | None:
    """The :class:`StoreLink` *cache* sits on, or None."""
    if not _LINKS:
        return None
    ref = _LINKS.get(cache)
    return None if ref is None else ref()


@final
class StoreLink:
    """The link between a :class:`~resume.SessionCache` and a :class:`~resume.stores.SessionStore`.

    Made by :func:`attach_store`; see it for what the link does. The link owns
    the cache's ``on_new`` and ``on_remove`` callbacks while attached (callbacks
    that were set before are still called, after the link's work).
    """

    def __init__(
        self,
        cache: SessionCache,
        store: SessionStore,
        *,
        retry_after: float = 1.0,
        key_map: KeyMap | None = None,
        encode: Callable[[SessionHandle], bytes] | None = None,
        decode: Callable[[bytes], SessionHandle] | None = None,
        clock: Callable[[], float] = time.monotonic,
        fetch_wait: float = 0.25,
        queue_size: int = 1024,
        auto_register: bool = True,
    ) -> None:
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after}")
        if not fetch_wait >= 0:
            raise ValueError(f"fetch_wait must be >= 0 seconds, got {fetch_wait}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._cache = cache
        self._store = store
        self._retry_after = float(retry_after)
        self._fetch_wait = float(fetch_wait)
        self._queue_size = queue_size
        self._key_map = key_map
        self._encode = encode if encode is not None else SessionHandle.to_der
        self._decode = decode if decode is not None else SessionHandle.from_der
        self._clock = clock
        self._limiter = _WarnLimiter(_WARN_INTERVAL)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._retry_at: float | None = None
        self._disabled: str | None = None
        # handle -> (store key, its queued put or None), for on_remove (the cache
        # has already unlinked the handle when it calls on_remove).
        self._where: weakref.WeakKeyDictionary[SessionHandle, tuple[Hashable, _Write | None]] = (
            weakref.WeakKeyDictionary()
        )
        # Handles fetched from the store: the store no longer holds them.
        self._unstored: weakref.WeakSet[SessionHandle] = weakref.WeakSet()
        # In-process digest -> persisted digest, for the contexts persisted.
        self._contexts: dict[str, str] = {}
        # Labels given to register_context(), by context (see "Store keys").
        self._labels: weakref.WeakKeyDictionary[ssl.SSLContext, str] = (
            weakref.WeakKeyDictionary()
        )
        self._auto_register = auto_register
        # In-process digests already learned (persisted or not), and the contexts
        # already told about on the logger.
        self._learned: set[str] = set()
        self._told: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        # cache key -> store key (or None), so that keys are mapped and checked once.
        self._memo: dict[Hashable, Hashable | None] = {}
        self._previous_new = cache.on_new
        self._previous_remove = cache.on_remove
        self._attached = False
        # The write-behind queue and its thread; the fetches in flight.
        self._queue: collections.deque[_Write] = collections.deque()
        self._writer: threading.Thread | None = None
        self._writing = False
        self._fetching = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: Sessions put in the store.
        self.saved = 0
        #: Sessions fetched from the store into the cache.
        self.loaded = 0
        #: Store operations that failed (the store was down or broken).
        self.errors = 0
        #: Entries fetched that could not be imported (dropped).
        self.dropped = 0
        #: Writes dropped because the write queue was full.
        self.queue_full = 0
        forks.register(self, forks.LINK)

    # -- fork() (resume._core.forks) ----------------------------------------------

    def _fork_locks(self) -> tuple[threading.RLock, threading.Lock]:
        return (self._lock, self._limiter._lock)

    def _fork_child(self) -> None:
        # The parent's threads are not here: forget them (see the top).
        self._cond = threading.Condition(self._lock)
        for write in self._queue:
            write.state = _DONE  # the parent's writer performs it
        self._queue.clear()
        self._writer = None
        self._writing = False
        self._fetching = 0
        self._executor = None

    # -- wiring -------------------------------------------------------------------

    @property
    def cache(self) -> SessionCache:
        """The cache."""
        return self._cache

    @property
    def store(self) -> SessionStore:
        """The store."""
        return self._store

    @property
    def fetch_wait(self) -> float:
        """Seconds a connection waits for a fetch from the store before a full handshake."""
        return self._fetch_wait

    @property
    def pending(self) -> int:
        """Writes (puts and deletes) queued or in progress, not yet done."""
        with self._lock:
            return len(self._queue) + self._writing

    @property
    def available(self) -> bool:
        """False while the link skips a store that failed (until ``retry_after`` passes)."""
        retry_at = self._retry_at
        return self._disabled is None and (retry_at is None or self._clock() >= retry_at)

    def _attach(self) -> None:
        cache = self._cache
        with _LINKS_LOCK:
            current = link_of(cache)
            if current is not None and current is not self:
                raise ValueError(f"{cache!r} already sits on a store; detach() that link first")
            _LINKS[cache] = weakref.ref(self)
        cache.on_new = self._on_new
        cache.on_remove = self._on_remove
        # For the "store unavailable" reason of resume._core.why; a weak
        # reference, so that the cache does not keep its link alive.
        me = weakref.ref(self)

        def store_reason(key: Hashable) -> str | None:
            link = me()
            return None if link is None else link._store_reason(key)

        cache._store_reason = store_reason
        self._attached = True
        _OPEN.add(self)

    def detach(self) -> None:
        """Give the cache its previous callbacks back; the store is left as it is.

        Writes already queued are still done, in the background; nothing new
        is queued or fetched. Does not wait (:meth:`close` does).
        """
        with self._lock:
            if not self._attached:
                return
            self._attached = False
            cache = self._cache
            cache.on_new = self._previous_new
            cache.on_remove = self._previous_remove
            cache._store_reason = None
            _OPEN.discard(self)
            with _LINKS_LOCK:
                if link_of(cache) is self:
                    del _LINKS[cache]
            executor, self._executor = self._executor, None
            self._cond.notify_all()  # an idle writer exits now
        if executor is not None:
            executor.shutdown(wait=False)

    def register_context(self, context: ssl.SSLContext, *, label: str = "") -> None:
        """Vouch that sessions of *context* may be shared through the store under *label*.

        Contexts resume tracked from birth (:func:`resume.create_client_context`,
        :func:`resume.default_ssl_context`, the HTTP integrations' own) are
        persisted without this call, on one host (see :func:`attach_store`).
        Call it for any other context, whose settings made before resume first
        saw it are unknown, or to share a context's sessions between hosts.

        resume's client keys carry a random token per :class:`ssl.SSLContext`
        and never match in another process. Registering a context maps its keys
        to ``(peer, port, context_label_digest(context, label))``, which another
        process that builds its context the same way (and registers it with the
        same label) computes too. The client certificate and the ALPN list are
        part of that digest (resume tracks them); give a *label* that changes
        whenever something resume cannot see changes (the contents of a CA
        directory, how the context was configured before resume saw it). The
        label is kept with the context: after a tracked change (a new ALPN
        list, say) its sessions are stored under the new digest, with the same
        label. A registration replaces the automatic one.

        A context whose full state resume cannot know (a client certificate
        loaded before resume first saw it, a tracking wrapper removed: see
        :class:`~resume.UntrackedContextWarning`, emitted once) is not
        registered; create contexts with :func:`resume.create_client_context`.
        """
        with self._lock:
            self._labels[context] = label
        self._register(context, label)

    def _register(self, context: ssl.SSLContext, label: str) -> str | None:
        # Map *context*'s digest now to its persisted digest under *label*;
        # return that in-process digest, or None (untrackable: never persisted).
        digest, stable = persisted_digests(context, label)
        if stable is None:
            return None
        with self._lock:
            if len(self._contexts) >= _MEMO_SIZE:
                # Bounded; registered contexts are learned again at their next
                # connection (their labels are kept).
                self._contexts.clear()
                self._learned.clear()
            self._contexts[digest] = stable
            self._memo.clear()
        return digest

    def _learn(self, context: ssl.SSLContext, key: SessionKey) -> None:
        # Before a connection (see "Learning" at the top): make the store key of
        # *context*'s digest known, or say once why its sessions stay here.
        digest = key.digest
        if digest in self._learned or self._key_map is not None:
            return
        label = self._labels.get(context)
        learned: str | None
        if label is not None:
            learned = self._register(context, label)
        elif digest in self._contexts:
            # Registered through another context with the same digest (contexts
            # tracked from birth and configured alike share it): that stands.
            learned = digest
        elif self._auto_register and tracked_from_birth(context):
            birth = birth_record(context)
            learned = self._register(context, _AUTOMATIC + (birth or ""))
            if birth_record(context) != birth:
                # A trust call meanwhile: that digest has another birth. Forget
                # it; the next connection learns the context's new digest.
                with self._lock:
                    if learned is not None:
                        self._contexts.pop(learned, None)
                        self._memo.clear()
                return
        else:
            learned = digest
            self._tell(context)
        if learned is None or learned == digest:
            with self._lock:
                self._learned.add(digest)

    def _tell(self, context: ssl.SSLContext) -> None:
        # Once per context: its sessions are not persisted, and what to do.
        with self._lock:
            if context in self._told:
                return
            self._told.add(context)
        if self._auto_register:
            why_not = (
                "resume did not see it created, so what was set on it before (a CA "
                "directory, SSL_CERT_DIR, a client certificate) cannot be compared with "
                "another process's context. Create it with resume.create_client_context(), "
                "or vouch for it"
            )
        else:
            why_not = "the link was attached with auto_register=False. Vouch for it"
        why.logger.warning(
            "resume: sessions of this SSLContext are not persisted in %r, they stay in "
            "this process: %s with link.register_context(ctx, label=...)",
            self._store, why_not,
            extra={"resume_reason": why.NOT_PERSISTED},
        )

    def _store_reason(self, key: Hashable) -> str | None:
        # resume._core.why: why nothing came from the store for *key*, if the store
        # is to blame (None: it is not; then the miss is "no session").
        if not self._attached:
            return None
        if self.store_key(key) is None:
            return why.NOT_PERSISTED
        if not self.available:
            return why.STORE_UNAVAILABLE
        return None

    def store_key(self, key: Hashable) -> Hashable | None:
        """The key *key*'s sessions have in the store, or None if they stay in memory.

        A key that cannot be encoded for the store (see
        :func:`resume.stores.key_bytes`) stays in memory, with one warning.
        """
        memo = self._memo
        try:
            return memo[key]
        except KeyError:
            pass
        skey = self._map_key(key)
        if skey is not None:
            try:
                key_bytes(skey)
            except TypeError as exc:
                self._limiter.warn("key", f"sessions of a cache key stay in memory: {exc}",
                                   stacklevel=4)
                skey = None
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = skey
        return skey

    def _map_key(self, key: Hashable) -> Hashable | None:
        if self._key_map is not None:
            return self._key_map(key)
        digest = getattr(key, "digest", None)
        if isinstance(key, tuple) and isinstance(digest, str) and hasattr(key, "peer"):
            stable = self._contexts.get(digest)
            if stable is None:
                return None
            return ("resume.SessionKey", key[0], key[1], stable)
        return key

    # -- failure handling ---------------------------------------------------------

    def _failed(self, exc: StoreError) -> None:
        with self._lock:
            self.errors += 1
            self._retry_at = self._clock() + self._retry_after
        self._limiter.warn(
            "down",
            f"session store unavailable ({exc}); connections go on with full handshakes "
            f"and the store is tried again in {self._retry_after:g} s",
            stacklevel=4,
        )

    def _succeeded(self) -> None:
        self._retry_at = None

    def _export(self, handle: SessionHandle) -> bytes | None:
        try:
            return self._encode(handle)
        except UnsupportedError as exc:
            self._disabled = str(exc)
            self._limiter.warn(
                "unsupported", f"sessions cannot be stored on this Python build: {exc}",
                stacklevel=5,
            )
        except (ValueError, ResumeError) as exc:
            self._limiter.warn("export", f"a session could not be exported: {exc}", stacklevel=5)
        return None

    # -- the cache callbacks (under the cache's lock: they only queue) ----------------

    def _on_new(self, cache: SessionCache, handle: SessionHandle) -> bool:
        if handle not in self._unstored:  # not one that fetch() is adding
            self._queue_put(handle)
        previous = self._previous_new
        return previous(cache, handle) if previous is not None else False

    def _queue_put(self, handle: SessionHandle) -> None:
        key = handle._key
        if key is None or not self._attached:
            return
        skey = self.store_key(key)
        if skey is None or not self.available:
            return
        der = self._export(handle)
        if der is None:
            return
        write = _Write(True, skey, der, handle._expires)
        with self._lock:
            overflow = self._enqueue(write)
            if write.state == _QUEUED:
                self._where[handle] = (skey, write)
        if overflow:
            self._warn_overflow()

    def _on_remove(self, cache: SessionCache, handle: SessionHandle) -> None:
        try:
            with self._lock:
                where = self._where.pop(handle, None)
                if handle in self._unstored:
                    self._unstored.discard(handle)  # fetched: the store has it no more
                    where = None
                elif where is not None and where[1] is not None:
                    write = where[1]
                    if write.state == _QUEUED:
                        # Never written: cancel the put instead of deleting.
                        self._queue.remove(write)
                        write.state = _CANCELLED
                    if write.state == _CANCELLED:
                        where = None
            if where is not None and self._attached and self.available:
                der = self._export(handle)
                if der is not None:
                    with self._lock:
                        overflow = self._enqueue(_Write(False, where[0], der, 0.0))
                    if overflow:
                        self._warn_overflow()
        finally:
            previous = self._previous_remove
            if previous is not None:
                previous(cache, handle)

    # -- the write-behind queue -----------------------------------------------------

    def _enqueue(self, write: _Write) -> bool:
        # Called with self._lock held. Returns True when the queue was full.
        queue = self._queue
        overflow = False
        if len(queue) >= self._queue_size:
            overflow = True
            self.queue_full += 1
            victim = next((w for w in queue if w.put), None)
            if victim is None:  # only deletes queued: this write is the one dropped
                write.state = _CANCELLED
                return overflow
            queue.remove(victim)
            victim.state = _CANCELLED
        queue.append(write)
        if self._writer is None:
            writer = threading.Thread(
                target=self._write_loop, name="resume store writer", daemon=True
            )
            try:
                writer.start()
            except RuntimeError:  # at interpreter exit: drain() performs the writes
                pass
            else:
                self._writer = writer
        else:
            self._cond.notify_all()
        return overflow

    def _warn_overflow(self) -> None:
        self._limiter.warn(
            "queue",
            f"the session store is slower than the connections: its write queue is full "
            f"({self._queue_size} writes) and the oldest queued session was dropped",
            stacklevel=5,
        )

    def _write_loop(self) -> None:
        # The writer thread: performs the queued writes in order, without locks held.
        while True:
            with self._lock:
                while not self._queue:
                    # Detached, or idle too long: exit (_enqueue starts another).
                    stop = not self._attached or not self._cond.wait(_IDLE_EXIT)
                    if stop and not self._queue:
                        self._writer = None
                        self._cond.notify_all()
                        return
                write = self._next_write()
            self._run(write)

    def _next_write(self) -> _Write:
        # Called with self._lock held and the queue not empty.
        write = self._queue.popleft()
        write.state = _STARTED
        self._writing = True
        return write

    def _run(self, write: _Write) -> None:
        # Perform one write taken with _next_write(), without locks held.
        try:
            self._perform(write)
        except Warning:
            pass  # a StoreWarning made an exception by the filters: see the top
        except Exception as exc:  # a bug: never kill the writer
            self.errors += 1
            with contextlib.suppress(Warning):
                self._limiter.warn("bug", f"a store write failed: {exc!r}", stacklevel=3)
        finally:
            with self._lock:
                write.state = _DONE
                write.der = b""
                self._writing = False
                self._cond.notify_all()

    def _perform(self, write: _Write) -> None:
        if not self.available:
            return  # the store is down: skip, as a connection would
        try:
            if write.put:
                if self._store.put(write.skey, write.der, expires=write.expires):
                    self.saved += 1
                    write.ok = True
            else:
                self._store.delete(write.skey, write.der)
                write.ok = True
            self._succeeded()
        except StoreError as exc:
            self._failed(exc)
        except ValueError as exc:  # e.g. a session larger than a store accepts
            self._limiter.warn("put", f"a session was not stored: {exc}", stacklevel=3)

    def drain(self, timeout: float | None = 5.0) -> bool:
        """Wait until the writes queued so far are done; True if they all are.

        Waits at most *timeout* seconds (None: no limit). Blocking: call it
        off the event loop (or in a thread), as :meth:`close` is.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._queue and not self._writing:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if self._writer is not None or self._writing:
                    self._cond.wait(remaining)
                    continue
                # Writes queued and no writer thread: none could be started
                # (at interpreter exit, see the top). Perform them here.
                write = self._next_write()
            self._run(write)

    # -- fetching ----------------------------------------------------------------------

    def fetch(self, key: Hashable) -> bool:
        """Take one session for *key* from the store into the cache; True if one came.

        The external cache's get-session callback (``SSL_CTX_sess_set_get_cb()``),
        called before a connection instead of inside the look-up. Blocking: it
        waits for the store. :mod:`resume.trio` and :mod:`resume.asyncio` call it
        in a thread, waiting at most :attr:`fetch_wait` seconds; call it yourself
        only off the event loop.

        Does nothing (False) when the cache already holds a session for *key*,
        when the store holds none, when the store is down (a rate-limited
        :class:`~resume.StoreWarning`), or when the entry cannot be imported
        (dropped, with a warning). Never raises for a store problem. The
        store's take is atomic, so a single-use TLS 1.3 ticket is fetched by
        one process only.
        """
        with self._lock:
            self._fetching += 1
        try:
            return self._fetch(key)
        finally:
            with self._lock:
                self._fetching -= 1
                self._cond.notify_all()

    def _fetch(self, key: Hashable) -> bool:
        cache = self._cache
        if not self._attached or key in cache:
            return False
        skey = self.store_key(key)
        if skey is None or not self.available:
            return False
        try:
            stored = self._store.take(skey)
        except StoreError as exc:
            self._failed(exc)
            return False
        self._succeeded()
        if stored is None:
            return False
        try:
            handle = self._decode(stored.data)
        except (ValueError, ResumeError) as exc:
            self.dropped += 1
            self._limiter.warn(
                "import", f"a stored session could not be imported and was dropped: {exc}",
                stacklevel=4,
            )
            return False
        try:
            with self._lock:
                attached = self._attached
                if attached:
                    self._unstored.add(handle)
                    self._where[handle] = (skey, None)
            if not attached:
                # Detached while the store answered: the session goes back.
                with contextlib.suppress(StoreError, ValueError):
                    self._store.put(skey, stored.data, expires=stored.expires)
                return False
            _mark_single_use(handle)
            added = cache.add(key, handle)
        finally:
            handle.free()
        if added:
            self.loaded += 1
        return added

    def _fetch_in_thread(self, key: Hashable) -> None:
        # What the adapters run in a thread: a fetch that never raises, and that
        # does not start while _MAX_FETCHES others are running.
        with self._lock:
            if self._fetching >= _MAX_FETCHES:
                return
            self._fetching += 1
        try:
            self._fetch(key)
        except Warning:
            pass  # a StoreWarning made an exception by the filters: see the top
        except Exception as exc:  # a bug: never fail a connection for it
            self.errors += 1
            with contextlib.suppress(Warning):
                self._limiter.warn("bug", f"a store fetch failed: {exc!r}", stacklevel=2)
        finally:
            with self._lock:
                self._fetching -= 1
                self._cond.notify_all()

    def _fetch_plan(self, key: Hashable) -> bool:
        # On the loop, no I/O: is a fetch for *key* worth a thread?
        return (
            self._attached
            and self._fetching < _MAX_FETCHES
            and key not in self._cache
            and self.available
            and self.store_key(key) is not None
        )

    def _fetch_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            executor = self._executor
            if executor is None:
                if not self._attached:
                    raise RuntimeError("the link is detached")
                executor = self._executor = concurrent.futures.ThreadPoolExecutor(
                    _MAX_FETCHES, thread_name_prefix="resume store fetch"
                )
            return executor

    # -- write-back and shutdown ------------------------------------------------------

    def sync(self, timeout: float | None = 5.0) -> int:
        """Put back into the store the fetched sessions still in the cache; return how many.

        A session fetched from the store left it (:meth:`fetch` takes). If this
        process did not use it up (a TLS 1.2 session reused with ``get1()``, a
        ticket never offered), :meth:`sync` returns it so that the next process
        finds it. The puts go through the write queue, which :meth:`sync` then
        drains, waiting at most *timeout* seconds (None: no limit); the count
        is of the sessions written back by then. Blocking: call it off the
        event loop. :meth:`close` calls it.
        """
        writes: list[_Write] = []
        overflow = False
        cache = self._cache
        if self._attached and self.available:
            # The cache lock keeps a concurrent take() from slipping between the
            # check and the queueing: a ticket used meanwhile must not go back.
            with cache._lock, self._lock:
                for handle in list(self._unstored):
                    if handle.freed or handle.owner is not cache:
                        continue
                    where = self._where.get(handle)
                    if where is None:
                        continue
                    der = self._export(handle)
                    if der is None:
                        continue
                    write = _Write(True, where[0], der, handle._expires)
                    overflow = self._enqueue(write) or overflow
                    if write.state == _QUEUED:
                        self._unstored.discard(handle)
                        self._where[handle] = (where[0], write)
                        writes.append(write)
        if overflow:
            self._warn_overflow()
        self.drain(timeout)
        return sum(write.ok for write in writes)

    def close(self, timeout: float = 5.0) -> None:
        """Finish: :meth:`sync`, then :meth:`detach`. The store stays open (close it yourself).

        Waits, at most *timeout* seconds in all, for fetches in flight to land
        in the cache and for the queued writes to reach the store, so that a
        clean exit loses nothing. Blocking: call it off the event loop (after
        ``trio.run()`` or ``asyncio.run()`` returns, or in a thread).
        """
        deadline = time.monotonic() + timeout
        try:
            with self._lock:
                while self._fetching:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            self.sync(max(0.0, deadline - time.monotonic()))
        finally:
            self.detach()

    def __enter__(self) -> StoreLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "attached" if self._attached else "detached"
        return (
            f"<resume.stores.StoreLink {state} {self._store!r} saved={self.saved} "
            f"loaded={self.loaded} errors={self.errors}>"
        )


# -- what the adapters await before a connection ----------------------------------------


def _plan(cache: object, context: ssl.SSLContext, peer: str, port: int) -> (
    tuple[StoreLink, Hashable] | None
):
    # The link and the (hint) key of a fetch worth doing, or None. No I/O; never
    # raises for bad arguments (the connection reports them itself).
    if not _LINKS:
        return None
    try:
        resolved = resolve_cache(cache)
        if resolved is None:
            return None
        link = link_of(resolved)
        if link is None:
            return None
        key, trackable = connection_key(context, peer, port)
    except (TypeError, ValueError):
        return None
    if trackable:  # an untrackable context said so itself (UntrackedContextWarning)
        link._learn(context, key)
    return (link, key) if link._fetch_plan(key) else None


async def fetch_for_trio(cache: object, context: ssl.SSLContext, peer: str, port: int) -> None:
    """Before a trio connection: fetch its session from the store, off the loop, briefly.

    *cache* is the connection's ``cache=`` argument. When the cache sits on a
    store and holds nothing for the connection's key (computed now, as a hint),
    :meth:`StoreLink.fetch` runs in a thread (``trio.to_thread.run_sync``,
    abandoned on cancel) for at most :attr:`StoreLink.fetch_wait` seconds. A
    fetch that takes longer goes on in its thread and still fills the cache
    when it ends. Returns at once when there is no store.
    """
    plan = _plan(cache, context, peer, port)
    if plan is None:
        return
    link, key = plan
    import trio

    with trio.move_on_after(link.fetch_wait):
        # A limiter of its own: a hung store must not hold tokens of trio's
        # default limiter, which name resolution uses too.
        await trio.to_thread.run_sync(
            link._fetch_in_thread, key, abandon_on_cancel=True,
            limiter=trio.CapacityLimiter(1), thread_name="resume store fetch",
        )


async def fetch_for_asyncio(
    cache: object, context: ssl.SSLContext, peer: str, port: int
) -> None:
    """Before an asyncio connection: fetch its session from the store, off the loop, briefly.

    As :func:`fetch_for_trio`, with ``loop.run_in_executor()`` on the link's
    own small thread pool; the wait is bounded by :attr:`StoreLink.fetch_wait`
    and a fetch still running then is not awaited (it fills the cache later).
    """
    plan = _plan(cache, context, peer, port)
    if plan is None:
        return
    link, key = plan
    import asyncio

    try:
        executor = link._fetch_executor()
        future = asyncio.get_running_loop().run_in_executor(
            executor, link._fetch_in_thread, key
        )
    except RuntimeError:  # the link was detached meanwhile
        return
    await asyncio.wait((future,), timeout=link.fetch_wait)


def attach_store(
    cache: SessionCache,
    store: SessionStore,
    *,
    retry_after: float = 1.0,
    key_map: KeyMap | None = None,
    encode: Callable[[SessionHandle], bytes] | None = None,
    decode: Callable[[bytes], SessionHandle] | None = None,
    fetch_wait: float = 0.25,
    queue_size: int = 1024,
    auto_register: bool = True,
) -> StoreLink:
    """Make *cache* sit on *store*: sessions written behind, fetched before a connection.

    Every session added to *cache* is exported (:meth:`SessionHandle.to_der`)
    and queued to be put in *store*; a session that leaves the cache is
    deleted from the store, so single-use tickets stay single-use across
    processes. Before a connection whose key has no session in the cache,
    :mod:`resume.trio` and :mod:`resume.asyncio` fetch one from the store
    (:meth:`StoreLink.fetch`, :meth:`SessionHandle.from_der`). This is
    OpenSSL's external session cache (``SSL_CTX_sess_set_new_cb()``,
    ``SSL_CTX_sess_set_get_cb()``, ``SSL_CTX_sess_set_remove_cb()``).

    Which sessions go to the store: a session resumed from the store skips
    the certificate check, so it goes only where the TLS settings it was
    verified under are known to be the same. Those of contexts resume
    tracked from birth (:func:`resume.create_client_context`, the default
    context of connections opened without one, the HTTP integrations'
    contexts) are stored with no further call, under their settings and the
    state of the CA directories they read (so they are shared between the
    processes of one host). Those of other contexts (made with
    :func:`ssl.create_default_context`, say, whose earlier settings resume
    never saw) stay in memory until :meth:`StoreLink.register_context`
    vouches for them; the ``resume`` logger says so once per context, with
    that call, and their misses count as ``"not persisted"``.

    The store is never called on the event loop or under the cache's lock:
    fetches run in a thread and a connection waits for one at most
    *fetch_wait* seconds (then it makes a full handshake, and the fetch
    still fills the cache when it ends); writes go through a queue of at most
    *queue_size* writes that one thread of the link performs (when it is
    full, the oldest queued session is dropped with a rate-limited
    :class:`~resume.StoreWarning`). :class:`~resume.SessionCache` look-ups
    answer from memory only.

    A store that fails never fails a connection: the link skips it for
    *retry_after* seconds, emits a rate-limited :class:`~resume.StoreWarning`
    and the connection makes a full handshake.

    Args:
        cache: the cache; its ``on_new`` and ``on_remove`` callbacks are taken
            over (and still called).
        store: the store.
        retry_after: seconds to skip a store after it failed.
        key_map: maps a cache key to its store key (None: keep it in memory
            only). The default stores plain keys as they are and resume's
            client keys as described above.
        encode: exports a handle (default :meth:`SessionHandle.to_der`).
        decode: imports bytes (default :meth:`SessionHandle.from_der`).
        fetch_wait: the most seconds a connection waits for the store
            (default 0.25, well under any handshake timeout).
        queue_size: the most writes waiting for the store.
        auto_register: False to store only the sessions of contexts given to
            :meth:`StoreLink.register_context` (and plain keys).

    Call :meth:`StoreLink.close` when done, off the event loop: it waits
    (boundedly) for the queued writes and writes back unused sessions. A link
    still attached when the interpreter exits is closed then (at most 3
    seconds for all links), so a script that forgets it loses nothing.

    A child process made with ``os.fork()`` may go on using the cache and
    its link: the child gets a writer thread and a store connection of its
    own on first use (writes the parent had queued stay the parent's). Like
    the parent, it should :meth:`~StoreLink.close` the link before it exits.
    """
    link = StoreLink(
        cache, store, retry_after=retry_after, key_map=key_map, encode=encode, decode=decode,
        fetch_wait=fetch_wait, queue_size=queue_size, auto_register=auto_register,
    )
    link._attach()
    return link


StoreLink.__module__ = "resume.stores"
attach_store.__module__ = "resume.stores"
context_label_digest.__module__ = "resume.stores"
