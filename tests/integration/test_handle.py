"""SessionHandle: the rules of SSL_SESSION_new, _dup, _up_ref and _free, checked at every call."""

from __future__ import annotations

import _thread
import gc
import ssl
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
from collections.abc import Iterator

import pytest
from corehelpers import VERSIONS, Pki, handshake, make_pki

import resume
from resume import (
    DoubleFreeError,
    SessionCache,
    SessionError,
    SessionHandle,
    UseAfterFreeError,
    session_free,
)
from resume._core.handle import _EmptySession
from resume._core.offer import offer


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def pki(request: pytest.FixtureRequest) -> Pki:
    return make_pki(request.param)


@pytest.fixture(scope="module")
def real_session(pki: Pki) -> ssl.SSLSession:
    session, _ = handshake(pki)
    return session


@pytest.fixture
def handle(real_session: ssl.SSLSession) -> Iterator[SessionHandle]:
    h = SessionHandle.from_ssl(real_session)
    yield h
    while not h.freed:
        if h.owner is not None:
            h.owner.clear()
        else:
            h.free()


class TestNew:
    @pytest.mark.manpage("SSL_SESSION_free:desc-1", "SSL_SESSION_free:ret-1")
    def test_new_gives_an_empty_handle_with_one_reference(self) -> None:
        """new() returns a live, empty, unowned handle holding one reference."""
        h = SessionHandle.new()
        assert isinstance(h, SessionHandle)
        assert h.refcount == 1
        assert not h.freed
        assert h.owner is None
        assert h.ssl_session is None
        assert not h.is_resumable
        assert h.id == b""
        assert not h.has_ticket
        assert h.ticket_lifetime_hint == 0
        h.free()
        assert h.freed

    def test_new_mirrors_openssl_defaults(self) -> None:
        """A new session's time is now and its timeout 304 s, as SSL_SESSION_new sets them."""
        import time

        before = int(time.time())
        h = SessionHandle.new()
        assert before <= h.time <= int(time.time())
        assert h.timeout == 304
        h.free()


class TestFromSsl:
    @pytest.mark.manpage("SSL_SESSION_free:notes-1")
    def test_wraps_the_session_of_a_completed_handshake(self, real_session: ssl.SSLSession) -> None:
        """A session from a completed loopback handshake is resumable and reads through."""
        h = SessionHandle.from_ssl(real_session)
        assert h.ssl_session is real_session
        assert h.payload is real_session
        assert h.is_resumable
        assert h.id == real_session.id
        assert h.time == real_session.time
        assert h.timeout == real_session.timeout
        assert h.ticket_lifetime_hint == real_session.ticket_lifetime_hint
        assert h.has_ticket == real_session.has_ticket
        h.free()

    def test_rejects_what_is_not_a_session(self) -> None:
        """Garbage in gets a TypeError naming what was expected."""
        with pytest.raises(TypeError, match=r"ssl\.SSLSession"):
            SessionHandle.from_ssl(b"not a session")  # type: ignore[arg-type]

    def test_cannot_be_pickled(self, handle: SessionHandle) -> None:
        """A live session is not serialised by accident."""
        import pickle

        with pytest.raises(TypeError, match="to_der"):
            pickle.dumps(handle)


