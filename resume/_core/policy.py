# Theory of operation: the client-side resumption policy
# ======================================================
#
# Every rule about which session a client connection offers, keeps and drops
# lives here, I/O-free, so that the trio and asyncio adapters cannot drift
# apart: they only call the five steps of a ClientConnection, in order.
#
#   1. begin()            -- the boundary, in the one synchronous call that
#                            creates the SSLObject: compute the key from the
#                            context's settings at that moment (resume._core.key),
#                            look up a session to offer, create the SSLObject
#                            (the adapter's callable), check that the SSL object
#                            will do what the key says (below), and offer the
#                            session (resume._core.offer.offer). No await
#                            can come between the key and the SSLObject, so a
#                            setting changed while a connect was in flight is
#                            always seen. An untrackable context (resume._core.key)
#                            gets a connection with no cache: nothing offered,
#                            nothing stored.
#   2. (adapter)          -- the handshake.
#
# Deciding from the SSL object itself. ``SSL_new()`` copies the context's verify
# settings into the new ``SSL*`` with the GIL released, so another thread can
# change a setting and change it back while the SSL object is being made: read
# before and after, the context looks the same, yet the connection will not
# verify (a deterministic form: an SSLContext subclass whose wrap_bio sets
# CERT_NONE around the real call). A session from such a handshake must never be
# stored under the strict key, and a session of the strict key must not be
# offered to it. So begin() reads what the SSL object will really do, from its
# ``SSL*`` through the binding (Binding.connection_settings: verify mode, verify
# flags, host flags, the name or address checked, options, protocol bounds), and
# compares it with the settings the key's digest was computed from
# (resume._core.key.KeySettings, returned with the key in one read). Any
# difference, or an SSL object the binding cannot read: nothing is offered and
# nothing is stored ("context changed"). Settings that live only in the context
# (trusted CAs, client certificate, ALPN, ciphers) are tracked by the key's
# wrappers and compared through the digest (still_current) as before.
# Without the binding (a build its probe refuses) only the digest comparison
# remains; its residual race (a change undone between two reads of the context)
# is documented in docs/explanation/what-may-be-resumed.rst. Post-handshake
# authentication is not compared: the client's SSL* has no getter for it, and
# it does not weaken the verification of the server.
#   3. handshake_complete -- the server accepted (session_reused) or declined
#                            the offer. A declined session is dropped from the
#                            cache: the server forgot it or never had it, and
#                            offering it again only wastes a handshake.
#      or fail()          -- the handshake or a post-handshake check failed, or
#                            a fatal TLS error arrived later (is_fatal): the
#                            offered session is dropped and whatever the
#                            connection added is removed again (curl
#                            CVE-2024-0853 kept a session whose OCSP check had
#                            failed).
#   4. close()            -- the connection ends; see "When a session enters the
#                            cache" for what is kept.
#
# When a session enters the cache: the moment OpenSSL makes it. begin() routes
# the SSL object's new sessions to _arrived() through the binding's one
# new-session callback (Binding.watch_new_sessions, SSL_CTX_sess_set_new_cb): a
# TLS 1.2 session at the end of its full handshake, inside do_handshake(); each
# TLS 1.3 ticket inside the read that processes it. _arrived() keeps a dup
# (the raw session turns non-resumable if its SSL* is freed without
# close_notify) and adds it under the key, so a connection opened beside a
# pooled, idle one resumes at once. Every TLS 1.3 ticket is kept (up to the
# cache's per_key) and, by default, used once; SessionCache(tls13_ticket_reuse=
# True) lends tickets instead. A TLS 1.2 ticket the server renewed on a resumed
# handshake makes no callback: handshake_complete() compares the connection's
# ticket with the offered one (SSL_SESSION_get0_ticket) and swaps it in.
#
# What makes a session bad. What a connection added is removed again when its
# handshake fails, a post-handshake check fails, a fatal TLS error arrives, or
# it ends (cancelled, cut) before its handshake completed: fail(), abandon(),
# and close() in a state before ESTABLISHED. A connection that ends without
# close_notify *after* a verified handshake keeps its sessions: since TLS 1.1
# a missing close_notify no longer requires that a session not be resumed
# (RFC 5246, 7.2.1), and keeping them is what lets clients that close by
# dropping the socket (urllib3, aiohttp) resume. OpenSSL's own cache still
# drops a session whose connection ended in a fatal alert; so does this one.
#
# Where the callback cannot be installed, sessions are captured at close as
# before (below): when the binding's probe refuses this build, when the context
# is not a PROTOCOL_TLS_CLIENT context (SSL_SESS_CACHE_CLIENT on a context that
# may also serve would stop its TLS 1.2 session-id resumption), or when another
# library's callback is already installed (never replaced). The ``resume``
# logger says why, once per context. Then close(clean=True) stores what the
# connection yielded, and close(clean=False) (cut, cancelled, failed) nothing.
#
# Which session to offer. TLS 1.3 tickets are single-use (RFC 8446, C.4): a
# ticket is *taken* out of the cache when offered (SessionCache.take), and the
# fresh tickets the server sends on the connection are stored as they arrive.
# TLS 1.2 sessions (session ids and RFC 5077 tickets) are reusable until they
# expire: the cache lends a reference (SessionCache.get1) and keeps the entry.
# The version of a cached session is not visible on ssl.SSLSession, so this
# module marks the handles it stores as single-use (a slot on the handle itself,
# ``SessionHandle._single_use``) and remembers, per key, on the cache object
# itself (``SessionCache._client_hints``: it lives and dies with the cache),
# whether the last session stored there was a TLS 1.3 ticket, so that the look-
# up uses take() or get1() in one call. Should a key hold both kinds (a server
# that changed versions), a ticket that get1() lent is removed before it is
# offered, and a TLS 1.2 session that take() took is simply not put back: both
# err on the side of a full handshake.
#
# What to store on a clean close, without arrival capture. TLS 1.2: the session
# of a full handshake (or a new one after a resumed handshake in which the
# server renewed its ticket: a new session id). TLS 1.3: the latest ticket, read
# from the SSLObject at close (tickets arrive after the handshake, with the
# application data the client reads; a client that never reads gets no ticket),
# when it is not the ticket that was offered. Why only on a clean close: OpenSSL
# itself removes a session from its cache when the connection is freed without
# SSL_shutdown() (ssl_clear_bad_session()), and a cut connection may be an
# attack.
#
# References. A connection holds at most one reference to "the session in use"
# (``handle``): the offered handle when the server resumed it, else a handle of
# the new session. close() and fail() free it, exactly once.
#
# Cost. CPython's ``SSLObject.session`` getter copies the session through DER
# (i2d + d2i, peer certificate included: ~250 us with RSA-2048 on this machine,
# a sixth of a resumed connection) and, until gh-116810 was fixed, leaked a
# reference each time (~6.5 KB per TLS 1.3 connection). So the policy captures
# a session only when it needs it: never for a resumed TLS 1.2 connection, once
# at close otherwise (and when the application asks for ``handle``); and it
# captures natively (``_capture``): where the OpenSSL binding is supported, with
# ``SSL_get1_session()`` on the connection's ``SSL*`` into a native handle
# (resume._openssl.native), which is later offered with ``SSL_set_session()``.
# No DER, no leak. Where the binding's probe refuses this build, it reads
# ``SSLObject.session`` as before, with that cost (see the troubleshooting page).
from __future__ import annotations

