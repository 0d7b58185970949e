"""The guarded OpenSSL binding: the probe on live objects, and a clean refusal where it fails."""

from __future__ import annotations

import re
import ssl
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from corehelpers import VERSIONS, Pki, handshake, make_pki

import resume
from resume import SessionCache, SessionHandle, UnsupportedError
from resume._openssl import binding as _openssl
from resume._ticketkeys.ring import TicketKeyRing, install_ticket_keys


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Forget the probe's outcome before and after the test (so a refusal does not stick)."""
    _openssl._reset_for_tests()
    yield
    _openssl._reset_for_tests()


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def pki(request: pytest.FixtureRequest) -> Pki:
    return make_pki(request.param)


def memory_pair(pki: Pki) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A client and a server SSLObject over memory BIOs, handshake done."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = pki.client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = pki.server.wrap_bio(s_in, s_out, server_side=True)
    pump(client, server, c_in, c_out, s_in, s_out)
    return client, server


def pump(
    client: ssl.SSLObject, server: ssl.SSLObject,
    c_in: ssl.MemoryBIO, c_out: ssl.MemoryBIO, s_in: ssl.MemoryBIO, s_out: ssl.MemoryBIO,
) -> None:
    done = [False, False]
    for _ in range(20):
        for i, (obj, out, peer) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            peer.write(out.read())
        if all(done):
            return
    raise AssertionError("the in-memory handshake did not finish")


class TestProbe:
    """The probe runs once on live objects and agrees with Python."""

    def test_probe_accepts_this_build(self) -> None:
        """On every tested build (CPython 3.10 to 3.13, OpenSSL 3.0) the binding is available."""
        assert _openssl.refusal() is None
        assert _openssl.binding() is _openssl.binding()

    def test_library_is_the_one_ssl_uses(self) -> None:
        """The library found through _ssl reports the version ssl reports."""
        b = _openssl.binding()
        assert b._lib.OpenSSL_version_num() == ssl.OPENSSL_VERSION_NUMBER

    def test_session_pointer_agrees_with_python(self, pki: Pki) -> None:
        """SSL_SESSION_get_id/time/timeout through the pointer equal SSLSession's values."""
        session, _ = handshake(pki)
        b = _openssl.binding()
        ptr = b.session_ptr(session)
        assert b.session_id(ptr) == session.id
        assert b.session_time(ptr) == session.time
        assert b.session_timeout(ptr) == session.timeout
        assert b.session_has_ticket(ptr) == session.has_ticket
        assert b.session_ticket_lifetime_hint(ptr) == session.ticket_lifetime_hint
        want = 0x0304 if pki.client.maximum_version == ssl.TLSVersion.TLSv1_3 else 0x0303
        assert b.session_protocol_version(ptr) == want

    def test_ssl_pointer_leads_to_the_context(self, pki: Pki) -> None:
        """SSL_get_SSL_CTX(ssl) is the context's SSL_CTX, and SSL_get_session the session's."""
        client, _server = memory_pair(pki)
        b = _openssl.binding()
        ssl_ptr = b.ssl_ptr(client)
        assert b._lib.SSL_get_SSL_CTX(ssl_ptr) == b.ctx_ptr(pki.client)
        session = client.session
        assert session is not None
        assert b._lib.SSL_get_session(ssl_ptr) == b.session_ptr(session)

    def test_context_timeout(self, pki: Pki) -> None:
        """SSL_CTX_set_timeout/get_timeout: the sessions of the context then carry it."""
        b = _openssl.binding()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pki.ca.issue_cert("localhost").configure_cert(ctx)
        ctx.minimum_version = ctx.maximum_version = pki.server.maximum_version
        old = b.set_context_timeout(ctx, 1234)
        assert old > 0
        assert b.context_timeout(ctx) == 1234
        session, _ = handshake(Pki(pki.ca, ctx, pki.client))
        if pki.server.maximum_version == ssl.TLSVersion.TLSv1_3:
            assert session.ticket_lifetime_hint == 1234
        for bad in (0, -1, 2**31, 1.5, True):
            with pytest.raises(ValueError, match="whole seconds"):
                b.set_context_timeout(ctx, bad)  # type: ignore[arg-type]
        assert b.context_timeout(ctx) == 1234

    def test_foreign_objects_are_rejected(self) -> None:
        """Objects of the wrong type get a TypeError, before any memory is read."""
        b = _openssl.binding()
        with pytest.raises(TypeError, match="SSLSession"):
            b.session_ptr(object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="SSLContext"):
            b.ctx_ptr(object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="SSLObject"):
            b.ssl_ptr(object())  # type: ignore[arg-type]

    def test_unconnected_socket_is_rejected(self, pki: Pki) -> None:
        """An SSLSocket on an unconnected socket has no SSL yet: a clear ValueError."""
        import socket

        with socket.socket() as raw, pki.client.wrap_socket(
            raw, server_hostname="localhost", do_handshake_on_connect=False
        ) as tls, pytest.raises(ValueError, match="not connected"):
            _openssl.binding().ssl_ptr(tls)