class TestDup:
    @pytest.mark.manpage("SSL_SESSION_free:desc-2", "SSL_SESSION_free:ret-2")
    def test_dup_is_a_new_handle_with_one_reference(self, handle: SessionHandle) -> None:
        """dup() returns a distinct handle, refcount 1, holding the same session."""
        copy = handle.dup()
        assert copy is not handle
        assert copy.refcount == 1
        assert handle.refcount == 1
        assert copy.ssl_session is handle.ssl_session
        assert copy.id == handle.id
        copy.free()
        assert not handle.freed

    @pytest.mark.manpage("SSL_SESSION_free:desc-3")
    def test_copy_is_owned_by_no_cache(self, handle: SessionHandle) -> None:
        """The copy of a cached handle has no owner; the original is unchanged."""
        cache = SessionCache()
        assert cache.add("k", handle)
        copy = handle.dup()
        assert handle.owner is cache
        assert copy.owner is None
        assert handle.refcount == 2
        assert copy.refcount == 1
        copy.free()
        cache.clear()

    @pytest.mark.manpage("SSL_SESSION_free:ret-2")
    def test_dup_of_a_freed_handle_raises(self, real_session: ssl.SSLSession) -> None:
        """Where C would return NULL or worse, dup() of a freed handle raises UseAfterFreeError."""
        h = SessionHandle.from_ssl(real_session)
        h.free()
        with pytest.raises(UseAfterFreeError, match=r"dup\(\)"):
            h.dup()

    def test_dup_at_the_bottom_of_the_stack(self, handle: SessionHandle) -> None:
        """dup() called from a thread's bottom frame (no caller above it) works and names it."""
        results: list[object] = []
        done = threading.Event()

        def bottom() -> None:  # run by _thread directly: this is the thread's only frame
            try:
                copy = handle.dup()
                results.append(copy._site)
                copy.free()
            except BaseException as exc:
                results.append(exc)
            finally:
                done.set()

        _thread.start_new_thread(bottom, ())
        assert done.wait(30)
        (site,) = results
        assert isinstance(site, tuple), site
        assert site[0] == __file__
        assert handle.refcount == 1

    def test_dup_at_a_module_top_level(self) -> None:
        """`python -c` calling dup() at its top level (the REPL's case) works, nothing leaks."""
        code = textwrap.dedent("""
            import resume
            h = resume.SessionHandle.new()
            c = h.dup()
            print(c._site)
            c.free()
            h.free()
        """)
        proc = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", "-c", code],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "('<string>', 4)"
        assert proc.stderr == ""

    @pytest.mark.parametrize("failing_call", [1, 2])
    def test_a_failing_dup_leaves_no_half_made_copy(
        self, handle: SessionHandle, monkeypatch: pytest.MonkeyPatch, failing_call: int
    ) -> None:
        """When the creation-site lookup fails inside dup(), no copy is left to leak."""
        import resume._core.handle as handle_module

        real = handle_module._creation_site
        calls = 0

        def failing() -> tuple[str, int]:
            nonlocal calls
            calls += 1
            if calls == failing_call:
                raise RuntimeError("injected")
            return real()

        monkeypatch.setattr(handle_module, "_creation_site", failing)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            try:
                copy = handle.dup()
            except RuntimeError:
                pass
            else:
                copy.free()
                del copy
            gc.collect()
        assert [w for w in record if issubclass(w.category, ResourceWarning)] == []
        assert handle.refcount == 1 and not handle.freed


class TestUpRef:
    @pytest.mark.manpage("SSL_SESSION_free:desc-4", "SSL_SESSION_free:ret-3")
    def test_up_ref_increments_and_returns_one(self, handle: SessionHandle) -> None:
        """up_ref() adds one reference and returns 1, the C success value."""
        assert handle.up_ref() == 1
        assert handle.refcount == 2
        assert handle.up_ref() == 1
        assert handle.refcount == 3
        handle.free()
        handle.free()
        assert handle.refcount == 1

    @pytest.mark.manpage("SSL_SESSION_free:ret-3")
    def test_up_ref_on_a_freed_handle_raises_instead_of_returning_zero(self) -> None:
        """The error case (0 in C) is an exception that says what to do."""
        h = SessionHandle.new()
        h.free()
        with pytest.raises(UseAfterFreeError, match="freed session handle"):
            h.up_ref()
        assert h.refcount == 0


