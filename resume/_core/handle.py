# Theory of operation: the session handle
# =======================================
#
# OpenSSL keeps every TLS session in an ``SSL_SESSION`` with a reference count.
# ``SSL_SESSION_new()`` and ``SSL_SESSION_dup()`` make one with a count of 1,
# ``SSL_SESSION_up_ref()`` adds a reference, ``SSL_SESSION_free()`` drops one and
# frees the structure when the count reaches 0. The session cache of an
# ``SSL_CTX`` holds one reference to each session in it and is the session's
# *owner*; ``SSL_get1_session()`` hands the caller a new reference that the caller
# must free, ``SSL_get0_session()`` only lends the pointer.
#
# The mistakes are silent in C: a free too many leaves a dangling pointer in the
# cache list that crashes much later (SSL_SESSION_free(3), NOTES); a free too few
# leaks. :class:`SessionHandle` keeps the same counting rules but checks them at
# every call:
#
# * ``free()`` on a freed handle raises :class:`DoubleFreeError`; so does a free
#   that would consume the reference a cache still owns (the "borrowed with get0
#   and then freed" bug), and the count is left as it was.
# * every other use of a freed handle raises :class:`UseAfterFreeError`.
# * a handle garbage-collected while references remain emits a
#   :class:`ResourceWarning` naming the line that created it (and, like an
#   unclosed file, the ``tracemalloc`` traceback when tracing is on).
#
# The payload is duck-typed: an :class:`ssl.SSLSession`, an empty placeholder for
# ``SessionHandle.new()``, or a native session imported from DER by the OpenSSL
# binding. Anything with ``id``, ``time``, ``timeout``, ``ticket_lifetime_hint``
# and ``has_ticket`` attributes works; if it has a ``release()`` method it is
# called when the last reference goes (the DER-born sessions use that to call
# ``SSL_SESSION_free`` on their C pointer).
#
# Counting is thread-safe: one module-wide lock guards every change of a count.
# A lock per handle would cost ~60 bytes per cached session for no gain (the GIL
# serialises the few bytecodes inside the lock anyway; the lock only makes the
# read-modify-write atomic).
#
# The handle also carries three slots that belong to the cache that owns it
# (``_owner``, ``_key``, ``_expires``): a session has at most one owner, as in
# OpenSSL, and keeping the entry data on the handle saves an entry object per
# cached session. Only resume._core.cache touches them. A fourth slot,
# ``_single_use``, belongs to the client policy (resume._core.policy): True for a
# TLS 1.3 ticket that must be offered once (RFC 8446, C.4).
from __future__ import annotations

import ssl
import sys
import threading
import time as _time
import warnings
from typing import TYPE_CHECKING, Any, Protocol, final

from .errors import DoubleFreeError, UseAfterFreeError

if TYPE_CHECKING:
    import weakref

    from .cache import SessionCache

__all__ = ["SessionHandle", "SessionPayload", "session_free"]

_REFLOCK = threading.Lock()

#: OpenSSL's ``SSL_SESSION_new()`` gives a new session a 304 s timeout
#: ("5 minute timeout by default", plus 4 s).
_NEW_SESSION_TIMEOUT = 304


class SessionPayload(Protocol):
    """What a :class:`SessionHandle` needs from the session it holds.

    :class:`ssl.SSLSession` satisfies it; so do the empty placeholder of
    :meth:`SessionHandle.new` and the sessions imported from DER.
    """

    @property
    def id(self) -> bytes:
        """The session id."""
        ...

    @property
    def time(self) -> int:
        """When the session was established, in seconds since the epoch."""
        ...

    @property
    def timeout(self) -> int:
        """The session's lifetime in seconds from :attr:`time`."""
        ...

    @property
    def ticket_lifetime_hint(self) -> int:
        """The ticket lifetime hint in seconds (0 without a ticket)."""
        ...

    @property
    def has_ticket(self) -> bool:
        """Whether the session carries a session ticket."""
        ...


@final
class _EmptySession:
    """The payload of :meth:`SessionHandle.new`: no TLS session, not resumable."""

    __slots__ = ("time",)
    id = b""
    timeout = _NEW_SESSION_TIMEOUT
    ticket_lifetime_hint = 0
    has_ticket = False

    def __init__(self) -> None:
        self.time = int(_time.time())


