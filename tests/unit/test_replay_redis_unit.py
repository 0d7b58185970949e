"""RedisReplayGuard without a network: arguments, keys, redaction, and the outage back-off.

The back-off tests replace the guard's Redis client with a scripted stand-in and
its clock with a fake one; the real Redis behaviour is in
tests/integration/test_replay_redis.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

import resume.replay
from resume._stores.redisclient import Arg, RedisConnectionError, RedisTimeout, Reply
from resume.replay import MemoryReplayGuard, RedisReplayGuard, ReplayGuard

URL = "redis://127.0.0.1:6379/0"
RANDOM = bytes(range(32))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedClient:
    """Stands in for RedisClient: each call runs the next step (a reply or an exception)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Arg, ...]] = []
        self.step: Callable[[], Reply] = lambda: "OK"

    def call(self, *args: Arg) -> Reply:
        self.calls.append(args)
        return self.step()

    def close(self) -> None:
        pass


def raising(exc: Exception) -> Callable[[], Reply]:
    def step() -> Reply:
        raise exc

    return step


down = raising(
    RedisConnectionError("cannot connect to 127.0.0.1:6379: [Errno 111] Connection refused")
)


def scripted(guard: RedisReplayGuard) -> tuple[ScriptedClient, FakeClock]:
    client, clock = ScriptedClient(), FakeClock()
    guard._client = client  # type: ignore[assignment]
    guard._clock = clock
    return client, clock


class TestArguments:
    @pytest.mark.parametrize("window", [10.9, 0, -30, True, float("nan"), float("inf"), "30"])
    def test_a_window_shorter_than_openssl_s_allowance_is_refused(self, window: object) -> None:
        """The window must cover OpenSSL's 11 s ticket-age allowance, and be a finite number."""
        with pytest.raises(ValueError, match="replay window"):
            RedisReplayGuard(URL, window=window)  # type: ignore[arg-type]

    @pytest.mark.parametrize("timeout", [0, -1, True, float("nan"), float("inf"), "0.05"])
    def test_the_timeout_is_a_positive_number(self, timeout: object) -> None:
        """A call must be bounded: no zero, negative, infinite or non-number timeout."""
        with pytest.raises(ValueError, match="timeout"):
            RedisReplayGuard(URL, timeout=timeout)  # type: ignore[arg-type]

    def test_bad_url_is_a_value_error_without_the_password(self) -> None:
        """A URL resume cannot use is a ValueError whose message hides the password."""
        with pytest.raises(ValueError, match="not a Redis URL") as info:
            RedisReplayGuard("http://user:hunter2@127.0.0.1/0")
        assert "hunter2" not in str(info.value)

    def test_defaults(self) -> None:
        """30 s window, the resume:replay prefix, 50 ms per call; nothing connects yet."""
        guard = RedisReplayGuard(URL)
        assert (guard.window, guard.prefix, guard.timeout) == (30.0, "resume:replay", 0.05)
        assert (guard.accepted, guard.replays, guard.errors, guard.down) == (0, 0, 0, False)

    def test_it_is_a_replay_guard(self) -> None:
        """It satisfies the ReplayGuard protocol a server's gate asks."""
        assert isinstance(RedisReplayGuard(URL), ReplayGuard)


class TestKeysAndCommand:
    def test_key_is_a_truncated_hash_under_the_prefix(self) -> None:
        """PREFIX:32 hex digits, the same for the same random, never the random itself."""
        guard = RedisReplayGuard(URL, prefix="fleet:r")
        key = guard.key(RANDOM)
        prefix, _, digest = key.rpartition(":")
        assert prefix == "fleet:r" and len(digest) == 32
        int(digest, 16)
        assert guard.key(RANDOM) == key
        assert guard.key(RANDOM[:-1] + b"\xff") != key
        assert RANDOM.hex()[:16] not in key

    @pytest.mark.parametrize(("window", "px"), [(30.0, 30000), (11, 11000), (11.0004, 11001)])
    def test_one_atomic_set_if_absent_with_the_window_in_ms(self, window: float, px: int) -> None:
        """first_use sends SET key 1 NX PX window_ms (rounded up), once."""
        guard = RedisReplayGuard(URL, window=window)
        client, _ = scripted(guard)
        assert guard.first_use(RANDOM) is True
        assert client.calls == [("SET", guard.key(RANDOM), b"1", "NX", "PX", px)]

    def test_nil_is_a_replay(self) -> None:
        """OK means first use, nil (NX did not set) a replay; both are counted."""
        guard = RedisReplayGuard(URL)
        client, _ = scripted(guard)
        assert guard.first_use(RANDOM) is True
        client.step = lambda: None
        assert guard.first_use(RANDOM) is False
        assert (guard.accepted, guard.replays, guard.errors) == (1, 1, 0)

    def test_a_reply_of_the_wrong_type_refuses(self, caplog: pytest.LogCaptureFixture) -> None:
        """An integer where OK or nil belongs is a failure: False, logged, counted."""
        guard = RedisReplayGuard(URL)
        client, _ = scripted(guard)
        client.step = lambda: 42
        with caplog.at_level(logging.INFO, logger="resume.replay"):
            assert guard.first_use(RANDOM) is False
        assert (guard.accepted, guard.replays, guard.errors) == (0, 0, 1)
        assert "expected OK or nil, got an integer" in caplog.text