class TestFree:
    @pytest.mark.manpage("SSL_SESSION_free:desc-5")
    def test_free_decrements_and_releases_at_zero(self, real_session: ssl.SSLSession) -> None:
        """free() drops a reference; at zero the session is dropped and the handle freed."""
        h = SessionHandle.from_ssl(real_session)
        h.up_ref()
        h.free()
        assert h.refcount == 1
        assert not h.freed
        assert h.ssl_session is real_session
        h.free()
        assert h.refcount == 0
        assert h.freed
        assert h._session is None

    def test_free_wipes_serialized_bytes(self) -> None:
        """Serialized session bytes kept by a handle are zeroed when it is freed."""
        der = bytearray(b"secret master key material")
        h = SessionHandle._from_payload(_EmptySession(), der)
        h.free()
        assert der == bytearray(len(der))
        assert h._der is None

    def test_free_calls_release_of_a_native_payload_once(self) -> None:
        """A payload with release() (a DER-born C session) is released exactly once."""
        released: list[int] = []

        class Native:
            id = b"\x01"
            time = 1
            timeout = 300
            ticket_lifetime_hint = 0
            has_ticket = False

            def release(self) -> None:
                released.append(1)

        h = SessionHandle._from_payload(Native())
        h.up_ref()
        h.free()
        assert released == []
        h.free()
        assert released == [1]
        with pytest.raises(DoubleFreeError):
            h.free()
        assert released == [1]

    @pytest.mark.manpage("SSL_SESSION_free:desc-6")
    def test_session_free_none_does_nothing(self) -> None:
        """session_free(None) is the SSL_SESSION_free(NULL) rule: nothing happens."""
        session_free(None)

    @pytest.mark.manpage("SSL_SESSION_free:desc-5")
    def test_session_free_is_free(self) -> None:
        """session_free(h) drops one reference like h.free()."""
        h = SessionHandle.new()
        h.up_ref()
        session_free(h)
        assert h.refcount == 1
        session_free(h)
        assert h.freed
        with pytest.raises(DoubleFreeError):
            session_free(h)

    @pytest.mark.manpage("SSL_SESSION_free:notes-6", "SSL_SESSION_free:notes-7")
    def test_double_free_raises_at_once_with_the_creation_site(self) -> None:
        """Freeing a freed handle raises DoubleFreeError naming this file and line."""
        h = SessionHandle.new()
        h.free()
        with pytest.raises(DoubleFreeError, match=r"test_handle\.py:\d+") as info:
            h.free()
        assert "already freed" in str(info.value)
        assert isinstance(info.value, SessionError)
        assert h.refcount == 0

    @pytest.mark.parametrize(
        "use",
        [
            lambda h: h.up_ref(),
            lambda h: h.dup(),
            lambda h: h.ssl_session,
            lambda h: h.payload,
            lambda h: h.is_resumable,
            lambda h: h.id,
            lambda h: h.time,
            lambda h: h.timeout,
            lambda h: h.ticket_lifetime_hint,
            lambda h: h.has_ticket,
            lambda h: h.owner,
        ],
    )
    def test_every_use_after_free_raises(self, use: object) -> None:
        """Every operation but refcount and freed raises UseAfterFreeError on a freed handle."""
        h = SessionHandle.new()
        h.free()
        with pytest.raises(UseAfterFreeError) as info:
            use(h)  # type: ignore[operator]
        assert isinstance(info.value, SessionError)
        assert "free it after the last use" in str(info.value)
        assert h.freed and h.refcount == 0

    def test_repr_says_what_the_handle_is(self, handle: SessionHandle) -> None:
        """The repr names the public class, the kind of payload and the count."""
        assert repr(handle) == "<resume.SessionHandle ssl refcount=1>"
        empty = SessionHandle.new()
        assert repr(empty) == "<resume.SessionHandle empty refcount=1>"
        empty.free()
        assert repr(empty).startswith("<resume.SessionHandle freed, created at ")


