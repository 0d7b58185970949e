# Theory of operation: native sessions (born from DER or from a connection)
# ==========================================================================
#
# ``ssl`` cannot build an :class:`ssl.SSLSession` from bytes, so a session
# imported with ``d2i_SSL_SESSION()`` stays a bare C ``SSL_SESSION*``. A
# :class:`NativeSession` is the Python object that owns ONE C reference to it
# and is the payload of the :class:`~resume.SessionHandle` that
# :meth:`~resume.SessionHandle.from_der` returns. Its properties are read
# through C (``SSL_SESSION_get_id()``, ...), and :meth:`NativeSession.offer`
# calls ``SSL_set_session()`` on a connection before its handshake, which is
# what :func:`resume._core.offer.offer` uses for non-``ssl`` payloads.
#
# The native path. A client connection's session is captured the same way:
# :meth:`NativeSession.from_connection` calls ``SSL_get1_session()`` on the
# connection's ``SSL*`` and owns the reference it returns. That is what the
# policy (resume._core.policy) does wherever the binding is supported, instead
# of reading ``SSLObject.session``: CPython's getter encodes the session to DER
# and decodes it again (about 250 us with the peer's certificate) and, until
# gh-116810 was fixed, leaked a reference on every read (about 6.5 KB per TLS
# 1.3 connection). The captured reference is then copied with
# ``SSL_SESSION_dup()`` (a struct copy that takes references to the
# certificates; no encoding) and dropped, because the connection's own session
# does not stay usable: when an ``SSL`` is freed without having sent
# close_notify (a cut, or ``https_compatible`` closing the transport only),
# ``SSL_free()`` marks its session not resumable (``ssl_clear_bad_session()``),
# which would silently spoil a session already cached from it. CPython's getter
# copies for the same reason. A captured session remembers the ``ssl.SSLContext`` of its
# connection and, like ``ssl``'s own setter, refuses to be offered on a
# connection of another context ("Session refers to a different SSLContext"),
# unless both contexts were tracked by resume from birth: those share cache
# keys when configured alike (resume._core.key, "Context identity"), and this
# offer is how their sessions cross SSL_CTX objects. It remembers the context
# weakly, with whether it was tracked from birth: a cached session must not
# keep its connection's context alive (with a context per HTTP transport,
# that would be one CA store, most of a megabyte, per cached session's
# transport, long after the transport is gone). A DER-born session records
# no context (see below).
#
# When is the C reference dropped? The handle calls :meth:`release` when its
# last reference goes. But :meth:`SessionHandle.dup` shares the payload object
# between the original and the copy (an ``ssl.SSLSession`` is immutable, so
# sharing is right there), so a payload cannot assume that the first
# ``release()`` is the last user. The C reference is therefore tied to the
# payload object's own life: ``release()`` marks it released by a handle, and
# ``SSL_SESSION_free()`` runs exactly once, when the last Python reference to
# the payload goes (CPython frees it at once, by reference counting: in
# practice at the last handle's ``free()``). Freeing earlier would leave a
# ``dup()`` copy pointing at freed C memory; this way no Python object can ever
# reach a freed ``SSL_SESSION``.
#
# Sessions of another SSLContext: ``ssl`` refuses to set an ``SSLSession`` made
# by another context; ``SSL_set_session()`` through C cannot check, because a
# DER session does not record its context. OpenSSL itself checks only that the
# session's protocol version is enabled and that the server agrees to resume
# (same cipher, SNI, and for TLS 1.2 the session id context). What it cannot
# know is that the session's peer certificate was verified under *this*
# context's rules: a resumed handshake does not verify a certificate again. So a
# session must only be offered on a context with the same trust store and
# verification settings, to the same server name and port it came from; the
# client's session keys (resume's rules for what may be resumed where) enforce
# that for normal use.
from __future__ import annotations

import ssl
import weakref
from typing import NoReturn, final

from .._core.errors import UseAfterFreeError
from .._core.key import tracked_from_birth
from .binding import Binding, binding

__all__ = ["NativeSession"]


