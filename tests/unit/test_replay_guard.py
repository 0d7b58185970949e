"""resume.replay.MemoryReplayGuard: the in-memory ClientHello record, on a fake clock."""

from __future__ import annotations

import pytest

from resume.replay import DEFAULT_REPLAY_WINDOW, MemoryReplayGuard, ReplayGuard


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def random32(n: int) -> bytes:
    return n.to_bytes(32, "big")


class TestFirstUse:
    def test_first_use_then_replay(self) -> None:
        """A ClientHello random is accepted once; again inside the window, never."""
        guard = MemoryReplayGuard(clock=FakeClock())
        assert guard.first_use(random32(1)) is True
        assert [guard.first_use(random32(1)) for _ in range(10)] == [False] * 10
        assert (guard.accepted, guard.replays, guard.full) == (1, 10, 0)

    def test_distinct_randoms_are_independent(self) -> None:
        """Each ClientHello has its own entry."""
        guard = MemoryReplayGuard(clock=FakeClock())
        assert all(guard.first_use(random32(n)) for n in range(100))
        assert len(guard) == 100

    def test_is_a_replay_guard(self) -> None:
        """It satisfies the ReplayGuard protocol the servers take."""
        assert isinstance(MemoryReplayGuard(), ReplayGuard)
        assert DEFAULT_REPLAY_WINDOW >= 11


class TestWindow:
    def test_replay_just_inside_the_window_is_refused(self) -> None:
        """A replay window - epsilon seconds later is still a replay."""
        clock = FakeClock()
        guard = MemoryReplayGuard(window=30, clock=clock)
        assert guard.first_use(b"r" * 32)
        clock.now += 29.999
        assert guard.first_use(b"r" * 32) is False

    def test_entries_expire_after_the_window(self) -> None:
        """After the window the entry is gone (OpenSSL's ticket-age check refuses such a replay)."""
        clock = FakeClock()
        guard = MemoryReplayGuard(window=30, clock=clock)
        assert guard.first_use(b"r" * 32)
        clock.now += 30
        assert len(guard) == 1  # expiry happens on the next call
        assert guard.first_use(b"s" * 32)
        assert len(guard) == 1
        assert guard.first_use(b"r" * 32) is True

    def test_expiry_keeps_newer_entries(self) -> None:
        """Only entries older than the window go; newer ones still refuse their replays."""
        clock = FakeClock()
        guard = MemoryReplayGuard(window=20, clock=clock)
        guard.first_use(random32(1))
        clock.now += 10
        guard.first_use(random32(2))
        clock.now += 15  # 1 is 25 s old, 2 is 15 s old
        assert guard.first_use(random32(3))
        assert len(guard) == 2
        assert guard.first_use(random32(2)) is False
        assert guard.first_use(random32(1)) is True


class TestFull:
    def test_full_record_refuses_then_recovers(self) -> None:
        """When full it refuses early data (when in doubt, refuse) until entries expire."""
        clock = FakeClock()
        guard = MemoryReplayGuard(window=11, max_entries=3, clock=clock)
        assert all(guard.first_use(random32(n)) for n in range(3))
        assert guard.first_use(random32(99)) is False
        assert guard.full == 1
        assert guard.first_use(random32(0)) is False  # still a replay, not "full"
        assert guard.replays == 1
        clock.now += 11
        assert guard.first_use(random32(99)) is True
        assert len(guard) == 1


class TestArguments:
    @pytest.mark.parametrize("window", [0, 10.9, -1, float("nan"), True, "30", None])
    def test_bad_window(self, window: object) -> None:
        """The window must cover OpenSSL's 11 s ticket-age allowance."""
        with pytest.raises(ValueError, match="at least 11 seconds"):
            MemoryReplayGuard(window)  # type: ignore[arg-type]

    @pytest.mark.parametrize("entries", [0, -5, 1.5, True, "10", None])
    def test_bad_max_entries(self, entries: object) -> None:
        """max_entries is a positive int."""
        with pytest.raises(ValueError, match="max_entries"):
            MemoryReplayGuard(max_entries=entries)  # type: ignore[arg-type]

    def test_repr_names_no_randoms(self) -> None:
        """The repr shows counts, not recorded values."""
        guard = MemoryReplayGuard(clock=FakeClock())
        guard.first_use(b"\xab" * 32)
        assert "ab" not in repr(guard).lower().replace("memoryreplayguard", "")
        assert "accepted=1" in repr(guard)
