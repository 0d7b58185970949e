"""Fuzzing SessionHandle.from_der: random and mutated DER never crashes, only SessionDecodeError.

A fixed seed makes every run feed the same inputs. The default run (CI) feeds
100,000 inputs in four shards of 25,000 (about 25 s: ``d2i_SSL_SESSION`` parses
the peer certificate inside each session, ~150 us per input). The ``slow`` test
adds 20,000 inputs of another shard; ``nox -s fuzz`` runs it with
``RESUME_FUZZ_INPUTS=1000000`` (and ``RESUME_FUZZ_SEED`` to explore other seeds).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator

import pytest
from corehelpers import make_pki, memory_session

from resume import SessionDecodeError, SessionHandle
from resume._openssl import binding as _openssl

SEED = 20261126
CI_INPUTS = 100_000
CI_SHARDS = 4


def _length_positions(der: bytes) -> list[int]:
    """Offsets of the length octets of every TLV inside constructed elements of *der*."""
    found: list[int] = []

    def walk(start: int, end: int) -> None:
        pos = start
        while pos + 2 <= end:
            tag = der[pos]
            found.append(pos + 1)
            first = der[pos + 1]
            if first < 0x80:
                length, header = first, 2
            else:
                count = first & 0x7F
                if count == 0 or count > 4 or pos + 2 + count > end:
                    return
                length = int.from_bytes(der[pos + 2 : pos + 2 + count], "big")
                header = 2 + count
            body = pos + header
            if body + length > end:
                return
            if tag & 0x20:
                walk(body, body + length)
            pos = body + length

    walk(0, len(der))
    return found


_LENGTH_VALUES = (
    b"\x00", b"\x01", b"\x7f", b"\x80", b"\x81\x00", b"\x81\xff", b"\x82\xff\xff",
    b"\x84\xff\xff\xff\xff", b"\x84\x7f\xff\xff\xff", b"\x88" + b"\xff" * 8, b"\xff",
)
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x30, 0x02, 0x04, 0xA0)


class Mutator:
    """Deterministic inputs: pure random, and mutations of real session DER."""

    def __init__(self, seeds: list[bytes], rng: random.Random) -> None:
        self.seeds = seeds
        self.rng = rng
        self.lengths = {s: _length_positions(s) for s in seeds}
        self.strategies: list[Callable[[], bytes]] = [
            self.random_bytes, self.random_sequence, self.bit_flips, self.bit_flips,
            self.truncate, self.insert, self.delete, self.length_edit, self.length_edit,
            self.length_edit, self.interesting_bytes, self.splice, self.duplicate,
            self.seed_as_is,
        ]

    def __call__(self) -> bytes:
        return self.rng.choice(self.strategies)()

    def seed(self) -> bytearray:
        return bytearray(self.rng.choice(self.seeds))

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randrange(0, 1200))

    def random_sequence(self) -> bytes:
        body = self.rng.randbytes(self.rng.randrange(0, 1200))
        length = len(body).to_bytes(2, "big")
        return b"\x30\x82" + length + body

    def bit_flips(self) -> bytes:
        data = self.seed()
        for _ in range(self.rng.randrange(1, 9)):
            pos = self.rng.randrange(len(data))
            data[pos] ^= 1 << self.rng.randrange(8)
        return bytes(data)

    def truncate(self) -> bytes:
        data = self.seed()
        return bytes(data[: self.rng.randrange(len(data))])

    def insert(self) -> bytes:
        data = self.seed()
        pos = self.rng.randrange(len(data) + 1)
        data[pos:pos] = self.rng.randbytes(self.rng.randrange(1, 64))
        return bytes(data)

    def delete(self) -> bytes:
        data = self.seed()
        pos = self.rng.randrange(len(data))
        del data[pos : pos + self.rng.randrange(1, 64)]
        return bytes(data)

    def length_edit(self) -> bytes:
        seed = self.rng.choice(self.seeds)
        data = bytearray(seed)
        pos = self.rng.choice(self.lengths[seed])
        first = data[pos]
        old = 1 + (first & 0x7F if first >= 0x80 else 0)
        choice = self.rng.randrange(3)
        if choice == 0:
            new = self.rng.choice(_LENGTH_VALUES)
        elif choice == 1 and first < 0x80:
            new = bytes([max(0, min(0x7F, first + self.rng.choice((-2, -1, 1, 2))))])
        else:
            new = bytes([0x82]) + self.rng.randrange(0x10000).to_bytes(2, "big")
        data[pos : pos + old] = new
        return bytes(data)

    def interesting_bytes(self) -> bytes:
        data = self.seed()
        for _ in range(self.rng.randrange(1, 5)):
            data[self.rng.randrange(len(data))] = self.rng.choice(_INTERESTING)
        return bytes(data)

    def splice(self) -> bytes:
        a, b = self.rng.choice(self.seeds), self.rng.choice(self.seeds)
        return a[: self.rng.randrange(len(a))] + b[self.rng.randrange(len(b)) :]

    def duplicate(self) -> bytes:
        data = self.seed()
        pos = self.rng.randrange(len(data))
        chunk = data[pos : pos + self.rng.randrange(1, 128)]
        data[pos:pos] = chunk
        return bytes(data)

    def seed_as_is(self) -> bytes:
        return bytes(self.rng.choice(self.seeds))


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    """Real session DER: TLS 1.2 and TLS 1.3 client sessions, two of each."""
    out = []
    for version in ("1.2", "1.3"):
        pki = make_pki(version)
        for _ in range(2):
            session = memory_session(pki)
            handle = SessionHandle.from_ssl(session)
            out.append(handle.to_der())
            handle.free()
    return out


def run(seeds: list[bytes], shard: int, count: int) -> dict[str, int]:
    """Feed *count* inputs of shard *shard*; check each outcome; return the tallies."""
    mutate = Mutator(seeds, random.Random(SEED * 1000 + shard))
    tally = {"accepted": 0, "refused": 0}
    for _ in range(count):
        data = mutate()
        try:
            handle = SessionHandle.from_der(data)
        except SessionDecodeError:
            tally["refused"] += 1
            continue
        # Whatever was accepted is a sane, resumable session that round-trips.
        try:
            assert handle.is_resumable
            assert handle.time > 0
            assert handle.timeout >= 0
            again = SessionHandle.from_der(handle.to_der())
            assert again.id == handle.id
            again.free()
        finally:
            handle.free()
        tally["accepted"] += 1
    assert _openssl.binding().drain_errors() == ""
    return tally


@pytest.mark.parametrize("shard", range(CI_SHARDS))
def test_fuzz_ci(seeds: list[bytes], shard: int) -> None:
    """25,000 inputs per shard, 100,000 in all: only SessionDecodeError or a sane session."""
    tally = run(seeds, shard, CI_INPUTS // CI_SHARDS)
    assert tally["accepted"] + tally["refused"] == CI_INPUTS // CI_SHARDS
    assert tally["refused"] > tally["accepted"] > 0  # both outcomes are exercised


def test_mutator_is_deterministic(seeds: list[bytes]) -> None:
    """The same seed gives the same inputs (a failure can be replayed)."""

    def first(n: int) -> Iterator[bytes]:
        mutate = Mutator(seeds, random.Random(SEED))
        for _ in range(n):
            yield mutate()

    assert list(first(200)) == list(first(200))


def test_length_positions_cover_the_nesting(seeds: list[bytes]) -> None:
    """The length-field mutator finds the nested TLVs of a real session (more than 10)."""
    for der in seeds:
        positions = _length_positions(der)
        assert positions[0] == 1
        assert len(positions) > 10


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_fuzz_long(seeds: list[bytes]) -> None:
    """The long run: RESUME_FUZZ_INPUTS inputs (20,000 unless set; nox -s fuzz sets 1,000,000)."""
    total = int(os.environ.get("RESUME_FUZZ_INPUTS", "20000"))
    shard = int(os.environ.get("RESUME_FUZZ_SEED", "100"))
    tally = run(seeds, shard, total)
    assert tally["accepted"] + tally["refused"] == total
