# Theory of operation: shared TLS ticket keys for server fleets
# =============================================================
#
# A TLS server that issues session tickets encrypts the session state with a
# ticket key only it knows; a client that lands on another server of the same
# fleet presents a ticket that server cannot read, and pays a full handshake
# (with N servers behind a load balancer, resumption works about 1/N of the
# time). Sharing the key fixes that, and rotating it keeps a stolen key from
# decrypting every past and future ticket (RFC 9325, section 3.4: rotate "e.g.
# once every week"; RFC 8446 and 5077 leave the schedule to the server).
#
# The ring (HAProxy's scheme)
# ---------------------------
# A :class:`TicketKeyRing` holds three keys, in this order::
#
#     [previous, current, next]
#
# New tickets are encrypted with *current*; a ticket encrypted with any of the
# three is accepted (one encrypted with *previous* is renewed: the callback
# returns 2 and OpenSSL issues a fresh ticket under *current*). A rotation
# shifts the ring left and appends a fresh random key::
#
#     [previous, current, next] -> [current, next, new]
#
# The *next* key is therefore distributed a whole rotation interval before any
# server encrypts with it. While a fleet rotates, a server that has not seen the
# rotation yet still holds the new current key as its *next*, and one that has
# rotated still holds the old current key as its *previous*: every server can
# read every other server's tickets at every moment, so rotation has no
# resumption cliff. A ticket stays readable for between one and two intervals
# after it was issued; keep the interval above the servers' session timeout
# (the ticket lifetime hint they announce).
#
# Each key is 80 bytes: a 16-byte name (sent in the clear inside the ticket so
# that the server finds the key), a 32-byte AES-256-CBC key and a 32-byte
# HMAC-SHA256 key: the ticket format of OpenSSL's own keys, installed on an
# SSLContext through OpenSSL's ticket-key callback (resume._openssl.binding).
#
# Sources
# -------
# * In memory (the ring alone): keys never leave the process; the ring rotates
#   itself when due (checked when a ticket is issued).
# * :class:`KeyFile`: the HAProxy ``tls-ticket-keys`` format (one base64 line
#   per 80-byte key, [previous, current, next]); the file's mtime is the time of
#   the last rotation. Whoever holds an exclusive ``flock`` on ``PATH.lock``
#   rotates it (write to a 0600 temporary file, fsync, rename); others re-read
#   it when its mtime changes. Keys are only on disk because the user asked for a
#   key file. The file (and its lock) is opened without following a symbolic
#   link and refused, like a store key file, when it is not a regular file
#   owned by this user, or when group or others may read or write it.
# * :class:`RedisKeySource`: one JSON value in Redis shared by the fleet; every
#   server polls it; when the rotation is due, the server that wins a Redis lock
#   (``SET lock token NX PX``) rotates it and releases the lock with a
#   compare-and-delete script. Redis down: servers keep their last keys (warning
#   logged once per outage) and resync when it is back. Whoever can write to
#   Redis could otherwise install keys of their own (and read every ticket), so
#   the ring is sealed with a 32-byte secret that Redis does not hold
#   (AES-256-GCM, the Redis key's name as associated data); running without one
#   takes the explicit opt-out insecure_unauthenticated=True, logged as a
#   warning at every start. The URL's password is redacted from every message.
#
# Rings only move forward. The seal of a Redis ring covers a generation that
# each rotation increments (a ring from before generations reads as 0). A
# sealed ring copied out of Redis and written back later still opens, so the
# generation is what refuses it: a source never takes a ring older than the one
# it holds; it logs a warning and, under the rotation lock, writes its own ring
# back, and a rotation always starts from the newer of the two. A Redis value
# that does not open (altered, another secret, not a ring) is something else:
# logged as an error at every refresh, never as "Redis unavailable", and never
# overwritten (delete the key and the servers put theirs back). A key file has
# no seal: its mtime is its rotation time, and a file whose mtime goes back (an
# older file restored) is refused and rewritten the same way.
#
# Every call of a Redis source (load, refresh, rotate_now) has one deadline for
# all its round trips, and replies are size-limited and type-checked
# (resume._stores.redisclient): a Redis that trickles or floods cannot hold a
# server's start, its refresher thread or its exit longer than that.
#
# A :class:`KeyRefresher` thread polls the source (default every 60 s, far less
# than the 12 h default interval). The clock is injectable everywhere.
from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, NamedTuple, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._core.errors import StoreError
from .._openssl.binding import binding
from .._stores.redisclient import (
    RedisClient,
    RedisError,
    RedisReplyError,
    Script,
    expect_bytes,
    expect_ok,
)
from .._stores.safefile import check_file, open_checked, redact_url, scrub

