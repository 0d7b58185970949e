"""The SessionStore contract, run against every backend: memory, SQLite and a real Redis.

Sessions here are opaque bytes (what SessionHandle.to_der() returns); the
stores never parse them. Each backend runs with its default key (Redis has
none: a key file), with a given key, and under the insecure opt-out.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule
from redis_server import RedisServer

import resume
from resume._stores.base import _Unreadable
from resume.stores import (
    MemoryStore,
    RedisStore,
    SessionStore,
    SQLiteStore,
    StoredSession,
    StoreWarning,
    key_bytes,
    load_key,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
HOST = ("example.test", 443, "0123456789abcdef")
OTHER = ("other.test", 443, "0123456789abcdef")


class Clock:
    """A wall clock for stores that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    directory = tmp_path_factory.mktemp("redis")
    with RedisServer(directory) as server:
        yield server


@dataclass
class Backend:
    """Makes stores of one kind over one shared backing (file, Redis prefix)."""

    kind: str
    tmp: Path
    redis_url: str
    prefix: str

    def make(self, **options: Any) -> SessionStore:
        if options.get("key") == "insecure":
            del options["key"]
            with pytest.warns(StoreWarning, match="insecure_unauthenticated"):
                return self.make(insecure_unauthenticated=True, **options)
        if self.kind == "memory":
            return MemoryStore(**options)
        if self.kind == "sqlite":
            return SQLiteStore(self.tmp / "sessions.db", **options)
        if (options.get("key") is None and options.get("key_file") is None
                and not options.get("insecure_unauthenticated")):
            # Redis has no default key: the documented way is a key file.
            options.pop("key", None)
            options["key_file"] = self.redis_key_file()
        return RedisStore(self.redis_url, prefix=self.prefix, **options)

    def redis_key_file(self) -> Path:
        path = self.tmp / "redis.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(32))
            os.close(fd)
        return path

    def raw_dump(self) -> bytes:
        """Every byte the backend holds (keys and values), for secrecy checks."""
        if self.kind == "sqlite":
            return b"".join(p.read_bytes() for p in self.tmp.iterdir())
        client: Any = redis.Redis.from_url(self.redis_url)
        try:
            out: list[bytes] = []
            for k in client.keys(f"{self.prefix}:*"):
                out.append(k)
                kind = client.type(k)
                if kind == b"hash":
                    for f, v in client.hgetall(k).items():
                        out += [f, v]
                elif kind == b"zset":
                    out += client.zrange(k, 0, -1)
                else:
                    out.append(client.get(k) or b"")
            return b"".join(out)
        finally:
            client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, shared_redis: RedisServer
) -> Backend:
    return Backend(request.param, tmp_path, shared_redis.url, f"t{os.urandom(6).hex()}")


