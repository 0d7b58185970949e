# Theory of operation: the Redis store
# ====================================
#
# RedisStore shares sessions between processes and hosts through a Redis server
# (not Redis Cluster: every script touches the store's salt key and a name's
# keys, which Cluster would put in different slots).
#
# Layout, for a store with prefix P and a hashed cache key N (hex):
#
#   P:salt       the store's random salt (string, no TTL)
#   P:seq        a counter that orders puts (string, no TTL)
#   P:{N}:e      hash: entry id -> sealed blob
#   P:{N}:x      sorted set: entry id, scored by its expiry in ms since the epoch
#   P:{N}:o      sorted set: entry id, scored by its put sequence number
#
# Each operation is one Lua script, so it is atomic on the server: ``take``
# pops the newest member (highest sequence number) with ZPOPMAX and removes it
# from the other two keys in the same script, so two clients, even on two hosts, never
# receive the same single-use TLS 1.3 ticket. Expired members are removed by
# every script that touches a name, and both keys of a name carry a Redis TTL
# (PEXPIREAT) equal to the latest expiry in the pool: a name nobody touches
# again disappears by itself.
#
# The salt. Every script first checks that P:salt is the salt this client
# derived its names from; if P:salt is missing (a Redis restarted without
# persistence) the script puts it back, so clients that were running keep
# agreeing on names. If another client re-created it with a different salt
# first, the script answers RESUME_SALT, and the client reloads the salt and
# retries once (SessionStore handles the retry).
#
# Failures. The store talks to Redis through resume._stores.redisclient: every
# public operation (put, get, take, delete) runs under one deadline of *timeout*
# seconds, connecting and every round trip included, so a Redis that answers one
# byte at a time cannot hold a caller (or, through it, a thread the process waits
# for at exit) longer than that. Replies are size-limited and type-checked; all
# of it surfaces as StoreError. A pooled connection that died with a restarted
# server is retried once on a new connection, within the same deadline; a
# server that is down raises StoreError at once, without back-off sleeps: the
# layer that sits on the store decides what to do (resume._stores.link turns it
# into a miss and a rate-limited warning).
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Final, TypeVar, final

from .._core.errors import StoreError
from .base import SessionStore, StoredSession, _new_salt, _SaltChanged
from .redisclient import (
    RedisClient,
    RedisError,
    RedisReplyError,
    Reply,
    Script,
    expect_bytes,
    expect_int,
    expect_ok,
    expect_pair,
)
from .safefile import redact_url, scrub

__all__ = ["RedisStore"]

_R = TypeVar("_R")

_PROLOGUE: Final = """
local salt = redis.call('GET', KEYS[1])
if not salt then
  redis.call('SET', KEYS[1], ARGV[1])
elseif salt ~= ARGV[1] then
  return redis.error_reply('RESUME_SALT the store salt changed')
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[2])
if #dead > 0 then
  redis.call('HDEL', KEYS[2], unpack(dead))
  redis.call('ZREM', KEYS[3], unpack(dead))
  redis.call('ZREM', KEYS[4], unpack(dead))
end
"""

# KEYS: salt, hash, expiry zset, order zset, sequence
# ARGV: salt, now_ms, entry, expires_ms, blob, per_key
_PUT: Final = Script(_PROLOGUE + """
local seq = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[4], seq, ARGV[3])
local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[4], 0, extra - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[3], unpack(old))
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, extra - 1)
end
local top = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
local at = math.ceil(tonumber(top[2])) + 1000
redis.call('PEXPIREAT', KEYS[2], at)
redis.call('PEXPIREAT', KEYS[3], at)
redis.call('PEXPIREAT', KEYS[4], at)
return 1
""")

# KEYS: as for put; ARGV: salt, now_ms
_GET: Final = Script(_PROLOGUE + """
while true do
  local top = redis.call('ZREVRANGE', KEYS[4], 0, 0)
  if #top == 0 then return false end
  local blob = redis.call('HGET', KEYS[2], top[1])
  if blob then return {top[1], blob} end
  redis.call('ZREM', KEYS[3], top[1])
  redis.call('ZREM', KEYS[4], top[1])
end
""")