__all__ = [
    "DEFAULT_REFRESH",
    "DEFAULT_ROTATION_INTERVAL",
    "KeyFile",
    "KeyRefresher",
    "KeySource",
    "RedisKeySource",
    "SECRET_ENV",
    "TicketKey",
    "TicketKeyRing",
    "install_from_spec",
    "install_ticket_keys",
    "source_from_spec",
]

log = logging.getLogger("resume.ticketkeys")

#: Rotate every 12 hours by default: well inside RFC 9325's "e.g. once every week".
DEFAULT_ROTATION_INTERVAL: Final = 12 * 3600.0
#: Poll the shared source every minute by default.
DEFAULT_REFRESH: Final = 60.0

_NAME_LEN: Final = 16
_AES_LEN: Final = 32
_HMAC_LEN: Final = 32
KEY_SIZE: Final = _NAME_LEN + _AES_LEN + _HMAC_LEN  # 80, as HAProxy and OpenSSL
_FORMAT: Final = 1
#: Prefix of a ring sealed with AES-256-GCM in Redis (then a 12-byte nonce).
_SEALED: Final = b"resume-sealed-1:"
#: The environment variable install_from_spec reads the Redis secret from.
SECRET_ENV: Final = "RESUME_TICKET_KEYS_SECRET"
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
#: Seconds a key file's mtime may read back earlier than written (float rounding).
_MTIME_SLACK: Final = 0.001

Clock = Callable[[], float]


@final
class TicketKey:
    """One ticket key: a 16-byte name, a 32-byte AES key and a 32-byte HMAC key.

    Its :func:`repr` shows only the start of the (public) name, never key bytes.
    """

    __slots__ = ("aes_key", "hmac_key", "name")

    name: bytes
    aes_key: bytes
    hmac_key: bytes

    def __init__(self, *, name: bytes, aes_key: bytes, hmac_key: bytes) -> None:
        if len(name) != _NAME_LEN or len(aes_key) != _AES_LEN or len(hmac_key) != _HMAC_LEN:
            raise ValueError(
                "a ticket key has a 16-byte name, a 32-byte AES and a 32-byte HMAC key"
            )
        self.name = bytes(name)
        self.aes_key = bytes(aes_key)
        self.hmac_key = bytes(hmac_key)

    @classmethod
    def generate(cls) -> TicketKey:
        """Make a fresh random key (:func:`secrets.token_bytes`)."""
        return cls.from_bytes(secrets.token_bytes(KEY_SIZE))

    @classmethod
    def from_bytes(cls, data: bytes) -> TicketKey:
        """Read the 80-byte HAProxy layout: name, AES key, HMAC key.

        Raises:
            ValueError: *data* is not 80 bytes.
        """
        if len(data) != KEY_SIZE:
            raise ValueError(f"a ticket key is {KEY_SIZE} bytes, got {len(data)}")
        return cls(
            name=data[:_NAME_LEN],
            aes_key=data[_NAME_LEN : _NAME_LEN + _AES_LEN],
            hmac_key=data[_NAME_LEN + _AES_LEN :],
        )

    def to_bytes(self) -> bytes:
        """The 80-byte HAProxy layout (secret: never log it)."""
        return self.name + self.aes_key + self.hmac_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TicketKey):
            return NotImplemented
        return secrets.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<resume.ticketkeys.TicketKey name={self.name[:4].hex()}...>"


def _encode_keys(keys: Sequence[TicketKey]) -> list[str]:
    return [base64.b64encode(k.to_bytes()).decode("ascii") for k in keys]


def _decode_keys(lines: Sequence[str], where: str) -> tuple[TicketKey, TicketKey, TicketKey]:
    if len(lines) != 3:
        raise ValueError(f"{where}: expected 3 keys [previous, current, next], found {len(lines)}")
    keys = []
    for i, line in enumerate(lines, 1):
        try:
            raw = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: key {i} is not base64") from None
        if len(raw) != KEY_SIZE:
            raise ValueError(f"{where}: key {i} is {len(raw)} bytes, expected {KEY_SIZE}")
        keys.append(TicketKey.from_bytes(raw))
    if len({k.name for k in keys}) != 3:
        raise ValueError(f"{where}: two keys have the same name")
    return keys[0], keys[1], keys[2]


