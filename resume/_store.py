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
# Names. A cache key names a server (host, port, TLS settings); a stolen store
# must not list where its owner connects. The backend therefore only ever sees
#
#     name = HMAC-SHA256(name_key, key_bytes(key))            (32 bytes)
#
# where ``name_key`` is the per-store random salt (created by the first user of
# the store and kept in it) or, when an encryption key is configured, a key
# derived from the user's key and the salt with HKDF-SHA256. Without a user key
# a thief holding the store and its salt can still test guesses ("was it
# example.com:443?"); with one, the names are opaque.
#
# Entries. Each pool member is identified by
#
#     entry = HMAC-SHA256(name_key, b"entry" + session)[:16]
#
# so putting the same session twice stores it once, and a session can be deleted
# by value (the cache tells the store which ticket it consumed) without the
# backend ever comparing secrets.
#
# Sealed format, version 1 (all integers big-endian):
#
#     offset  size  field
#     0       2     magic b"RS"
#     2       1     version (1)
#     3       1     algorithm: 0 = none (integrity tag only), 1 = AES-256-GCM
#     4       8     expires, milliseconds since the epoch
#     12      ...   algorithm 0: tag (16) || session
#                   algorithm 1: nonce (12) || AES-GCM(session) || GCM tag (16)
#
# The 12-byte header and the 32-byte name are the associated data: an entry moved
# under another host's name, or whose expiry was edited, no longer opens. With
# algorithm 0 the tag is HMAC-SHA256(name_key, header || name || session)[:16]:
# it detects corruption and misfiled entries, not an attacker who also holds the
# salt (configure a key for that). An entry that does not open (garbage,
# truncated, wrong key, unknown version, another host's entry) is deleted and
# reported with a :class:`StoreWarning` that never contains a session byte; the
# caller sees a miss and does a full handshake.
#
# Expiry. Every entry carries its absolute expiry; an expired entry is never
# returned and is deleted when met. Backends may also expire entries on their own
# (Redis key TTL, a periodic purge in SQLite).
#
# Failures. A backend that fails (Redis down, disk full, database locked past the
# busy timeout) raises :class:`StoreError` from every method. The layer that
# sits on a store for connections (resume._storecache) turns that into a miss
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
from typing import TYPE_CHECKING, Final, final

