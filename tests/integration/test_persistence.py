"""Client persistence across process restarts, with SQLite and with Redis, TLS 1.2 and 1.3.

A real client process (``resume.trio.open_tls_stream`` through a SessionCache
attached to a store) connects to ``openssl s_server`` and exits; a new process
on the same store resumes its very first connection, and the ones after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer, redis_server
from test_cli_connect import SServer

__all__ = ["redis_server"]

CLIENT = textwrap.dedent(
    """
    import json, ssl, sys
    import trio
    from resume import SessionCache
    from resume.stores import RedisStore, SQLiteStore, attach_store
    from resume.trio import open_tls_stream

    port, cafile, version, spec, count, flavour, mode = sys.argv[1:8]
    port, count = int(port), int(count)
    if mode == "registered":  # a context resume did not see born: vouched for below
        ctx = ssl.create_default_context(cafile=cafile)
    else:  # "automatic": resume's own context, stored with no call
        import resume
        ctx = resume.create_client_context(cafile=cafile)
    from resume.testing import TLS_VERSIONS
    tls = TLS_VERSIONS[version]
    ctx.minimum_version = ctx.maximum_version = tls
    store = (SQLiteStore(spec[7:]) if spec.startswith("sqlite:")
             else RedisStore(spec, key=bytes(range(32))))
    cache = SessionCache(timeout=3600)
    link = attach_store(cache, store)
    if mode == "registered":
        link.register_context(ctx, label="persistence test")

    async def one():
        stream = await open_tls_stream("127.0.0.1", port, ssl_context=ctx, cache=cache,
                                       server_hostname="localhost")
        async with stream:
            await stream.send_all(b"ping\\n")
            answer = b""
            while b"\\n" not in answer:
                data = await stream.receive_some()
                if not data:
                    break
                answer += data
            assert answer == b"gnip\\n", answer
            return stream.session_reused

    async def one_asyncio():
        import resume.asyncio
        reader, writer = await resume.asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost")
        async with writer:
            writer.write(b"ping\\n")
            answer = await reader.readline()
            assert answer == b"gnip\\n", answer
            return writer.session_reused

    resumed = []
    for _ in range(count):
        # No explicit link.fetch(key): a miss in the cache reads through the store.
        if flavour == "trio":
            resumed.append(trio.run(one))
        else:
            import asyncio
            resumed.append(asyncio.run(one_asyncio()))
    if mode == "registered":
        link.close()
        store.close()
        cache.clear()
    # else: no close(); the link is closed at exit (it writes back what it fetched)
    print(json.dumps({"resumed": resumed, "loaded": link.loaded, "saved": link.saved}))
    """
)


def client_process(
    server: SServer, version: str, spec: str, count: int, flavour: str = "trio",
    mode: str = "registered",
) -> dict[str, Any]:
    """Run one client process: *count* connections with the trio or asyncio client.

    *mode* "registered": an ssl.create_default_context() context given to
    register_context(), and link.close() at the end; "automatic": a
    resume.create_client_context() context, no call, the link closed at exit.
    """
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, str(server.port), str(server.cafile), version, spec,
         str(count), flavour, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def server(tmp_path: Path, version: str) -> Iterator[SServer]:
    s = SServer(tmp_path, version)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'sessions.db'}"
    return redis_server.url


class TestRestartedClient:
    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-1", "SSL_CTX_sess_set_get_cb:notes-2")
    def test_first_connections_after_a_restart_resume(
        self, server: SServer, version: str, spec: str
    ) -> None:
        """Process 1 fills the store; processes 2 and 3 resume every connection, the first too."""
        first = client_process(server, version, spec, 3)
        assert first["resumed"] == [False, True, True]
        assert first["saved"] >= 1
        for _ in range(2):
            again = client_process(server, version, spec, 4)
            assert again["resumed"] == [True] * 4
            assert again["loaded"] == 1  # the first connection's session came from the store

    def test_many_short_lived_processes(self, server: SServer, version: str, spec: str) -> None:
        """Six one-connection processes in a row: all but the first resume."""
        results = [client_process(server, version, spec, 1)["resumed"][0] for _ in range(6)]
        assert results == [False] + [True] * 5


class TestAsyncioClient:
    def test_asyncio_and_trio_clients_share_a_store(
        self, server: SServer, version: str, spec: str
    ) -> None:
        """A trio process stores, an asyncio process resumes from the store, and back."""
        assert client_process(server, version, spec, 1, "trio")["resumed"] == [False]
        assert client_process(server, version, spec, 2, "asyncio")["resumed"] == [True, True]
        assert client_process(server, version, spec, 1, "trio")["resumed"] == [True]


class TestAutomatic:
    @pytest.mark.parametrize("flavour", ["trio", "asyncio"])
    def test_resumes_contexts_with_no_call(
        self, server: SServer, version: str, spec: str, flavour: str
    ) -> None:
        """resume's own contexts, no register_context() and no close(): runs 2 and 3 resume."""
        runs = [
            client_process(server, version, spec, 1, flavour, "automatic")["resumed"]
            for _ in range(3)
        ]
        assert runs == [[False], [True], [True]]


