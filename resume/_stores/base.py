# Theory of operation: session stores
# ===================================
#
# A store keeps serialized sessions (the DER bytes of ``SessionHandle.to_der()``)
# outside the process, so that a client restarted, or another process or host,
# can resume. A store knows nothing about TLS: it maps a cache key (any value
# that :func:`key_bytes` can encode: str, bytes, int, tuples of them, ...) to a
# small pool of opaque byte strings, each with an absolute expiry time.
#
# Layers. :class:`SessionStore` is the public interface and does everything that
# is the same for every backend: naming, sealing and opening entries, expiry,
# dropping unreadable entries with a rate-limited warning. A backend
# (MemoryStore, SQLiteStore, RedisStore) only implements five primitives on
# already-sealed blobs:
#
#   _setup()                        -> the store's salt (created once, shared)
#   _put_raw(name, entry, expires, blob, per_key, now)
#   _get_raw(name, now)             -> (entry, blob) of the newest live entry
#   _take_raw(name, now)            -> the same, removed atomically
#   _delete_raw(name, entry|None)   -> how many were removed
#
# The key. A resumed session skips certificate verification, so whoever can
# write a store could make its users resume with a server they do not trust
# (issue 8, finding 2). Every entry is therefore sealed with a 32-byte key that
# is NOT in the store: given (key=, key_file=), or the backend's default (a
# random key per MemoryStore; a key file made on first use beside a SQLite
# database). RedisStore has no default: a key is required, and running without
# one takes an explicit, loudly named opt-out (insecure_unauthenticated=True),
# which warns every time a store is made.
#
# Names. A cache key names a server (host, port, TLS settings); a stolen store
# must not list where its owner connects. The backend therefore only ever sees
#
#     name = HMAC-SHA256(name_key, key_bytes(key))            (32 bytes)
#
# where ``name_key`` and the AES-256-GCM key are derived from the user's key and
# the per-store random salt (created by the first user of the store and kept in
# it) with HKDF-SHA256. Without the key the names are opaque. Under the opt-out
# the keys are derived from the salt alone: names and sessions are then only
# obfuscated, and anyone who can read the store can forge entries.
#
# Entries. Each pool member is identified by
#
#     entry = HMAC-SHA256(name_key, b"entry" + session)[:16]
#
# so putting the same session twice stores it once, and a session can be deleted
# by value (the cache tells the store which ticket it consumed) without the
# backend ever comparing secrets.
#
# Sealed format, version 2 (all integers big-endian):
#
#     offset  size  field
#     0       2     magic b"RS"
#     2       1     version (2)
#     3       1     algorithm: 1 = AES-256-GCM under the user's key,
#                              2 = AES-256-GCM under a key derived from the salt
#                                  alone (insecure_unauthenticated=True)
#     4       8     expires, milliseconds since the epoch
#     12      ...   nonce (12, random) || AES-GCM(session) || GCM tag (16)
#
# The 12-byte header and the 32-byte name are the associated data: an entry moved
# under another host's name, or whose expiry was edited, no longer opens. A
# store with a key opens algorithm 1 only: an entry sealed under the opt-out is
# forgeable by anyone, so it is never trusted by a store that has a key.
#
# Version 1 (resume before issue 8) could store sessions in the clear, with a
# tag keyed by the salt that sits in the same store: an attacker who can write
# the store could forge it. Version 1 entries are never trusted: met, they are
# dropped with a warning (and a SQLite database of format 1 is emptied when
# first opened). An entry that does not open (garbage, truncated, wrong key,
# old or unknown version, another host's entry) is deleted and reported with a
# rate-limited :class:`StoreWarning` that never contains a session byte; the
# caller sees a miss and does a full handshake.
#
# Expiry. Every entry carries its absolute expiry twice: in the backend, where
# it lets the backend skip and purge expired entries (a SQLite column, a Redis
# score and key TTL), and in the sealed header, where the key authenticates it.
# Only the sealed one is trusted: whoever can write the store can change the
# backend's copy (issue 18, finding 8: an expired entry revived by moving its
# column or score into the future), so an entry that opens is compared with the
# store's clock once more, and one whose sealed expiry has passed is a miss and
# is deleted (it is in hand: one more delete of one entry). An expired entry is
# therefore never returned. Backends may also expire entries on their own
# (Redis key TTL, a periodic purge in SQLite).
#
# fork(). Every store registers with resume._core.forks: its locks are held
# across a fork() and usable in the child. A backend whose connection cannot
# cross a fork says so in _fork_child (SQLiteStore opens a new connection in
# the child; redis-py's pool reconnects by itself in a new process).
#
# Failures. A backend that fails (Redis down, disk full, database locked past the
# busy timeout) raises :class:`StoreError` from every method. The layer that
# sits on a store for connections (resume._stores.link) turns that into a miss
# plus a rate-limited warning, so a store never fails a connection.
from __future__ import annotations