@final
class TicketKeyRing:
    """Three ticket keys [previous, current, next]: current encrypts, all three decrypt.

    Install it on a server context with :func:`install_ticket_keys`. A ring
    without a shared source rotates itself when due (*auto_rotate*); a ring fed
    by a :class:`KeyFile` or :class:`RedisKeySource` is rotated by the source, so
    that the whole fleet moves together.

    Args:
        keys: the three keys; fresh random keys if omitted.
        rotated_at: when the ring last rotated (seconds since the epoch); now if omitted.
        interval: seconds between rotations (default 12 hours).
        clock: returns the time in seconds (default :func:`time.time`).
        auto_rotate: rotate when a ticket is issued and the interval has passed.
    """

    __slots__ = ("_auto", "_clock", "_keys", "_lock", "_rotated_at", "_version", "interval")

    def __init__(
        self,
        keys: Sequence[TicketKey] | None = None,
        *,
        rotated_at: float | None = None,
        interval: float = DEFAULT_ROTATION_INTERVAL,
        clock: Clock = time.time,
        auto_rotate: bool = True,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"the rotation interval must be positive, got {interval!r}")
        if keys is None:
            keys = (TicketKey.generate(), TicketKey.generate(), TicketKey.generate())
        if len(keys) != 3 or len({k.name for k in keys}) != 3:
            raise ValueError("a ring holds three keys with distinct names")
        self._keys: tuple[TicketKey, TicketKey, TicketKey] = (keys[0], keys[1], keys[2])
        self._clock = clock
        self._rotated_at = clock() if rotated_at is None else float(rotated_at)
        self.interval = float(interval)
        self._auto = auto_rotate
        self._lock = threading.Lock()
        self._version = 0

    @property
    def keys(self) -> tuple[TicketKey, TicketKey, TicketKey]:
        """The keys, as (previous, current, next)."""
        return self._keys

    @property
    def current(self) -> TicketKey:
        """The key that encrypts new tickets."""
        return self._keys[1]

    @property
    def rotated_at(self) -> float:
        """When the ring last rotated, in seconds since the epoch."""
        return self._rotated_at

    @property
    def version(self) -> int:
        """Counts the changes of the keys (rotations and replacements)."""
        return self._version

    def due(self) -> bool:
        """Whether the rotation interval has passed since :attr:`rotated_at`."""
        return self._clock() >= self._rotated_at + self.interval

    def rotate(self) -> None:
        """Shift to [current, next, new random key] and record the time."""
        with self._lock:
            _prev, cur, nxt = self._keys
            self._keys = (cur, nxt, TicketKey.generate())
            self._rotated_at = self._clock()
            self._version += 1

    def replace(self, keys: Sequence[TicketKey], rotated_at: float) -> bool:
        """Take the keys a source read; return whether anything changed."""
        if len(keys) != 3:
            raise ValueError("a ring holds three keys")
        new = (keys[0], keys[1], keys[2])
        with self._lock:
            if new == self._keys and rotated_at == self._rotated_at:
                return False
            self._keys = new
            self._rotated_at = float(rotated_at)
            self._version += 1
            return True

    # The two methods the OpenSSL ticket-key callback calls (TicketKeyLookup).

    def encryption_key(self) -> tuple[bytes, bytes, bytes] | None:
        """(name, aes_key, hmac_key) of the current key; rotates first if due and auto."""
        if self._auto and self.due():
            self.rotate()
        key = self._keys[1]
        return key.name, key.aes_key, key.hmac_key

    def decryption_key(self, name: bytes) -> tuple[bytes, bytes, bool] | None:
        """(aes_key, hmac_key, renew) of the key named *name*, or None if unknown.

        *renew* is true for the previous key: the client gets a fresh ticket.
        """
        prev, cur, nxt = self._keys
        for key, renew in ((cur, False), (nxt, False), (prev, True)):
            if secrets.compare_digest(key.name, name):
                return key.aes_key, key.hmac_key, renew
        return None

    def __repr__(self) -> str:
        names = ", ".join(k.name[:4].hex() for k in self._keys)
        return f"<resume.ticketkeys.TicketKeyRing [{names}] version={self._version}>"


def install_ticket_keys(context: ssl.SSLContext, ring: TicketKeyRing) -> None:
    """Make *context* encrypt and decrypt its session tickets with *ring*.

    Installs OpenSSL's ticket-key callback on the context
    (``SSL_CTX_set_tlsext_ticket_key_evp_cb()``, AES-256-CBC and HMAC-SHA256 as
    OpenSSL's own keys). Servers whose contexts share a ring's keys resume each
    other's tickets (TLS 1.2 and 1.3). The callback holds the ring for the life
    of the process; installing again replaces it.

    Every resumed TLS 1.3 connection gets a fresh ticket (the callback returns
    2, "renew"), so clients that use each ticket once resume every time; on
    TLS 1.2 only tickets of the previous key are renewed.

    On OpenSSL 1.1.1 the older ``HMAC_CTX`` callback
    (``SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB``) is used; the tickets are the same.

    Raises:
        TypeError: *context* is not an :class:`ssl.SSLContext`.
        ValueError: *context* has :data:`ssl.OP_NO_TICKET` set (it issues no
            tickets, so the keys would never be used).
        UnsupportedError: this Python build does not allow the OpenSSL binding.
    """
    if not isinstance(ring, TicketKeyRing):
        raise TypeError(f"expected a TicketKeyRing, got {type(ring).__name__}")
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"expected an ssl.SSLContext, got {type(context).__name__}")
    if context.options & ssl.OP_NO_TICKET:
        raise ValueError(
            "this SSLContext has ssl.OP_NO_TICKET set, so it issues no session tickets "
            "and ticket keys would never be used; clear the option first"
        )
    binding().install_ticket_callback(context, ring)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


