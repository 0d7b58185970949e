# Theory of operation: the I/O-free half of the TLS servers
# =========================================================
#
# Both server adapters (:mod:`resume._adapters.trio_server` and
# :mod:`resume._adapters.asyncio_server`) share everything here; nothing in this module
# imports trio or asyncio or awaits.
#
# Resumption on the server side needs no code of ours: OpenSSL keeps an internal
# session cache in every server ``SSL_CTX`` (TLS 1.2 session ids) and issues
# session tickets (TLS 1.2 ``SessionTicket`` and TLS 1.3 ``NewSessionTicket``)
# sealed with a per-context random key. What a server can get wrong is the
# configuration around it:
#
# * *Session id context.* OpenSSL refuses to resume a session on a context that
#   verifies client certificates unless a session id context is set
#   (``SSL_CTX_set_session_id_context()``; without it the handshake fails with
#   "session id context uninitialized"). ``ssl`` offers no setter, but CPython's
#   ``_ssl`` sets one (the bytes ``b"Python"``) on every context it creates, so
#   resumption with ``verify_mode = CERT_REQUIRED`` works; the tests prove it on
#   TLS 1.2 and 1.3 against ``openssl s_client`` and our own clients.
# * *Ticket count.* TLS 1.3 servers send ``SSLContext.num_tickets`` tickets after
#   each full handshake (2 by default in OpenSSL 3.0, 1 after a resumption).
#   Clients use each ticket once, so a client that opens connections in
#   parallel wants more.
# * *Session lifetime.* ``SSL_CTX_set_timeout()`` bounds both the internal cache
#   and the lifetime hint of the tickets; ``ssl`` has no setter, so it goes through
#   the probed OpenSSL binding (:mod:`resume._openssl.binding`).
#
# Statistics are plain counters bumped by the adapters (one event loop thread, no
# lock needed beyond the GIL) and frozen into :class:`ServerStatistics` snapshots,
# together with ``SSLContext.session_stats()`` (OpenSSL's own counters of the
# internal cache).
from __future__ import annotations

import math
import ssl
from dataclasses import dataclass, field
from typing import Any, Final, final

from .._core import limits
from .._core.errors import UnsupportedError
from .._core.limits import MAX_LIFETIME, TLS_VERSIONS, pin_tls_version

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "TLS_VERSIONS",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "ServerCounters",
    "ServerStatistics",
    "check_port",
    "check_seconds",
    "check_server_context",
    "configure_server_context",
    "get_session_timeout",
    "pin_tls_version",
    "set_session_timeout",
]

#: Seconds a client gets to finish its handshake before it is dropped.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds the graceful close (sending ``close_notify``) may take before the
#: socket is closed anyway: a peer that never reads must not hold a task forever.
DEFAULT_CLOSE_TIMEOUT: Final = 5.0


@final
@dataclass(frozen=True)
class ServerStatistics:
    """A snapshot of a TLS server's handshake counters.

    ``accepted == resumed + full + failed + in_progress`` at any time.
    """

    #: TCP connections accepted.
    accepted: int
    #: Handshakes that completed by resuming a session (``SSL_session_reused()``).
    resumed: int
    #: Handshakes that completed with a full exchange.
    full: int
    #: Handshakes that failed, timed out or were cut off.
    failed: int
    #: Handshakes not finished yet.
    in_progress: int
    #: Connections whose handler has returned and whose socket is closed.
    closed: int
    #: ``SSLContext.session_stats()``: OpenSSL's counters of the server's internal
    #: session cache (``SSL_CTX_sess_number()``, ``_accept()``, ``_hits()``, ...).
    session_stats: dict[str, int] = field(default_factory=dict)

    @property
    def resumption_rate(self) -> float:
        """Resumed handshakes over completed handshakes (0.0 when none completed)."""
        done = self.resumed + self.full
        return self.resumed / done if done else 0.0


@final
class ServerCounters:
    """The mutable counters behind :class:`ServerStatistics` (used by the adapters)."""

    __slots__ = ("accepted", "closed", "failed", "full", "resumed")

    def __init__(self) -> None:
        self.accepted = 0
        self.resumed = 0
        self.full = 0
        self.failed = 0
        self.closed = 0

    def handshake_done(self, reused: bool) -> None:
        """Count one completed handshake."""
        if reused:
            self.resumed += 1
        else:
            self.full += 1

    def snapshot(self, context: ssl.SSLContext) -> ServerStatistics:
        """Freeze the counters, with *context*'s ``session_stats()``."""
        return ServerStatistics(
            accepted=self.accepted,
            resumed=self.resumed,
            full=self.full,
            failed=self.failed,
            in_progress=self.accepted - self.resumed - self.full - self.failed,
            closed=self.closed,
            session_stats=dict(context.session_stats()),
        )


