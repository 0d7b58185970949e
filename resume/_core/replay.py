# Theory of operation: refusing replayed early data (RFC 8446, 8.2), I/O-free
# ===========================================================================
#
# Early data (0-RTT) carries no protection against replay: whoever recorded a
# client's first flight can send it again, and a server that accepts it runs
# the request again. OpenSSL's own protection (on whenever max_early_data > 0)
# makes tickets stateful and single-use, kept in one process's session cache;
# that defeats tickets shared by a fleet, so resume's servers turn it off
# (SSL_OP_NO_ANTI_REPLAY) and always install a gate instead
# (SSL_CTX_set_allow_early_data_cb, through the binding), which asks a
# ReplayGuard here.
#
# The guard is a ClientHello record (RFC 8446, 8.2): the ClientHello's random,
# which the PSK binder covers (a replay cannot change it without breaking the
# binder), is recorded the first time it is seen, and seen again within the
# window it means a replay: the early data is rejected, the handshake goes on
# in 1-RTT. Outside the window OpenSSL itself rejects early data: it accepts it
# only when the client's ticket age agrees with its own within 10 seconds
# (TICKET_AGE_ALLOWANCE, plus 1 s of rounding), so a replay later than that
# never reaches the gate. The window kept here (30 s by default) covers that
# with room to spare.
#
# When in doubt, refuse: a full record (``max_entries``) or a record that
# cannot be reached (the Redis guard) rejects the early data; the handshake
# still completes.
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

__all__ = ["DEFAULT_REPLAY_WINDOW", "MemoryReplayGuard", "ReplayGuard", "check_replay_window"]

#: Seconds a ClientHello is remembered: more than the 11 s in which OpenSSL
#: accepts a ticket's age for early data.
DEFAULT_REPLAY_WINDOW: Final = 30.0


def check_replay_window(window: object) -> float:
    """Check a replay window (seconds) shared by every ClientHello record; return it.

    Raises:
        ValueError: not a number, shorter than the 11 s in which OpenSSL accepts
            a ticket's age for early data, or not finite.
    """
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not window >= 11:
        raise ValueError(
            f"the replay window must be at least 11 seconds (OpenSSL accepts a ticket "
            f"age up to 11 s off), got {window!r}"
        )
    if not math.isfinite(window):
        raise ValueError(f"the replay window must be finite, got {window!r}")
    return float(window)


@runtime_checkable
class ReplayGuard(Protocol):
    """Decides, once per ClientHello, whether its early data may be accepted."""

    def first_use(self, client_random: bytes) -> bool:
        """Record *client_random*; True only the first time it is seen within the window.

        Called by the server inside the handshake (from OpenSSL's
        allow-early-data callback). Must not raise for an ordinary failure
        (answer False); an exception is also taken as False.
        """
        ...


class MemoryReplayGuard:
    """A ClientHello record in this process's memory (one server process).

    Args:
        window: seconds a ClientHello is remembered (default 30).
        max_entries: the most ClientHellos remembered at once; when full,
            early data is refused until older entries expire.
        clock: a monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        window: float = DEFAULT_REPLAY_WINDOW,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        checked = check_replay_window(window)
        entries: object = max_entries
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        self.window = checked
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        #: Counts: accepted (first use), replays refused, refused because full.
        self.accepted = 0
        self.replays = 0
        self.full = 0

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, client_random: bytes) -> bool:
        """Record *client_random*; see :meth:`ReplayGuard.first_use`."""
        now = self._clock()
        seen = self._seen
        while seen:
            oldest, at = next(iter(seen.items()))
            if now - at < self.window:
                break
            del seen[oldest]
        if client_random in seen:
            self.replays += 1
            return False
        if len(seen) >= self.max_entries:
            self.full += 1
            return False
        seen[client_random] = now
        self.accepted += 1
        return True

    def __repr__(self) -> str:
        return (
            f"<MemoryReplayGuard window={self.window:g}s entries={len(self._seen)} "
            f"accepted={self.accepted} replays={self.replays}>"
        )


for _obj in (ReplayGuard, MemoryReplayGuard):
    _obj.__module__ = "resume.replay"
