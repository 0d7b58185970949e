# Theory of operation: a SessionCache sitting on a SessionStore
# =============================================================
#
# OpenSSL lets an application put an external session cache behind an
# SSL_CTX's own: the new-session callback writes each new session out, the
# get-session callback is asked on a miss, the remove callback hears about
# sessions that leave (SSL_CTX_sess_set_new_cb(3)). StoreLink does the same for a
# SessionCache and a SessionStore:
#
#   write-through  on_new: each session added to the cache is exported with
#                  SessionHandle.to_der() and put in the store, with the expiry
#                  the cache gave it.
#   read-through   fetch(key), on a miss: take one session from the store
#                  (atomically: a single-use TLS 1.3 ticket goes to one process),
#                  import it with SessionHandle.from_der() and add it to the
#                  cache, where the lookup that missed now finds it. The cache
#                  calls fetch() itself when a look-up (get1, get0, take) finds
#                  no entry for the key (SessionCache._find asks its _store_link).
#   consumption    on_remove: a session that leaves the cache (taken for a
#                  connection, removed, expired) is deleted from the store too, so
#                  a ticket used here is not used again by another process. A
#                  session that came from the store is not there any more (fetch
#                  took it) and is skipped.
#   write-back     sync() / close(): sessions fetched from the store and not used
#                  are put back, so a TLS 1.2 session that this process reused
#                  with get1() survives its exit.
#
# Store keys. A cache key must mean the same thing in every process that shares
# the store. resume's client key (SessionKey: peer, port, digest) carries a
# random per-SSLContext token, so on its own it never matches in another
# process; register_context(context, label=...) declares that a context's
# settings are the same everywhere (the label must change when anything that
# ssl cannot show changes: the client certificate, the ALPN list), and the link
# then stores its sessions under (peer, port, stable digest). Keys of contexts
# that were not registered stay in memory only. Keys that are not SessionKeys
# are stored as they are.
#
# Failures never fail a connection. A StoreError (the store is down) makes the
# link skip the store for ``retry_after`` seconds (a circuit breaker, so a dead
# Redis does not cost a timeout per connection) and emits one StoreWarning per
# minute at most; the lookup is a miss and the connection does a full
# handshake. When the store answers again, resumption comes back by itself.
# Sessions that cannot be exported or imported are skipped with a warning.
#
# Locking: the callbacks run under the cache's lock (an RLock); fetch() takes
# the same lock so that a fetch and a concurrent lookup see one state.
from __future__ import annotations

import ssl
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Final, final

from ._cache import SessionCache
from ._errors import ResumeError, StoreError, UnsupportedError
from ._handle import SessionHandle
from ._store import SessionStore, _WarnLimiter, key_bytes

__all__ = ["StoreLink", "attach_store", "context_label_digest"]

#: Seconds between warnings of one kind from a link.
_WARN_INTERVAL: Final = 60.0
#: Cache keys whose store key is remembered (the memo is cleared when full).
_MEMO_SIZE: Final = 4096

KeyMap = Callable[[Hashable], Hashable | None]


#: SSL_SESSION_get_protocol_version() of a TLS 1.3 session.
_TLS1_3_VERSION: Final = 0x0304