class KeySource:
    """Where a fleet's keys live; :class:`KeyFile` and :class:`RedisKeySource` are sources."""

    def load(self) -> TicketKeyRing:  # pragma: no cover - interface
        """Read (or create) the shared ring and return it."""
        raise NotImplementedError

    def refresh(self, ring: TicketKeyRing) -> bool:  # pragma: no cover - interface
        """Rotate the shared ring if due (under a lock), then update *ring*; True if it changed."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (connections)."""


# -- key file ---------------------------------------------------------------------------


@final
class KeyFile(KeySource):
    """Ticket keys in a file, in HAProxy's ``tls-ticket-keys`` format.

    The file holds three base64 lines of 80 bytes each: [previous, current,
    next]. It is created mode 0600 if missing; its mtime is the time of the last
    rotation. The process holding an exclusive lock on ``PATH.lock`` rotates it.

    Args:
        path: the key file (its directory must exist).
        interval: seconds between rotations (default 12 hours).
        clock: seconds since the epoch (default :func:`time.time`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = DEFAULT_ROTATION_INTERVAL,
        clock: Clock = time.time,
    ) -> None:
        self.path = Path(path)
        self.interval = float(interval)
        self._clock = clock
        self._seen: tuple[int, int] | None = None
        #: rotated_at (the mtime) of the newest ring read or written: never go back.
        self._held_at: float | None = None

    def _lock(self, blocking: bool) -> int | None:
        lock = Path(f"{self.path}.lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"ticket-key lock file {str(lock)!r} is a symbolic link; refusing to follow it"
                ) from None
            # Name the file the user gave, not the lock file beside it; same
            # exception type, a message without an errno.
            folder = str(self.path.parent)
            if exc.errno == errno.ENOENT:
                why = f"its folder {folder!r} does not exist"
            elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                why = f"its folder {folder!r} is not writable"
            else:
                why = os.strerror(exc.errno or 0).lower()
            raise type(exc)(f"cannot use the ticket-key file {str(self.path)!r}: {why}") from None
        try:
            check_file(os.fstat(fd), lock, "ticket-key lock file", private=False)
        except BaseException:
            os.close(fd)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return None
            raise
        return fd

    @staticmethod
    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _read(self) -> tuple[tuple[TicketKey, TicketKey, TicketKey], float, tuple[int, int]]:
        # No symbolic link, ours alone (see resume._stores.safefile), like a store key file.
        fd = open_checked(self.path, "ticket key file", private=True)
        with open(fd, encoding="ascii", closefd=True) as f:
            st = os.fstat(f.fileno())
            try:
                text = f.read()
            except UnicodeDecodeError:
                raise ValueError(f"{self.path}: not a ticket key file (not ASCII)") from None
            lines = [ln for ln in text.splitlines() if ln.strip()]
        return _decode_keys(lines, str(self.path)), st.st_mtime, (st.st_mtime_ns, st.st_ino)

    def _write(self, keys: Sequence[TicketKey], when: float) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write("\n".join(_encode_keys(keys)) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.utime(tmp, (when, when))
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def load(self) -> TicketKeyRing:
        """Read the file, creating it (0600, fresh keys) if it does not exist.

        Raises:
            ValueError: the file is not three base64 80-byte keys.
            StoreError: the file (or its lock) is a symbolic link, belongs to
                another user, or group or others may read or write it.
            OSError: the file cannot be read or created.
        """
        fd = self._lock(blocking=True)
        assert fd is not None
        try:
            if not os.path.lexists(self.path):
                ring = TicketKeyRing(clock=self._clock, interval=self.interval)
                self._write(ring.keys, ring.rotated_at)
            keys, mtime, seen = self._read()
        finally:
            self._unlock(fd)
        self._seen = seen
        self._held_at = mtime
        return TicketKeyRing(
            keys, rotated_at=mtime, interval=self.interval, clock=self._clock, auto_rotate=False
        )

    def _older(self, mtime: float) -> bool:
        # Whether a ring rotated at *mtime* is older than the one held; logged if so.
        if self._held_at is None or mtime >= self._held_at - _MTIME_SLACK:
            return False
        log.warning(
            "ticket keys: %s holds an older ring (rotated at %s; this server holds one "
            "rotated at %s): an older file was put back; keeping the current keys and "
            "writing them back", self.path, _when(mtime), _when(self._held_at),
        )
        return True

    def refresh(self, ring: TicketKeyRing) -> bool:
        """Rotate the file if due and the lock is free; re-read it if it changed.

        Errors (a missing or damaged file) are logged and *ring* keeps its keys.
        Rings only move forward: a file whose keys were rotated before those
        of the ring this source last read (an older file put back) is refused
        with a warning and overwritten with *ring*'s keys.
        """
        try:
            if ring.due():
                fd = self._lock(blocking=False)
                if fd is not None:
                    try:
                        keys, mtime, _ = self._read()
                        if self._held_at is not None and mtime < self._held_at - _MTIME_SLACK:
                            keys, mtime = ring.keys, self._held_at  # never rotate backwards
                        if self._clock() >= mtime + self.interval:
                            now = self._clock()
                            self._write((keys[1], keys[2], TicketKey.generate()), now)
                            log.info("rotated the ticket keys in %s", self.path)
                    finally:
                        self._unlock(fd)
            st = os.stat(self.path)
            if self._seen == (st.st_mtime_ns, st.st_ino):
                return False
            keys, mtime, seen = self._read()
            self._seen = seen
            if self._older(mtime):
                self._put_back(ring)
                return False
        except (OSError, ValueError, StoreError) as exc:
            log.warning("cannot refresh ticket keys from %s (keeping the current keys): %s",
                        self.path, exc)
            return False
        self._held_at = mtime
        return ring.replace(keys, mtime)

    def _put_back(self, ring: TicketKeyRing) -> None:
        # The file went back in time: write the held ring again, if the lock is free.
        fd = self._lock(blocking=False)
        if fd is None:
            return  # its holder is rotating; the next refresh looks again
        try:
            _keys, mtime, _ = self._read()
            if self._held_at is not None and mtime < self._held_at - _MTIME_SLACK:
                self._write(ring.keys, self._held_at)
        finally:
            self._unlock(fd)

    def __repr__(self) -> str:
        return f"<resume.ticketkeys.KeyFile {str(self.path)!r}>"


# -- Redis --------------------------------------------------------------------------------

# Delete the lock only if we still own it (it may have expired and been taken).
_UNLOCK_SCRIPT: Final = Script("""
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
""")


class _Ring(NamedTuple):
    # A ring as a source stores it: the generation counts rotations (0: a ring
    # written before generations existed), and only moves forward.
    keys: tuple[TicketKey, TicketKey, TicketKey]
    rotated_at: float
    generation: int


@final
class RedisKeySource(KeySource):
    """Ticket keys shared by every server of a fleet through Redis.

    The ring is one JSON value (``{"format": 1, "generation": ..., "rotated_at":
    ..., "keys": [...]}``) under *key*. Every server reads it at start (creating
    it if absent, ``SET NX``) and then polls it; when the interval has passed,
    the server that wins the lock ``KEY:lock`` (``SET NX PX``) rotates it. If
    Redis is unreachable the servers keep their last keys and warn once; they
    resync when it is back.

    Give every server the same 32-byte *secret* (``install_from_spec`` reads
    it from ``RESUME_TICKET_KEYS_SECRET``, base64): the value is sealed with
    AES-256-GCM, and a value that is not sealed with it is refused (no
    downgrade by whoever can write to Redis). The secret is required: without
    it whoever can write to Redis could install ticket keys of their own, and
    whoever can read it (or its RDB/AOF files) could decrypt every ticket.
    ``insecure_unauthenticated=True`` runs without one anyway, keeping the
    ring in the clear, and logs a warning every time the ring is loaded.

    Rings only move forward. Each rotation counts one more *generation*,
    sealed with the keys; a server never takes a ring older than the one it
    holds (a sealed ring copied earlier and written back), logs a warning, and
    puts its own ring back. A value that does not open (altered, sealed with
    another secret, not a ring) is logged as an error at every refresh and
    never overwritten: delete the Redis key and the servers put their ring back.

    Every call (:meth:`load`, :meth:`refresh`, :meth:`rotate_now`) ends within
    *socket_timeout* seconds in all, whatever Redis does: connecting and every
    round trip share that one deadline, and replies are size-limited (see
    :class:`~resume.stores.RedisStore`).

    Args:
        url: a Redis URL, e.g. ``redis://127.0.0.1:6379/0`` (``rediss://`` and
            ``unix://`` too, spelled as for :class:`~resume.stores.RedisStore`).
        key: the Redis key of the ring.
        interval: seconds between rotations (default 12 hours).
        clock: seconds since the epoch (default :func:`time.time`).
        lock_ms: how long the rotation lock lives if its holder dies.
        socket_timeout: seconds each call may take in all (its deadline).
        secret: 32 bytes that seal the ring in Redis (AES-256-GCM).
        insecure_unauthenticated: run without *secret* (see above).

    Raises:
        ValueError: *secret* is not 32 bytes, or missing without
            *insecure_unauthenticated*, or *url* is not a Redis URL.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str = "resume:ticket-keys",
        interval: float = DEFAULT_ROTATION_INTERVAL,
        clock: Clock = time.time,
        lock_ms: int = 10_000,
        socket_timeout: float = 2.0,
        secret: bytes | None = None,
        insecure_unauthenticated: bool = False,
    ) -> None:
        self._aead: AESGCM | None = None
        self._insecure = bool(insecure_unauthenticated)
        if secret is not None and self._insecure:
            raise ValueError("give a ticket-key secret or insecure_unauthenticated=True, not both")
        if secret is None and not self._insecure:
            raise ValueError(
                f"ticket keys in Redis ({redact_url(url)}) need a 32-byte secret that Redis "
                f"does not hold (base64 in {SECRET_ENV}): without one, whoever can write to "
                f"Redis could install their own ticket keys; to run without one anyway, "
                f"pass insecure_unauthenticated=True (--insecure-unauthenticated-store)"
            )
        if secret is not None:
            if len(secret) != 32:
                raise ValueError(f"the Redis ticket-key secret must be 32 bytes, got {len(secret)}")
            self._aead = AESGCM(bytes(secret))
        self.url = url
        self.key = key
        self.interval = float(interval)
        self._clock = clock
        self._lock_ms = int(lock_ms)
        try:
            self._client = RedisClient(url, timeout=socket_timeout)
        except ValueError as exc:
            raise ValueError(scrub(str(exc), url)) from None
        self._down = False
        #: The newest ring this source read or wrote: it never takes an older one.
        self._held: _Ring | None = None

    @property
    def _where(self) -> str:
        return redact_url(self.url)

    def _scrub(self, exc: BaseException) -> str:
        return scrub(str(exc), self.url)

    def _encode(self, ring: _Ring) -> bytes:
        doc = json.dumps({
            "format": _FORMAT, "generation": ring.generation, "rotated_at": ring.rotated_at,
            "keys": _encode_keys(ring.keys),
        }).encode("ascii")
        if self._aead is None:
            return doc
        nonce = secrets.token_bytes(12)
        return _SEALED + nonce + self._aead.encrypt(nonce, doc, self.key.encode())

    def _decode(self, raw: bytes) -> _Ring:
        where = f"Redis key {self.key!r}"
        sealed = raw.startswith(_SEALED)
        if self._aead is None and sealed:
            raise ValueError(f"{where}: the ring is sealed; give this server the fleet's secret")
        if self._aead is not None:
            if not sealed:
                raise ValueError(f"{where}: the ring is not sealed with this server's secret")
            body = raw[len(_SEALED) :]
            try:
                raw = self._aead.decrypt(body[:12], body[12:], self.key.encode())
            except InvalidTag:
                raise ValueError(
                    f"{where}: the ring is sealed with another secret (or was altered)"
                ) from None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
                raise ValueError("unknown format")
            rotated_at = float(doc["rotated_at"])
            generation = doc.get("generation", 0)
            if type(generation) is not int or generation < 0:
                raise ValueError("generation is not a whole number")
            lines = doc["keys"]
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise ValueError("keys is not a list of strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: not a resume ticket-key ring ({exc})") from None
        return _Ring(_decode_keys(lines, where), rotated_at, generation)

    def _get(self) -> bytes | None:
        try:
            reply = self._client.call("GET", self.key)
        except RedisReplyError as exc:
            if str(exc).startswith("WRONGTYPE"):  # a hash, a list...: not ours
                raise ValueError(
                    f"Redis key {self.key!r}: not a resume ticket-key ring (not a string)"
                ) from None
            raise
        return expect_bytes(reply, f"GET {self.key!r}")

    def _set(self, ring: _Ring, *, nx: bool = False) -> bool:
        reply = self._client.call("SET", self.key, self._encode(ring), *(("NX",) if nx else ()))
        return expect_ok(reply, f"SET {self.key!r}")

    def _hold(self, ring: _Ring) -> None:
        if self._held is None or ring.generation >= self._held.generation:
            self._held = ring

    def _older(self, ring: _Ring) -> bool:
        # Whether *ring* is older than the one held, logging the attempt if so.
        held = self._held
        if held is None or ring.generation >= held.generation:
            return False
        log.warning(
            "ticket keys: Redis key %r at %s holds an older ring (generation %d; this server "
            "holds generation %d): a ring copied earlier was written back; keeping the "
            "current keys and putting them back",
            self.key, self._where, ring.generation, held.generation,
        )
        return True

    def load(self) -> TicketKeyRing:
        """Read the shared ring, creating it if absent.

        Raises:
            StoreError: Redis is unreachable, or did not answer within
                *socket_timeout* (a server needs the keys to start).
            ValueError: the value under *key* is not a ring (or does not open
                with this server's secret).
        """
        if self._insecure:
            log.warning(
                "ticket keys in Redis at %s are kept without a secret "
                "(insecure_unauthenticated): whoever can write to this Redis can install "
                "their own ticket keys, and whoever can read it can decrypt every ticket",
                self._where,
            )
        try:
            with self._client.deadline():
                raw = self._get()
                if raw is None:
                    fresh = TicketKeyRing(clock=self._clock, interval=self.interval)
                    first = _Ring(fresh.keys, fresh.rotated_at, 1)
                    self._set(first, nx=True)
                    raw = self._get()
        except RedisError as exc:
            raise StoreError(
                f"cannot read ticket keys from Redis at {self._where}: {self._scrub(exc)}"
            ) from None
        if raw is None:  # pragma: no cover - deleted between SET and GET
            raise StoreError(f"the ticket keys vanished from Redis key {self.key!r}")
        ring = self._decode(raw)
        if self._older(ring):
            assert self._held is not None
            ring = self._held
        self._hold(ring)
        return TicketKeyRing(
            ring.keys, rotated_at=ring.rotated_at, interval=self.interval, clock=self._clock,
            auto_rotate=False,
        )

    def rotate_now(self) -> bool:
        """Rotate the shared ring now if this process wins the lock; True if it rotated.

        Raises:
            StoreError: Redis is unreachable or did not answer within *socket_timeout*.
            ValueError: the value in Redis is not a ring this server can open.
        """
        try:
            with self._client.deadline():
                return self._rotate(force=True)
        except RedisError as exc:
            raise StoreError(
                f"cannot rotate ticket keys in Redis at {self._where}: {self._scrub(exc)}"
            ) from None

    def _rotate(self, *, force: bool) -> bool:
        # Under the lock: rotate the newer of the ring in Redis and the one held.
        lock_key = f"{self.key}:lock"
        token = secrets.token_hex(16)
        if not expect_ok(
            self._client.call("SET", lock_key, token, "NX", "PX", self._lock_ms), "SET lock"
        ):
            return False
        try:
            raw = self._get()
            if raw is None:
                return False
            ring = self._decode(raw)
            if self._older(ring):
                assert self._held is not None
                ring = self._held
            now = self._clock()
            if not force and now < ring.rotated_at + self.interval:
                if ring is self._held:  # not due, but Redis went back: put ours back
                    self._set(ring)
                return False  # another server rotated first
            new = _Ring((ring.keys[1], ring.keys[2], TicketKey.generate()), now,
                        ring.generation + 1)
            self._set(new)
            self._hold(new)
            log.info("rotated the shared ticket keys in Redis key %r (generation %d)",
                     self.key, new.generation)
            return True
        finally:
            with contextlib.suppress(RedisError):  # the lock expires by itself anyway
                self._client.run(_UNLOCK_SCRIPT, [lock_key], [token])

    def _repair(self) -> None:
        # Redis holds an older ring than ours: put ours back, under the rotation lock.
        lock_key = f"{self.key}:lock"
        token = secrets.token_hex(16)
        if not expect_ok(
            self._client.call("SET", lock_key, token, "NX", "PX", self._lock_ms), "SET lock"
        ):
            return  # a rotation is under way; the next refresh looks again
        try:
            raw = self._get()
            held = self._held
            if held is not None and (raw is None or self._decode(raw).generation
                                     < held.generation):
                self._set(held)
        finally:
            with contextlib.suppress(RedisError):
                self._client.run(_UNLOCK_SCRIPT, [lock_key], [token])

    def refresh(self, ring: TicketKeyRing) -> bool:
        """Rotate the shared ring if due (lock winner only), then copy it into *ring*.

        Never raises for Redis trouble: *ring* keeps its keys, a warning is
        logged once per outage, and the next refresh after Redis is back
        resyncs. A value that does not open is logged as an error every time
        it is read; an older ring than the one held is refused with a warning
        and overwritten with the held one. Either way *ring* keeps its keys.
        """
        if self._held is None:
            # A ring this source did not load: hold it as the oldest generation.
            self._held = _Ring(ring.keys, ring.rotated_at, 0)
        try:
            with self._client.deadline():
                if ring.due():
                    self._rotate(force=False)
                raw = self._get()
                if raw is None:
                    # Redis lost its data (restarted without persistence): put ours back.
                    assert self._held is not None
                    self._set(self._held, nx=True)
                    raw = self._get()
                    if raw is None:  # pragma: no cover - deleted again at once
                        return False
                found = self._decode(raw)
                older = self._older(found)
                if older:
                    self._repair()
        except RedisError as exc:
            if not self._down:
                log.warning("ticket keys: Redis at %s is unavailable, keeping the current "
                            "keys: %s", self._where, self._scrub(exc))
            self._down = True
            return False
        except ValueError as exc:
            self._back()
            log.error(
                "ticket keys: refused the ring in Redis at %s, keeping the current keys: %s "
                "(delete the key and the servers put their ring back)",
                self._where, self._scrub(exc),
            )
            return False
        self._back()
        if older:
            return False
        self._hold(found)
        return ring.replace(found.keys, found.rotated_at)

    def _back(self) -> None:
        if self._down:
            log.warning("ticket keys: Redis at %s is back", self._where)
            self._down = False

    def close(self) -> None:
        """Close the Redis connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"<resume.ticketkeys.RedisKeySource {self._where!r} key={self.key!r}>"


# -- refresher and the command-line entry point ------------------------------------------


@final
class KeyRefresher:
    """A daemon thread that calls ``source.refresh(ring)`` every *period* seconds.

    Calling the object (or :meth:`close`) stops the thread and closes the
    source; the ring stays installed with its last keys.
    """

    def __init__(self, source: KeySource, ring: TicketKeyRing, *, period: float) -> None:
        if not period > 0:
            raise ValueError(f"the refresh period must be positive, got {period!r}")
        self.source = source
        self.ring = ring
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="resume-ticket-keys", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.source.refresh(self.ring)
            except Exception:  # pragma: no cover - refresh() already logs its errors
                log.exception("ticket-key refresh failed")

    def refresh_now(self) -> bool:
        """Refresh at once, in the calling thread; True if the keys changed."""
        return self.source.refresh(self.ring)

    def close(self) -> None:
        """Stop the thread and close the source (idempotent)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.source.close()

    def __call__(self) -> None:
        self.close()