import contextlib
import ssl
import weakref
from collections.abc import Callable, Hashable
from typing import Final, Protocol, TypeVar, final

from .._openssl.binding import ConnectionSettings, available, refusal
from .._openssl.native import NativeSession
from . import why
from .cache import SessionCache
from .defaults import resolve_cache
from .errors import UnsupportedError, UseAfterFreeError
from .handle import SessionHandle
from .key import KeySettings, SessionKey, connection_key_and_settings, normalize_peer, still_current
from .offer import offer

__all__ = [
    "ClientConnection",
    "TLSObject",
    "agrees",
    "is_fatal",
    "is_single_use",
    "mark_single_use",
]

#: SSL_SESSION_get_protocol_version() of TLS 1.3 (what native payloads report).
_TLS1_3 = 0x0304


class TLSObject(Protocol):
    """What the policy reads from an ``ssl.SSLObject`` (or ``trio.SSLStream``)."""

    @property
    def session(self) -> ssl.SSLSession | None: ...
    @property
    def session_reused(self) -> bool: ...
    def version(self) -> str | None: ...


T = TypeVar("T")


def is_single_use(handle: SessionHandle) -> bool:
    """True if *handle* is a TLS 1.3 ticket that must be offered only once.

    True for the tickets this module stored, for handles given to
    :func:`mark_single_use`, and for native (DER-born) sessions whose
    ``protocol_version`` is TLS 1.3.
    """
    if handle._single_use:
        return True
    payload = handle.payload
    if type(payload) is ssl.SSLSession:
        return False
    return getattr(payload, "protocol_version", 0) == _TLS1_3


