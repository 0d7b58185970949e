"""Every file in examples/ runs by itself (loopback only), exits 0 and shows resumption."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: What each example must print: a regular expression per line that must appear.
EXPECTED = {
    "trio_client.py": [
        r"connection 1: TLSv1\.3, resumed=False, reply=b'ping'",
        *(rf"connection {n}: TLSv1\.3, resumed=True, reply=b'ping'" for n in range(2, 6)),
        r"cache: 4 hits, 1 misses",
    ],
    "trio_server.py": [
        r"server: 127\.0\.0\.1 TLSv1\.3 full handshake, got b'GET /'",
        r"server statistics: accepted=4 full=1 resumed=3 failed=0",
        r"OpenSSL's own counters: hits=3 accept_good=4",
    ],
    "asyncio_client.py": [
        r"connection 1: resumed=False, reply=b'ping'",
        *(rf"connection {n}: resumed=True, reply=b'ping'" for n in range(2, 6)),
        r"server: 1 full, 4 resumed",
    ],
    "httpx_client.py": [
        r"asyncio request 1: server resumed=False",
        *(rf"asyncio request {n}: server resumed=True" for n in (2, 3)),
        *(
            rf"{lib} request {n}: server resumed=True"
            for lib in ("trio", "sync")
            for n in (1, 2, 3)
        ),
        r"decisions: \{'accepted': 8, 'no session': 1, 'offered': 8\}",
    ],
    "httpx_early_data.py": [
        r"trio GET 1: client early_data=False, server says GET early_data=False",
        *(
            rf"{lib} GET {n}: client early_data=True, server says GET early_data=True"
            for lib, n in (("trio", 2), ("trio", 3), ("sync", 1), ("sync", 2))
        ),
        r"trio POST: client early_data=False, server says POST early_data=False",
        r"trio GET opted out: client early_data=False, server says GET early_data=False",
    ],
    "aiohttp_client.py": [
        r"new connection 1: server resumed=False",
        *(rf"new connection {n}: server resumed=True" for n in (2, 3)),
        r"new session: server resumed=True",
        r"decisions: \{'accepted': 3, 'no session': 1, 'offered': 3\}",
    ],
    "requests_client.py": [
        r"request 1: server resumed=False",
        *(rf"request {n}: server resumed=True" for n in (2, 3)),
        r"decisions: \{'accepted': 2, 'no session': 1, 'offered': 2\}",
    ],
    "many_hosts.py": [
        *(rf"round 1: {name}\.localhost +resumed=False" for name in ("alpha", "beta", "gamma")),
        *(rf"round [23]: {name}\.localhost +resumed=True" for name in ("alpha", "beta", "gamma")),
        r"cache: 3 keys, 6 sessions, 6 hits, 3 misses",  # two TLS 1.3 tickets per server
        *(rf"server {name}\.localhost: 1 full, 2 resumed" for name in ("alpha", "beta", "gamma")),
    ],
}


def test_every_example_is_checked() -> None:
    """A new example must come with its expectations here."""
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=EXAMPLES.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    for pattern in EXPECTED[name]:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, done.stdout)
