# Theory of operation: a ClientHello record shared by a fleet, in Redis
# =====================================================================
#
# Servers that share ticket keys (resume._ticketkeys) resume each other's
# tickets, so a first flight recorded on its way to one server can be replayed
# to another: a record kept in one process's memory (MemoryReplayGuard,
# resume._core.replay) cannot see that. RedisReplayGuard keeps the record
# (RFC 8446, 8.2) in the Redis the fleet already shares: for every ClientHello
# that carries early data the server asks first_use(client_random), and the
# guard sends
#
#     SET <prefix>:<hash of the random> 1 NX PX <window in ms>
#
# which Redis runs atomically: exactly one SET of a given key succeeds (+OK)
# within the window, whichever server and process sends it; every other one
# gets nil, a replay. The key is the first 16 bytes of SHA-256 of the random,
# in hex: fixed length, no ClientHello bytes stored as such, and 2**-128 odds
# that two different randoms share a key (which would refuse early data once,
# never accept a replay). The PX expiry drops the key after the window (30 s by
# default): a replay later than that is refused by OpenSSL's ticket-age check
# (see resume._core.replay), so the record needs to be kept no longer.
#
# Where it is called. OpenSSL calls the gate (SSL_CTX_set_allow_early_data_cb)
# synchronously inside the handshake, on the thread that drives it: on a trio
# or asyncio server, the event-loop thread. So every call is one RedisClient
# call under a deadline of *timeout* seconds (50 ms by default; connecting,
# logging in and the reply included; see resume._stores.redisclient), and
# never blocks longer: a Redis that is slow, silent or gone costs one call at
# most that long.
#
# When in doubt, refuse. Any failure (error reply, timeout, refused or lost
# connection, a reply of the wrong type) answers False: the early data is
# rejected and the client sends it again after the handshake, which still
# completes, one round trip later. A failure starts an outage: it is logged
# once (a warning naming the redacted URL), and for a back-off period (0.5 s,
# doubling per failed retry up to 5 s) every call answers False at once
# without touching the network, so a dead Redis is not hammered by every
# handshake, nor does each handshake pay the timeout of a blackholed address.
# When the back-off ends, one call (the first to come, whichever thread) asks
# Redis again; the others keep answering False until it has. The first call
# that succeeds ends the outage (logged at INFO).
#
# Threads. RedisClient gives each concurrent call a connection of its own; the
# outage state and the counters are changed under a lock, never held across
# the network call.
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Final, final

from .._core.replay import DEFAULT_REPLAY_WINDOW, check_replay_window
from .redisclient import RedisClient, RedisError, expect_ok
from .safefile import redact_url, scrub

__all__ = ["RedisReplayGuard"]

log = logging.getLogger("resume.replay")

#: Seconds of the first back-off after a failure; each failed retry doubles it.
_BACKOFF_FIRST: Final = 0.5
#: The longest back-off: early data comes back at most this long after Redis does.
_BACKOFF_MAX: Final = 5.0
#: Bytes of SHA-256 of the client random kept in the key.
_KEY_BYTES: Final = 16