def mark_single_use(handle: SessionHandle) -> None:
    """Mark *handle* as a TLS 1.3 ticket: it will be offered once, then dropped.

    For handles that enter a cache without going through this module (a
    store link's fetch, for example) when their version is not visible.
    The mark is a slot of the handle: it lives and dies with it.
    """
    handle._single_use = True


def _capture(tls: TLSObject) -> SessionHandle | None:
    """The connection's current session in a new handle (one reference), or None.

    The native path: ``SSL_get1_session()`` on the ``SSL*`` of *tls* (an
    :class:`ssl.SSLObject` or :class:`ssl.SSLSocket`) where the binding is
    supported; else the ``SSLObject.session`` getter (a DER round trip that
    leaks before gh-116810 was fixed).
    """
    if isinstance(tls, (ssl.SSLObject, ssl.SSLSocket)) and available() is not None:
        payload = NativeSession.from_connection(tls)
        return None if payload is None else SessionHandle._from_payload(payload)
    session = tls.session
    return None if session is None else SessionHandle.from_ssl(session)


#: ssl.VerifyMode -> the SSL_VERIFY_* bits SSL_new() copies (CERT_REQUIRED adds
#: SSL_VERIFY_FAIL_IF_NO_PEER_CERT, which a client ignores but still carries).
_VERIFY_BITS: Final = {0: 0, 1: 1, 2: 3}
#: SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE.
_VERIFY_MASK: Final = 0x7


def _checked_name(got: ConnectionSettings) -> str | None:
    # The peer the SSL object checks, as the key spells peers; None for none.
    if got.host is not None:
        return None if got.ip is not None else normalize_peer(got.host)
    if got.ip is not None:
        return normalize_peer(got.ip)
    return None


def _same_peer(checked: str, peer: str) -> bool:
    if checked == peer:
        return True
    # ssl sends and checks the IDNA (A-label) spelling of a name given in Unicode.
    try:
        return peer.encode("idna").decode("ascii").lower() == checked
    except UnicodeError:
        return False


def agrees(settings: KeySettings, peer: str, got: ConnectionSettings) -> bool:
    """True if an SSL object with *got* verifies what the key with *settings* and *peer* says.

    *got* is read from the ``SSL*`` (:meth:`Binding.connection_settings`);
    *settings* are the context's values the key's digest was computed from.
    """
    if (got.verify_mode & _VERIFY_MASK) != _VERIFY_BITS.get(settings.verify_mode, -1):
        return False
    minimum = 0 if settings.minimum_version < 0 else settings.minimum_version
    maximum = 0 if settings.maximum_version < 0 else settings.maximum_version
    have = (got.verify_flags, got.host_flags, got.options, got.minimum_version, got.maximum_version)
    want = (settings.verify_flags, settings.host_flags, settings.options, minimum, maximum)
    if have != want:
        return False
    if not settings.check_hostname:
        return got.host is None and got.ip is None
    checked = _checked_name(got)
    return checked is not None and _same_peer(checked, peer)


#: Contexts whose sessions are captured at close, with the reason (logged once each).
_CAPTURE_AT_CLOSE: weakref.WeakKeyDictionary[ssl.SSLContext, str] = weakref.WeakKeyDictionary()


