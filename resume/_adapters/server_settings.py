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
# Early data (TLS 1.3 0-RTT, SSL_read_early_data(3))
# -------------------------------------------------
# A server with ``max_early_data`` > 0 is configured here, for both adapters, by
# :func:`configure_early_data`, always with the same three steps, in this order so
# that no moment exists where early data is allowed without the replay gate:
#
#   1. ``SSL_CTX_set_allow_early_data_cb`` with ``guard.first_use`` (through
#      ``binding.set_early_data_gate``): a ClientHello record (RFC 8446, 8.2)
#      decides; a replayed first flight gets a 1-RTT handshake;
#   2. ``SSL_OP_NO_ANTI_REPLAY``: OpenSSL's own protection would make tickets
#      stateful and single-use in this process's cache, which defeats tickets
#      shared by a fleet (and, measured, stops a CPython server from resuming);
#   3. ``SSL_CTX_set_max_early_data(N)`` with ``recv_max_early_data`` at least
#      OpenSSL's default 16384, so a client holding an older, larger ticket has
#      its rejected early data skipped rather than its connection aborted.
#
# There is no parameter that turns the gate off: ``replay_guard`` only chooses
# the record (a fresh :class:`~resume.replay.MemoryReplayGuard` by default).
# The setting belongs to the ``SSL_CTX``, and a context may be handed to two
# servers: the second server must not swap the first one's record for another
# (a memory record replacing a fleet-wide Redis one would let replays to the
# other hosts through). So every context configured here is remembered with its
# guard and size; a second configuration with no guard of its own reuses the
# first one's, and one with a different guard or size is refused.
#
# Statistics are plain counters bumped by the adapters (one event loop thread, no
# lock needed beyond the GIL) and frozen into :class:`ServerStatistics` snapshots,
# together with ``SSLContext.session_stats()`` (OpenSSL's own counters of the
# internal cache).
from __future__ import annotations

import math
import ssl
import weakref
from dataclasses import dataclass, field
from typing import Any, Final, final

from .._core import limits
from .._core.errors import UnsupportedError
from .._core.limits import MAX_LIFETIME, TLS_VERSIONS, pin_tls_version
from .._core.replay import MemoryReplayGuard, ReplayGuard

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "TLS_VERSIONS",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_EARLY_DATA",
    "ServerCounters",
    "ServerStatistics",
    "check_port",
    "check_seconds",
    "check_max_early_data",
    "check_server_context",
    "configure_early_data",
    "configure_server_context",
    "early_data_guard",
    "get_session_timeout",
    "pin_tls_version",
    "set_session_timeout",
]

#: Seconds a client gets to finish its handshake before it is dropped.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
#: The early-data size ``resume serve --early-data`` uses, and the least
#: ``recv_max_early_data`` a server gets (OpenSSL's default): one TLS record.
DEFAULT_MAX_EARLY_DATA: Final = 16384
#: ``SSL_CTX_set_max_early_data()`` takes a uint32_t.
_MAX_EARLY_DATA_LIMIT: Final = 2**32 - 1
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
    #: Completed handshakes whose early data was accepted
    #: (``SSL_get_early_data_status()``; counted on servers with ``max_early_data`` > 0).
    early_data_accepted: int = 0
    #: Completed handshakes whose early data was rejected (a replay, a ticket too
    #: old, or no ticket at all; counted on servers with ``max_early_data`` > 0).
    early_data_rejected: int = 0

    @property
    def resumption_rate(self) -> float:
        """Resumed handshakes over completed handshakes (0.0 when none completed)."""
        done = self.resumed + self.full
        return self.resumed / done if done else 0.0


@final
class ServerCounters:
    """The mutable counters behind :class:`ServerStatistics` (used by the adapters)."""

    __slots__ = (
        "accepted", "closed", "early_accepted", "early_rejected", "failed", "full", "resumed"
    )

    def __init__(self) -> None:
        self.early_accepted = 0
        self.early_rejected = 0
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
            early_data_accepted=self.early_accepted,
            early_data_rejected=self.early_rejected,
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
    max_early_data: int = 0,
    replay_guard: ReplayGuard | None = None,
) -> ReplayGuard | None:
    """Apply the resumption and early-data knobs to a server context.

    Every knob is checked before any is applied, so bad input changes nothing.

    Args:
        context: the server's context (see :func:`check_server_context`).
        num_tickets: TLS 1.3 tickets sent after each handshake
            (``SSL_CTX_set_num_tickets()``, through ``SSLContext.num_tickets``);
            0 turns TLS 1.3 tickets off. None keeps the context's setting.
        session_timeout: seconds a session stays resumable, for the internal cache
            and the tickets' lifetime hint (``SSL_CTX_set_timeout()``); at most 7 days.
            None keeps the context's setting (OpenSSL's default is 7200).
        max_early_data: TLS 1.3 early data the server accepts per connection;
            0 (the default) leaves the context alone. See :func:`configure_early_data`.
        replay_guard: the ClientHello record for early data (see
            :func:`configure_early_data`).

    Returns:
        the replay guard in force when *max_early_data* > 0, else None.

    Raises:
        TypeError, ValueError: a knob out of range, or an early-data setting that
            conflicts with the one the context already serves with.
        UnsupportedError: *session_timeout* or early data on a Python whose OpenSSL
            binding was refused (see :mod:`resume._openssl.binding`).
    """
    check_server_context(context)
    early = check_max_early_data(max_early_data)
    if replay_guard is not None and not early:
        raise ValueError("replay_guard is only used with max_early_data > 0")
    guard = _plan_early_data(context, early, replay_guard) if early else None
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
    if guard is not None:
        _apply_early_data(context, early, guard)
    return guard


