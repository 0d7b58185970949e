# Theory of operation: a client's early data (TLS 1.3 0-RTT), I/O-free
# ====================================================================
#
# Every rule about when a client sends early data lives here, so the trio and
# asyncio streams and the HTTP transports cannot drift apart. A connection with
# data to send first makes one ``EarlyData`` and calls it twice:
#
#   start(conn, tls)  -- right after ClientConnection.begin() (the session
#                        boundary) and before the first handshake step. The
#                        data goes out as early data only if all of these hold:
#                          * the policy offered a session on this very SSL object
#                            (``conn.offered``): early data rides on exactly the
#                            sessions the key table allows for this context, as
#                            resumption does (curl CVE-2026-9545 sent request
#                            bytes early on a path whose certificate check later
#                            failed);
#                          * that session is a ticket taken out of the cache for
#                            this one connection (single-use), never one lent
#                            for reuse (``SessionCache(tls13_ticket_reuse=True)``):
#                            a ticket offered twice with early data is a replay
#                            by the client itself;
#                          * the binding has the early-data calls, and the
#                            session's ``max_early_data`` (what the server said it
#                            will read) holds all of the data: more than that kills
#                            the connection with an internal_error alert, so
#                            oversized data simply waits for the handshake.
#                        Then ``SSL_write_early_data()`` makes the ClientHello and
#                        the early records in the SSL object's outgoing buffer;
#                        the adapter's first handshake step flushes them.
#   settle(tls)       -- once the handshake is complete: ``SSL_get_early_data_status()``.
#                        Returns what must still be written with ordinary writes,
#                        before anything else: nothing when the server accepted,
#                        all of the data when it rejected (OpenSSL does not
#                        resend it) or when none went early. So the application
#                        sees one byte stream either way, never lost and never
#                        written twice by us.
#
# ``accepted`` is then True (went early, accepted), False (went early,
# rejected: sent again after the handshake) or None (no early data was sent).
#
# The ticket that carried early data is never stored again: the policy took it
# out of the cache to offer it, and the fresh tickets reach the cache as
# OpenSSL makes them (the policy's arrival capture). Early data is never sent
# where there is no arrival capture, since a capture at close could store the
# used ticket again (after a 0.5-RTT answer the connection still holds it
# until the fresh ticket arrives).
from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Final

from .._openssl.binding import EARLY_DATA_ACCEPTED, available
from .policy import is_single_use

if TYPE_CHECKING:
    from .policy import ClientConnection

__all__ = ["MAX_EARLY_DATA_ARGUMENT", "EarlyData", "check_early_data"]

#: The largest ``early_data=`` argument taken (servers allow 16 KiB or so; the
#: rest of larger data would go after the handshake anyway).
MAX_EARLY_DATA_ARGUMENT: Final = 16 * 1024 * 1024


def check_early_data(data: object) -> bytes:
    """Validate an ``early_data=`` argument and return it as bytes.

    Raises:
        TypeError: not bytes, bytearray or memoryview.
        ValueError: larger than :data:`MAX_EARLY_DATA_ARGUMENT`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"early_data must be bytes, got {type(data).__name__}")
    value = bytes(data)
    if len(value) > MAX_EARLY_DATA_ARGUMENT:
        raise ValueError(
            f"early_data is {len(value)} bytes; at most {MAX_EARLY_DATA_ARGUMENT} are taken"
        )
    return value


class EarlyData:
    """The early data of one client connection: decide, write, settle (see the top)."""

    __slots__ = ("_written", "accepted", "data", "reason", "sent")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        #: The bytes the application asked to send first.
        self.data: bytes = check_early_data(data)
        #: True once the data went out in the first flight.
        self.sent = False
        #: True / False after :meth:`settle` when sent; None when none was sent.
        self.accepted: bool | None = None
        #: Why the data did not go early (for logs and tests), or None.
        self.reason: str | None = None
        self._written = 0

    def start(self, conn: ClientConnection, tls: ssl.SSLObject | ssl.SSLSocket) -> bool:
        """Write the data as early data on *tls* when the rules allow (``SSL_write_early_data()``).

        Call after :meth:`ClientConnection.begin` and before the first handshake
        step. Returns whether the data went early.

        Raises:
            ssl.SSLError: OpenSSL refused the write (the connection is then
                unusable; the caller fails it like a failed handshake).
        """
        self.reason = self._why_not(conn, tls)
        if self.reason is not None:
            return False
        b = available()
        assert b is not None  # checked by _why_not
        self._written = b.write_early_data(tls, self.data)
        self.sent = True
        return True

    def _why_not(self, conn: ClientConnection, tls: ssl.SSLObject | ssl.SSLSocket) -> str | None:
        if not self.data:
            return "no data"
        offered = conn.offered
        if offered is None or conn.cache is None:
            return "no session offered"
        if not is_single_use(offered) or conn.cache.tls13_ticket_reuse:
            return "the session offered is not a single-use TLS 1.3 ticket"
        if not conn.watching:
            return "sessions of this context are not captured as they arrive"
        b = available()
        if b is None or b.early_data_error is not None:
            return "the OpenSSL binding has no early-data calls"
        allowed = b.offered_max_early_data(tls)
        if allowed == 0:
            return "the session allows no early data"
        if allowed < len(self.data):
            return f"the session allows {allowed} early bytes, the data is {len(self.data)}"
        return None

    def settle(self, tls: ssl.SSLObject | ssl.SSLSocket) -> bytes:
        """After the handshake: return what must still be written, before anything else.

        ``SSL_get_early_data_status()``: ACCEPTED leaves only what the early
        write did not take; REJECTED (or none sent) returns all of the data.
        """
        if not self.sent:
            self.accepted = None
            return self.data
        b = available()
        status = b.early_data_status(tls) if b is not None else None
        if status == EARLY_DATA_ACCEPTED:
            self.accepted = True
            return self.data[self._written :]
        self.accepted = False
        return self.data