@final
class RedisReplayGuard:
    """A ClientHello record in Redis, shared by every server of a fleet (RFC 8446, 8.2).

    The :class:`ReplayGuard` a server with early data installs through
    ``SSL_CTX_set_allow_early_data_cb``: each ClientHello random is recorded
    with an atomic ``SET key 1 NX PX window`` in Redis, so the first server of
    the fleet to see it accepts its early data and every replay, to any server
    sharing the Redis, is refused (the handshake goes on in 1-RTT).

    Args:
        url: a Redis URL, as for :class:`resume.stores.RedisStore`
            (``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, ``rediss://`` for
            TLS, ``unix:///PATH``). Use an address or a name in /etc/hosts: name
            resolution is not bounded by *timeout*. The password is never
            printed, logged or shown by ``repr()``.
        window: seconds a ClientHello is remembered (at least 11: OpenSSL
            accepts a ticket age up to 11 s off; default 30).
        prefix: the prefix of the Redis keys (``PREFIX:HASH``).
        timeout: seconds one call may take in all (connecting included); the
            call runs inside the handshake, on the server's event loop.

    Raises:
        ValueError: *url* is not a Redis URL, *window* is shorter than 11
            seconds, or *timeout* is not positive.

    Creating the guard does not connect; the first call does. When Redis
    fails (error, timeout, unreachable), :meth:`first_use` answers False,
    logs one warning per outage on the ``resume.replay`` logger, and answers
    False at once for a short back-off (up to 5 s) before asking Redis again.
    """

    def __init__(
        self,
        url: str,
        *,
        window: float = DEFAULT_REPLAY_WINDOW,
        prefix: str = "resume:replay",
        timeout: float = 0.05,
    ) -> None:
        checked = check_replay_window(window)
        limit: object = timeout
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (
            0 < limit < math.inf
        ):
            raise ValueError(f"the replay timeout must be a positive number, got {timeout!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        self._url = url
        try:
            self._client = RedisClient(url, timeout=timeout)
        except ValueError as exc:
            raise ValueError(scrub(str(exc), url)) from None
        self.window = checked
        self.prefix = prefix
        self.timeout = float(timeout)
        self._window_ms = math.ceil(self.window * 1000)
        self._lock = threading.Lock()
        # The outage: since when nothing is asked (monotonic), the next back-off.
        self._clock: Callable[[], float] = time.monotonic
        self._down = False
        self._retry_at = 0.0
        self._backoff = _BACKOFF_FIRST
        #: ClientHellos seen first here: early data accepted.
        self.accepted = 0
        #: ClientHellos seen before within the window: early data refused.
        self.replays = 0
        #: Calls answered False because Redis failed or is backed off from.
        self.errors = 0

    @property
    def url(self) -> str:
        """The Redis URL, its password replaced by ``***``."""
        return redact_url(self._url)

    @property
    def down(self) -> bool:
        """Whether the last call to Redis failed (an outage: early data is refused)."""
        return self._down

    def key(self, client_random: bytes) -> str:
        """The Redis key that records *client_random* (``PREFIX:`` and 32 hex digits)."""
        digest = hashlib.sha256(client_random).digest()[:_KEY_BYTES]
        return f"{self.prefix}:{digest.hex()}"

    def first_use(self, client_random: bytes) -> bool:
        """Record *client_random*; True only the first time the fleet sees it within the window.

        The gate of ``SSL_CTX_set_allow_early_data_cb`` (see
        :meth:`ReplayGuard.first_use`): one ``SET ... NX PX`` within *timeout*
        seconds. Never raises for Redis trouble: a failure, or a call during
        the back-off after one, answers False (early data refused).
        """
        key = self.key(client_random)
        with self._lock:
            if self._down:
                now = self._clock()
                if now < self._retry_at:
                    self.errors += 1
                    return False
                # This call probes; the others answer False until it is done.
                self._retry_at = now + self._backoff
                self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        try:
            reply = self._client.call("SET", key, b"1", "NX", "PX", self._window_ms)
            first = expect_ok(reply, f"SET {self.prefix}:... NX")
        except RedisError as exc:
            self._failed(exc)
            return False
        with self._lock:
            if self._down:
                self._down = False
                self._backoff = _BACKOFF_FIRST
                log.info("replay record: Redis at %s is back; early data is accepted again",
                         self.url)
            if first:
                self.accepted += 1
            else:
                self.replays += 1
        return first

    def _failed(self, exc: RedisError) -> None:
        with self._lock:
            self.errors += 1
            if self._down:
                return
            self._down = True
            self._retry_at = self._clock() + self._backoff
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        log.warning(
            "replay record: Redis at %s is unavailable, refusing early data until it is "
            "back (handshakes still complete): %s", self.url, scrub(str(exc), self._url),
        )

    def connect(self, timeout: float = 2.0) -> None:
        """Open a connection to Redis now (``PING``), within *timeout* seconds.

        A server calls it once at start, so that the first handshake with
        early data does not spend its short *timeout* on connecting and
        logging in. The connection stays pooled for :meth:`first_use`.

        Raises:
            resume.StoreError: Redis cannot be reached or refused us
                (the message never shows the password).
        """
        try:
            with self._client.deadline(timeout):
                self._client.call("PING")
        except RedisError as exc:
            raise type(exc)(scrub(str(exc), self._url)) from None

    def close(self) -> None:
        """Close the idle connections to Redis (a later call opens a new one)."""
        self._client.close()

    def __repr__(self) -> str:
        return (
            f"<resume.replay.RedisReplayGuard {self.url!r} window={self.window:g}s "
            f"accepted={self.accepted} replays={self.replays} errors={self.errors}"
            f"{' down' if self._down else ''}>"
        )