def check_server_context(context: object) -> ssl.SSLContext:
    """Check that *context* can serve TLS; return it.

    Raises:
        TypeError: *context* is not an :class:`ssl.SSLContext`.
        ValueError: *context* is a client-only context (``PROTOCOL_TLS_CLIENT``).
    """
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(
            f"ssl_context must be an ssl.SSLContext (made with ssl.PROTOCOL_TLS_SERVER), "
            f"got {type(context).__name__}"
        )
    if context.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "ssl_context is a client context (PROTOCOL_TLS_CLIENT); a server needs "
            "ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) with a certificate loaded"
        )
    return context


def check_seconds(name: str, value: object) -> float:
    """Check that *value* is a finite number of seconds > 0; return it as a float.

    Raises:
        TypeError: not a number.
        ValueError: not finite or not > 0.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_port(port: object) -> int:
    """Check that *port* is a TCP port number to listen on (0 picks a free one); return it.

    Raises:
        TypeError: not an int.
        ValueError: outside 0-65535.
    """
    return limits.check_port(port, allow_zero=True)


def configure_server_context(
    context: ssl.SSLContext,
    *,
    num_tickets: int | None = None,
    session_timeout: float | None = None,
) -> ssl.SSLContext:
    """Apply the resumption knobs to a server context; return it.

    Both knobs are checked before either is applied, so bad input changes nothing.

    Args:
        context: the server's context (see :func:`check_server_context`).
        num_tickets: TLS 1.3 tickets sent after each handshake
            (``SSL_CTX_set_num_tickets()``, through ``SSLContext.num_tickets``);
            0 turns TLS 1.3 tickets off. None keeps the context's setting.
        session_timeout: seconds a session stays resumable, for the internal cache
            and the tickets' lifetime hint (``SSL_CTX_set_timeout()``); at most 7 days.
            None keeps the context's setting (OpenSSL's default is 7200).

    Raises:
        TypeError, ValueError: a knob out of range.
        UnsupportedError: *session_timeout* on a Python whose OpenSSL binding was
            refused (see :mod:`resume._openssl.binding`).
    """
    check_server_context(context)
    if num_tickets is not None:
        if not _is_int(num_tickets):
            raise TypeError(f"num_tickets must be an int, got {type(num_tickets).__name__}")
        if not 0 <= num_tickets <= 64:
            raise ValueError(f"num_tickets must be between 0 and 64, got {num_tickets}")
    if session_timeout is not None:
        check_seconds("session_timeout", session_timeout)
        if session_timeout > MAX_LIFETIME:
            raise ValueError(
                f"session_timeout must be at most 7 days ({MAX_LIFETIME} s; "
                f"RFC 8446 caps ticket lifetimes), got {session_timeout!r}"
            )
    if session_timeout is not None:
        set_session_timeout(context, session_timeout)
    if num_tickets is not None:
        context.num_tickets = num_tickets
    return context


def _binding() -> Any:
    from .._openssl.binding import binding

    try:
        return binding()
    except UnsupportedError as exc:
        raise UnsupportedError(
            f"session_timeout needs SSL_CTX_set_timeout(), which this Python build "
            f"does not allow reaching: {exc}"
        ) from None


def set_session_timeout(context: ssl.SSLContext, seconds: float) -> None:
    """Set how long sessions of *context* stay resumable (``SSL_CTX_set_timeout()``).

    On a server this bounds the internal session cache and is the lifetime hint of
    the tickets it issues. Whole seconds; a fraction is rounded up. The call goes
    through the guarded OpenSSL binding (:mod:`resume._openssl.binding`).

    Raises:
        ValueError: *seconds* is not a finite number > 0.
        UnsupportedError: the OpenSSL binding is not available on this Python.
    """
    check_seconds("session_timeout", seconds)
    _binding().set_context_timeout(context, math.ceil(seconds))


def get_session_timeout(context: ssl.SSLContext) -> int:
    """Return the session lifetime of *context* in seconds (``SSL_CTX_get_timeout()``).

    Raises:
        UnsupportedError: the OpenSSL binding is not available on this Python.
    """
    return int(_binding().context_timeout(context))


ServerStatistics.__module__ = "resume"
