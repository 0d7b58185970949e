# The exception hierarchy of ``resume``, in one place so that every layer
# (core, binding, adapters, stores) raises the same types.
#
# C reports a double free or a use after free late, if ever: a crash far from the
# bug, or a corrupted cache list found during SSL_CTX_flush_sessions(). Python
# reports them at once, at the faulty call, with where the handle was made.
from __future__ import annotations

__all__ = [
    "DoubleFreeError",
    "ResumeError",
    "SessionDecodeError",
    "SessionError",
    "StoreError",
    "UnsupportedError",
    "UntrackedContextWarning",
    "UseAfterFreeError",
]


class ResumeError(Exception):
    """Base class of every exception that :mod:`resume` raises on purpose."""


class SessionError(ResumeError):
    """A session handle or cache was used against its reference-counting rules.

    The subclasses say which rule; the message says what happened and what to do.
    """


class DoubleFreeError(SessionError):
    """:meth:`~resume.SessionHandle.free` dropped a reference that was not there.

    Raised when a handle that is already freed is freed again, and when a free
    would drop the reference that a :class:`~resume.SessionCache` still owns
    (a reference borrowed with :meth:`~resume.SessionCache.get0` must not be
    freed). In C the same mistake (``SSL_SESSION_free()`` once too often) corrupts
    memory and shows up later, if at all.
    """


class UseAfterFreeError(SessionError):
    """A freed :class:`~resume.SessionHandle` was used.

    Every operation but :attr:`~resume.SessionHandle.freed` and
    :attr:`~resume.SessionHandle.refcount` raises it once the last reference is gone.
    """


class UnsupportedError(ResumeError):
    """This Python build does not allow the requested operation.

    Raised by the features that need the OpenSSL library behind :mod:`ssl`
    directly (DER export and import, ticket keys) when the capability probe finds
    that the layout of this build is not the one it knows. The rest of
    :mod:`resume` keeps working.
    """


class SessionDecodeError(ResumeError, ValueError):
    """Bytes given to :meth:`~resume.SessionHandle.from_der` are not a usable session.

    Raised for empty, truncated, corrupted, oversized or trailing-garbage input,
    for DER that ``d2i_SSL_SESSION()`` rejects, and for a decoded session that
    fails the sanity checks (unknown protocol version, no master key, not
    resumable). It is a :class:`ValueError`, so code that treats every bad input
    alike can catch that. The message never contains session bytes.
    """


class StoreError(ResumeError):
    """A session store could not complete an operation (for example, it is down)."""


class UntrackedContextWarning(UserWarning):
    """resume cannot know the full state of an :class:`ssl.SSLContext`: no resumption with it.

    Emitted once per context, with the reason: a tracking wrapper was removed
    or replaced (``del ctx.load_cert_chain``), a tracked method had been
    replaced before resume first saw the context, an NPN list was set before
    it, or (when the context is registered for a store) a client certificate
    was loaded before resume first saw it. Such a context's connections never
    offer a session and never store one, in memory or in a store: a full
    handshake every time. Create client contexts with
    :func:`~resume.create_client_context` to avoid it.
    """


for _cls in (ResumeError, SessionError, DoubleFreeError, UseAfterFreeError,
             UnsupportedError, SessionDecodeError, StoreError, UntrackedContextWarning):
    _cls.__module__ = "resume"
del _cls