import enum
import hmac
import os
import struct
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar, final

from .._core import forks
from .._core.errors import StoreError
from .._core.limits import MAX_LIFETIME

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from typing_extensions import Self

__all__ = [
    "FORMAT_VERSION",
    "SessionStore",
    "StoreWarning",
    "StoredSession",
    "key_bytes",
    "load_key",
]

#: The version byte of sealed entries written by this module.
FORMAT_VERSION: Final = 2
_MAGIC: Final = b"RS"
_ALG_AESGCM: Final = 1
_ALG_SALT_ONLY: Final = 2
#: HKDF info strings: a keyed store and an opted-out one never share keys.
_INFO_KEYED: Final = b"resume session store v2 keyed"
_INFO_SALT_ONLY: Final = b"resume session store v2 insecure unauthenticated"
_HEADER: Final = struct.Struct(">2sBBQ")  # magic, version, algorithm, expires (ms)
_TAG_LEN: Final = 16
_NONCE_LEN: Final = 12
_SALT_LEN: Final = 16
_ENTRY_LEN: Final = 16
#: AES-256: the key a user configures is 32 bytes.
KEY_LEN: Final = 32
#: Longest session accepted by put(); a DER session with a ticket is a few kB.
MAX_SESSION_LEN: Final = 64 * 1024
#: Seconds between two warnings of the same kind from one store.
WARN_INTERVAL: Final = 60.0
#: Seconds by which the backend's copy of an expiry may lag the sealed one
#: (rounding to milliseconds) without being reported as changed.
_EXPIRY_SLACK: Final = 1.0


class StoreWarning(UserWarning):
    """A session store dropped an unreadable entry or could not be reached.

    The connection that met the problem goes on with a full handshake. The
    message says what happened and never contains session bytes. Warnings of
    one kind are rate-limited per store (one per minute, with a count of the
    ones suppressed in between).
    """


@final
@dataclass(frozen=True)
class StoredSession:
    """A serialized session read back from a :class:`SessionStore`.

    Attributes:
        data: the session bytes as given to :meth:`SessionStore.put` (DER, a
            secret: it is left out of ``repr()``).
        expires: when the entry expires, in seconds since the epoch.
    """

    data: bytes = field(repr=False)
    expires: float


# -- keys -------------------------------------------------------------------------


def key_bytes(key: Hashable) -> bytes:
    """Encode a cache key as bytes, the same way in every process and on every host.

    Supported: ``str``, ``bytes``, ``int``, ``bool``, ``float``, ``None``,
    :class:`enum.Enum` members (by value), tuples and lists (in order),
    frozensets (order-free) and dataclass instances (by field), nested freely.
    Each value is type-tagged and length-prefixed, so ``("a", "bc")`` and
    ``("ab", "c")`` differ.

    Raises:
        TypeError: *key* holds a value of another type (its ``repr()`` would not
            be the same in another process, so it cannot name a stored session).
    """
    out = bytearray()
    _encode(key, out, 0)
    return bytes(out)


