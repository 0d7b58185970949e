"""A fleet of four server processes sharing ticket keys through a real Redis.

A client hops between the servers and must resume wherever it lands: across a
forced key rotation (while part of the fleet has not seen it yet), while Redis
is down, and after Redis comes back empty. The servers are
``python -m benchmarks.bench_fleet serve`` processes (plain ``ssl`` servers with
``install_from_spec(ctx, "redis://...")``); each reply names the server, whether
it resumed, and the first bytes of its current key's (public) name.
"""

from __future__ import annotations

import itertools
import random
import ssl
import time
from collections.abc import Iterator

import pytest
import redis
from corehelpers import VERSIONS
from redis_server import RedisServer, redis_server

from benchmarks.bench_fleet import Fleet, hop
from resume._ticketkeys.ring import RedisKeySource

__all__ = ["redis_server"]  # the fixture, imported for pytest

SERVERS = 4


class Client:
    """One client hopping over the fleet in a fixed pseudo-random order; keeps tallies."""

    def __init__(self, fleet: Fleet, version: str) -> None:
        self.fleet = fleet
        self.ctx = fleet.client_context(version)
        rng = random.Random(7)
        order = [rng.randrange(SERVERS) for _ in range(97)] + list(range(SERVERS))
        self.order: Iterator[int] = itertools.cycle(order)
        self.session: ssl.SSLSession | None = None
        self.results: list[tuple[bool, str]] = []

    def connect(self, server: int | None = None) -> tuple[bool, str, str]:
        """One connection; returns (resumed, server name, current key of that server)."""
        target = next(self.order) if server is None else server
        reused, reply, session = self.fleet.connect(self.ctx, target, self.session)
        self.session = session or self.session
        name, flag, key, _version = reply.split()
        assert flag == str(int(reused))  # both ends agree
        self.results.append((reused, name))
        return reused, name, key

    def run(self, count: int) -> None:
        for _ in range(count):
            self.connect()

    def keys(self) -> set[str]:
        """The current key each server reports right now (one connection each)."""
        return {self.connect(i)[2] for i in range(SERVERS)}

    def converge(self, seconds: float = 20.0, *, past: tuple[str, ...] = ()) -> str:
        """Connect until every server reports the same current key, not one of *past*.

        Servers refresh their ring on their own schedule, so after a rotation the
        whole fleet may still report the old key for a moment: wait for the new one.
        """
        deadline = time.monotonic() + seconds
        while True:
            keys = self.keys()
            if len(keys) == 1 and not keys & set(past):
                return keys.pop()
            assert time.monotonic() < deadline, f"the fleet did not converge: {keys}"


def current_key_in_redis(url: str, secret: bytes) -> str | None:
    client = redis.Redis.from_url(url)
    try:
        raw = client.get("resume:ticket-keys")
    finally:
        client.close()
    if raw is None:
        return None
    # Never in the clear in Redis.
    assert isinstance(raw, bytes) and raw.startswith(b"resume-sealed-1:")
    source = RedisKeySource(url, secret=secret)
    try:
        keys = source._decode(raw).keys
    finally:
        source.close()
    return keys[1].name[:4].hex()


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_fleet_resumes_everywhere(redis_server: RedisServer, version: str) -> None:
    """All connections but the first resume, through rotations and a Redis restart."""
    with Fleet(SERVERS, redis_server.url, refresh=0.05) as fleet:
        client = Client(fleet, version)
        client.run(30)
        first_key = client.converge()

        # 1. A forced rotation: servers pick it up one by one, and resumption
        #    holds throughout (the new current key was every server's "next").
        source = RedisKeySource(redis_server.url, secret=fleet.secret)
        assert source.rotate_now()
        source.close()
        client.run(30)
        second_key = client.converge(past=(first_key,))

        # 2. Redis goes down: the servers keep their keys and keep resuming.
        redis_server.stop()
        client.run(30)
        assert client.keys() == {second_key}

        # 3. Redis comes back empty: a server puts the fleet's ring back.
        redis_server.start()
        deadline = time.monotonic() + 20
        while current_key_in_redis(redis_server.url, fleet.secret) is None:
            assert time.monotonic() < deadline, "no server re-seeded Redis"
            time.sleep(0.01)  # polling another process's write: no event to await
        assert current_key_in_redis(redis_server.url, fleet.secret) == second_key

        # 4. And rotation works again after the restart.
        source = RedisKeySource(redis_server.url, secret=fleet.secret)
        assert source.rotate_now()
        source.close()
        client.run(30)
        client.converge(past=(first_key, second_key))
        client.run(10)

    results = client.results
    assert not results[0][0]  # the very first connection is a full handshake
    missed = [i for i, (reused, _) in enumerate(results) if not reused]
    assert missed == [0], f"connections that did not resume: {missed} of {len(results)}"
    assert {name for _, name in results} == {f"s{i}" for i in range(SERVERS)}


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_fleet_without_shared_keys(version: str) -> None:
    """Without shared keys, a hop to another server is a full handshake."""
    with Fleet(2, None) as fleet:
        client = Client(fleet, version)
        reused_first, _, _ = client.connect(0)
        reused_same, _, _ = client.connect(0)
        reused_other, _, _ = client.connect(1)
    assert (reused_first, reused_same, reused_other) == (False, True, False)


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_single_use_clients_resume_every_connection(
    redis_server: RedisServer, version: str
) -> None:
    """A client that offers each TLS 1.3 ticket once resumes every connection after the first.

    Two servers share keys through Redis; each resumed TLS 1.3 connection
    brings a fresh ticket (the ticket-key callback renews), so the client
    always has one to offer, wherever it lands.
    """
    count = 60
    with Fleet(2, redis_server.url) as fleet:
        ctx = fleet.client_context(version)
        resumed, _ = hop(fleet, ctx, random.Random(3), count, None, single_use=True)
    print(f"TLS {version}: {resumed} of {count - 1} connections after the first resumed")
    assert resumed == count - 1