@final
class NativeSession:
    """A TLS session owned as a C ``SSL_SESSION*`` (one reference), read through C.

    Made by :meth:`~resume.SessionHandle.from_der`; use it through its handle.
    """

    __slots__ = ("__weakref__", "_binding", "_born", "_context", "_ptr", "_released")

    _ptr: int
    _binding: Binding
    _context: weakref.ref[ssl.SSLContext] | None
    _born: bool

    def __init__(
        self, _binding: Binding, _ptr: int, _context: ssl.SSLContext | None = None
    ) -> None:
        # Takes over one C reference of *_ptr*; remembers *_context* weakly.
        self._binding = _binding
        self._ptr = _ptr
        self._context = None if _context is None else weakref.ref(_context)
        self._born = _context is not None and tracked_from_birth(_context)
        self._released = False

    @classmethod
    def from_connection(cls, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> NativeSession | None:
        """Capture the connection's current session (``SSL_get1_session()``), or None.

        The new object owns a private copy (``SSL_SESSION_dup()``) of the
        session ``SSL_get1_session()`` returned (whose reference is dropped),
        and remembers the connection's context: it can only be offered on
        connections of that same context, as an :class:`ssl.SSLSession`.

        Raises:
            UnsupportedError: the binding is not available on this build, or the
                object's layout does not check out.
            TypeError: *ssl_object* is not an SSL object.
        """
        b = binding()
        ptr = b.get1_session(ssl_object)
        if not ptr:
            return None
        try:
            # A private copy: see "The native path" at the top.
            copy = b.session_dup(ptr)
        finally:
            b.session_free(ptr)
        return cls(b, copy, ssl_object.context)

    @classmethod
    def from_borrowed(cls, ptr: int, context: ssl.SSLContext | None) -> NativeSession:
        """Own a private copy (``SSL_SESSION_dup()``) of the borrowed session at *ptr*.

        For the sessions OpenSSL hands to the new-session callback
        (:meth:`Binding.watch_new_sessions`), which it frees after the call.

        Raises:
            UnsupportedError: the binding is not available on this build.
        """
        b = binding()
        return cls(b, b.session_dup(ptr), context)

    @classmethod
    def from_der(cls, data: bytes | bytearray | memoryview) -> NativeSession:
        """Decode *data* with ``d2i_SSL_SESSION()`` (see :meth:`Binding.d2i`).

        Raises:
            UnsupportedError: the binding is not available on this build.
            SessionDecodeError: the bytes are not exactly one sane session.
        """
        b = binding()
        return cls(b, b.d2i(data))

    def _live(self) -> int:
        ptr = self._ptr
        if not ptr:
            raise UseAfterFreeError("this native session's C reference was freed")
        return ptr

    @property
    def id(self) -> bytes:
        """``SSL_SESSION_get_id()``."""
        return self._binding.session_id(self._live())

    @property
    def time(self) -> int:
        """``SSL_SESSION_get_time()``."""
        return self._binding.session_time(self._live())

    @property
    def timeout(self) -> int:
        """``SSL_SESSION_get_timeout()``."""
        return self._binding.session_timeout(self._live())

    @property
    def ticket_lifetime_hint(self) -> int:
        """``SSL_SESSION_get_ticket_lifetime_hint()``."""
        return self._binding.session_ticket_lifetime_hint(self._live())

    @property
    def has_ticket(self) -> bool:
        """``SSL_SESSION_has_ticket()``."""
        return self._binding.session_has_ticket(self._live())

    @property
    def ticket(self) -> bytes:
        """``SSL_SESSION_get0_ticket()``: the ticket bytes (b"" for none)."""
        return self._binding.session_ticket(self._live())

    @property
    def protocol_version(self) -> int:
        """``SSL_SESSION_get_protocol_version()``: 0x0303 for TLS 1.2, 0x0304 for TLS 1.3."""
        return self._binding.session_protocol_version(self._live())

    @property
    def released(self) -> bool:
        """True once a handle released this payload (its last reference went)."""
        return self._released

    def to_der(self) -> bytes:
        """``i2d_SSL_SESSION()``: the session as DER bytes (they hold the master secret)."""
        return self._binding.i2d(self._live())

    def dup(self) -> NativeSession:
        """``SSL_SESSION_dup()``: a deep copy owning its own C reference."""
        copy = NativeSession(self._binding, self._binding.session_dup(self._live()))
        copy._context, copy._born = self._context, self._born
        return copy

    def offer(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> None:
        """Offer this session on *ssl_object* before its handshake (``SSL_set_session()``).

        The connection takes its own C reference; this object keeps its own.
        The session is not checked against the connection's context (a DER
        session does not record it): offer it only on a context with the same
        verification settings, to the same server, as the one it came from.

        A session captured from a connection (:meth:`from_connection`) is only
        offered on a connection of the same :class:`ssl.SSLContext`, the check
        ``ssl`` makes when ``SSLObject.session`` is set, or of another context
        that resume tracked from birth as it did the first
        (``resume._core.key.tracked_from_birth()``): such contexts share cache
        keys when configured alike, and this is how their sessions flow.

        Raises:
            ValueError: *ssl_object* is server-side or its handshake has started;
                an unconnected :class:`ssl.SSLSocket`; a captured session and a
                connection of another context.
            UnsupportedError: the object's layout does not check out.
        """
        origin = self._context
        if origin is not None:
            target = ssl_object.context
            if origin() is not target and not (self._born and tracked_from_birth(target)):
                raise ValueError("Session refers to a different SSLContext.")
        self._binding.set_session(ssl_object, self._live())

    def release(self) -> None:
        """Called by the handle when its last reference goes.

        The C reference itself is dropped (``SSL_SESSION_free()``, exactly once)
        when the last Python reference to this object goes, so that a handle copy
        sharing it never sees freed memory (see the module comment).
        """
        self._released = True

    def _free_now(self) -> None:
        ptr = self._ptr
        if ptr:
            self._ptr = 0
            self._binding.session_free(ptr)

    def __del__(self) -> None:
        # No module globals here: at interpreter exit they may be gone already.
        if getattr(self, "_ptr", 0):  # a half-built instance has no _ptr
            self._free_now()

    def __repr__(self) -> str:
        state = "freed" if not self._ptr else "live"
        return f"<resume NativeSession {state}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a native session cannot be pickled; export it with to_der()")