@pytest.fixture(params=[None, KEY_A, "insecure"], ids=["default-key", "given-key", "insecure"])
def key(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(backend: Backend, key: Any, clock: Clock) -> Iterator[SessionStore]:
    s = backend.make(key=key, clock=clock)
    yield s
    s.close()


def session(n: int) -> bytes:
    return b"\x30\x82" + n.to_bytes(4, "big") + b"secret-master-key" * 4


# -- raw access to a backend, through its primitives (the real storage) ----------------


def raw_entry(store: SessionStore, key: Hashable) -> tuple[bytes, bytes, bytes]:
    name = store._name(key_bytes(key))
    found = store._get_raw(name, store._clock())
    assert found is not None
    return name, found[0], found[1]


def replace_blob(store: SessionStore, key: Hashable, mutate: Callable[[bytes], bytes]) -> None:
    name, entry, blob = raw_entry(store, key)
    store._put_raw(name, entry, store._clock() + 60, mutate(blob), store.per_key, store._clock())


def one_warning(record: list[warnings.WarningMessage]) -> str:
    got = [w for w in record if issubclass(w.category, StoreWarning)]
    assert len(got) == 1, [str(w.message) for w in got]
    return str(got[0].message)


class TestPutGetTake:
    def test_put_then_get_returns_the_session_and_keeps_it(
        self, store: SessionStore, clock: Clock
    ) -> None:
        """get() returns the stored bytes and its expiry, and leaves the entry."""
        assert store.put(HOST, session(1), expires=clock.now + 60)
        got = store.get(HOST)
        assert got == StoredSession(session(1), clock.now + 60)
        assert store.get(HOST) == got

    def test_take_removes(self, store: SessionStore, clock: Clock) -> None:
        """take() returns the session once; the next take() misses."""
        store.put(HOST, session(1), expires=clock.now + 60)
        taken = store.take(HOST)
        assert taken is not None and taken.data == session(1)
        assert store.take(HOST) is None
        assert store.get(HOST) is None

    def test_newest_first(self, store: SessionStore, clock: Clock) -> None:
        """A pool hands out its newest session first, then the older ones."""
        for n in range(3):
            store.put(HOST, session(n), expires=clock.now + 60 + n)
        got = [store.take(HOST) for _ in range(4)]
        assert [g.data if g else None for g in got] == [session(2), session(1), session(0), None]

    def test_per_key_drops_the_oldest(self, backend: Backend, clock: Clock) -> None:
        """Over per_key sessions under one key, the oldest goes."""
        with backend.make(per_key=2, clock=clock) as store:
            for n in range(4):
                store.put(HOST, session(n), expires=clock.now + 60 + n)
            assert store.take(HOST) == StoredSession(session(3), clock.now + 63)
            assert store.take(HOST) == StoredSession(session(2), clock.now + 62)
            assert store.take(HOST) is None

    def test_same_session_twice_is_stored_once(self, store: SessionStore, clock: Clock) -> None:
        """Putting a session again renews its expiry and does not duplicate it."""
        store.put(HOST, session(1), expires=clock.now + 10)
        store.put(HOST, session(1), expires=clock.now + 20)
        assert store.take(HOST) == StoredSession(session(1), clock.now + 20)
        assert store.take(HOST) is None

    def test_keys_are_separate(self, store: SessionStore, clock: Clock) -> None:
        """A session under one key is not found under another."""
        store.put(HOST, session(1), expires=clock.now + 60)
        assert store.get(OTHER) is None
        assert store.take(("example.test", 444, HOST[2])) is None
        assert store.take(HOST) is not None

    def test_delete_one_or_all(self, store: SessionStore, clock: Clock) -> None:
        """delete(key, session) removes that session; delete(key) removes the pool."""
        for n in range(3):
            store.put(HOST, session(n), expires=clock.now + 60)
        store.put(OTHER, session(9), expires=clock.now + 60)
        assert store.delete(HOST, session(2)) == 1
        assert store.delete(HOST, session(2)) == 0
        assert store.get(HOST) == StoredSession(session(1), clock.now + 60)
        assert store.delete(HOST) == 2
        assert store.get(HOST) is None
        assert store.get(OTHER) is not None


class TestExpiry:
    def test_expired_entry_is_never_returned(self, store: SessionStore, clock: Clock) -> None:
        """An entry whose expiry has passed reads as a miss, without a warning."""
        store.put(HOST, session(1), expires=clock.now + 10)
        clock.now += 10
        assert store.get(HOST) is not None  # expires == now: still live
        clock.now += 0.5
        assert store.get(HOST) is None
        assert store.take(HOST) is None

    def test_expired_older_does_not_hide_live_newer(
        self, store: SessionStore, clock: Clock
    ) -> None:
        """Expired sessions under a key do not stop a live one from being found."""
        store.put(HOST, session(1), expires=clock.now + 5)
        store.put(HOST, session(2), expires=clock.now + 50)
        clock.now += 20
        assert store.take(HOST) == StoredSession(session(2), clock.now + 30)
        assert store.take(HOST) is None

    def test_put_of_an_expired_session_stores_nothing(
        self, store: SessionStore, clock: Clock
    ) -> None:
        """put() with an expiry in the past returns False and stores nothing."""
        assert store.put(HOST, session(1), expires=clock.now - 1) is False
        assert store.put(HOST, session(1), expires=clock.now) is False
        assert store.get(HOST) is None

    def test_expiry_is_capped_at_seven_days(self, store: SessionStore, clock: Clock) -> None:
        """No entry lives longer than RFC 8446's 7-day ticket lifetime."""
        store.put(HOST, session(1), expires=clock.now + 30 * 86400)
        got = store.get(HOST)
        assert got is not None and got.expires == clock.now + 7 * 86400


class TestBadInput:
    @pytest.mark.parametrize(
        ("value", "error"),
        [("text", TypeError), (None, TypeError), (b"", ValueError), (b"x" * 65537, ValueError)],
    )
    def test_put_rejects_bad_sessions(
        self, store: SessionStore, clock: Clock, value: Any, error: type[Exception]
    ) -> None:
        """A session that is not 1 to 64 KiB of bytes is refused; nothing is stored."""
        with pytest.raises(error):
            store.put(HOST, value, expires=clock.now + 60)
        assert store.get(HOST) is None

    def test_unencodable_key(self, store: SessionStore, clock: Clock) -> None:
        """A key holding an object without a stable encoding is a TypeError."""
        with pytest.raises(TypeError, match="cannot be part of a stored cache key"):
            store.put(("h", object()), session(1), expires=clock.now + 60)

    def test_garbage_entry_is_dropped_with_a_warning(
        self, store: SessionStore, clock: Clock
    ) -> None:
        """Garbage under a key: a warning, the entry dropped, older good entries still served."""
        store.put(HOST, session(1), expires=clock.now + 60)
        store.put(HOST, session(2), expires=clock.now + 61)
        replace_blob(store, HOST, lambda blob: os.urandom(len(blob)))
        with pytest.warns(StoreWarning, match="not in the resume store format") as record:
            got = store.take(HOST)
        assert got == StoredSession(session(1), clock.now + 60)
        message = one_warning(list(record))
        assert "secret" not in message
        assert store.take(HOST) is None

    @pytest.mark.parametrize("cut", [0, 5, 12, 20, -1])
    def test_truncated_entry_is_dropped(
        self, store: SessionStore, clock: Clock, cut: int
    ) -> None:
        """An entry cut anywhere reads as a miss with a warning and is deleted."""
        store.put(HOST, session(1), expires=clock.now + 60)
        replace_blob(store, HOST, lambda blob: blob[:cut])
        with pytest.warns(StoreWarning, match="truncated|authentication|format"):
            assert store.get(HOST) is None
        assert store.take(HOST) is None  # deleted: no second warning

    def test_flipped_bit_is_detected(self, store: SessionStore, clock: Clock) -> None:
        """One flipped bit in the session part is caught (tag or GCM), not served."""
        store.put(HOST, session(1), expires=clock.now + 60)
        replace_blob(store, HOST, lambda blob: blob[:-3] + bytes([blob[-3] ^ 1]) + blob[-2:])
        with pytest.warns(StoreWarning, match="failed authentication"):
            assert store.take(HOST) is None

    def test_edited_expiry_is_detected(self, store: SessionStore, clock: Clock) -> None:
        """The expiry is authenticated: extending it by editing the header fails."""
        store.put(HOST, session(1), expires=clock.now + 60)
        replace_blob(store, HOST, lambda blob: blob[:4] + b"\x7f" + blob[5:])
        with pytest.warns(StoreWarning, match="failed authentication"):
            assert store.get(HOST) is None

    def test_unknown_version_is_dropped(self, store: SessionStore, clock: Clock) -> None:
        """An entry of another format version is dropped with a warning naming the versions."""
        store.put(HOST, session(1), expires=clock.now + 60)
        replace_blob(store, HOST, lambda blob: blob[:2] + b"\x09" + blob[3:])
        with pytest.warns(StoreWarning, match="format version 9; this resume reads version 2"):
            assert store.take(HOST) is None

    def test_entry_under_another_hosts_name_is_refused(
        self, store: SessionStore, clock: Clock
    ) -> None:
        """A session moved under another server's name is not offered there."""
        store.put(OTHER, session(7), expires=clock.now + 60)
        _, entry, blob = raw_entry(store, OTHER)
        name = store._name(key_bytes(HOST))
        store._put_raw(name, entry, clock.now + 60, blob, store.per_key, clock.now)
        with pytest.warns(StoreWarning, match="another server"):
            assert store.take(HOST) is None
        assert store.get(OTHER) == StoredSession(session(7), clock.now + 60)

    def test_warnings_are_rate_limited(self, store: SessionStore, clock: Clock) -> None:
        """Many unreadable entries in a row give one warning, not one each."""
        hosts = [(f"h{n}.test", 443) for n in range(5)]
        for n, host in enumerate(hosts):
            store.put(host, session(n), expires=clock.now + 60)
            replace_blob(store, host, lambda blob: b"junk")
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            assert [store.take(host) for host in hosts] == [None] * 5
        one_warning(record)
        assert store.warnings_emitted == 1


class TestPersistentBackends:
    @pytest.fixture(params=["sqlite", "redis"])
    def backend(
        self, request: pytest.FixtureRequest, tmp_path: Path, shared_redis: RedisServer
    ) -> Backend:
        return Backend(request.param, tmp_path, shared_redis.url, f"t{os.urandom(6).hex()}")

    def test_a_second_store_object_sees_the_entries(
        self, backend: Backend, key: Any, clock: Clock
    ) -> None:
        """Two store objects on one backing (two processes) share sessions and the salt."""
        with backend.make(key=key, clock=clock) as one, backend.make(key=key, clock=clock) as two:
            one.put(HOST, session(1), expires=clock.now + 60)
            assert two.take(HOST) == StoredSession(session(1), clock.now + 60)
            assert one.take(HOST) is None

    def test_wrong_key_drops_entries_with_a_warning(
        self, backend: Backend, clock: Clock
    ) -> None:
        """A store opened with another key cannot read (or find) the entries; nothing crashes."""
        with backend.make(key=KEY_A, clock=clock) as one:
            one.put(HOST, session(1), expires=clock.now + 60)
        with backend.make(key=KEY_B, clock=clock) as two:
            # Names are derived from the key too: the wrong key finds nothing.
            assert two.take(HOST) is None
            # An entry copied under the name the wrong key computes does not open.
            with backend.make(key=KEY_A, clock=clock) as one:
                _, entry, blob = raw_entry(one, HOST)
            two._put_raw(two._name(key_bytes(HOST)), entry, clock.now + 60, blob, 4, clock.now)
            with pytest.warns(StoreWarning, match="failed authentication.*another key"):
                assert two.take(HOST) is None
        with backend.make(key=KEY_A, clock=clock) as one:
            assert one.take(HOST) == StoredSession(session(1), clock.now + 60)

    def test_keyed_and_opted_out_stores_refuse_each_other(
        self, backend: Backend, clock: Clock
    ) -> None:
        """An entry sealed under the opt-out is never trusted by a keyed store, and back."""
        with backend.make(key=KEY_A, clock=clock) as enc, backend.make(
            key="insecure", clock=clock
        ) as plain:
            enc.put(HOST, session(1), expires=clock.now + 60)
            _, entry, blob = raw_entry(enc, HOST)
            name = plain._name(key_bytes(HOST))
            plain._put_raw(name, entry, clock.now + 60, blob, 4, clock.now)
            with pytest.warns(StoreWarning, match="sealed with a key was found"):
                assert plain.take(HOST) is None
            plain.put(HOST, session(2), expires=clock.now + 60)
            _, entry, blob = raw_entry(plain, HOST)
            enc._put_raw(enc._name(key_bytes(HOST)), entry, clock.now + 60, blob, 4, clock.now)
            with pytest.warns(StoreWarning, match="sealed without a key .* not trusted"):
                got = enc.take(HOST)
            assert got == StoredSession(session(1), clock.now + 60)  # its own entry
            assert enc.take(HOST) is None

    def test_names_are_hashed_and_sessions_encrypted_at_rest(
        self, backend: Backend, key: Any, clock: Clock
    ) -> None:
        """The backing never holds the server name nor the session in the clear."""
        with backend.make(key=key, clock=clock) as store:
            store.put(("secret-host.example", 8443), session(1), expires=clock.now + 60)
            dump = backend.raw_dump()
        assert b"secret-host" not in dump
        assert b"secret-master-key" not in dump


class TestKeys:
    def test_tuples_are_unambiguous(self) -> None:
        """Length prefixes keep ("a", "bc") and ("ab", "c") apart."""
        assert key_bytes(("a", "bc")) != key_bytes(("ab", "c"))
        assert key_bytes((1,)) != key_bytes(("1",)) != key_bytes((True,))
        assert key_bytes(b"x") != key_bytes("x")

    def test_order_free_sets_and_namedtuples(self) -> None:
        """Frozensets encode the same in any order; a NamedTuple encodes as its tuple."""
        assert key_bytes(frozenset(["a", "b", "c"])) == key_bytes(frozenset(["c", "b", "a"]))
        class Key(NamedTuple):
            peer: str
            port: int
            digest: str

        assert key_bytes(Key("h", 1, "d")) == key_bytes(("h", 1, "d"))

    def test_enums_and_dataclasses(self) -> None:
        """Enum members encode by class and value; dataclasses by fields."""

        class Color(enum.Enum):
            RED = 1

        @dataclass(frozen=True)
        class K:
            host: str
            port: int

        assert key_bytes(Color.RED) != key_bytes(1)
        assert key_bytes(K("h", 1)) == key_bytes(K("h", 1)) != key_bytes(K("h", 2))

    def test_deep_nesting_is_refused(self) -> None:
        """A key nested absurdly deep is a TypeError, not a RecursionError."""
        key: Any = ()
        for _ in range(100):
            key = (key,)
        with pytest.raises(TypeError, match="nested too deeply"):
            key_bytes(key)


class TestLoadKey:
    def test_raw_and_hex(self) -> None:
        """32 raw bytes or 64 hex characters give the same key."""
        assert load_key(KEY_A) == KEY_A
        assert load_key(KEY_A.hex().encode()) == KEY_A
        assert load_key() is None

    @pytest.mark.parametrize("bad", [b"", b"short", bytes(31), bytes(33), b"zz" * 32])
    def test_malformed_key(self, bad: bytes) -> None:
        """A key of the wrong size or bad hex is a ValueError saying how to make one."""
        with pytest.raises(ValueError, match="/dev/urandom"):
            load_key(bad)

    def test_key_file(self, tmp_path: Path) -> None:
        """A 0600 key file is read; raw or hex with a newline."""
        path = tmp_path / "k"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, KEY_A.hex().encode() + b"\n")
        os.close(fd)
        assert load_key(key_file=path) == KEY_A
        assert MemoryStore(key_file=path).encrypted

    def test_key_file_readable_by_others_is_refused(self, tmp_path: Path) -> None:
        """A key file with group or other permissions is refused."""
        path = tmp_path / "k"
        path.write_bytes(KEY_A)
        path.chmod(0o644)
        with pytest.raises(resume.StoreError, match="chmod 600"):
            load_key(key_file=path)

    def test_missing_key_file(self, tmp_path: Path) -> None:
        """A missing key file is a StoreError naming it."""
        with pytest.raises(resume.StoreError, match="cannot read key file"):
            MemoryStore(key_file=tmp_path / "none")

    def test_key_and_key_file_together(self, tmp_path: Path) -> None:
        """Giving both is ambiguous and refused; a path as key= is refused."""
        with pytest.raises(ValueError, match="not both"):
            load_key(KEY_A, key_file=tmp_path / "k")
        with pytest.raises(ValueError, match="key_file"):
            load_key(str(tmp_path / "k"))


