"""Replay protection for TLS 1.3 early data (0-RTT): ClientHello records (RFC 8446, 8.2).

A server that accepts early data asks a :class:`ReplayGuard` once per
ClientHello, from OpenSSL's allow-early-data callback, whether its random is
seen for the first time: :class:`MemoryReplayGuard` remembers them in one
process, :class:`RedisReplayGuard` in a Redis shared by every server of a fleet
(the one that holds their ticket keys), so a replay to any server is refused.
"""

from ._core.replay import DEFAULT_REPLAY_WINDOW as DEFAULT_REPLAY_WINDOW
from ._core.replay import MemoryReplayGuard as MemoryReplayGuard
from ._core.replay import ReplayGuard as ReplayGuard
from ._stores.replay import RedisReplayGuard as RedisReplayGuard

__all__ = ["DEFAULT_REPLAY_WINDOW", "MemoryReplayGuard", "RedisReplayGuard", "ReplayGuard"]

# Implemented in resume._core and resume._stores; users import them from here.
MemoryReplayGuard.__module__ = "resume.replay"
ReplayGuard.__module__ = "resume.replay"
RedisReplayGuard.__module__ = "resume.replay"