def _encode(value: object, out: bytearray, depth: int) -> None:
    if depth > 32:
        raise TypeError("cache key is nested too deeply to be stored")

    def item(tag: bytes, payload: bytes) -> None:
        out.extend(tag + len(payload).to_bytes(4, "big") + payload)

    # bool before int, Enum before its mixed-in base type.
    if value is None:
        item(b"N", b"")
    elif isinstance(value, bool):
        item(b"?", b"1" if value else b"0")
    elif isinstance(value, enum.Enum):
        inner = bytearray()
        _encode(value.value, inner, depth + 1)
        item(b"E", type(value).__qualname__.encode() + b"\0" + bytes(inner))
    elif isinstance(value, int):
        item(b"i", str(value).encode())
    elif isinstance(value, float):
        item(b"f", value.hex().encode())
    elif isinstance(value, str):
        item(b"s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, bytes | bytearray | memoryview):
        item(b"b", bytes(value))
    elif isinstance(value, tuple | list):
        inner = bytearray()
        for member in value:
            _encode(member, inner, depth + 1)
        item(b"t", bytes(inner))
    elif isinstance(value, frozenset):
        parts = []
        for member in value:
            part = bytearray()
            _encode(member, part, depth + 1)
            parts.append(bytes(part))
        item(b"z", b"".join(sorted(parts)))
    elif is_dataclass(value) and not isinstance(value, type):
        inner = bytearray()
        for f in fields(value):
            _encode(f.name, inner, depth + 1)
            _encode(getattr(value, f.name), inner, depth + 1)
        item(b"d", type(value).__qualname__.encode() + b"\0" + bytes(inner))
    else:
        raise TypeError(
            f"a {type(value).__name__} cannot be part of a stored cache key: use str, bytes, "
            f"int, float, bool, None, enums, tuples, frozensets or dataclasses of them"
        )


def load_key(key: bytes | bytearray | str | os.PathLike[str] | None = None, *,
             key_file: str | os.PathLike[str] | None = None) -> bytes | None:
    """Return a 32-byte store encryption key from bytes or from a key file.

    Args:
        key: the key itself: 32 raw bytes, or 64 hexadecimal characters.
        key_file: a file holding the key (32 raw bytes, or 64 hexadecimal
            characters and optional surrounding whitespace). The file should be
            readable by its owner only; a file that others can read is refused.

    Returns None when neither is given (the store then uses its default key).

    The key file is opened without following a symbolic link and must be a
    regular file owned by this user and neither readable nor writable by
    group or others.

    Raises:
        ValueError: both or a malformed key were given.
        StoreError: the key file cannot be read, is a link, belongs to another
            user, or others may read or write it.
    """
    if key is not None and key_file is not None:
        raise ValueError("give the store key either as key= or as key_file=, not both")
    if key_file is not None:
        from .safefile import read_private

        path = Path(key_file)
        try:
            raw = read_private(path, "key file")
        except OSError as exc:
            raise StoreError(f"cannot read key file {str(path)!r}: {exc.strerror}") from None
        return _parse_key(raw, f"key file {str(path)!r}")
    if key is None:
        return None
    if isinstance(key, str | os.PathLike):
        raise ValueError(
            "key= takes the key bytes (32 bytes); pass a path as key_file= instead"
        )
    return _parse_key(bytes(key), "key")


def _parse_key(raw: bytes, what: str) -> bytes:
    if len(raw) == KEY_LEN:
        return raw
    text = raw.strip()
    if len(text) == 2 * KEY_LEN:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise ValueError(
        f"{what} must be {KEY_LEN} bytes or {2 * KEY_LEN} hexadecimal characters "
        f"(got {len(raw)} bytes); make one with: head -c 32 /dev/urandom > FILE"
    )


# -- warnings ---------------------------------------------------------------------


class _WarnLimiter:
    # At most one warning per kind per interval; the next one says how many
    # were suppressed. Thread-safe; the clock is monotonic.

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.emitted = 0

    def warn(self, kind: str, message: str, stacklevel: int = 3) -> None:
        with self._lock:
            now = self._clock()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            skipped = self._suppressed.pop(kind, 0)
            self.emitted += 1
        if skipped:
            message += f" ({skipped} similar warning(s) suppressed)"
        warnings.warn(message, StoreWarning, stacklevel=stacklevel + 1)


# -- the interface ----------------------------------------------------------------


class _SaltChanged(Exception):
    # Raised by a backend primitive when the salt in the store is not the one
    # this object derived its keys from; the operation is retried once.
    pass


_ATTEMPTS: Final = (0, 1)

_T = TypeVar("_T")


class _Unreadable(Exception):
    # Why a sealed entry did not open; the text goes into a StoreWarning.
    pass


class SessionStore(ABC):
    """Where serialized sessions live outside a process: the interface of every store.

    A store maps a cache key to a small pool of sessions (at most ``per_key``,
    newest kept), each with an absolute expiry. :meth:`get` reads the newest
    live session and leaves it; :meth:`take` removes it in the same atomic step,
    so a single-use TLS 1.3 ticket (RFC 8446, appendix C.4) reaches one client
    only, even across processes and hosts when the backend is shared.

    Entries are sealed before the backend sees them, with a 32-byte key that
    is not in the store: cache keys are stored as keyed HMAC-SHA256 hashes and
    sessions are encrypted and authenticated with AES-256-GCM, bound to their
    entry name. Whoever can write the store but does not hold the key cannot
    plant a session: an entry that does not open (tampered, sealed with another
    key, moved under another name, or in the old unauthenticated format 1) is
    deleted with a rate-limited :class:`StoreWarning` and reads as a miss, so
    the connection makes a full handshake.

    This is the role of OpenSSL's external session cache
    (``SSL_CTX_sess_set_new_cb()``, ``SSL_CTX_sess_set_get_cb()``,
    ``SSL_CTX_sess_set_remove_cb()``); :class:`~resume.SessionCache` sits on a
    store through :func:`resume.stores.attach_store`.

    Args:
        key: the 32-byte key (see :func:`load_key`); None uses the backend's
            default key (see each backend).
        key_file: read the key from this file instead.
        per_key: the most sessions kept under one cache key.
        clock: seconds since the epoch; inject a fake for tests.
        insecure_unauthenticated: run without a key: entries are then sealed
            with a key derived from the store's own salt, so anyone who can
            read or write the store can read and forge them, and make this
            process resume with a server it does not trust. A
            :class:`StoreWarning` says so each time such a store is made.

    Methods raise :class:`~resume.StoreError` when the backend fails.
    """

    def __init__(
        self,
        *,
        key: bytes | None = None,
        key_file: str | os.PathLike[str] | None = None,
        per_key: int = 4,
        clock: Callable[[], float] = time.time,
        insecure_unauthenticated: bool = False,
    ) -> None:
        if per_key < 1:
            raise ValueError(f"per_key must be >= 1, got {per_key}")
        user_key = load_key(key, key_file=key_file)
        self._insecure = bool(insecure_unauthenticated)
        if self._insecure:
            if user_key is not None:
                raise ValueError(
                    "give a store key or insecure_unauthenticated=True, not both"
                )
            warnings.warn(
                f"{self._describe()}: insecure_unauthenticated=True: entries are not "
                f"authenticated, so anyone who can write this store can make this process "
                f"resume with a server it does not trust, and anyone who can read it gets "
                f"the master secrets of the stored sessions; configure a key instead",
                StoreWarning,
                stacklevel=3,
            )
        elif user_key is None:
            user_key = self._default_key()
        self._user_key = user_key
        self._per_key = per_key
        self._clock = clock
        self._limiter = _WarnLimiter(WARN_INTERVAL)
        self._keys_lock = threading.Lock()
        self._derived: tuple[bytes, AESGCM] | None = None
        self._current_salt = b""
        self._closed = False
        forks.register(self, forks.STORE)

    # -- fork() (resume._core.forks) ----------------------------------------------

    def _fork_locks(self) -> tuple[threading.Lock, ...]:
        # Outermost first: _keys() holds _keys_lock while _setup() takes a backend's lock.
        return (self._keys_lock, self._limiter._lock)

    def _fork_child(self) -> None:  # noqa: B027 - optional hook
        """In a child process after fork(): drop what cannot be shared with the parent."""

    # -- configuration ------------------------------------------------------------

    @property
    def per_key(self) -> int:
        """The most sessions kept under one cache key."""
        return self._per_key

    @property
    def encrypted(self) -> bool:
        """Whether entries are sealed with a key that is not in the store.

        False only for a store made with ``insecure_unauthenticated=True``.
        """
        return self._user_key is not None

    def _default_key(self) -> bytes:
        # The key used when none is given; a backend without a safe default
        # raises ValueError saying what to give.
        raise ValueError(f"{type(self).__name__} needs a key: give key= or key_file=")

    @property
    def warnings_emitted(self) -> int:
        """How many :class:`StoreWarning` this store has emitted (not counting suppressed ones)."""
        return self._limiter.emitted

    def _warn(self, kind: str, message: str) -> None:
        self._limiter.warn(kind, f"{self._describe()}: {message}", stacklevel=3)

    def _describe(self) -> str:
        return type(self).__name__

    def _keys(self) -> tuple[bytes, AESGCM]:
        # Derive the name key and the cipher once, on first use: _setup() may do
        # I/O (read or create the salt) and may fail with StoreError. The pair
        # is one attribute, read and replaced atomically, so that no thread
        # ever sees a name key without the cipher that goes with it.
        derived = self._derived
        if derived is not None:
            return derived
        with self._keys_lock:
            derived = self._derived
            if derived is None:
                salt = self._setup()
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
                from cryptography.hazmat.primitives.kdf.hkdf import HKDF

                if self._user_key is None:
                    ikm, info = b"\0" * KEY_LEN, _INFO_SALT_ONLY
                else:
                    ikm, info = self._user_key, _INFO_KEYED
                okm = HKDF(
                    algorithm=hashes.SHA256(), length=64, salt=salt, info=info,
                ).derive(ikm)
                derived = (okm[32:], AESGCM(okm[:32]))
                self._current_salt = salt
                self._derived = derived
            return derived

    # -- sealing ------------------------------------------------------------------

    def _name(self, kb: bytes) -> bytes:
        name_key, _ = self._keys()
        return hmac.digest(name_key, kb, "sha256")

    def _under_name(self, key: Hashable, op: Callable[[bytes], _T]) -> _T:
        # Run *op* on the entry name of *key*. The salt that names entries lives
        # in the store, and another process may replace it (the store emptied
        # and set up again); the backend then raises _SaltChanged, and the name
        # is made again from the new salt, once.
        kb = key_bytes(key)
        for attempt in _ATTEMPTS:
            try:
                return op(self._name(kb))
            except _SaltChanged:
                self._reset_keys(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reset_keys(self, attempt: int) -> None:
        # The shared salt changed under us (a Redis that restarted empty, and
        # another process that created a new salt first): derive again from it.
        if attempt == _ATTEMPTS[-1]:
            raise StoreError(f"{self._describe()}: its salt keeps changing")
        with self._keys_lock:
            self._derived = None

    def _entry_id(self, session: bytes) -> bytes:
        name_key, _ = self._keys()
        return hmac.digest(name_key, b"entry" + session, "sha256")[:_ENTRY_LEN]

    @property
    def _alg(self) -> int:
        return _ALG_SALT_ONLY if self._user_key is None else _ALG_AESGCM

    def _seal(self, name: bytes, session: bytes, expires: float) -> bytes:
        _, aead = self._keys()
        ms = max(0, min(int(expires * 1000), 2**63 - 1))
        header = _HEADER.pack(_MAGIC, FORMAT_VERSION, self._alg, ms)
        nonce = os.urandom(_NONCE_LEN)
        return header + nonce + aead.encrypt(nonce, session, header + name)

    def _open(self, name: bytes, blob: bytes) -> StoredSession:
        _, aead = self._keys()
        if len(blob) < _HEADER.size:
            raise _Unreadable("an entry was truncated")
        magic, version, alg, ms = _HEADER.unpack_from(blob)
        if magic != _MAGIC:
            raise _Unreadable("an entry is not in the resume store format")
        if version == 1:
            raise _Unreadable(
                "an entry in the old format 1 (not authenticated with a key) is not trusted"
            )
        if version != FORMAT_VERSION:
            raise _Unreadable(
                f"an entry has format version {version}; this resume reads version "
                f"{FORMAT_VERSION}"
            )
        if alg != self._alg:
            if alg == _ALG_SALT_ONLY:
                raise _Unreadable(
                    "an entry sealed without a key (insecure_unauthenticated) is not "
                    "trusted by a store with a key"
                )
            if alg == _ALG_AESGCM:
                raise _Unreadable(
                    "an entry sealed with a key was found, but this store has no key"
                )
            raise _Unreadable(f"an entry uses unknown algorithm {alg}")
        header, body = blob[: _HEADER.size], blob[_HEADER.size:]
        if len(body) < _NONCE_LEN + _TAG_LEN:
            raise _Unreadable("an entry was truncated")
        from cryptography.exceptions import InvalidTag

        try:
            session = aead.decrypt(body[:_NONCE_LEN], body[_NONCE_LEN:], header + name)
        except InvalidTag:
            raise _Unreadable(
                "an entry failed authentication (sealed with another key, altered, or "
                "moved from another server's name)"
            ) from None
        return StoredSession(bytes(session), ms / 1000.0)

    # -- the public operations ----------------------------------------------------

    def put(self, key: Hashable, session: bytes, *, expires: float) -> bool:
        """Store *session* under *key* until *expires* (seconds since the epoch).

        Putting a session that is already there only renews its expiry. When the
        key already holds :attr:`per_key` sessions the oldest is dropped. Returns
        False, storing nothing, when *expires* has already passed. The expiry is
        capped at 7 days from now (RFC 8446, section 4.6.1).

        Raises:
            TypeError: *key* cannot be encoded (see :func:`key_bytes`) or
                *session* is not bytes.
            ValueError: *session* is empty or longer than 64 KiB.
            StoreError: the backend failed.
        """
        if not isinstance(session, bytes | bytearray | memoryview):
            raise TypeError(f"session must be bytes, got {type(session).__name__}")
        session = bytes(session)
        if not session or len(session) > MAX_SESSION_LEN:
            raise ValueError(
                f"a stored session is 1 to {MAX_SESSION_LEN} bytes, got {len(session)}"
            )
        self._check_open()
        now = self._clock()
        expires = min(float(expires), now + MAX_LIFETIME)
        if not expires > now:
            return False
        def put(name: bytes) -> None:
            # the entry id and the seal depend on the keys, which a new salt renews
            blob = self._seal(name, session, expires)
            self._put_raw(name, self._entry_id(session), expires, blob, self._per_key, now)

        self._under_name(key, put)
        return True

    def get(self, key: Hashable) -> StoredSession | None:
        """Return the newest live session under *key*, leaving it in the store, or None.

        Unreadable entries met on the way are deleted with a
        :class:`StoreWarning`; expired ones are deleted silently. The expiry
        that counts is the one sealed with the entry, so changing the expiry
        the backend keeps (a SQLite column, a Redis score) cannot revive an
        expired entry: such an entry is deleted with a :class:`StoreWarning`.

        Raises:
            StoreError: the backend failed.
        """
        self._check_open()
        return self._under_name(key, self._get)

    def _get(self, name: bytes) -> StoredSession | None:
        for _ in range(self._per_key + 8):
            now = self._clock()
            found = self._get_raw(name, now)
            if found is None:
                return None
            entry, blob = found
            # Delete first, warn after: a warning filter may turn the
            # warning into an exception, and the entry must be gone anyway.
            try:
                stored = self._open(name, blob)
            except _Unreadable as exc:
                self._delete_raw(name, entry)
                self._warn("unreadable", f"{exc}; it was dropped")
                continue
            if now > stored.expires:
                self._delete_raw(name, entry)
                self._report_expired(stored, now)
                continue
            return stored
        return None

    def take(self, key: Hashable) -> StoredSession | None:
        """Remove the newest live session under *key* and return it, or None.

        Atomic: when several processes take from one store at once, each
        session goes to one of them only. Use it for single-use TLS 1.3 tickets.

        Raises:
            StoreError: the backend failed.
        """
        self._check_open()
        return self._under_name(key, self._take)

    def _take(self, name: bytes) -> StoredSession | None:
        for _ in range(self._per_key + 8):
            now = self._clock()
            blob = self._take_raw(name, now)
            if blob is None:
                return None
            try:
                stored = self._open(name, blob)
            except _Unreadable as exc:
                self._warn("unreadable", f"{exc}; it was dropped")
                continue
            if now > stored.expires:
                self._report_expired(stored, now)  # take() removed it already
                continue
            return stored
        return None

    def _report_expired(self, stored: StoredSession, now: float) -> None:
        # An entry the backend called live is past its sealed expiry, which is
        # the one that counts (see the top). The backend's copy is written with
        # the sealed one and differs by rounding only (under a millisecond): one
        # well past it was changed in the store, so say so. One just past it
        # (a race with the clock) is dropped silently.
        if now - stored.expires > _EXPIRY_SLACK:
            self._warn(
                "expired",
                "an entry past its sealed expiry was listed as live by the store (its "
                "expiry there was changed); it was dropped",
            )

    def delete(self, key: Hashable, session: bytes | None = None) -> int:
        """Delete the sessions under *key*, or only *session*; return how many went.

        Raises:
            StoreError: the backend failed.
        """
        self._check_open()
        def delete(name: bytes) -> int:
            entry = None if session is None else self._entry_id(bytes(session))
            return self._delete_raw(name, entry)

        return self._under_name(key, delete)

    def close(self) -> None:
        """Release the backend's resources (connections, file handles). Idempotent."""
        if not self._closed:
            self._closed = True
            self._close_raw()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._describe()} is closed")

    # -- the backend primitives ---------------------------------------------------

    @abstractmethod
    def _setup(self) -> bytes:
        """Return the store's salt, creating it atomically if it is not there yet."""

    @abstractmethod
    def _put_raw(
        self, name: bytes, entry: bytes, expires: float, blob: bytes, per_key: int, now: float
    ) -> None:
        """Insert or replace (name, entry); keep the newest per_key under name."""

    @abstractmethod
    def _get_raw(self, name: bytes, now: float) -> tuple[bytes, bytes] | None:
        """Return (entry, blob) of the newest entry under name that is live at now."""

    @abstractmethod
    def _take_raw(self, name: bytes, now: float) -> bytes | None:
        """Remove and return the blob of the newest live entry under name, atomically."""

    @abstractmethod
    def _delete_raw(self, name: bytes, entry: bytes | None) -> int:
        """Delete one entry (or all under name when entry is None); return the count."""

    def _close_raw(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources."""


def _new_salt() -> bytes:
    return os.urandom(_SALT_LEN)


StoreWarning.__module__ = "resume"
StoredSession.__module__ = "resume.stores"
SessionStore.__module__ = "resume.stores"
key_bytes.__module__ = "resume.stores"
load_key.__module__ = "resume.stores"