class TestLeaks:
    def test_leaked_handle_warns_with_its_creation_site(self) -> None:
        """A handle collected with references left warns, naming where it was made."""
        h = SessionHandle.new()
        with pytest.warns(ResourceWarning, match=r"test_handle\.py:\d+.*1 reference") as record:
            del h
        assert len(record) == 1

    def test_leak_warning_carries_the_tracemalloc_traceback(self) -> None:
        """With tracemalloc on, the warning's source is the handle (Python shows its traceback)."""
        tracemalloc.start(5)
        try:
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                h = SessionHandle.new()
                traceback = tracemalloc.get_object_traceback(h)
                del h
                gc.collect()
        finally:
            tracemalloc.stop()
        (message,) = [w for w in record if issubclass(w.category, ResourceWarning)]
        assert message.source is not None
        assert traceback is not None
        assert any("test_handle.py" in frame.filename for frame in traceback)

    def test_freed_and_cached_handles_do_not_warn(self, real_session: ssl.SSLSession) -> None:
        """Freed handles, and handles whose only reference is a cache's, are not leaks."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            h = SessionHandle.from_ssl(real_session)
            h.free()
            del h
            cache = SessionCache()
            cached = SessionHandle.from_ssl(real_session)
            cache.add("k", cached)
            cached.free()
            del cached, cache
            gc.collect()


class TestThreads:
    def test_reference_counting_is_thread_safe(self) -> None:
        """Eight threads racing up_ref/free leave the count exact."""
        h = SessionHandle.new()
        rounds = 20_000
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for _ in range(rounds):
                h.up_ref()
                h.free()
            h.up_ref()

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert h.refcount == 9
        for _ in range(9):
            h.free()
        assert h.freed


class TestRealSessions:
    @pytest.mark.manpage("SSL_get_session:notes-1", "SSL_CTX_set_session_cache_mode:notes-3")
    def test_a_handle_resumes_a_real_connection(self, pki: Pki) -> None:
        """The session in a handle re-establishes the connection without a full handshake."""
        session, reused = handshake(pki)
        assert not reused
        h = SessionHandle.from_ssl(session)
        _, reused = handshake(pki, h.ssl_session)
        assert reused
        h.free()

    @pytest.mark.manpage("SSL_SESSION_free:notes-3")
    def test_one_session_serves_several_connections(self, pki: Pki) -> None:
        """Several connections may use one session; each use holds its own reference."""
        # TLS 1.3 tickets are single use by policy (resume.trio takes them out of
        # the cache), not by OpenSSL: the session still resumes several times here.
        session, _ = handshake(pki)
        h = SessionHandle.from_ssl(session)
        users = []
        for _ in range(3):
            h.up_ref()
            users.append(h)
            _, reused = handshake(pki, h.ssl_session)
            assert reused
        assert h.refcount == 4
        for user in users:
            user.free()
        h.free()
        assert h.freed

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-12")
    def test_offer_sets_the_session_on_the_connection(self, pki: Pki) -> None:
        """offer() is SSL_set_session(): the application picks the session to reuse."""
        session, _ = handshake(pki)
        h = SessionHandle.from_ssl(session)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = pki.client.wrap_bio(incoming, outgoing, server_hostname="localhost")
        offer(obj, h)
        assert obj.session == session
        empty = SessionHandle.new()
        with pytest.raises(SessionError, match="no TLS session"):
            offer(obj, empty)
        empty.free()
        h.free()

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-5")
    def test_a_server_that_does_not_know_the_session_does_a_full_handshake(self) -> None:
        """The server either agrees to reuse or starts a full handshake."""
        pki = make_pki("1.2")
        session, _ = handshake(pki)
        # Same client context and CA; a server context with its own cache and ticket key.
        other_server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        other_server.maximum_version = ssl.TLSVersion.TLSv1_2
        pki.ca.issue_cert("localhost").configure_cert(other_server)
        _, reused = handshake(Pki(pki.ca, other_server, pki.client), session)
        assert not reused
        _, reused = handshake(pki, session)
        assert reused  # the server that made it still agrees


def test_public_objects_report_their_public_module() -> None:
    """Exceptions and classes say resume.X, not resume._private.X."""
    for name in resume.__all__:
        obj = getattr(resume, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "resume", name


def _memory_handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    """Run a handshake between two SSLObjects over memory BIOs (no reads after it)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", cli), ("s", srv)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    return cli, srv, [c_in, c_out, s_in, s_out]


