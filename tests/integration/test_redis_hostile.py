"""Redis that misbehaves: every call of RedisStore and RedisKeySource ends, with a StoreError.

The server is tests/fake_redis.py, a TCP listener on 127.0.0.1 that answers one
byte at a time, not at all, endlessly, or with replies of the wrong type. Each
call runs in a thread watched for WATCHDOG seconds: on the old client (a timeout
per socket read, no size limits) the trickling and silent-after-connect cases
never ended, the floods grew without bound and wrong types escaped as
AttributeError. No timing is asserted; bench numbers come from
``python tests/fake_redis.py``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from fake_redis import FakeRedis

from resume import StoreError
from resume._ticketkeys.ring import RedisKeySource, TicketKeyRing
from resume.stores import RedisStore

#: Seconds a call with a deadline of DEADLINE may run before the test calls it hung.
WATCHDOG = 30.0
DEADLINE = 0.5
KEY = bytes(range(32))
HOST = ("example.test", 443)

#: Modes that flood the client as fast as loopback goes.
FLOODS = ["endless_array", "nested", "huge_string", "endless_line", "many_small"]
ALL_MODES = ["trickle", "silent", *FLOODS, "wrong_type", "garbage"]


def finishes(call: Callable[[], Any]) -> BaseException | None:
    """Run *call* in a thread; fail if it is still running after WATCHDOG s; return its error."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, name="hostile redis call", daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    assert not thread.is_alive(), f"the call was still running after {WATCHDOG:g} s"
    return outcome[0]


def store_calls(store: RedisStore) -> dict[str, Callable[[], Any]]:
    return {
        "get": lambda: store.get(HOST),
        "take": lambda: store.take(HOST),
        "put": lambda: store.put(HOST, b"0\x82" + b"s" * 40, expires=4_000_000_000.0),
        "delete": lambda: store.delete(HOST),
    }


class TestStore:
    """RedisStore: every operation raises StoreError, within its deadline, with bounded memory."""

    @pytest.mark.parametrize("mode", ALL_MODES)
    @pytest.mark.parametrize("op", ["get", "take", "put", "delete"])
    def test_every_operation_ends_with_store_error(self, mode: str, op: str) -> None:
        """A hostile server makes each operation raise StoreError (nothing else)."""
        with FakeRedis(mode) as fake, RedisStore(fake.url, key=KEY, timeout=DEADLINE) as store:
            error = finishes(store_calls(store)[op])
        assert isinstance(error, StoreError), repr(error)
        assert str(error).startswith(f"RedisStore({fake.url!r}) failed: ")

    @pytest.mark.parametrize("mode", ["trickle", "silent"])
    def test_slow_servers_hit_the_deadline(self, mode: str) -> None:
        """One byte at a time, or nothing: the message names the deadline."""
        with FakeRedis(mode) as fake, RedisStore(fake.url, key=KEY, timeout=DEADLINE) as store:
            error = finishes(store_calls(store)["get"])
        assert "no complete answer within 0.5 s" in str(error)

    @pytest.mark.parametrize(
        ("mode", "message"),
        [
            ("endless_array", "an array of 4294967295 elements (the limit is 64)"),
            ("nested", "arrays nested deeper than 4"),
            ("huge_string", "larger than the limit of 1048576 bytes"),
            ("endless_line", "a reply line is longer than the limit of 65536 bytes"),
            ("many_small", "larger than the limit of 1048576 bytes"),
        ],
    )
    def test_floods_stop_at_the_limits(self, mode: str, message: str) -> None:
        """Endless or huge replies are refused at their limit; memory stays a few MiB."""
        with FakeRedis(mode) as fake, RedisStore(fake.url, key=KEY, timeout=5.0) as store:
            tracemalloc.start()
            try:
                error = finishes(store_calls(store)["get"])
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert message in str(error)
        assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"

    def test_wrong_type_is_a_store_error(self) -> None:
        """An integer where a string belongs: StoreError naming both, not AttributeError."""
        with FakeRedis("wrong_type") as fake, RedisStore(fake.url, key=KEY) as store:
            error = finishes(store_calls(store)["take"])
        assert isinstance(error, StoreError)
        assert "expected OK or nil, got an integer" in str(error)


class TestKeySource:
    """RedisKeySource: load and rotate_now raise StoreError; refresh keeps the keys."""

    @pytest.mark.parametrize("mode", ALL_MODES)
    def test_load_and_rotate_end_with_store_error(self, mode: str) -> None:
        """A server that needs its keys to start gets a StoreError, not a hang or a crash."""
        with FakeRedis(mode) as fake:
            source = RedisKeySource(fake.url, secret=KEY, socket_timeout=DEADLINE)
            try:
                loaded = finishes(source.load)
                rotated = finishes(source.rotate_now)
            finally:
                source.close()
        assert isinstance(loaded, StoreError), repr(loaded)
        assert str(loaded).startswith(f"cannot read ticket keys from Redis at {fake.url}: ")
        assert isinstance(rotated, StoreError), repr(rotated)

    @pytest.mark.parametrize("mode", ALL_MODES)
    def test_refresh_keeps_the_keys(
        self, mode: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A refresh against a hostile server ends, keeps the keys and warns once."""
        ring = TicketKeyRing()
        keys = ring.keys
        with FakeRedis(mode) as fake:
            source = RedisKeySource(fake.url, secret=KEY, socket_timeout=DEADLINE)
            try:
                with caplog.at_level(logging.WARNING, logger="resume.ticketkeys"):
                    assert finishes(lambda: source.refresh(ring)) is None
                    assert finishes(lambda: source.refresh(ring)) is None
            finally:
                source.close()
        assert ring.keys == keys
        assert caplog.text.count("is unavailable, keeping the current keys") == 1

    def test_wrong_type_names_the_command(self) -> None:
        """GET answered with an integer: the StoreError says so."""
        with FakeRedis("wrong_type") as fake:
            source = RedisKeySource(fake.url, secret=KEY)
            try:
                error = finishes(source.load)
            finally:
                source.close()
        assert "GET 'resume:ticket-keys': expected a string or nil, got an integer" in str(error)


EXITER = textwrap.dedent(
    """
    import asyncio, ssl, sys
    import resume.asyncio
    from resume import SessionCache
    from resume.stores import RedisStore, attach_store

    url, port = sys.argv[1], int(sys.argv[2])
    store = RedisStore(url, key=bytes(32), timeout=1.0)
    cache = SessionCache()
    link = attach_store(cache, store, fetch_wait=0.05)
    ctx = ssl.create_default_context()
    link.register_context(ctx, label="exit test")

    async def main():
        try:
            await resume.asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost")
        except OSError as exc:
            print("connect failed:", type(exc).__name__, flush=True)

    asyncio.run(main())
    print("main returned", flush=True)
    """
)


def test_an_asyncio_process_exits_while_redis_trickles() -> None:
    """A store fetch stuck on a trickling Redis does not hold the process at exit.

    The fetch thread (the link's executor, joined by the interpreter at exit)
    ends at the store's deadline; before, it waited as long as Redis trickled.
    """
    with FakeRedis("trickle", byte_delay=0.05) as fake:
        import socket

        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-c", EXITER, fake.url, str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            out, err = proc.communicate(timeout=WATCHDOG)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"the process had not exited after {WATCHDOG:g} s")
        assert fake.accepted >= 1  # the fetch did reach the trickling server
    assert proc.returncode == 0, err
    assert "connect failed: ConnectionRefusedError" in out
    assert "main returned" in out
