"""serve_tls against clients nobody here wrote: ``openssl s_client`` and ``curl``.

TLS 1.2 and TLS 1.3 everywhere. ``s_client -reconnect`` reconnects right after
the handshake, before a TLS 1.3 ticket can arrive, so it only resumes TLS 1.2
(against ``openssl s_server`` too); for TLS 1.3 the chain ``-sess_out`` /
``-sess_in`` carries the ticket from one s_client to the next.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from programs import require
from serverhelpers import HTTP_RESPONSE, ServerPKI, http_handler

from resume._adapters.trio_server import TLSServer, TLSServerStream, serve_tls

pytestmark = pytest.mark.requires("openssl", "curl")

VERSION_FLAGS = {"1.2": "-tls1_2", "1.3": "-tls1_3"}


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


@asynccontextmanager
async def running(handler: object, ctx: ssl.SSLContext) -> AsyncIterator[TLSServer]:
    async with trio.open_nursery() as nursery:
        server: TLSServer = await nursery.start(
            partial(serve_tls, handler, 0, ssl_context=ctx, host="127.0.0.1")  # type: ignore[arg-type]
        )
        yield server
        server.close()


async def s_client(port: int, pki: ServerPKI, version: str, *args: str) -> str:
    done = await trio.run_process(
        [
            require("openssl"),
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(pki.ca_file),
            "-verify_return_error",
            VERSION_FLAGS[version],
            *args,
        ],
        stdin=b"GET / HTTP/1.0\r\n\r\n",
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out + done.stderr.decode(errors="replace")
    return out


def outcomes(out: str, version: str) -> list[str]:
    """The "New"/"Reused" of each handshake s_client reports."""
    return re.findall(rf"^(New|Reused), TLSv{version}", out, flags=re.MULTILINE)


async def test_s_client_reconnect_tls12(pki: ServerPKI) -> None:
    """``s_client -reconnect``: the five reconnections all resume (TLS 1.2)."""
    async with running(http_handler, pki.server_context("1.2")) as server:
        out = await s_client(server.port, pki, "1.2", "-reconnect")
        await trio.testing.wait_all_tasks_blocked()
        stats = server.statistics()
    assert outcomes(out, "1.2") == ["New"] + ["Reused"] * 5
    assert (stats.full, stats.resumed, stats.failed) == (1, 5, 0)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("client_cert", [False, True], ids=["", "client-cert"])
async def test_s_client_sess_out_sess_in(
    pki: ServerPKI, tmp_path: Path, version: str, client_cert: bool
) -> None:
    """A chain of s_client processes, each resuming the session the previous one saved."""
    extra = ["-cert", str(pki.client_cert_file)] if client_cert else []
    seen_certs: list[bool] = []

    async def handler(stream: TLSServerStream) -> None:
        seen_certs.append(stream.getpeercert() is not None)
        await http_handler(stream)

    ctx = pki.server_context(version, client_certs=client_cert)
    results = []
    async with running(handler, ctx) as server:
        session = tmp_path / "session-0.pem"
        out = await s_client(
            server.port, pki, version, "-ign_eof", "-sess_out", str(session), *extra
        )
        results += outcomes(out, version)
        assert HTTP_RESPONSE.decode().splitlines()[0] in out
        for i in range(1, 6):
            following = tmp_path / f"session-{i}.pem"
            out = await s_client(
                server.port,
                pki,
                version,
                "-ign_eof",
                "-sess_in",
                str(session),
                "-sess_out",
                str(following),
                *extra,
            )
            results += outcomes(out, version)
            # s_client saves a session only when it gets a new one: each TLS 1.3
            # resumption brings fresh tickets; a TLS 1.2 session id is reused as is.
            if following.exists():
                session = following
        await trio.testing.wait_all_tasks_blocked()
        stats = server.statistics()
    assert results == ["New"] + ["Reused"] * 5
    assert (stats.full, stats.resumed, stats.failed) == (1, 5, 0)
    assert seen_certs == [client_cert] * 6


@pytest.mark.parametrize("version", ["1.2", "1.3"])
async def test_curl_resumes_from_its_memory_cache(pki: ServerPKI, version: str) -> None:
    """One curl process, five URLs, ``Connection: close``: curl resumes connections 2-5."""
    count = 5
    async with running(http_handler, pki.server_context(version)) as server:
        urls = [f"https://localhost:{server.port}/{i}" for i in range(count)]
        done = await trio.run_process(
            [
                require("curl"),
                "--silent",
                "--show-error",
                "--verbose",
                "--http1.1",
                "--cacert",
                str(pki.ca_file),
                "--resolve",
                f"localhost:{server.port}:127.0.0.1",
                f"--tlsv{version}",
                "--tls-max",
                version,
                "-H",
                "Connection: close",
                *urls,
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        await trio.testing.wait_all_tasks_blocked()
        stats = server.statistics()
    log = done.stderr.decode(errors="replace")
    assert done.returncode == 0, log
    assert done.stdout == b"hello\n" * count
    assert log.count(f"SSL connection using TLSv{version}") == count
    assert (stats.accepted, stats.full, stats.resumed, stats.failed) == (count, 1, count - 1, 0)