class TestTls13SessionTiming:
    @pytest.mark.manpage(
        "SSL_get_session:notes-2",
        "SSL_get_session:notes-4",
        "SSL_get_session:notes-5",
    )
    def test_a_tls13_session_is_resumable_only_after_the_ticket_arrives(self) -> None:
        """Right after the handshake the client's session is not resumable; after a read it is."""
        pki = make_pki("1.3")
        cli, srv, (c_in, _, _, s_out) = _memory_handshake(pki.client, pki.server)
        early = SessionHandle.from_ssl(cli.session)  # type: ignore[arg-type]
        assert not early.is_resumable
        srv.write(b"x")
        c_in.write(s_out.read())
        assert cli.read(1) == b"x"
        late = SessionHandle.from_ssl(cli.session)  # type: ignore[arg-type]
        assert late.is_resumable
        assert late.has_ticket
        cache = SessionCache()
        assert cache.add("k", early) is False
        assert cache.add("k", late) is True
        early.free()
        late.free()

    @pytest.mark.manpage("SSL_get_session:notes-3")
    def test_a_server_may_never_send_a_ticket(self) -> None:
        """With num_tickets = 0 the client never gets a resumable TLS 1.3 session."""
        pki = make_pki("1.3")
        pki.server.num_tickets = 0
        cli, srv, (c_in, _, _, s_out) = _memory_handshake(pki.client, pki.server)
        srv.write(b"x")
        c_in.write(s_out.read())
        assert cli.read(1) == b"x"
        h = SessionHandle.from_ssl(cli.session)  # type: ignore[arg-type]
        assert not h.is_resumable
        h.free()


class TestServerSideCache:
    @pytest.mark.manpage(
        "SSL_CTX_set_session_cache_mode:notes-6",
        "SSL_CTX_set_session_cache_mode:notes-16",
        "SSL_CTX_set_session_cache_mode:notes-17",
        "SSL_CTX_set_session_cache_mode:notes-31",
    )
    def test_an_ssl_server_caches_session_ids_by_default(self) -> None:
        """Without tickets, an ssl server finds the session id in its own cache and resumes."""
        pki = make_pki("1.2")
        pki.server.options |= ssl.OP_NO_TICKET
        session, _ = handshake(pki)
        assert not session.has_ticket
        _, reused = handshake(pki, session)
        assert reused
        assert pki.server.session_stats()["hits"] == 1

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-13")
    def test_an_ssl_client_context_keeps_no_session_cache_of_its_own(self) -> None:
        """OpenSSL's client caching is off by default: resume's SessionCache is that cache."""
        pki = make_pki("1.2")
        handshake(pki)
        assert pki.client.session_stats()["number"] == 0
        assert pki.client.session_stats()["connect_good"] == 1

    @pytest.mark.manpage("SSL_get_session:notes-12")
    def test_an_unclean_close_removes_the_session_from_the_server_cache(self) -> None:
        """A connection closed without SSL_shutdown leaves no resumable session behind."""
        pki = make_pki("1.2")
        pki.server.options |= ssl.OP_NO_TICKET
        session, _ = handshake(pki, clean=False)
        assert pki.server.session_stats()["number"] == 0
        _, reused = handshake(pki, session)
        assert not reused  # that full handshake closed cleanly: its session is kept
        assert pki.server.session_stats()["number"] == 1
        fresh, _ = handshake(pki)
        _, reused = handshake(pki, fresh)
        assert reused

    @pytest.mark.manpage("SSL_CTX_set_session_cache_mode:notes-8")
    @pytest.mark.parametrize("version", sorted(VERSIONS))
    def test_a_server_requiring_client_certificates_still_resumes(self, version: str) -> None:
        """ssl sets a session id context on every context, so client-cert servers resume."""
        pki = make_pki(version)
        pki.server.verify_mode = ssl.CERT_REQUIRED
        pki.ca.configure_trust(pki.server)
        pki.ca.issue_cert("client.example").configure_cert(pki.client)
        session, _ = handshake(pki)
        _, reused = handshake(pki, session)
        assert reused