class TestServerRestart:
    def test_sessions_a_restarted_server_forgot_cost_one_full_handshake(
        self, tmp_path: Path, version: str, spec: str
    ) -> None:
        """The server restarts (new keys): one full handshake, then resumption again."""
        server = SServer(tmp_path, version)
        try:
            client_process(server, version, spec, 1)
        finally:
            server.close()
        # A new s_server with the same CA: the stored session is offered and declined.
        replacement = SServer(tmp_path, version, ca=server.ca)
        try:
            assert client_process(replacement, version, spec, 1)["resumed"] == [False]
            assert client_process(replacement, version, spec, 2)["resumed"] == [True, True]
        finally:
            replacement.close()


BOUNDARY_CLIENT = textwrap.dedent(
    """
    import json, ssl, sys, warnings
    import trio
    import resume
    from resume import SessionCache
    from resume.stores import SQLiteStore, attach_store
    from resume.trio import open_tls_stream

    port, cafile, version, db, mode, certfile = sys.argv[1:7]
    from resume.testing import TLS_VERSIONS
    tls = TLS_VERSIONS[version]
    if mode == "early-cert":  # a certificate loaded before resume sees the context
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.load_cert_chain(certfile)
    else:
        ctx = resume.create_client_context(cafile=cafile)
        if mode == "cert":
            ctx.load_cert_chain(certfile)
    ctx.minimum_version = ctx.maximum_version = tls
    store = SQLiteStore(db)
    cache = SessionCache(timeout=3600)
    link = attach_store(cache, store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", resume.UntrackedContextWarning)
        link.register_context(ctx, label="boundary test")

    async def one():
        stream = await open_tls_stream("127.0.0.1", int(port), ssl_context=ctx, cache=cache,
                                       server_hostname="localhost")
        async with stream:
            await stream.send_all(b"ping\\n")
            answer = b""
            while b"\\n" not in answer:
                data = await stream.receive_some()
                if not data:
                    break
                answer += data
            return stream.session_reused

    resumed = trio.run(one)
    link.close()
    store.close()
    cache.clear()
    print(json.dumps({"resumed": resumed, "saved": link.saved,
                      "warnings": [str(w.message) for w in caught]}))
    """
)


def boundary_process(
    server: SServer, version: str, db: Path, mode: str, certfile: Path
) -> dict[str, Any]:
    """One client process with no certificate, a tracked one, or one loaded before tracking."""
    proc = subprocess.run(
        [sys.executable, "-c", BOUNDARY_CLIENT, str(server.port), str(server.cafile), version,
         str(db), mode, str(certfile)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


class TestClientCertificateAcrossProcesses:
    """CVE-2016-5419's pattern across processes sharing one SQLite store.

    A session stored by a process without a client certificate must not be
    offered by a process with one, and the other way round; the same settings
    on both sides resume (so the test can fail).
    """

    @pytest.mark.parametrize(
        ("first", "second", "resumed"),
        [
            ("none", "none", True),
            ("cert", "cert", True),
            ("none", "cert", False),
            ("cert", "none", False),
            ("none", "early-cert", False),
            ("early-cert", "none", False),
        ],
    )
    def test_certificate_changes_between_processes(
        self, server: SServer, version: str, tmp_path: Path, first: str, second: str,
        resumed: bool,
    ) -> None:
        """Only processes with the same client certificate share sessions through a store."""
        certfile = tmp_path / "client.pem"
        server.ca.issue_cert("client@example.test").private_key_and_cert_chain_pem.write_to_path(
            str(certfile)
        )
        db = tmp_path / "sessions.db"
        one = boundary_process(server, version, db, first, certfile)
        two = boundary_process(server, version, db, second, certfile)
        assert one["resumed"] is False
        assert two["resumed"] is resumed
        for mode, result in ((first, one), (second, two)):
            if mode == "early-cert":
                assert len(result["warnings"]) == 1
                assert "client certificate was loaded before" in result["warnings"][0]
                assert result["saved"] == 0
            else:
                assert result["warnings"] == []
                if not result["resumed"]:  # a full handshake's session is stored
                    assert result["saved"] >= 1
