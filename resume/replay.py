"""Replay protection for TLS 1.3 early data (0-RTT): records of the ClientHellos seen.

A server that accepts early data (``resume.trio.serve_tls(..., max_early_data=N)``,
``resume.asyncio.start_server(..., max_early_data=N)``, ``resume serve --early-data``)
always asks a :class:`ReplayGuard` whether it has seen a ClientHello before
(RFC 8446, 8.2), from OpenSSL's allow-early-data callback
(``SSL_CTX_set_allow_early_data_cb()``): a replayed first flight has its early
data rejected and goes on as an ordinary 1-RTT handshake.
:class:`MemoryReplayGuard` is the record of one server process (the default);
:class:`RedisReplayGuard` keeps it in a Redis shared by every server of a fleet
(the one that holds their ticket keys), so a replay to any server is refused.
"""

from __future__ import annotations

from ._core.replay import DEFAULT_REPLAY_WINDOW as DEFAULT_REPLAY_WINDOW
from ._core.replay import MemoryReplayGuard as MemoryReplayGuard
from ._core.replay import ReplayGuard as ReplayGuard
from ._stores.replay import RedisReplayGuard as RedisReplayGuard

__all__ = ["DEFAULT_REPLAY_WINDOW", "MemoryReplayGuard", "RedisReplayGuard", "ReplayGuard"]

# Implemented in resume._core and resume._stores; users import them from here.
RedisReplayGuard.__module__ = "resume.replay"