def _mark_single_use(handle: SessionHandle) -> None:
    # A TLS 1.3 ticket fetched from the store must be offered once (RFC 8446,
    # C.4). The client policy (resume._client) keeps the set of single-use
    # handles; tell it about this one, which it did not store itself.
    if getattr(handle.payload, "protocol_version", 0) != _TLS1_3_VERSION:
        return
    from ._client import mark_single_use

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
    from ._key import persisted_digests

    stable = persisted_digests(context, label)[1]
    if stable is None:
        raise ValueError("the sessions of this SSLContext cannot be persisted: resume cannot "
                         "know its full state (see the UntrackedContextWarning)")
    return stable


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
    ) -> None:
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after}")
        self._cache = cache
        self._store = store
        self._retry_after = float(retry_after)
        self._key_map = key_map
        self._encode = encode if encode is not None else SessionHandle.to_der
        self._decode = decode if decode is not None else SessionHandle.from_der
        self._clock = clock
        self._limiter = _WarnLimiter(_WARN_INTERVAL)
        self._lock = threading.RLock()
        self._retry_at: float | None = None
        self._disabled: str | None = None
        # handle -> (cache key, store key), for on_remove (the cache has already
        # forgotten the key when it calls on_remove).
        self._where: weakref.WeakKeyDictionary[SessionHandle, tuple[Hashable, Hashable]] = (
            weakref.WeakKeyDictionary()
        )
        # Handles fetched from the store: the store no longer holds them.
        self._unstored: weakref.WeakSet[SessionHandle] = weakref.WeakSet()
        self._loading: SessionHandle | None = None
        self._contexts: dict[str, str] = {}
        # cache key -> store key (or None), so that keys are mapped and checked once.
        self._memo: dict[Hashable, Hashable | None] = {}
        self._previous_new = cache.on_new
        self._previous_remove = cache.on_remove
        self._attached = False
        #: Sessions put in the store.
        self.saved = 0
        #: Sessions fetched from the store into the cache.
        self.loaded = 0
        #: Store operations that failed (the store was down or broken).
        self.errors = 0
        #: Entries fetched that could not be imported (dropped).
        self.dropped = 0

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
    def available(self) -> bool:
        """False while the link skips a store that failed (until ``retry_after`` passes)."""
        retry_at = self._retry_at
        return self._disabled is None and (retry_at is None or self._clock() >= retry_at)

    def _attach(self) -> None:
        cache = self._cache
        if cache._store_link not in (None, self):
            raise ValueError(f"{cache!r} already sits on a store; detach() that link first")
        cache.on_new = self._on_new
        cache.on_remove = self._on_remove
        cache._store_link = self
        self._attached = True

    def detach(self) -> None:
        """Give the cache its previous callbacks back; the store is left as it is."""
        with self._lock:
            if not self._attached:
                return
            cache = self._cache
            cache.on_new = self._previous_new
            cache.on_remove = self._previous_remove
            if cache._store_link is self:
                cache._store_link = None
            self._attached = False

    def register_context(self, context: ssl.SSLContext, *, label: str = "") -> None:
        """Declare that sessions of *context* may be shared through the store.

        resume's client keys carry a random token per :class:`ssl.SSLContext`
        and never match in another process. Registering a context maps its keys
        to ``(peer, port, context_label_digest(context, label))``, which another
        process that builds its context the same way (and registers it with the
        same label) computes too. The client certificate and the ALPN list are
        part of that digest (resume tracks them); give a *label* that changes
        whenever something resume cannot see changes (the contents of a CA
        directory, say). Sessions of contexts not registered stay in memory.

        A context whose full state resume cannot know (a client certificate
        loaded before resume first saw it, a tracking wrapper removed: see
        :class:`~resume.UntrackedContextWarning`, emitted once) is not
        registered; create contexts with :func:`resume.create_client_context`.
        """
        from ._key import persisted_digests

        digest, stable = persisted_digests(context, label)
        if stable is None:
            return
        with self._lock:
            self._contexts[digest] = stable
            self._memo.clear()

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

    # -- the cache callbacks --------------------------------------------------------

    def _on_new(self, cache: SessionCache, handle: SessionHandle) -> bool:
        with self._lock:
            key = handle._key
            if handle is not self._loading and key is not None:
                self._save(key, handle)
        previous = self._previous_new
        return previous(cache, handle) if previous is not None else False

    def _save(self, key: Hashable, handle: SessionHandle) -> None:
        skey = self.store_key(key)
        if skey is None:
            return
        self._where[handle] = (key, skey)
        if not self.available:
            return
        der = self._export(handle)
        if der is None:
            return
        try:
            if self._store.put(skey, der, expires=handle._expires):
                self.saved += 1
                self._unstored.discard(handle)
            self._succeeded()
        except StoreError as exc:
            self._failed(exc)
        except ValueError as exc:  # e.g. a session larger than a store accepts
            self._limiter.warn("put", f"a session was not stored: {exc}", stacklevel=5)

    def _on_remove(self, cache: SessionCache, handle: SessionHandle) -> None:
        try:
            with self._lock:
                where = self._where.pop(handle, None)
                if handle in self._unstored:
                    self._unstored.discard(handle)
                elif where is not None and self.available:
                    der = self._export(handle)
                    if der is not None:
                        try:
                            self._store.delete(where[1], der)
                            self._succeeded()
                        except StoreError as exc:
                            self._failed(exc)
        finally:
            previous = self._previous_remove
            if previous is not None:
                previous(cache, handle)

    # -- read-through and write-back ------------------------------------------------

    def fetch(self, key: Hashable) -> bool:
        """Take one session for *key* from the store into the cache; True if one came.

        Does nothing (False) when the store holds none, when the store is down
        (a rate-limited :class:`~resume.StoreWarning`), or when the entry cannot
        be imported (dropped, with a warning). Never raises for a store problem.
        """
        with self._cache._lock, self._lock:
            if key in self._cache:
                return False
            skey = self.store_key(key)
            if skey is None or not self.available:
                return False
            try:
                stored = self._store.take(skey)
                self._succeeded()
            except StoreError as exc:
                self._failed(exc)
                return False
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
            self._unstored.add(handle)
            self._where[handle] = (key, skey)
            _mark_single_use(handle)
            self._loading = handle
            try:
                added = self._cache.add(key, handle)
            finally:
                self._loading = None
                handle.free()
            if added:
                self.loaded += 1
            return added

    def sync(self) -> int:
        """Put back into the store the fetched sessions still in the cache; return how many.

        A session fetched from the store left it (:meth:`fetch` takes). If this
        process did not use it up (a TLS 1.2 session reused with ``get1()``, a
        ticket never offered), :meth:`sync` returns it so that the next process
        finds it. :meth:`close` calls it.
        """
        count = 0
        with self._cache._lock, self._lock:
            for handle in list(self._unstored):
                if handle.freed or handle.owner is not self._cache:
                    continue
                where = self._where.get(handle)
                if where is None or not self.available:
                    continue
                der = self._export(handle)
                if der is None:
                    continue
                try:
                    if self._store.put(where[1], der, expires=handle._expires):
                        count += 1
                        self._unstored.discard(handle)
                    self._succeeded()
                except StoreError as exc:
                    self._failed(exc)
        return count

    def close(self) -> None:
        """:meth:`sync`, then :meth:`detach`. The store stays open (close it yourself)."""
        try:
            self.sync()
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