def _ticket_of(handle: SessionHandle) -> bytes:
    # The ticket of a cached session, read through C (b"" when unknown).
    b = available()
    if b is None:
        return b""
    payload = handle.payload
    try:
        if type(payload) is ssl.SSLSession:
            return b.session_ticket(b.session_ptr(payload))
        return payload.ticket if isinstance(payload, NativeSession) else b""
    except (UnsupportedError, UseAfterFreeError, TypeError):
        return b""


def is_fatal(exc: BaseException | None) -> bool:
    """True if *exc* (or its cause) is a TLS error that makes a connection's sessions bad.

    A fatal alert or a protocol error, as opposed to a connection that merely
    ended without close_notify (:class:`ssl.SSLEOFError`), which since TLS 1.1
    does not make its session unresumable (RFC 5246, 7.2.1).
    """
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError))
        exc = exc.__cause__
    return False


def _set_hint(cache: SessionCache, key: Hashable, single_use: bool) -> None:
    hints = cache._client_hints
    if hints.get(key) is single_use:
        return
    hints[key] = single_use
    # Keep the hints bounded by the keys the cache still holds (amortised O(1)).
    if len(hints) > 2 * len(cache) + 64:
        # A snapshot of the keys: other threads may add hints meanwhile.
        for stale in [k for k in list(hints) if k not in cache]:
            hints.pop(stale, None)


_STARTED, _ESTABLISHED, _FAILED, _CLOSED = range(4)


def _made_as_keyed(
    context: ssl.SSLContext,
    key: SessionKey,
    settings: KeySettings,
    tls: ssl.SSLObject | ssl.SSLSocket,
) -> bool:
    # The SSL object just made verifies what *key* says: read from its SSL*
    # where the binding can (see "Deciding from the SSL object itself"), and
    # the context still has the settings of the key's digest.
    b = available()
    if b is not None and b.settings_error is None:
        try:
            got = b.connection_settings(tls)
        except (UnsupportedError, TypeError, ValueError):
            return False
        if not agrees(settings, key.peer, got):
            return False
    return still_current(context, key.digest)