def source_from_spec(
    spec: str,
    *,
    interval: float = DEFAULT_ROTATION_INTERVAL,
    clock: Clock = time.time,
    insecure_unauthenticated: bool = False,
) -> KeySource:
    """Make the source named by *spec*: ``file:PATH`` or ``redis://HOST:PORT/DB``.

    ``rediss://`` (TLS) and ``unix://`` Redis URLs work too. For Redis, a
    base64 32-byte secret in the ``RESUME_TICKET_KEYS_SECRET`` environment
    variable seals the ring at rest (see :class:`RedisKeySource`); it is
    required unless *insecure_unauthenticated* is true.

    Raises:
        ValueError: *spec* names no known source, or Redis is named without
            a secret (and without *insecure_unauthenticated*).
    """
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        if not path:
            raise ValueError("--ticket-keys file: needs a path, e.g. file:/etc/resume/keys")
        return KeyFile(path, interval=interval, clock=clock)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        secret = None
        encoded = os.environ.get(SECRET_ENV)
        if encoded:
            try:
                secret = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{SECRET_ENV} is not base64") from None
        return RedisKeySource(
            spec, interval=interval, clock=clock, secret=secret,
            insecure_unauthenticated=insecure_unauthenticated and secret is None,
        )
    raise ValueError(
        f"unknown ticket-key source {redact_url(spec)!r}: use file:PATH or redis://HOST:PORT/DB"
    )