class TestMisc:
    def test_stored_session_repr_hides_the_bytes(self) -> None:
        """repr() of a StoredSession never shows session bytes."""
        assert "secret" not in repr(StoredSession(b"secret", 1.0))

    def test_closed_store_raises(self, store: SessionStore, clock: Clock) -> None:
        """A closed store raises StoreError; close() is idempotent."""
        store.close()
        store.close()
        with pytest.raises(resume.StoreError, match="closed"):
            store.put(HOST, session(1), expires=clock.now + 60)
        with pytest.raises(resume.StoreError, match="closed"):
            store.take(HOST)

    def test_per_key_must_be_positive(self) -> None:
        """per_key=0 is refused."""
        with pytest.raises(ValueError, match="per_key"):
            MemoryStore(per_key=0)

    def test_public_names(self) -> None:
        """The public objects report their public module."""
        assert resume.StoreWarning.__module__ == "resume"
        for cls in (MemoryStore, SQLiteStore, RedisStore, SessionStore, StoredSession):
            assert cls.__module__ == "resume.stores"

    def test_memory_store_is_thread_safe_for_take(self, clock: Clock) -> None:
        """Threads taking from one MemoryStore at once never get the same session."""
        import threading

        store = MemoryStore(per_key=500, clock=clock)
        for n in range(400):
            store.put(HOST, session(n), expires=clock.now + 60 + n)
        got: list[bytes] = []
        lock = threading.Lock()

        def worker() -> None:
            while (s := store.take(HOST)) is not None:
                with lock:
                    got.append(s.data)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == sorted(session(n) for n in range(400))

    def test_sqlite_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not SQLite is a StoreError on first use, not a crash."""
        path = tmp_path / "junk.db"
        path.write_bytes(b"this is not a database" * 100)
        path.chmod(0o600)
        try:
            store = SQLiteStore(path)
        except resume.StoreError:
            return
        with store, pytest.raises(resume.StoreError, match="not a database"):
            store.get(HOST)


class TestProperties:
    @given(blob=st.binary(max_size=200))
    @settings(max_examples=300, deadline=None)
    def test_any_bytes_open_or_are_refused(self, blob: bytes) -> None:
        """Arbitrary bytes never crash the reader: a session or a refusal, nothing else."""
        for store in (_INSECURE, _ENCRYPTED):
            name = store._name(key_bytes(HOST))
            with contextlib.suppress(_Unreadable):
                store._open(name, blob)

    @given(data=st.data())
    @settings(max_examples=60, deadline=None)
    def test_sealed_entries_refuse_every_single_byte_change(self, data: st.DataObject) -> None:
        """Changing any one byte of a sealed entry makes it unreadable (keyed or opted out)."""
        for store in (_INSECURE, _ENCRYPTED):
            name = store._name(key_bytes(HOST))
            blob = store._seal(name, session(3), 1_900_000_000.0)
            index = data.draw(st.integers(0, len(blob) - 1))
            delta = data.draw(st.integers(1, 255))
            bad = blob[:index] + bytes([blob[index] ^ delta]) + blob[index + 1:]
            with pytest.raises(_Unreadable):
                store._open(name, bad)
            assert store._open(name, blob).data == session(3)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", StoreWarning)
    _INSECURE = MemoryStore(insecure_unauthenticated=True)
_ENCRYPTED = MemoryStore(key=KEY_A)


class StoreModel(RuleBasedStateMachine):
    """MemoryStore and SQLiteStore against a model: pools, newest first, per_key, expiry."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.tmp = Path(tempfile.mkdtemp())
        self.stores: list[SessionStore] = [
            MemoryStore(per_key=3, clock=self.clock),
            SQLiteStore(self.tmp / "m.db", per_key=3, clock=self.clock, key=KEY_A),
        ]
        self.model: dict[int, list[tuple[bytes, float]]] = {}

    def live(self, key: int) -> list[tuple[bytes, float]]:
        pool = [(s, e) for s, e in self.model.get(key, []) if not self.clock.now > e]
        self.model[key] = pool
        return pool

    @rule(key=st.integers(0, 2), n=st.integers(0, 5), ttl=st.integers(-5, 50))
    def put(self, key: int, n: int, ttl: int) -> None:
        expires = self.clock.now + ttl
        results = {store.put(("k", key), session(n), expires=expires) for store in self.stores}
        assert results == {ttl > 0}
        if ttl > 0:
            pool = [(s, e) for s, e in self.model.get(key, []) if s != session(n)]
            pool.append((session(n), expires))
            self.model[key] = pool[-3:]

    @rule(key=st.integers(0, 2))
    def get(self, key: int) -> None:
        pool = self.live(key)
        want = StoredSession(*pool[-1]) if pool else None
        for store in self.stores:
            assert store.get(("k", key)) == want

    @rule(key=st.integers(0, 2))
    def take(self, key: int) -> None:
        pool = self.live(key)
        want = StoredSession(*pool[-1]) if pool else None
        if pool:
            pool.pop()
        for store in self.stores:
            assert store.take(("k", key)) == want

    @rule(key=st.integers(0, 2), n=st.one_of(st.none(), st.integers(0, 5)))
    def delete(self, key: int, n: int | None) -> None:
        pool = self.model.get(key, [])
        if n is None:
            self.model[key] = []
        else:
            self.model[key] = [(s, e) for s, e in pool if s != session(n)]
        for store in self.stores:
            store.delete(("k", key), None if n is None else session(n))

    @rule(seconds=st.integers(1, 30))
    def advance(self, seconds: int) -> None:
        self.clock.now += seconds

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        shutil.rmtree(self.tmp)