@final
class ClientConnection:
    """The resumption bookkeeping of one client connection (I/O-free).

    Made by :meth:`start`; the adapter then offers ``offered``, runs the
    handshake, and calls :meth:`handshake_complete` (or :meth:`fail`), and
    finally :meth:`close`.
    """

    __slots__ = (
        "_added",
        "_context",
        "_handle",
        "_state",
        "_tls",
        "_watched",
        "cache",
        "key",
        "offered",
        "reused",
        "stored",
    )

    cache: SessionCache | None
    key: SessionKey
    offered: SessionHandle | None
    reused: bool
    stored: bool
    _handle: SessionHandle | None
    _tls: TLSObject | None
    _added: list[weakref.ref[SessionHandle]]
    _context: ssl.SSLContext | None
    _watched: weakref.ref[ssl.SSLObject | ssl.SSLSocket] | None

    def __init__(self, cache: SessionCache | None, key: SessionKey) -> None:
        self.cache = cache
        self.key = key
        self.offered = None
        self.reused = False
        self.stored = False
        self._handle = None
        self._tls = None
        self._state = _STARTED
        # Arrival capture: the SSL object whose new sessions reach _arrived(),
        # and a weak reference to each session this connection put in the cache
        # (removed again if the connection turns out bad; the cache holds the
        # only reference, so a session taken and freed meanwhile just goes).
        self._watched = None
        self._added = []
        # The context of begin(), read again at the end of the handshake.
        self._context = None

    @property
    def handle(self) -> SessionHandle | None:
        """The session in use: the resumed one, or a handle of the one the handshake made.

        None before the handshake and after :meth:`close` or :meth:`fail`. The
        handle of a new session is made on first use, because reading
        ``SSLObject.session`` costs a DER round trip of the session in CPython
        (``_ssl_session_dup()``: i2d + d2i, with the peer's certificate).
        """
        handle = self._handle
        if handle is None and self._state == _ESTABLISHED and self._tls is not None:
            first = self._added[0]() if self._added else None
            handle = None
            if first is not None and not first.freed and not is_single_use(first):
                # TLS 1.2, captured as it arrived: the session in use is in the cache.
                with contextlib.suppress(UseAfterFreeError):  # freed by another thread
                    first.up_ref()
                    handle = first
            if handle is None:
                handle = _capture(self._tls)
            self._handle = handle
        return handle

    @property
    def watching(self) -> bool:
        """True while the connection's new sessions reach the cache as OpenSSL makes them.

        False where sessions are captured at close instead (no binding, a
        context that may also serve, another library's new-session callback).
        """
        return self._watched is not None

    @classmethod
    def start(
        cls, cache: object, context: ssl.SSLContext, peer: str, port: int
    ) -> ClientConnection:
        """Compute the key of a connection about to handshake and find a session to offer.

        *cache* is a ``cache=`` argument: a :class:`~resume.SessionCache`, None
        for the default cache, or False for none. An untrackable *context*
        (see :class:`~resume.UntrackedContextWarning`) gives a connection with
        no cache. Adapters call :meth:`begin`, which calls this at the right
        moment.

        Raises:
            TypeError, ValueError: a bad argument (see :func:`resume.make_key`).
        """
        return cls._start(cache, context, peer, port)[0]

    @classmethod
    def _start(
        cls, cache: object, context: ssl.SSLContext, peer: str, port: int
    ) -> tuple[ClientConnection, KeySettings]:
        resolved = resolve_cache(cache)
        key, trusted, settings = connection_key_and_settings(context, peer, port)
        conn = cls(resolved if trusted else None, key)
        conn._context = context
        if conn.cache is not None:
            timeouts = conn.cache._timeouts
            conn.offered = conn._look_up(conn.cache)
            why.note_lookup(conn.cache, key, conn.offered, timeouts)
        elif resolved is not None:
            why.note_untrackable(resolved, key)
        return conn, settings

    @classmethod
    def begin(
        cls,
        cache: object,
        context: ssl.SSLContext,
        peer: str,
        port: int,
        create: Callable[[], T],
        tls_of: Callable[[T], ssl.SSLObject | ssl.SSLSocket],
    ) -> tuple[ClientConnection, T]:
        """The session boundary: key, choice, SSL object and offer, in one synchronous call.

        Computes the key from *context* as it is now and looks up a session
        (:meth:`start`), calls *create* (which makes the connection's SSL
        object from *context*: ``context.wrap_bio(...)``, ``trio.SSLStream(...)``),
        checks that the SSL object will verify what the key says (read from
        its ``SSL*`` where the binding works) and that *context* did not change
        in between (another thread; on any difference nothing is offered or
        stored), and offers the session on
        ``tls_of(created)`` (``SSL_set_session()``). Call it from the function
        that creates the SSL object, with no ``await`` before it that could
        let the context change: that is what keeps a session made under loose
        settings away from a connection made under strict ones.

        Returns:
            the connection and what *create* returned.

        Raises:
            whatever :meth:`start` or *create* raise; the connection is then
            abandoned (an offer that could not be made is dropped).
        """
        conn, settings = cls._start(cache, context, peer, port)
        try:
            created = create()
        except BaseException:
            conn.abandon()
            raise
        try:
            if conn.cache is not None and not _made_as_keyed(
                context, conn.key, settings, tls_of(created)
            ):
                why.note_changed(conn.cache, conn.key)
                offered, conn.offered, conn.cache = conn.offered, None, None
                if offered is not None:
                    offered.free()
            if conn.offered is not None:
                offer(tls_of(created), conn.offered)
            if conn.cache is not None:
                conn._watch(tls_of(created))
        except BaseException:
            conn.fail()
            raise
        return conn, created

    # -- arrival capture ------------------------------------------------------------

    def _watch(self, tls: ssl.SSLObject | ssl.SSLSocket) -> None:
        # Route the sessions OpenSSL makes on *tls* to _arrived(); where that
        # cannot be, sessions are captured at close instead (logged once per context).
        b = available()
        reason: str | None
        if b is None:
            reason = f"the OpenSSL binding is not available ({refusal()})"
        else:
            try:
                reason = b.watch_new_sessions(tls, self._arrived)
            except (UnsupportedError, TypeError, ValueError) as exc:
                reason = str(exc)
            if reason is None:
                self._watched = weakref.ref(tls)
                return
        context = tls.context
        if context not in _CAPTURE_AT_CLOSE:
            _CAPTURE_AT_CLOSE[context] = reason
            why.logger.info(
                "resume: sessions of this SSLContext are captured when their connection "
                "closes, not as they arrive: %s", reason,
            )

    def _arrived(self, session_ptr: int) -> None:
        # Called by the binding's new-session callback, inside the handshake
        # (TLS 1.2) or the read that processed a NewSessionTicket (TLS 1.3),
        # with the GIL held. *session_ptr* is borrowed: keep a dup.
        cache = self.cache
        watched = self._watched
        tls = None if watched is None else watched()
        if cache is None or tls is None or self._state in (_FAILED, _CLOSED):
            return
        handle = SessionHandle._from_payload(NativeSession.from_borrowed(session_ptr, tls.context))
        try:
            if getattr(handle.payload, "protocol_version", 0) == _TLS1_3:
                if not handle.has_ticket:
                    return
                single_use = not cache.tls13_ticket_reuse
                handle._single_use = single_use
            else:
                if not handle.is_resumable:
                    return
                single_use = False
            _set_hint(cache, self.key, single_use)
            if cache.add(self.key, handle):
                self._added.append(weakref.ref(handle))
                self.stored = True
        finally:
            handle.free()

    def _pick_up_renewal(self, tls: TLSObject, offered: SessionHandle) -> None:
        # TLS 1.2, resumed: a ticket the server renewed is only visible on the
        # connection (OpenSSL makes no new-session callback for it). Replace
        # the offered session with it.
        cache = self.cache
        b = available()
        if cache is None or b is None or not isinstance(tls, (ssl.SSLObject, ssl.SSLSocket)):
            return
        fresh = b.connection_ticket(tls)
        if not fresh or fresh == _ticket_of(offered):
            return
        payload = NativeSession.from_connection(tls)
        if payload is None:
            return
        handle = SessionHandle._from_payload(payload)
        cache.remove(self.key, offered)
        if cache.add(self.key, handle):
            self._added.append(weakref.ref(handle))
            self.stored = True
        handle.free()

    def _forget_added(self, *, remove: bool) -> None:
        # Stop watching; with *remove*, take what this connection added out of
        # the cache again (the connection went bad).
        added, self._added = self._added, []
        watched, self._watched = self._watched, None
        tls = None if watched is None else watched()
        if tls is not None:
            b = available()
            if b is not None:
                b.unwatch_new_sessions(tls)
        cache = self.cache
        if remove and cache is not None and added:
            for ref in added:
                handle = ref()
                if handle is not None:
                    cache.remove(self.key, handle)  # a no-op once it left the cache
            self.stored = False

    def _look_up(self, cache: SessionCache) -> SessionHandle | None:
        key = self.key
        reuse = cache.tls13_ticket_reuse
        if not reuse and cache._client_hints.get(key):
            return cache.take(key)
        handle = cache.get1(key)
        if handle is not None and not reuse and is_single_use(handle):
            # A ticket under a key last fed a TLS 1.2 session: never lend it twice.
            cache.remove(key, handle)
        return handle

    # -- after the handshake ------------------------------------------------------

    def handshake_complete(self, tls: TLSObject) -> None:
        """Record the outcome of a finished handshake; drop an offer the server declined.

        Raises:
            RuntimeError: called twice, or after :meth:`fail` or :meth:`close`.
        """
        if self._state != _STARTED:
            raise RuntimeError("handshake_complete() called out of order")
        self._state = _ESTABLISHED
        self._tls = tls
        offered = self.offered
        why.note_outcome(self.cache, self.key, offered is not None, tls.session_reused)
        if offered is not None and tls.session_reused:
            self.reused = True
            self._handle = offered
            if self._watched is not None and tls.version() != "TLSv1.3":
                self._pick_up_renewal(tls, offered)
            self._check_unchanged()
            return
        self.reused = False
        if offered is not None:
            self.offered = None
            self._drop(offered)
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        # The SSL object shares its context's trust store (X509_STORE): a CA
        # loaded while the handshake was in flight reached its verification,
        # while the key was computed before. Contexts alike share keys, so such
        # a session must belong to no key: if the context's digest is no longer
        # the key's, the connection keeps nothing and drops its offer.
        context = self._context
        if (
            self.cache is not None
            and context is not None
            and not still_current(context, self.key.digest)
        ):
            self.fail()

    def _drop(self, handle: SessionHandle) -> None:
        # Remove *handle* from the cache (if it is still there) and free our reference.
        cache = self.cache
        if cache is not None and handle.owner is cache:
            cache.remove(self.key, handle)
        handle.free()

    def fail(self) -> None:
        """The handshake or a post-handshake check failed: keep nothing, drop the offer.

        Idempotent; also safe after :meth:`close`.
        """
        if self._state in (_FAILED, _CLOSED):
            return
        self._state = _FAILED
        offered, handle = self.offered, self._handle
        self.offered = self._handle = self._tls = None
        self._forget_added(remove=True)
        if offered is not None:
            self._drop(offered)
        if handle is not None and handle is not offered:
            handle.free()

    def abandon(self) -> None:
        """The handshake never started (the connection failed): free, keep the cache as is.

        A TLS 1.2 session stays in the cache; a TLS 1.3 ticket taken for this
        connection is dropped (it may have been sent). Idempotent.
        """
        if self._state in (_FAILED, _CLOSED):
            return
        self._state = _CLOSED
        self._forget_added(remove=True)
        offered, self.offered = self.offered, None
        if offered is not None:
            offered.free()

    # -- at close -----------------------------------------------------------------

    def close(self, tls: TLSObject | None, *, clean: bool) -> bool:
        """Finish the connection; on a clean close, store its session. Return True if stored.

        *clean* means the application closed the connection and no error, cut
        or cancellation was seen on it. Frees the connection's reference to
        :attr:`handle`. Idempotent.
        """
        state = self._state
        if state == _CLOSED:
            return False
        self._state = _CLOSED
        offered, handle = self.offered, self._handle
        self.offered = self._handle = self._tls = None
        watching = self._watched is not None
        try:
            if watching:
                # Captured as they arrived. A connection that ends without
                # close_notify after a verified handshake keeps them; one that
                # never completed its handshake does not.
                self._forget_added(remove=state != _ESTABLISHED)
            elif clean and state == _ESTABLISHED and tls is not None and self.cache is not None:
                self.stored = self._store(self.cache, tls, offered, handle)
        finally:
            if handle is not None:
                handle.free()
            if offered is not None and offered is not handle:
                offered.free()
        return self.stored

    def _store(
        self,
        cache: SessionCache,
        tls: TLSObject,
        offered: SessionHandle | None,
        handle: SessionHandle | None,
    ) -> bool:
        if tls.version() == "TLSv1.3":
            fresh = _capture(tls)
            if fresh is None:
                return False
            try:
                if not fresh.has_ticket:
                    return False  # no ticket arrived: the client never read after the handshake
                if offered is not None and fresh.id == offered.id:
                    return False  # no fresh ticket; the offered one is spent
                fresh._single_use = True
                _set_hint(cache, self.key, True)
                return cache.add(self.key, fresh)
            finally:
                fresh.free()
        if self.reused:
            # The session stays in the cache. (A ticket the server renewed during
            # a resumed TLS 1.2 handshake is not picked up: reading it costs a DER
            # round trip per connection, and the old ticket keeps working until
            # the server declines it, which drops it.)
            return False
        if handle is not None:
            # TLS 1.2 has no post-handshake tickets: the session read earlier is final.
            if not handle.is_resumable:
                return False
            _set_hint(cache, self.key, False)
            return cache.add(self.key, handle)
        fresh = _capture(tls)
        if fresh is None:
            return False
        try:
            if not fresh.is_resumable:
                return False
            _set_hint(cache, self.key, False)
            return cache.add(self.key, fresh)
        finally:
            fresh.free()

    @property
    def established(self) -> bool:
        """True between a completed handshake and close()."""
        return self._state == _ESTABLISHED