def install_from_spec(
    ssl_context: ssl.SSLContext,
    spec: str,
    *,
    interval: float = DEFAULT_ROTATION_INTERVAL,
    refresh: float = DEFAULT_REFRESH,
    clock: Clock = time.time,
    insecure_unauthenticated: bool = False,
) -> KeyRefresher:
    """Install shared ticket keys from *spec* on a server context; return the closer.

    *spec* is what ``resume serve --ticket-keys`` takes: ``file:PATH`` or
    ``redis://HOST:PORT/DB``. The keys are loaded (created if absent), installed
    with :func:`install_ticket_keys`, and refreshed every *refresh* seconds by a
    daemon thread. Call the returned object when the server stops.
    *insecure_unauthenticated* lets a Redis source run without its secret
    (see :class:`RedisKeySource`).

    Raises:
        ValueError: *spec* is not understood, or the source holds no valid ring.
        StoreError: Redis is unreachable at start.
        OSError: the key file cannot be read or created.
        UnsupportedError: ticket keys are not available on this Python build.
    """
    source = source_from_spec(spec, interval=interval, clock=clock,
                              insecure_unauthenticated=insecure_unauthenticated)
    try:
        binding()  # refuse before touching the source
        ring = source.load()
        install_ticket_keys(ssl_context, ring)
    except BaseException:
        source.close()
        raise
    return KeyRefresher(source, ring, period=refresh)


for _obj in (TicketKey, TicketKeyRing, KeyFile, RedisKeySource, KeySource, KeyRefresher,
             install_ticket_keys, install_from_spec, source_from_spec):
    _obj.__module__ = "resume.ticketkeys"
del _obj