TestStoreModel = StoreModel.TestCase
TestStoreModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


class TestUnforgeable:
    """Whoever can write the store but lacks the key cannot plant a session (issue 8)."""

    def test_old_format_1_entry_is_dropped_not_trusted(
        self, backend: Backend, clock: Clock
    ) -> None:
        """A format-1 entry tagged with the store's own salt (forgeable) is dropped."""
        import hmac
        import struct

        with backend.make(clock=clock) as store:
            store.put(HOST, session(1), expires=clock.now + 60)
            name, entry, _ = raw_entry(store, HOST)
            header = struct.pack(">2sBBQ", b"RS", 1, 0, int((clock.now + 60) * 1000))
            salt = store._current_salt
            forged = header + hmac.digest(salt, header + name + session(9), "sha256")[:16]
            store._put_raw(name, entry, clock.now + 60, forged + session(9), 4, clock.now)
            with pytest.warns(StoreWarning, match="old format 1.*not trusted.*dropped"):
                assert store.take(HOST) is None

    def test_entry_sealed_under_the_opt_out_is_refused_by_a_keyed_store(
        self, backend: Backend, clock: Clock
    ) -> None:
        """An attacker seals with the salt-only key (everything the store holds): refused."""
        with backend.make(clock=clock) as store:
            store.put(HOST, session(1), expires=clock.now + 60)
            name, entry, _ = raw_entry(store, HOST)
            with backend.make(key="insecure", clock=clock) as forger:
                forger._keys()
                forged = forger._seal(name, session(9), clock.now + 60)
            store._put_raw(name, entry, clock.now + 60, forged, 4, clock.now)
            with pytest.warns(StoreWarning, match="sealed without a key"):
                assert store.take(HOST) is None

    def test_each_memory_store_has_its_own_default_key(self, clock: Clock) -> None:
        """Two MemoryStores made without a key do not open each other's entries."""
        one, two = MemoryStore(clock=clock), MemoryStore(clock=clock)
        one.put(HOST, session(1), expires=clock.now + 60)
        _, entry, blob = raw_entry(one, HOST)
        two._put_raw(two._name(key_bytes(HOST)), entry, clock.now + 60, blob, 4, clock.now)
        with pytest.warns(StoreWarning, match="failed authentication"):
            assert two.take(HOST) is None
        assert one.encrypted and two.encrypted

    def test_warnings_never_hold_session_bytes(self, backend: Backend, clock: Clock) -> None:
        """The warning about a planted entry names the problem, never a session byte."""
        with backend.make(key=KEY_A, clock=clock) as store, backend.make(
            key=KEY_B, clock=clock
        ) as other:
            store.put(HOST, session(1), expires=clock.now + 60)
            name, entry, _ = raw_entry(store, HOST)
            store._put_raw(name, entry, clock.now + 60,
                           other._seal(name, session(2), clock.now + 60), 4, clock.now)
            with pytest.warns(StoreWarning) as record:
                assert store.get(HOST) is None
        message = one_warning(list(record))
        assert "secret-master-key" not in message and "dropped" in message