def check_max_early_data(value: object) -> int:
    """Check a ``max_early_data`` size (bytes, 0 = off); return it.

    Raises:
        TypeError: not an int.
        ValueError: negative or above 2**32-1 (``SSL_CTX_set_max_early_data()`` takes a uint32_t).
    """
    if not _is_int(value):
        raise TypeError(f"max_early_data must be an int (bytes), got {type(value).__name__}")
    assert isinstance(value, int)
    if not 0 <= value <= _MAX_EARLY_DATA_LIMIT:
        raise ValueError(f"max_early_data must be 0 to 2**32-1 bytes, got {value}")
    return value


def configure_early_data(
    context: ssl.SSLContext, max_early_data: int, replay_guard: ReplayGuard | None = None
) -> ReplayGuard:
    """Let *context* accept up to *max_early_data* bytes of TLS 1.3 early data, replay-guarded.

    Always together, in this order: the gate ``SSL_CTX_set_allow_early_data_cb()``
    asking ``replay_guard.first_use(client_random)``, then ``SSL_OP_NO_ANTI_REPLAY``
    (stateless tickets a fleet can share; the guard replaces OpenSSL's per-process
    single-use cache), then ``SSL_CTX_set_max_early_data()`` and
    ``SSL_CTX_set_recv_max_early_data()``. Replay protection cannot be left out:
    *replay_guard* only chooses the record, a new
    :class:`~resume.replay.MemoryReplayGuard` by default.

    A context already configured here keeps its guard: with *replay_guard* None
    (or the same guard) and the same size this is a no-op returning that guard.

    Returns:
        the guard in force.

    Raises:
        TypeError: *replay_guard* has no ``first_use`` method.
        ValueError: *max_early_data* is not 1 to 2**32-1, or *context* already
            serves early data with another guard or size.
        UnsupportedError: the OpenSSL binding, or its early-data calls, are not
            available on this Python.
    """
    check_server_context(context)
    size = check_max_early_data(max_early_data)
    if not size:
        raise ValueError("max_early_data must be > 0 to enable early data")
    guard = _plan_early_data(context, size, replay_guard)
    _apply_early_data(context, size, guard)
    return guard


#: Contexts configured for early data here, with their (size, guard).
_EARLY_CONTEXTS: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[int, ReplayGuard]] = (
    weakref.WeakKeyDictionary()
)


def _plan_early_data(
    context: ssl.SSLContext, size: int, replay_guard: ReplayGuard | None
) -> ReplayGuard:
    # Check everything about an early-data setting without changing anything;
    # return the guard to install (see "Early data" above).
    if replay_guard is not None and not callable(getattr(replay_guard, "first_use", None)):
        raise TypeError(
            f"replay_guard must have a first_use(client_random) method (a "
            f"resume.replay.ReplayGuard), got {type(replay_guard).__name__}"
        )
    b = _binding("early data")
    if b.early_data_error is not None:
        raise UnsupportedError(f"early data is not available: {b.early_data_error}")
    known = _EARLY_CONTEXTS.get(context)
    if known is None:
        return replay_guard if replay_guard is not None else MemoryReplayGuard()
    known_size, known_guard = known
    if replay_guard is not None and replay_guard is not known_guard:
        raise ValueError(
            f"this SSLContext already serves early data with another replay guard "
            f"({known_guard!r}); give each server its own context, or pass the same guard"
        )
    if size != known_size:
        raise ValueError(
            f"this SSLContext already serves early data with max_early_data={known_size}; "
            f"a second server on it must use the same size (got {size})"
        )
    return known_guard


def _apply_early_data(context: ssl.SSLContext, size: int, guard: ReplayGuard) -> None:
    # The three steps, gate first (see "Early data" above).
    b = _binding("early data")
    known = _EARLY_CONTEXTS.get(context)
    if known is not None and known[1] is guard and known[0] == size:
        return
    b.set_early_data_gate(context, guard.first_use)
    from .._openssl.binding import OP_NO_ANTI_REPLAY

    context.options |= OP_NO_ANTI_REPLAY
    b.set_max_early_data(context, size, max(size, DEFAULT_MAX_EARLY_DATA))
    _EARLY_CONTEXTS[context] = (size, guard)


def early_data_guard(context: ssl.SSLContext) -> ReplayGuard | None:
    """The replay guard *context* serves early data with, or None (no early data here)."""
    known = _EARLY_CONTEXTS.get(context)
    return None if known is None else known[1]


def _binding(what: str = "session_timeout") -> Any:
    from .._openssl.binding import binding

    try:
        return binding()
    except UnsupportedError as exc:
        need = (
            "SSL_CTX_set_timeout()" if what == "session_timeout"
            else "SSL_read_early_data() and SSL_CTX_set_allow_early_data_cb()"
        )
        raise UnsupportedError(
            f"{what} needs {need}, which this Python build does not allow reaching: {exc}"
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