class TestRedaction:
    @pytest.mark.parametrize(
        "url",
        ["redis://alice:hunter2@127.0.0.1:6379/0", "redis://127.0.0.1/0?password=hunter2",
         "rediss://:hunter2@127.0.0.1:6380/1"],
    )
    def test_password_never_in_repr_url_or_log(
        self, url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """repr(), .url and the outage warning show *** for the password."""
        guard = RedisReplayGuard(url)
        endpoint = repr(guard._client.endpoint)
        client, _ = scripted(guard)
        client.step = raising(RedisConnectionError(f"cannot connect to {url}: refused"))
        with caplog.at_level(logging.INFO, logger="resume.replay"):
            assert guard.first_use(RANDOM) is False
        for shown in (repr(guard), guard.url, caplog.text, endpoint):
            assert "hunter2" not in shown
        assert "***" in repr(guard) and "***" in caplog.text

    def test_repr_reports_counts_and_outage(self) -> None:
        guard = RedisReplayGuard(URL)
        client, _ = scripted(guard)
        guard.first_use(RANDOM)
        client.step = down
        guard.first_use(RANDOM)
        assert repr(guard) == (
            f"<resume.replay.RedisReplayGuard {URL!r} window=30s accepted=1 replays=0 "
            "errors=1 down>"
        )


class TestOutage:
    def test_logged_once_backed_off_then_back(self, caplog: pytest.LogCaptureFixture) -> None:
        """One warning per outage; no call to Redis during the back-off; INFO when back."""
        guard = RedisReplayGuard(URL)
        client, clock = scripted(guard)
        client.step = down
        with caplog.at_level(logging.INFO, logger="resume.replay"):
            assert guard.first_use(RANDOM) is False
            assert len(client.calls) == 1 and guard.down
            for _ in range(50):  # handshakes during the back-off: refused without a call
                assert guard.first_use(RANDOM) is False
            assert len(client.calls) == 1
            clock.now += 0.5
            assert guard.first_use(RANDOM) is False  # one probe, still down
            assert len(client.calls) == 2
            client.step = lambda: "OK"
            clock.now += 1.0
            assert guard.first_use(RANDOM) is True
            assert not guard.down
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        infos = [r for r in caplog.records if r.levelno == logging.INFO]
        assert len(warnings) == 1 and "refusing early data" in warnings[0].getMessage()
        assert "Connection refused" in warnings[0].getMessage()
        assert len(infos) == 1 and "is back" in infos[0].getMessage()
        assert (guard.accepted, guard.replays, guard.errors) == (1, 0, 52)

    def test_back_off_doubles_up_to_five_seconds_and_resets(self) -> None:
        """Each failed probe doubles the wait (0.5, 1, 2, 4, 5, 5 s); success resets it."""
        guard = RedisReplayGuard(URL)
        client, clock = scripted(guard)
        client.step = down
        guard.first_use(RANDOM)
        waits = []
        for _ in range(6):
            start, calls = clock.now, len(client.calls)
            while len(client.calls) == calls:  # step 0.1 s until the next probe
                clock.now = round(clock.now + 0.1, 6)
                guard.first_use(RANDOM)
            waits.append(round(clock.now - start, 6))
        assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
        client.step = lambda: "OK"
        clock.now += 5.0
        assert guard.first_use(RANDOM) is True
        client.step = down
        guard.first_use(RANDOM)
        calls = len(client.calls)
        clock.now += 0.5
        guard.first_use(RANDOM)
        assert len(client.calls) == calls + 1  # back to 0.5 s

    def test_second_outage_is_logged_again(self, caplog: pytest.LogCaptureFixture) -> None:
        """Down, back, down again: two warnings, one per outage."""
        guard = RedisReplayGuard(URL)
        client, clock = scripted(guard)
        with caplog.at_level(logging.WARNING, logger="resume.replay"):
            for step in (down, lambda: "OK", down):
                client.step = step
                clock.now += 10
                guard.first_use(RANDOM)
        assert len(caplog.records) == 2

    def test_a_timeout_refuses(self, caplog: pytest.LogCaptureFixture) -> None:
        """A call that ran out of time is an outage like any other."""
        guard = RedisReplayGuard(URL)
        client, _ = scripted(guard)
        client.step = raising(RedisTimeout("no complete answer within 0.05 s"))
        with caplog.at_level(logging.WARNING, logger="resume.replay"):
            assert guard.first_use(RANDOM) is False
        assert "no complete answer within 0.05 s" in caplog.text

    def test_only_one_thread_probes(self) -> None:
        """While one thread asks a Redis that was down, the others answer False at once."""
        guard = RedisReplayGuard(URL)
        client, clock = scripted(guard)
        client.step = down
        guard.first_use(RANDOM)
        clock.now += 1
        entered, release = threading.Event(), threading.Event()

        def slow() -> Reply:
            entered.set()
            release.wait(10)
            return "OK"

        client.step = slow
        results: list[bool] = []
        prober = threading.Thread(target=lambda: results.append(guard.first_use(RANDOM)))
        prober.start()
        assert entered.wait(10)
        others = [guard.first_use(bytes([i]) * 32) for i in range(5)]
        release.set()
        prober.join(10)
        assert others == [False] * 5 and results == [True]
        assert len(client.calls) == 2


class TestPublicName:
    def test_resume_replay_exports_the_three_guards(self) -> None:
        """resume.replay re-exports the protocol and both guards, which report it as home."""
        assert {"ReplayGuard", "MemoryReplayGuard", "RedisReplayGuard"} <= set(
            resume.replay.__all__
        )
        for cls in (ReplayGuard, MemoryReplayGuard, RedisReplayGuard):
            assert cls.__module__ == "resume.replay"