_TAKE: Final = Script(_PROLOGUE + """
while true do
  local top = redis.call('ZPOPMAX', KEYS[4])
  if #top == 0 then return false end
  redis.call('ZREM', KEYS[3], top[1])
  local blob = redis.call('HGET', KEYS[2], top[1])
  if blob then
    redis.call('HDEL', KEYS[2], top[1])
    return blob
  end
end
""")

# KEYS: as for put; ARGV: salt, now_ms, entry ('' for all)
_DELETE: Final = Script(_PROLOGUE + """
if ARGV[3] == '' then
  local n = redis.call('HLEN', KEYS[2])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  return n
end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
return redis.call('HDEL', KEYS[2], ARGV[3])
""")


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


@final
class RedisStore(SessionStore):
    """A :class:`SessionStore` on a Redis server, shared by many processes and hosts.

    :meth:`take` is atomic on the server, so a single-use TLS 1.3 ticket goes to
    one client only. Each entry's expiry is kept, and each cache key's entries
    carry a Redis TTL, so Redis drops them by itself. Needs a Redis server
    (2.6 or later), not Redis Cluster; resume speaks to it itself, with no
    client package.

    Args:
        url: a Redis URL, e.g. ``redis://127.0.0.1:6379/0``,
            ``rediss://user:password@host:6380/2`` (TLS) or
            ``unix:///run/redis.sock?db=0``, spelled as for redis-py; the query
            may give ``db``, ``username``, ``password`` and, for TLS,
            ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_ca_path``,
            ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_check_hostname``.
            Its password is never printed, logged or shown by ``repr()``.
        key: the 32-byte key (see :func:`resume.stores.load_key`), required:
            every process and host that shares the store needs the same key,
            and Redis must never hold it.
        key_file: read the key from this file instead.
        prefix: the prefix of every Redis key the store uses.
        per_key: the most sessions kept under one cache key.
        timeout: seconds one operation (:meth:`put`, :meth:`get`,
            :meth:`take`, :meth:`delete`) may take in all: connecting,
            logging in and every round trip. A server that answers slowly,
            one byte at a time, or not at all costs at most this long, then
            :class:`~resume.StoreError`.
        clock: seconds since the epoch; inject a fake for tests.
        insecure_unauthenticated: run without a key. Anyone who can write to
            this Redis (on loopback without a password: every local user) can
            then make this process resume with a server it does not trust, and
            anyone who can read it gets the stored master secrets. Warns with a
            :class:`~resume.StoreWarning` every time such a store is made.

    Raises:
        ValueError: no key and no ``insecure_unauthenticated=True``, or *url*
            is not a Redis URL.

    Creating the store does not connect; the first operation does. While the
    server is unreachable every operation raises :class:`~resume.StoreError`
    quickly (no retry loop). A reply larger than 1 MiB, an array of more than
    64 elements or a reply of the wrong type is a :class:`~resume.StoreError`
    too (a stored entry is at most 64 KiB). Calls block for one round trip to
    the server (about 0.1 ms on loopback); under a cache (:func:`attach_store`)
    the adapters make them in a thread, so they never block an event loop.
    """

    def __init__(
        self,
        url: str,
        *,
        key: bytes | None = None,
        key_file: str | os.PathLike[str] | None = None,
        prefix: str = "resume",
        per_key: int = 4,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
        insecure_unauthenticated: bool = False,
    ) -> None:
        self._url = url
        super().__init__(key=key, key_file=key_file, per_key=per_key, clock=clock,
                         insecure_unauthenticated=insecure_unauthenticated)
        try:
            self._client = RedisClient(url, timeout=timeout)
        except ValueError as exc:
            raise ValueError(scrub(str(exc), url)) from None
        self._prefix = prefix
        self._salt_key = f"{prefix}:salt"

    # One deadline of *timeout* seconds for each whole operation (see the top).

    def put(self, key: Hashable, session: bytes, *, expires: float) -> bool:
        """Store *session* under *key* until *expires*: :meth:`SessionStore.put`.

        The whole call (connecting included) ends within *timeout* seconds.

        Raises:
            TypeError: *key* cannot be encoded or *session* is not bytes.
            ValueError: *session* is empty or longer than 64 KiB.
            StoreError: Redis failed, answered wrongly or not within *timeout*.
        """
        with self._client.deadline():
            return super().put(key, session, expires=expires)

    def get(self, key: Hashable) -> StoredSession | None:
        """The newest live session under *key*, left in place: :meth:`SessionStore.get`.

        The whole call (connecting included) ends within *timeout* seconds.

        Raises:
            StoreError: Redis failed, answered wrongly or not within *timeout*.
        """
        with self._client.deadline():
            return super().get(key)

    def take(self, key: Hashable) -> StoredSession | None:
        """Remove and return the newest live session under *key*: :meth:`SessionStore.take`.

        Atomic on the server. The whole call (connecting included) ends within
        *timeout* seconds.

        Raises:
            StoreError: Redis failed, answered wrongly or not within *timeout*.
        """
        with self._client.deadline():
            return super().take(key)

    def delete(self, key: Hashable, session: bytes | None = None) -> int:
        """Delete the sessions under *key*, or only *session*: :meth:`SessionStore.delete`.

        The whole call (connecting included) ends within *timeout* seconds.

        Raises:
            StoreError: Redis failed, answered wrongly or not within *timeout*.
        """
        with self._client.deadline():
            return super().delete(key, session)

    def _describe(self) -> str:
        return f"RedisStore({redact_url(self._url)!r})"

    def _default_key(self) -> bytes:
        raise ValueError(
            f"{self._describe()} needs a key that Redis does not hold (key= or key_file=; "
            f"'resume connect' takes --store-key-file FILE): without one, anyone who can "
            f"write to Redis could make this process resume with a server it does not "
            f"trust. To run without one anyway, pass insecure_unauthenticated=True"
        )

    def _fail(self, exc: Exception) -> StoreError:
        return StoreError(f"{self._describe()} failed: {scrub(str(exc), self._url)}")

    def _run(self, script: Script, name: bytes, *args: bytes | int | float | str) -> Reply:
        hexname = name.hex()
        keys = [
            self._salt_key,
            f"{self._prefix}:{{{hexname}}}:e",
            f"{self._prefix}:{{{hexname}}}:x",
            f"{self._prefix}:{{{hexname}}}:o",
            f"{self._prefix}:seq",
        ]
        try:
            return self._client.run(script, keys, [self._current_salt, _ms(self._clock()), *args])
        except RedisReplyError as exc:
            if str(exc).startswith("RESUME_SALT"):
                raise _SaltChanged() from None
            raise self._fail(exc) from None
        except RedisError as exc:
            raise self._fail(exc) from None

    def _setup(self) -> bytes:
        with self._client.deadline():
            try:
                expect_ok(self._client.call("SET", self._salt_key, _new_salt(), "NX"), "SET salt")
                salt = expect_bytes(self._client.call("GET", self._salt_key), "GET salt")
            except RedisError as exc:
                raise self._fail(exc) from None
        if salt is None or len(salt) < 16:
            raise StoreError(f"{self._describe()}: the salt key {self._salt_key!r} is damaged")
        return salt

    def _put_raw(
        self, name: bytes, entry: bytes, expires: float, blob: bytes, per_key: int, now: float
    ) -> None:
        self._check(expect_int, self._run(_PUT, name, entry, _ms(expires), blob, per_key), "put")

    def _get_raw(self, name: bytes, now: float) -> tuple[bytes, bytes] | None:
        return self._check(expect_pair, self._run(_GET, name), "get")

    def _take_raw(self, name: bytes, now: float) -> bytes | None:
        return self._check(expect_bytes, self._run(_TAKE, name), "take")

    def _delete_raw(self, name: bytes, entry: bytes | None) -> int:
        return self._check(expect_int, self._run(_DELETE, name, b"" if entry is None else entry),
                           "delete")

    def _check(self, expect: Callable[[Reply, str], _R], reply: Reply, what: str) -> _R:
        try:
            return expect(reply, what)
        except RedisError as exc:
            raise self._fail(exc) from None

    def _close_raw(self) -> None:
        self._client.close()

    def _fork_locks(self) -> tuple[threading.Lock, ...]:
        # The client's pool lock too (resume._core.forks).
        return (*super()._fork_locks(), self._client._lock)

    def __repr__(self) -> str:
        return f"<resume.stores.RedisStore {redact_url(self._url)!r} encrypted={self.encrypted}>"


RedisStore.__module__ = "resume.stores"