def _creation_site() -> tuple[str, int]:
    # The first frame outside this package's private modules: the caller's own
    # line, however deep or shallow the stack is (a module's top level, in a
    # script, ``python -c`` or the REPL, is the bottom frame). No fixed depth:
    # constructors reach here through one frame or three, and a fixed depth
    # past the bottom of the stack raised ValueError (issue 18, finding 9).
    getframe = getattr(sys, "_getframe", None)
    if getframe is None:  # pragma: no cover - Pythons without frame access
        return "<unknown>", 0
    frame = getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "resume._"
    ):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno


@final
class SessionHandle:
    """One TLS session and its reference count.

    A handle mirrors an OpenSSL ``SSL_SESSION``: it is created with one
    reference (:meth:`new`, :meth:`from_ssl`, :meth:`dup`), gains references with
    :meth:`up_ref` and loses them with :meth:`free`; when the last one goes it
    drops the session it held and is *freed*. Unlike C, every misuse raises at
    the faulty call: see :class:`~resume.DoubleFreeError` and
    :class:`~resume.UseAfterFreeError`.

    Create handles with the class methods, not by calling the class.

    See the generated man page :doc:`/manpages/SSL_SESSION_free`.
    """

    __slots__ = (
        "__weakref__",
        "_der",
        "_expires",
        "_key",
        "_owner",
        "_refcount",
        "_session",
        "_single_use",
        "_site",
    )

    _session: SessionPayload | None
    _refcount: int
    _owner: weakref.ref[SessionCache] | None
    _key: object
    _expires: float
    _der: bytearray | None
    _single_use: bool
    _site: tuple[str, int]

    def __init__(
        self,
        _payload: SessionPayload,
        _der: bytearray | None = None,
        _site: tuple[str, int] | None = None,
    ) -> None:
        # Everything that can fail comes first: a handle exists (and can be
        # reported as leaked) only once it is complete.
        self._site = _creation_site() if _site is None else _site
        self._session = _payload
        self._owner = None
        self._key = None
        self._expires = 0.0
        self._der = _der
        self._single_use = False
        self._refcount = 1

    # -- constructors -------------------------------------------------------------

    @classmethod
    def new(cls) -> SessionHandle:
        """Make an empty handle: no TLS session inside, not resumable, one reference.

        Mirrors ``SSL_SESSION_new()``, which returns a fresh structure with a
        reference count of 1, its time set to now and a 304 second timeout.
        """
        return cls(_EmptySession())

    @classmethod
    def from_ssl(cls, session: ssl.SSLSession) -> SessionHandle:
        """Wrap a real :class:`ssl.SSLSession` in a handle with one reference.

        The session is what :attr:`ssl.SSLSocket.session` or
        :attr:`ssl.SSLObject.session` returned (``SSL_get1_session()``).

        Raises:
            TypeError: *session* is not an :class:`ssl.SSLSession`.
        """
        if not isinstance(session, ssl.SSLSession):
            raise TypeError(
                f"SessionHandle.from_ssl() needs an ssl.SSLSession, got {type(session).__name__}"
            )
        return cls(session)

    @classmethod
    def _from_payload(cls, payload: SessionPayload, der: bytearray | None = None) -> SessionHandle:
        # For the OpenSSL binding: wrap a native session (one C reference).
        return cls(payload, der)

    @classmethod
    def from_der(cls, data: bytes | bytearray | memoryview) -> SessionHandle:
        """Import a session exported by :meth:`to_der` into a new handle with one reference.

        Mirrors ``d2i_SSL_SESSION()``. The handle owns the one C ``SSL_SESSION``
        reference that ``d2i`` made; it is released (``SSL_SESSION_free()``) after
        the handle's last :meth:`free`. Offer the handle like any other (the
        adapters call ``SSL_set_session()``); offer it only with the same
        verification settings and to the same server it came from, since a DER
        session does not record its :class:`ssl.SSLContext`.

        See the generated man page :doc:`/manpages/d2i_SSL_SESSION`.

        Raises:
            TypeError: *data* is not bytes-like.
            SessionDecodeError: *data* is empty, oversized, truncated, corrupted,
                has trailing bytes, or decodes to a session that cannot resume
                (a :class:`ValueError`).
            UnsupportedError: this Python build does not allow the OpenSSL binding.
        """
        from .._openssl.native import NativeSession

        payload = NativeSession.from_der(data)
        return cls._from_payload(payload, bytearray(data))

    def to_der(self) -> bytes:
        """Return the session encoded as DER bytes, for :meth:`from_der` in another process.

        Mirrors ``i2d_SSL_SESSION()``. The bytes hold the session's master secret:
        store them encrypted or with the care of a private key. They are cached
        in the handle and wiped when it is freed.

        See the generated man page :doc:`/manpages/d2i_SSL_SESSION`.

        Raises:
            UseAfterFreeError: the handle is freed.
            ValueError: the handle holds no TLS session (:meth:`new`), or OpenSSL
                cannot encode it.
            UnsupportedError: this Python build does not allow the OpenSSL binding.
        """
        session = self._live("to_der()")
        if self._der is not None:
            return bytes(self._der)
        if isinstance(session, ssl.SSLSession):
            from .._openssl.binding import binding

            b = binding()
            der = b.i2d(b.session_ptr(session))
        elif hasattr(session, "to_der"):
            der = session.to_der()
        else:
            raise ValueError(f"{self!r} holds no TLS session to export")
        self._der = bytearray(der)
        return der

    # -- reference counting -------------------------------------------------------

    def dup(self) -> SessionHandle:
        """Return a copy of this session in a new handle with one reference.

        Mirrors ``SSL_SESSION_dup()``: the copy is owned by no cache, even when
        this handle is in one, and this handle is unchanged. An
        :class:`ssl.SSLSession` is immutable from Python, so the copy shares it;
        serialized bytes, if any, are copied.

        Raises:
            UseAfterFreeError: the handle is freed.
        """
        session = self._live("dup()")
        # The copy is made last, by a constructor that cannot fail half-way:
        # nothing can leave a half-made copy behind with a reference to leak.
        site = _creation_site()
        der = bytearray(self._der) if self._der is not None else None
        return SessionHandle(session, der, site)

    def up_ref(self) -> int:
        """Add a reference; return 1, the success value of ``SSL_SESSION_up_ref()``.

        Each reference added must be dropped later with :meth:`free`.

        Raises:
            UseAfterFreeError: the handle is freed (its count already reached 0).
        """
        _REFLOCK.acquire()  # not "with": explicit calls cost half as much here
        try:
            if self._refcount <= 0:
                raise UseAfterFreeError(self._freed_message("up_ref()"))
            self._refcount += 1
        finally:
            _REFLOCK.release()
        return 1

    def free(self) -> None:
        """Drop one reference; at zero, release the session and mark the handle freed.

        Mirrors ``SSL_SESSION_free()``. When the count reaches 0 the handle drops
        its :class:`ssl.SSLSession` (or releases the native session it owns) and
        wipes any serialized bytes it kept.

        Raises:
            DoubleFreeError: the handle is already freed, or the only reference
                left is the one a :class:`~resume.SessionCache` owns (a borrowed
                reference from :meth:`~resume.SessionCache.get0` was freed). The
                count is not changed.
        """
        _REFLOCK.acquire()
        try:
            count = self._refcount
            if count <= 0:
                raise DoubleFreeError(
                    f"free() called on a session handle that is already freed "
                    f"(created at {self._site_text()}). Each reference is freed once: "
                    f"free() only what new(), from_ssl(), dup(), up_ref(), get1() or "
                    f"take() gave you."
                )
            if count == 1 and self._owner is not None:
                raise DoubleFreeError(
                    f"free() would drop the reference that {self._owner_repr()} owns "
                    f"(handle created at {self._site_text()}). A handle from get0() is "
                    f"borrowed: do not free it; use get1() for a reference of your own."
                )
            self._refcount = count - 1
        finally:
            _REFLOCK.release()
        if count == 1:
            self._release()

    def _cache_release(self) -> None:
        # The owning cache drops its reference (the handle left the cache).
        _REFLOCK.acquire()
        try:
            self._owner = None
            count = self._refcount
            self._refcount = count - 1
        finally:
            _REFLOCK.release()
        if count == 1:
            self._release()

    def _release(self) -> None:
        session = self._session
        self._session = None
        der = self._der
        if der is not None:
            der[:] = bytes(len(der))
            self._der = None
        release = getattr(session, "release", None)
        if release is not None:
            release()

    # -- state --------------------------------------------------------------------

    @property
    def refcount(self) -> int:
        """The number of references held (0 once freed)."""
        return self._refcount

    @property
    def freed(self) -> bool:
        """True once the last reference is gone."""
        return self._refcount <= 0

    @property
    def owner(self) -> SessionCache | None:
        """The :class:`~resume.SessionCache` that holds this handle, or None."""
        self._live("owner")
        ref = self._owner
        return None if ref is None else ref()

    @property
    def ssl_session(self) -> ssl.SSLSession | None:
        """The :class:`ssl.SSLSession` inside, or None for an empty or native handle.

        Pass it as ``session=`` to :meth:`ssl.SSLContext.wrap_socket` or set it on
        an :class:`ssl.SSLObject` before the handshake to offer it
        (``SSL_set_session()``).
        """
        session = self._live("ssl_session")
        return session if isinstance(session, ssl.SSLSession) else None

    @property
    def payload(self) -> SessionPayload:
        """The session object inside (an :class:`ssl.SSLSession` for real sessions)."""
        return self._live("payload")

    @property
    def is_resumable(self) -> bool:
        """Whether the session can be offered for resumption.

        Mirrors ``SSL_SESSION_is_resumable()``: true when the session has a
        session id or a ticket. A TLS 1.3 client session read before the server's
        tickets arrived is not resumable (SSL_get_session(3)).
        """
        session = self._live("is_resumable")
        return bool(session.has_ticket or session.id)

    @property
    def id(self) -> bytes:
        """The session id (``SSL_SESSION_get_id()``); empty for an empty handle."""
        return self._live("id").id

    @property
    def time(self) -> int:
        """When the session was established, in epoch seconds (``SSL_SESSION_get_time()``)."""
        return self._live("time").time

    @property
    def timeout(self) -> int:
        """The session's lifetime in seconds from :attr:`time` (``SSL_SESSION_get_timeout()``)."""
        return self._live("timeout").timeout

    @property
    def ticket_lifetime_hint(self) -> int:
        """The ticket lifetime hint in seconds (``SSL_SESSION_get_ticket_lifetime_hint()``)."""
        return self._live("ticket_lifetime_hint").ticket_lifetime_hint

    @property
    def has_ticket(self) -> bool:
        """Whether the session carries a session ticket (``SSL_SESSION_has_ticket()``)."""
        return self._live("has_ticket").has_ticket

    def _live(self, what: str) -> SessionPayload:
        session = self._session
        if session is None:
            raise UseAfterFreeError(self._freed_message(what))
        return session

    # -- diagnostics --------------------------------------------------------------

    def _site_text(self) -> str:
        filename, lineno = self._site
        return f"{filename}:{lineno}"

    def _owner_repr(self) -> str:
        ref = self._owner
        cache = None if ref is None else ref()
        return "a session cache" if cache is None else repr(cache)

    def _freed_message(self, what: str) -> str:
        return (
            f"{what} used on a freed session handle (created at {self._site_text()}): "
            f"its last reference was freed. Keep a reference (up_ref() or get1()) for "
            f"as long as you use a handle, and free it after the last use."
        )

    def __repr__(self) -> str:
        if self._session is None:
            return f"<resume.SessionHandle freed, created at {self._site_text()}>"
        kind = (
            "ssl" if isinstance(self._session, ssl.SSLSession)
            else "empty" if isinstance(self._session, _EmptySession)
            else "native"
        )
        owned = " cached" if self._owner is not None else ""
        return f"<resume.SessionHandle {kind} refcount={self._refcount}{owned}>"

    def __del__(self) -> None:
        # A handle collected with references left is a leak in C. Report it the
        # way an unclosed file is reported: a ResourceWarning, with source=self so
        # that the warnings module adds the tracemalloc traceback when tracing.
        try:
            count = self._refcount
            owner = self._owner
            if owner is not None and owner() is None:
                # The cache that owned one reference died in the same garbage
                # collection (a cycle held both; the order of finalizers is
                # arbitrary): its reference is not a leak.
                count -= 1
            if count > 0:
                warnings.warn(
                    f"session handle created at {self._site_text()} was garbage-collected "
                    f"with {count} reference(s) never freed; call free() once for "
                    f"each reference you took (new, from_ssl, dup, up_ref, get1, take)",
                    ResourceWarning,
                    stacklevel=2,
                    source=self,
                )
        except AttributeError:  # pragma: no cover - half-built instance
            pass

    def __reduce__(self) -> Any:
        raise TypeError(
            "a SessionHandle cannot be pickled: it holds a live TLS session and a "
            "reference count; export the session with to_der() instead"
        )


def session_free(handle: SessionHandle | None) -> None:
    """Drop one reference of *handle*, as ``SSL_SESSION_free()`` does; None is ignored.

    ``session_free(h)`` is ``h.free()``; ``session_free(None)`` does nothing, the
    ``SSL_SESSION_free(NULL)`` rule.

    Raises:
        DoubleFreeError: see :meth:`SessionHandle.free`.
    """
    if handle is not None:
        handle.free()


SessionHandle.__module__ = "resume"
session_free.__module__ = "resume"
SessionPayload.__module__ = "resume"
