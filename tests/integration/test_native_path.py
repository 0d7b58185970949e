"""The native session path: capture with SSL_get1_session(), offer with SSL_set_session().

Where the OpenSSL binding is supported, the client policy never reads or writes
``SSLObject.session`` (a DER round trip that leaks before gh-116810 was fixed);
where the probe refuses, it falls back to that getter. Real handshakes over
memory BIOs; every test runs on TLS 1.2 and TLS 1.3.
"""

from __future__ import annotations

import collections
import gc
import random
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clienthelpers import PKI

from resume import SessionCache, SessionHandle
from resume._core import policy
from resume._core.policy import ClientConnection
from resume._openssl import binding as _openssl
from resume._openssl.native import NativeSession
from resume.testing import memory_handshake

pytestmark = pytest.mark.skipif(
    _openssl.refusal() is not None, reason="the OpenSSL binding is not supported here"
)


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture
def watch() -> Iterator[_openssl.FreeWatch]:
    w = _openssl.binding().watch_frees()
    yield w
    w.close()


class NoSessionAttribute(Exception):
    pass


@pytest.fixture
def no_session_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any read or write of SSLObject.session fail the test."""

    def refuse(*_args: object) -> None:
        raise NoSessionAttribute("SSLObject.session used on the native path")

    monkeypatch.setattr(ssl.SSLObject, "session", property(refuse, refuse))


def connection(
    cache: SessionCache, client: ssl.SSLContext, server: ssl.SSLContext
) -> ClientConnection:
    conn = ClientConnection.start(cache, client, "localhost", 443)
    c, _ = memory_handshake(client, server, handle=conn.offered)
    conn.handshake_complete(c)
    conn.close(c, clean=True)
    return conn


class TestNativePath:
    def test_no_session_attribute_and_every_connection_resumes(
        self, pki: PKI, tls_version: str, no_session_attribute: None
    ) -> None:
        """50 connections: all but the first resume, and SSLObject.session is never touched."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        cache = SessionCache()
        reused = [connection(cache, client, server).reused for _ in range(50)]
        assert reused == [False] + [True] * 49
        handle = cache.get1(ClientConnection.start(False, client, "localhost", 443).key)
        assert handle is not None
        try:
            assert isinstance(handle.payload, NativeSession)
            assert handle.ssl_session is None
            assert handle.is_resumable
            assert handle.has_ticket
            assert policy.is_single_use(handle) is (tls_version == "1.3")
        finally:
            handle.free()
        cache.clear()

    def test_captured_session_matches_the_getter(self, pki: PKI, tls_version: str) -> None:
        """A captured session has the id, time, timeout and ticket hint ssl reports."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        c, _ = memory_handshake(client, server)
        captured = policy._capture(c)
        assert captured is not None
        try:
            assert isinstance(captured.payload, NativeSession)
            session = c.session
            assert session is not None
            assert (captured.id, captured.time, captured.timeout) == (
                session.id, session.time, session.timeout
            )
            assert captured.ticket_lifetime_hint == session.ticket_lifetime_hint
            assert captured.has_ticket == session.has_ticket
            imported = SessionHandle.from_der(captured.to_der())
            assert imported.id == session.id
            imported.free()
        finally:
            captured.free()

    def test_captured_session_refuses_another_context(self, pki: PKI, tls_version: str) -> None:
        """Like ssl's setter, a captured session is not offered on another context."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        c, _ = memory_handshake(client, server)
        captured = policy._capture(c)
        assert captured is not None
        other = pki.client_context(tls_version)
        obj = other.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
        try:
            with pytest.raises(ValueError, match="different SSLContext"):
                captured.payload.offer(obj)  # type: ignore[attr-defined]
        finally:
            captured.free()

    def test_fallback_reads_the_getter(
        self, pki: PKI, tls_version: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Where the probe refuses, sessions are ssl.SSLSession handles, and still resume."""
        monkeypatch.setattr(policy, "available", lambda: None)
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        cache = SessionCache()
        reused = [connection(cache, client, server).reused for _ in range(5)]
        assert reused == [False] + [True] * 4
        handle = cache.get1(ClientConnection.start(False, client, "localhost", 443).key)
        assert handle is not None and handle.ssl_session is not None
        handle.free()
        cache.clear()

    def test_unclean_end_of_a_resumed_connection_keeps_the_cached_session(
        self, pki: PKI, tls_version: str
    ) -> None:
        """The connection resumes a private copy: SSL_free() without close_notify spoils only it."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        cache = SessionCache()
        connection(cache, client, server)
        for _ in range(3):  # memory_handshake never sends close_notify
            assert connection(cache, client, server).reused
            gc.collect()
        cache.clear()


class TestFreedExactlyOnce:
    """Each C reference the native path takes is dropped exactly once."""

    def test_threads_and_gc(
        self,
        pki: PKI,
        tls_version: str,
        watch: _openssl.FreeWatch,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """8 threads capture, dup, up_ref, cache and free: every reference taken is freed once."""
        b = _openssl.binding()
        lock = threading.Lock()
        taken: collections.Counter[int] = collections.Counter()
        dropped: collections.Counter[int] = collections.Counter()
        get1, dup, free = b.get1_session, b.session_dup, b.session_free

        def counting_get1(obj: ssl.SSLObject | ssl.SSLSocket) -> int:
            ptr = get1(obj)
            with lock:
                taken[ptr] += 1
            return ptr

        def counting_dup(ptr: int) -> int:
            copy = dup(ptr)
            with lock:
                taken[copy] += 1
            return copy

        def counting_free(ptr: int) -> None:
            with lock:
                dropped[ptr] += 1
                assert dropped[ptr] <= taken[ptr], "a C reference was freed twice"
            free(ptr)

        monkeypatch.setattr(b, "get1_session", counting_get1)
        monkeypatch.setattr(b, "session_dup", counting_dup)
        monkeypatch.setattr(b, "session_free", counting_free)

        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        pair = list(memory_handshake(client, server))
        first = policy._capture(pair[0])
        assert first is not None
        first_ptr = first.payload._ptr  # type: ignore[attr-defined]
        watch.watch(first_ptr, 7)
        cache = SessionCache(size=32)
        errors: list[BaseException] = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for i in range(150):
                    handle = policy._capture(pair[0])
                    assert handle is not None
                    copy = handle.dup()
                    handle.up_ref()
                    cache.add(("k", seed, i % 5), copy)
                    for h in rng.sample([handle, handle, copy], 3):
                        h.free()
                    lent = cache.get1(("k", seed, rng.randrange(5)))
                    if lent is not None:
                        lent.free()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        # A payload kept alive by a reference cycle is freed by gc, once.
        holder: list[object] = [first.payload]
        holder.append(holder)
        first.free()
        assert watch.freed(7) == []
        del holder
        gc.collect()
        assert watch.freed(7) == [first_ptr]
        cache.clear()
        pair.clear()
        gc.collect()
        assert sum(taken.values()) == 2 * (1 + 8 * 150)  # get1 + dup per capture
        assert taken == dropped


def test_leak_check_3000_tls13_connections() -> None:
    """3,000 resumed TLS 1.3 connections per client adapter grow RSS by less than 5 MB.

    The old path (``SSLObject.session``, forced with ``tests/leakcheck.py
    --fallback``) grows it by about 16 MB on CPython 3.11 (gh-116810).
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("RSS is read from /proc")
    import json

    script = Path(__file__).resolve().parents[1] / "leakcheck.py"
    for client in ("trio", "asyncio"):
        out = subprocess.run(
            [sys.executable, str(script), "--connections=3000", "--tls=1.3", f"--client={client}"],
            capture_output=True, text=True, check=True, timeout=600,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["native"] is True
        assert result["reused"] == 2999
        assert result["growth_kb"] < 5 * 1024, result
