# Theory of operation: why a connection did or did not resume
# ===========================================================
#
# "It did not resume" has a handful of causes, and a user cannot tell them
# apart from the outside. The client policy (resume._core.policy) calls three
# functions of this module at the moments it decides, and each records one
# *reason* in two places:
#
#   * a counter per reason on the cache (SessionCache.statistics().decisions),
#     so a program can see, say, 95 "offered" and 5 "expired";
#   * one DEBUG record on the ``resume`` logger, with the peer, the port and
#     the first 8 hex digits of the key's context digest (a digest of public
#     settings; never session bytes, ids or secrets), and for an offer, how old
#     the session is.
#
# The reasons, in the order the policy meets them:
#
#   look-up    "offered"             a session was found and will be offered;
#              "no session"          nothing was ever stored under this key (first
#                                    connection, or the earlier ones went bad, or a
#                                    TLS 1.3 client never read, so no ticket came);
#              "expired"             the key held sessions, all past their lifetime;
#              "ticket already used" the last session stored under the key was a
#                                    TLS 1.3 ticket, and it was used up (single use);
#              "other configuration" this server was last reached with another
#                                    context or other settings (verification, client
#                                    certificate, ALPN, ...): sessions never cross;
#              "not persisted"       the cache sits on a store, but this context's
#                                    sessions stay in memory (resume cannot vouch for
#                                    it in other processes, and it was not registered
#                                    with StoreLink.register_context), so nothing came
#                                    from the store;
#              "store unavailable"   the cache sits on a store that is failing (its
#                                    circuit breaker is open), so nothing came from it;
#              "untrackable context" resume cannot know the context's settings
#                                    (UntrackedContextWarning): no session is offered;
#   begin      "context changed"     the context changed between the key and the SSL
#                                    object (another thread), or the SSL object will
#                                    verify otherwise than the key says: the offer is
#                                    withdrawn and nothing is stored;
#   handshake  "accepted"            the server resumed the offered session;
#              "declined"            the server made a full handshake instead (it
#                                    forgot the session, restarted, rotated its ticket
#                                    keys); the session is dropped.
#
# "other configuration" needs to know with which digest a (peer, port) was last
# reached: the cache's ``_last_digest`` table (bounded), written at each
# completed handshake. "not persisted" and "store unavailable" come from the
# cache's ``_store_reason(key)``, which a store link sets while it is attached
# (the core never imports a store).
#
# Cost: an uncontended lock and a dict increment per decision; the log record is
# only formatted when DEBUG is enabled for the ``resume`` logger.
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .cache import SessionCache
    from .handle import SessionHandle
    from .key import SessionKey

__all__ = [
    "ACCEPTED",
    "CONTEXT_CHANGED",
    "DECLINED",
    "EXPIRED",
    "NOT_PERSISTED",
    "NO_SESSION",
    "OFFERED",
    "OTHER_CONFIGURATION",
    "REASONS",
    "STORE_UNAVAILABLE",
    "TICKET_USED",
    "UNTRACKABLE",
    "decisions",
    "logger",
    "note_changed",
    "note_lookup",
    "note_outcome",
    "note_untrackable",
]

#: The ``resume`` logger: one DEBUG record per resumption decision.
logger: Final = logging.getLogger("resume")

OFFERED: Final = "offered"
NO_SESSION: Final = "no session"
EXPIRED: Final = "expired"
TICKET_USED: Final = "ticket already used"
OTHER_CONFIGURATION: Final = "other configuration"
NOT_PERSISTED: Final = "not persisted"
STORE_UNAVAILABLE: Final = "store unavailable"
UNTRACKABLE: Final = "untrackable context"
CONTEXT_CHANGED: Final = "context changed"
ACCEPTED: Final = "accepted"
DECLINED: Final = "declined"

#: Every reason, in the order of the theory of operation.
REASONS: Final = (
    OFFERED, NO_SESSION, EXPIRED, TICKET_USED, OTHER_CONFIGURATION, NOT_PERSISTED,
    STORE_UNAVAILABLE, UNTRACKABLE, CONTEXT_CHANGED, ACCEPTED, DECLINED,
)

_LOCK = threading.Lock()
#: Most (peer, port) pairs remembered for "other configuration" (then cleared).
_LAST_SIZE: Final = 4096


def _count(cache: SessionCache, reason: str) -> None:
    counts = cache._decisions
    with _LOCK:
        counts[reason] = counts.get(reason, 0) + 1


def decisions(cache: SessionCache) -> dict[str, int]:
    """A copy of *cache*'s counters by reason (only the reasons met so far)."""
    with _LOCK:
        return dict(cache._decisions)


def _where(key: SessionKey) -> str:
    return f"{key.peer}:{key.port} (context {key.digest[:8]})"


def _miss_reason(
    cache: SessionCache, key: SessionKey, timeouts_before: int
) -> str:
    if cache._timeouts != timeouts_before:
        return EXPIRED
    if cache._client_hints.get(key):
        return TICKET_USED
    digest = cache._last_digest.get((key.peer, key.port))
    if digest is not None and digest != key.digest:
        return OTHER_CONFIGURATION
    store_reason = cache._store_reason
    if store_reason is not None:
        reason = store_reason(key)
        if reason is not None:
            return reason
    return NO_SESSION


def note_lookup(
    cache: SessionCache, key: SessionKey, offered: SessionHandle | None, timeouts_before: int
) -> None:
    """Record the look-up of a connection about to handshake (offered, or why not)."""
    if offered is not None:
        _count(cache, OFFERED)
        if logger.isEnabledFor(logging.DEBUG):
            age = max(0.0, time.time() - offered.time)
            logger.debug(
                "resume: offering a session to %s, %.0f s old", _where(key), age,
                extra={"resume_reason": OFFERED, "resume_key": key},
            )
        return
    reason = _miss_reason(cache, key, timeouts_before)
    _count(cache, reason)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "resume: no session offered to %s: %s", _where(key), reason,
            extra={"resume_reason": reason, "resume_key": key},
        )


def note_untrackable(cache: SessionCache | None, key: SessionKey) -> None:
    """Record a connection whose context resume cannot track (nothing offered)."""
    if cache is not None:
        _count(cache, UNTRACKABLE)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "resume: no session offered to %s: %s", _where(key), UNTRACKABLE,
            extra={"resume_reason": UNTRACKABLE, "resume_key": key},
        )


def note_changed(cache: SessionCache, key: SessionKey) -> None:
    """Record an offer withdrawn because the context changed while the SSL object was made."""
    _count(cache, CONTEXT_CHANGED)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "resume: no session offered to %s: %s", _where(key), CONTEXT_CHANGED,
            extra={"resume_reason": CONTEXT_CHANGED, "resume_key": key},
        )


def note_outcome(cache: SessionCache | None, key: SessionKey, offered: bool, reused: bool) -> None:
    """Record the end of a handshake: the server accepted or declined the offer."""
    if cache is None:
        return
    last = cache._last_digest
    if len(last) >= _LAST_SIZE and (key.peer, key.port) not in last:
        last.clear()
    last[(key.peer, key.port)] = key.digest
    if not offered:
        return
    reason = ACCEPTED if reused else DECLINED
    _count(cache, reason)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "resume: %s %s the offered session", _where(key), reason,
            extra={"resume_reason": reason, "resume_key": key},
        )