from ._errors import StoreError

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
FORMAT_VERSION: Final = 1
_MAGIC: Final = b"RS"
_ALG_NONE: Final = 0
_ALG_AESGCM: Final = 1
_HEADER: Final = struct.Struct(">2sBBQ")  # magic, version, algorithm, expires (ms)
_TAG_LEN: Final = 16
_NONCE_LEN: Final = 12
_SALT_LEN: Final = 16
_ENTRY_LEN: Final = 16
#: AES-256: the key a user configures is 32 bytes.
KEY_LEN: Final = 32
#: Longest session accepted by put(); a DER session with a ticket is a few kB.
MAX_SESSION_LEN: Final = 64 * 1024
#: RFC 8446, section 4.6.1: no ticket lives longer than 7 days.
_MAX_LIFETIME: Final = 7 * 24 * 3600.0
#: Seconds between two warnings of the same kind from one store.
WARN_INTERVAL: Final = 60.0


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

    Returns None when neither is given (entries are then stored unencrypted).

    Raises:
        ValueError: both or a malformed key were given.
        StoreError: the key file cannot be read or others may read it.
    """
    if key is not None and key_file is not None:
        raise ValueError("give the store key either as key= or as key_file=, not both")
    if key_file is not None:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
            if mode & 0o077:
                raise StoreError(
                    f"key file {str(path)!r} may be read by other users "
                    f"(mode {mode & 0o777:04o}); chmod 600 it"
                )
            raw = path.read_bytes()
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

    Entries are sealed before the backend sees them: keys are stored as salted
    HMAC-SHA256 hashes, and with an encryption *key* the session bytes are
    encrypted with AES-256-GCM (see the module's theory of operation, and
    :func:`load_key`). An entry that cannot be opened is deleted with a
    :class:`StoreWarning` and reads as a miss.

    This is the role of OpenSSL's external session cache
    (``SSL_CTX_sess_set_new_cb()``, ``SSL_CTX_sess_set_get_cb()``,
    ``SSL_CTX_sess_set_remove_cb()``); :class:`~resume.SessionCache` sits on a
    store through :func:`resume.stores.attach_store`.

    Args:
        key: the 32-byte encryption key (see :func:`load_key`); None stores
            sessions unencrypted (names are still hashed).
        key_file: read the key from this file instead.
        per_key: the most sessions kept under one cache key.
        clock: seconds since the epoch; inject a fake for tests.

    Methods raise :class:`~resume.StoreError` when the backend fails.
    """

    def __init__(
        self,
        *,
        key: bytes | None = None,
        key_file: str | os.PathLike[str] | None = None,
        per_key: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if per_key < 1:
            raise ValueError(f"per_key must be >= 1, got {per_key}")
        self._user_key = load_key(key, key_file=key_file)
        self._per_key = per_key
        self._clock = clock
        self._limiter = _WarnLimiter(WARN_INTERVAL)
        self._keys_lock = threading.Lock()
        self._derived: tuple[bytes, AESGCM | None] | None = None
        self._current_salt = b""
        self._closed = False

    # -- configuration ------------------------------------------------------------

    @property
    def per_key(self) -> int:
        """The most sessions kept under one cache key."""
        return self._per_key

    @property
    def encrypted(self) -> bool:
        """Whether entries are encrypted (a key was configured)."""
        return self._user_key is not None

    @property
    def warnings_emitted(self) -> int:
        """How many :class:`StoreWarning` this store has emitted (not counting suppressed ones)."""
        return self._limiter.emitted

    def _warn(self, kind: str, message: str) -> None:
        self._limiter.warn(kind, f"{self._describe()}: {message}", stacklevel=3)

    def _describe(self) -> str:
        return type(self).__name__

    def _keys(self) -> tuple[bytes, AESGCM | None]:
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
                if self._user_key is None:
                    derived = (salt, None)
                else:
                    from cryptography.hazmat.primitives import hashes
                    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
                    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

                    okm = HKDF(
                        algorithm=hashes.SHA256(), length=64, salt=salt,
                        info=b"resume session store v1",
                    ).derive(self._user_key)
                    derived = (okm[32:], AESGCM(okm[:32]))
                self._current_salt = salt
                self._derived = derived
            return derived

    # -- sealing ------------------------------------------------------------------

    def _name(self, kb: bytes) -> bytes:
        name_key, _ = self._keys()
        return hmac.digest(name_key, kb, "sha256")

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

    def _seal(self, name: bytes, session: bytes, expires: float) -> bytes:
        name_key, aead = self._keys()
        ms = max(0, min(int(expires * 1000), 2**63 - 1))
        if aead is None:
            assert self._user_key is None, "an encrypted store never writes in clear"
            header = _HEADER.pack(_MAGIC, FORMAT_VERSION, _ALG_NONE, ms)
            tag = hmac.digest(name_key, header + name + session, "sha256")[:_TAG_LEN]
            return header + tag + session
        header = _HEADER.pack(_MAGIC, FORMAT_VERSION, _ALG_AESGCM, ms)
        nonce = os.urandom(_NONCE_LEN)
        return header + nonce + aead.encrypt(nonce, session, header + name)

    def _open(self, name: bytes, blob: bytes) -> StoredSession:
        name_key, aead = self._keys()
        if len(blob) < _HEADER.size:
            raise _Unreadable("an entry was truncated")
        magic, version, alg, ms = _HEADER.unpack_from(blob)
        if magic != _MAGIC:
            raise _Unreadable("an entry is not in the resume store format")
        if version != FORMAT_VERSION:
            raise _Unreadable(
                f"an entry has format version {version}; this resume reads version "
                f"{FORMAT_VERSION}"
            )
        header, body = blob[: _HEADER.size], blob[_HEADER.size:]
        if alg == _ALG_NONE:
            if aead is not None:
                raise _Unreadable("an unencrypted entry was found in an encrypted store")
            if len(body) < _TAG_LEN:
                raise _Unreadable("an entry was truncated")
            tag, session = body[:_TAG_LEN], body[_TAG_LEN:]
            want = hmac.digest(name_key, header + name + session, "sha256")[:_TAG_LEN]
            if not hmac.compare_digest(tag, want):
                raise _Unreadable(
                    "an entry failed its integrity check (corrupted, or filed under "
                    "another server's name)"
                )
        elif alg == _ALG_AESGCM:
            if aead is None:
                raise _Unreadable("an encrypted entry was found but no key is configured")
            if len(body) < _NONCE_LEN + _TAG_LEN:
                raise _Unreadable("an entry was truncated")
            from cryptography.exceptions import InvalidTag

            try:
                session = aead.decrypt(body[:_NONCE_LEN], body[_NONCE_LEN:], header + name)
            except InvalidTag:
                raise _Unreadable(
                    "an entry did not decrypt (wrong key, corrupted, or filed under "
                    "another server's name)"
                ) from None
        else:
            raise _Unreadable(f"an entry uses unknown algorithm {alg}")
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
        expires = min(float(expires), now + _MAX_LIFETIME)
        if not expires > now:
            return False
        kb = key_bytes(key)
        for attempt in _ATTEMPTS:
            name = self._name(kb)
            blob = self._seal(name, session, expires)
            try:
                self._put_raw(name, self._entry_id(session), expires, blob, self._per_key, now)
            except _SaltChanged:
                self._reset_keys(attempt)
                continue
            break
        return True

    def get(self, key: Hashable) -> StoredSession | None:
        """Return the newest live session under *key*, leaving it in the store, or None.

        Unreadable entries met on the way are deleted with a
        :class:`StoreWarning`; expired ones are deleted silently.

        Raises:
            StoreError: the backend failed.
        """
        self._check_open()
        kb = key_bytes(key)
        for attempt in _ATTEMPTS:
            try:
                return self._get(self._name(kb))
            except _SaltChanged:
                self._reset_keys(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, name: bytes) -> StoredSession | None:
        for _ in range(self._per_key + 8):
            found = self._get_raw(name, self._clock())
            if found is None:
                return None
            entry, blob = found
            try:
                return self._open(name, blob)
            except _Unreadable as exc:
                self._warn("unreadable", f"{exc}; it was dropped")
                self._delete_raw(name, entry)
        return None

    def take(self, key: Hashable) -> StoredSession | None:
        """Remove the newest live session under *key* and return it, or None.

        Atomic: when several processes take from one store at once, each
        session goes to one of them only. Use it for single-use TLS 1.3 tickets.

        Raises:
            StoreError: the backend failed.
        """
        self._check_open()
        kb = key_bytes(key)
        for attempt in _ATTEMPTS:
            try:
                return self._take(self._name(kb))
            except _SaltChanged:
                self._reset_keys(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self, name: bytes) -> StoredSession | None:
        for _ in range(self._per_key + 8):
            blob = self._take_raw(name, self._clock())
            if blob is None:
                return None
            try:
                return self._open(name, blob)
            except _Unreadable as exc:
                self._warn("unreadable", f"{exc}; it was dropped")
        return None

    def delete(self, key: Hashable, session: bytes | None = None) -> int:
        """Delete the sessions under *key*, or only *session*; return how many went.

        Raises:
            StoreError: the backend failed.
        """
        self._check_open()
        kb = key_bytes(key)
        for attempt in _ATTEMPTS:
            entry = None if session is None else self._entry_id(bytes(session))
            try:
                return self._delete_raw(self._name(kb), entry)
            except _SaltChanged:
                self._reset_keys(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

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