class TestKnownBuilds:
    """Step 0 of the probe: only builds whose layout is known get as far as loading C."""

    def test_this_python_is_known(self) -> None:
        """The Python running the suite is one the binding knows (the suite runs on each)."""
        assert sys.version_info[:2] in _openssl._KNOWN_PYTHONS
        _openssl._check_build()

    @pytest.mark.parametrize(
        ("facts", "match"),
        [
            ({"implementation": "pypy"}, "needs CPython"),
            ({"version": (3, 9)}, r"Python 3\.9 is not one resume knows"),
            ({"version": (3, 14)}, r"Python 3\.14 is not one resume knows"),
            ({"version": (4, 0)}, r"Python 4\.0 is not one"),
            ({"gil_disabled": True}, "free-threaded"),
            ({"openssl": ("LibreSSL 3.8.2", 0x20000000)}, "LibreSSL"),
            ({"openssl": ("BoringSSL", 0x1010107F)}, "BoringSSL"),
            ({"openssl": ("OpenSSL 1.1.0l  10 Sep 2019", 0x101000CF)}, "1.1.1 and 3.x"),
            ({"openssl": ("OpenSSL 4.0.0  1 Apr 2026", 0x40000000)}, "1.1.1 and 3.x"),
        ],
    )
    def test_unknown_builds_are_refused(self, facts: dict[str, Any], match: str) -> None:
        """Another implementation, Python, threading model or TLS library is refused."""
        with pytest.raises(UnsupportedError, match=match):
            _openssl._check_build(**facts)

    @pytest.mark.parametrize(
        "openssl", [("OpenSSL 1.1.1w  11 Sep 2023", 0x1010117F), ("OpenSSL 3.5.0", 0x30500000)]
    )
    def test_known_libraries_pass(self, openssl: tuple[str, int]) -> None:
        """OpenSSL 1.1.1 and any 3.x pass step 0 (the later steps still check them)."""
        _openssl._check_build(openssl=openssl)

    @pytest.mark.usefixtures("fresh_probe")
    def test_unknown_python_is_refused_before_loading_and_remembered(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On an unknown Python nothing is loaded, the refusal sticks, resume still imports."""
        loads: list[int] = []
        monkeypatch.setattr(_openssl, "_KNOWN_PYTHONS", frozenset({(2, 7)}))
        monkeypatch.setattr(_openssl, "_load", lambda: loads.append(1))
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        with pytest.raises(UnsupportedError, match=re.escape(f"Python {version} is not one")):
            _openssl.binding()
        assert loads == []
        reason = _openssl.refusal()
        assert reason is not None and f"Python {version}" in reason
        monkeypatch.undo()  # a known Python again: still refused, the probe does not rerun
        with pytest.raises(UnsupportedError, match="not available on this Python build"):
            _openssl.binding()
        assert _openssl.refusal() == reason


@pytest.mark.usefixtures("fresh_probe")
class TestRefusal:
    """A build whose layout is not the expected one is refused, and resume still works."""

    @pytest.mark.parametrize("shift", [-8, 8, 16])
    def test_wrong_layout_is_refused(self, monkeypatch: pytest.MonkeyPatch, shift: int) -> None:
        """With the object header assumed at another size, the probe refuses (no crash)."""
        monkeypatch.setattr(_openssl, "_HEADER_SIZE", object.__basicsize__ + shift)
        with pytest.raises(UnsupportedError, match=r"layout|does not check out|too small"):
            _openssl.binding()
        reason = _openssl.refusal()
        assert reason is not None

    def test_other_library_version_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the library found is not the version ssl reports, the probe refuses."""
        monkeypatch.setattr(ssl, "OPENSSL_VERSION_NUMBER", ssl.OPENSSL_VERSION_NUMBER + 1)
        with pytest.raises(UnsupportedError, match="version"):
            _openssl.binding()

    def test_refusal_is_remembered(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The probe runs once: after a refusal, later calls refuse without probing."""
        monkeypatch.setattr(_openssl, "_HEADER_SIZE", object.__basicsize__ - 8)
        with pytest.raises(UnsupportedError):
            _openssl.binding()
        calls: list[int] = []
        monkeypatch.setattr(_openssl, "_probe", lambda: calls.append(1))
        monkeypatch.setattr(_openssl, "_HEADER_SIZE", object.__basicsize__)
        with pytest.raises(UnsupportedError, match="not available on this Python build"):
            _openssl.binding()
        assert calls == []

    def test_der_and_ticket_keys_refuse_while_the_rest_works(
        self, monkeypatch: pytest.MonkeyPatch, pki: Pki
    ) -> None:
        """to_der/from_der/install_ticket_keys raise UnsupportedError; handles and caches work."""
        session, _ = handshake(pki)
        monkeypatch.setattr(_openssl, "_HEADER_SIZE", object.__basicsize__ - 8)
        handle = SessionHandle.from_ssl(session)
        with pytest.raises(UnsupportedError):
            handle.to_der()
        with pytest.raises(UnsupportedError):
            SessionHandle.from_der(b"0\x03\x02\x01\x01")
        with pytest.raises(UnsupportedError):
            install_ticket_keys(pki.server, TicketKeyRing())
        # The rest of resume keeps working: a cache and a real resumption.
        cache = SessionCache()
        cache.add("localhost:443", handle)
        got = cache.get1("localhost:443")
        assert got is handle
        _, reused = handshake(pki, got.ssl_session)
        assert reused
        got.free()
        cache.clear()
        handle.free()

    def test_refusal_error_type(self) -> None:
        """UnsupportedError is a ResumeError, exported from resume."""
        assert issubclass(resume.UnsupportedError, resume.ResumeError)
        assert resume.UnsupportedError.__module__ == "resume"
