"""Helpers for testing code that uses resume: throwaway certificates, a fake clock, real handshakes.

resume's own tests, examples, docs and benchmarks use them too. Nothing here is
mocked: the handshakes are real TLS, in memory or on 127.0.0.1.
"""

from __future__ import annotations

from ._testing import TLS_VERSION_NAMES as TLS_VERSION_NAMES
from ._testing import TLS_VERSIONS as TLS_VERSIONS
from ._testing import FakeClock as FakeClock
from ._testing import PKIFiles as PKIFiles
from ._testing import ThrowawayPKI as ThrowawayPKI
from ._testing import loopback_handshake as loopback_handshake
from ._testing import memory_handshake as memory_handshake
from ._testing import pin_tls_version as pin_tls_version

__all__ = [
    "FakeClock",
    "PKIFiles",
    "TLS_VERSIONS",
    "TLS_VERSION_NAMES",
    "ThrowawayPKI",
    "loopback_handshake",
    "memory_handshake",
    "pin_tls_version",
]

for _obj in (
    FakeClock,
    PKIFiles,
    ThrowawayPKI,
    loopback_handshake,
    memory_handshake,
    pin_tls_version,
):
    _obj.__module__ = "resume.testing"
del _obj