def attach_store(
    cache: SessionCache,
    store: SessionStore,
    *,
    retry_after: float = 1.0,
    key_map: KeyMap | None = None,
    encode: Callable[[SessionHandle], bytes] | None = None,
    decode: Callable[[bytes], SessionHandle] | None = None,
) -> StoreLink:
    """Make *cache* sit on *store*: write-through on add, read-through on a miss.

    Every session added to *cache* is exported (:meth:`SessionHandle.to_der`)
    and put in *store*; a look-up that finds nothing under a key makes the
    cache call :meth:`StoreLink.fetch`, which takes one session back from the
    store (:meth:`SessionHandle.from_der`); a session that leaves
    the cache is deleted from the store, so single-use tickets stay single-use
    across processes. This is OpenSSL's external session cache
    (``SSL_CTX_sess_set_new_cb()``, ``SSL_CTX_sess_set_get_cb()``,
    ``SSL_CTX_sess_set_remove_cb()``).

    A store that fails never fails a connection: the link skips it for
    *retry_after* seconds, emits a rate-limited :class:`~resume.StoreWarning`
    and the lookup misses (a full handshake).

    Args:
        cache: the cache; its ``on_new`` and ``on_remove`` callbacks are taken
            over (and still called).
        store: the store.
        retry_after: seconds to skip a store after it failed.
        key_map: maps a cache key to its store key (None: keep it in memory
            only). The default stores plain keys as they are and resume's
            client keys only for contexts given to
            :meth:`StoreLink.register_context`.
        encode: exports a handle (default :meth:`SessionHandle.to_der`).
        decode: imports bytes (default :meth:`SessionHandle.from_der`).

    Call :meth:`StoreLink.close` when done (it writes back unused sessions).
    """
    link = StoreLink(
        cache, store, retry_after=retry_after, key_map=key_map, encode=encode, decode=decode
    )
    link._attach()
    return link


StoreLink.__module__ = "resume.stores"
attach_store.__module__ = "resume.stores"
context_label_digest.__module__ = "resume.stores"
