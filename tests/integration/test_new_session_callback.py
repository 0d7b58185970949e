"""SSL_CTX_sess_set_new_cb(3) and its siblings, proved against resume's client.

resume's client policy installs one process-wide new-session callback on each
``PROTOCOL_TLS_CLIENT`` context it meets (``Binding.watch_new_sessions``; the
context's cache mode becomes ``SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE``),
routes each new session to the connection whose ``SSL*`` made it, keeps an
``SSL_SESSION_dup()`` in the :class:`~resume.SessionCache` and returns 0.
:class:`~resume.SessionCache`'s ``on_new`` and ``on_remove`` are the Python
mirrors of the new-session and remove-session callbacks.

The tests drive real handshakes: over memory BIOs where the moment of a callback
matters (inside the handshake, or in a later read), on loopback against
``openssl s_server`` where a peer nobody here wrote decides how many tickets it
sends. ``FreeWatch`` (the binding's ex-data free hook) shows when OpenSSL really
frees a C session, which is how the reference rules of the callback are seen.
Every test runs on TLS 1.2 and TLS 1.3.

One sentence of the page does not hold for OpenSSL 3.0 as written: a callback
that returns 0 does not take the session out of the context's internal cache
(measured: with ``SSL_SESS_CACHE_CLIENT`` alone, the internal cache holds one
session per TLS 1.2 handshake and two per TLS 1.3 one). resume sets
``NO_INTERNAL_STORE``, so its context's internal cache stays empty either way;
that is what ``test_resume_keeps_a_dup_and_releases_what_it_was_lent`` checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import sqlite3
import ssl
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from clienthelpers import PKI, s_server

import resume.trio
from resume import SessionCache, SessionHandle
from resume._core.policy import ClientConnection, is_fatal
from resume._openssl import binding as _openssl
from resume.testing import FakeClock, memory_handshake

pytestmark = pytest.mark.skipif(
    _openssl.refusal() is not None, reason="the OpenSSL binding is not supported here"
)

#: Callbacks given to C by these tests: never freed (a context may call them
#: until it is freed, and a collected thunk crashes the process).
_KEEP_ALIVE: list[Any] = []

_GET_MODE = _openssl._SSL_CTRL_GET_SESS_CACHE_MODE
_SET_MODE = _openssl._SSL_CTRL_SET_SESS_CACHE_MODE
_CLIENT = _openssl._SSL_SESS_CACHE_CLIENT
_NO_INTERNAL_STORE = _openssl._SSL_SESS_CACHE_NO_INTERNAL_STORE

#: One call of ``on_remove``: the cache and the handle it was given.
Removal = tuple[SessionCache, SessionHandle]


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@contextlib.contextmanager
def free_watch(*contexts: ssl.SSLContext) -> Iterator[_openssl.FreeWatch]:
    """Count the frees of tagged C sessions (``Binding.watch_frees``) while inside.

    The watch's free hook runs for every session OpenSSL frees, and a ctypes
    callback must not run while a Python exception is pending: the key code's
    first look at a context frees a throwaway SSL object while its
    ``SSLWantReadError`` propagates. So *contexts* are looked at (keyed) first.
    """
    for context in contexts:
        _key(context)
    w = _openssl.binding().watch_frees()
    try:
        yield w
    finally:
        w.close()


def _step(side: ssl.SSLObject) -> bool:
    try:
        side.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


class Pair:
    """One connection made by resume's client policy, and its server, over memory BIOs.

    The client is made inside :meth:`ClientConnection.begin`, as the adapters
    make theirs, so its new sessions reach the cache through the callback.
    """

    def __init__(
        self, cache: SessionCache, client: ssl.SSLContext, server: ssl.SSLContext, port: int = 443
    ) -> None:
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.conn, self.client = ClientConnection.begin(
            cache, client, "localhost", port,
            lambda: client.wrap_bio(self.c_in, self.c_out, server_hostname="localhost"),
            lambda obj: obj,
        )
        self.server = server.wrap_bio(self.s_in, self.s_out, server_side=True)

    def handshake(self, *, tell_policy: bool = True) -> None:
        """Both handshakes to the end; what the server sends after its own stays unread.

        Without *tell_policy* the policy is never told that the handshake
        completed, as when a connection is cancelled right after it.
        """
        done_c = done_s = False
        for _ in range(10):
            if not done_c:
                done_c = _step(self.client)
            self.s_in.write(self.c_out.read())
            if not done_s:
                done_s = _step(self.server)
            self.c_in.write(self.s_out.read())
            if done_c and done_s:
                break
        else:  # pragma: no cover
            raise AssertionError("the memory handshake did not finish")
        if tell_policy:
            self.conn.handshake_complete(self.client)

    def server_says(self, data: bytes = b"x") -> bytes:
        """The server writes *data*; the client reads it (and the tickets before it)."""
        self.server.write(data)
        self.c_in.write(self.s_out.read())
        return self.client.read(len(data))

    def close(self, *, clean: bool = True) -> None:
        self.conn.close(self.client, clean=clean)


def _key(client: ssl.SSLContext, port: int = 443) -> Hashable:
    return ClientConnection.start(False, client, "localhost", port).key


def _per_handshake(version: str) -> int:
    """Sessions a full handshake with a default OpenSSL server makes on the client."""
    return 1 if version == "1.2" else 2


def _ctx_ptr(context: ssl.SSLContext) -> int:
    return _openssl.binding().ctx_ptr(context)


def _installed(context: ssl.SSLContext) -> int | None:
    """``SSL_CTX_sess_get_new_cb()``: the callback's address, or None for NULL."""
    got = _openssl.binding()._lib.SSL_CTX_sess_get_new_cb(_ctx_ptr(context))
    return None if not got else int(got)


def _address(thunk: Any) -> int:
    value = ctypes.cast(thunk, ctypes.c_void_p).value
    assert value is not None
    return int(value)


def _own_callback(
    context: ssl.SSLContext, body: Callable[[int], int], *, mode: int | None
) -> Any:
    """Install a callback of this test on *context* (as another library would).

    *mode*, when given, becomes the context's session cache mode. The thunk is
    kept alive for the life of the process.
    """
    b = _openssl.binding()

    def callback(_ssl: int | None, session: int | None) -> int:
        try:
            return body(session or 0)
        except BaseException:  # pragma: no cover - never raise into C
            return 0

    thunk = _openssl._NEW_SESSION_CB(callback)
    _KEEP_ALIVE.append(thunk)
    ctx = _ctx_ptr(context)
    if mode is not None:
        b._lib.SSL_CTX_ctrl(ctx, _SET_MODE, mode, None)
    b._lib.SSL_CTX_sess_set_new_cb(ctx, thunk)
    return thunk


def _noting(into: list[int]) -> Callable[[int], int]:
    """A C callback body that notes each session and returns 0 (keeps nothing)."""

    def note(session: int) -> int:
        into.append(session)
        return 0

    return note


def _keeping(into: list[SessionHandle]) -> Callable[[SessionCache, SessionHandle], bool]:
    """An ``on_new`` that notes each handle and keeps no reference of its own."""

    def on_new(_cache: SessionCache, handle: SessionHandle) -> bool:
        into.append(handle)
        return False

    return on_new


# -- when the callback is called ------------------------------------------------------------


class TestWhenItIsCalled:
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:desc-1",
        "SSL_CTX_sess_set_get_cb:notes-8",
        "SSL_CTX_sess_set_get_cb:notes-10",
    )
    def test_inside_the_tls12_handshake_after_the_tls13_one(
        self, pki: PKI, tls_version: str
    ) -> None:
        """TLS 1.2: the session comes inside do_handshake(); TLS 1.3: each ticket in a read."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        phase = "handshake"
        seen: list[str] = []

        def on_new(_cache: SessionCache, _handle: SessionHandle) -> bool:
            seen.append(phase)
            return False

        cache = SessionCache(on_new=on_new)
        pair = Pair(cache, client, server)
        pair.handshake()
        if tls_version == "1.3":
            # The server's tickets are already in the client's BIO, unread.
            assert pair.c_in.pending > 0
            assert seen == [] and len(cache) == 0
        else:
            assert seen == ["handshake"] and len(cache) == 1
        phase = "read"
        assert pair.server_says() == b"x"
        expected = ["handshake"] if tls_version == "1.2" else ["read", "read"]
        assert seen == expected
        assert len(cache) == len(expected)
        pair.close()
        cache.clear()

    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:notes-9",
        "SSL_CTX_sess_set_get_cb:notes-11",
        "SSL_CTX_sess_set_get_cb:notes-12",
    )
    @pytest.mark.parametrize("tickets", [0, 1, 3])
    def test_the_server_decides_how_many_sessions(
        self, pki: PKI, tls_version: str, tickets: int
    ) -> None:
        """TLS 1.3: one call per ticket the server sends (none, one or three); TLS 1.2: one."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        server.num_tickets = tickets
        seen: list[SessionHandle] = []
        cache = SessionCache(on_new=_keeping(seen))
        pair = Pair(cache, client, server)
        pair.handshake()
        for _ in range(3):  # reading more brings no more sessions
            assert pair.server_says() == b"x"
        expected = 1 if tls_version == "1.2" else tickets
        assert len(seen) == expected
        assert len(cache) == expected
        assert len({h.id for h in seen}) == expected  # each call, another session
        pair.close()
        cache.clear()

    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-4")
    def test_each_session_reaches_the_connection_that_made_it(
        self, pki: PKI, tls_version: str
    ) -> None:
        """Two connections at once, under two keys: each key gets its own connection's sessions."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        cache = SessionCache()
        a = Pair(cache, client, server, port=443)
        b = Pair(cache, client, server, port=8443)
        a.handshake()
        b.handshake()
        b.server_says()  # in the other order: each read brings its own tickets
        a.server_says()
        per = _per_handshake(tls_version)
        assert len(cache) == 2 * per
        for pair, port in ((a, 443), (b, 8443)):
            newest = cache.get0(_key(client, port))
            session = pair.client.session
            assert newest is not None and session is not None
            assert newest.id == session.id  # the connection's latest session
        a_newest, b_newest = cache.get0(_key(client, 443)), cache.get0(_key(client, 8443))
        assert a_newest is not None and b_newest is not None
        assert a_newest.id != b_newest.id
        a.close()
        b.close()
        cache.clear()

    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-3")
    def test_called_only_when_client_caching_is_enabled(
        self, pki: PKI, tls_version: str
    ) -> None:
        """No call under ssl's default client mode (SERVER); one per session once CLIENT is set."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        b = _openssl.binding()
        ctx = _ctx_ptr(client)
        assert b._lib.SSL_CTX_ctrl(ctx, _GET_MODE, 0, None) & _CLIENT == 0
        calls: list[int] = []
        _own_callback(client, _noting(calls), mode=None)
        memory_handshake(client, server)
        assert calls == []
        b._lib.SSL_CTX_ctrl(ctx, _SET_MODE, _CLIENT | _NO_INTERNAL_STORE, None)
        memory_handshake(client, server)
        assert len(calls) == _per_handshake(tls_version)
        b._lib.SSL_CTX_ctrl(ctx, _SET_MODE, 0, None)  # SSL_SESS_CACHE_OFF
        memory_handshake(client, server)
        assert len(calls) == _per_handshake(tls_version)

    @pytest.mark.requires("openssl")
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:desc-1",
        "SSL_CTX_sess_set_get_cb:notes-12",
    )
    async def test_against_s_server_each_new_session_is_cached(
        self, pki: PKI, tls_version: str
    ) -> None:
        """openssl s_server: TLS 1.3 two tickets, then one per resumption; TLS 1.2 one session."""
        ctx = pki.client_context(tls_version)
        seen: list[SessionHandle] = []
        cache = SessionCache(on_new=_keeping(seen))
        per_connection = []
        reused = []
        with s_server(pki, tls_version) as server:
            for i in range(3):
                before = len(seen)
                stream = await resume.trio.open_tls_stream(
                    "127.0.0.1", server.port, ssl_context=ctx, cache=cache,
                    server_hostname="localhost",
                )
                line = f"hello {i}\n".encode()
                await stream.send_all(line)
                got = b""
                while not got.endswith(b"\n"):
                    got += await stream.receive_some()
                per_connection.append(len(seen) - before)  # counted before the close
                reused.append(stream.session_reused)
                await stream.aclose()
        assert reused == [False, True, True]
        assert per_connection == ([1, 0, 0] if tls_version == "1.2" else [2, 1, 1])
        cache.clear()


# -- the references ---------------------------------------------------------------------------


class TestReferences:
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:notes-5",
        "SSL_CTX_sess_set_get_cb:notes-6",
    )
    def test_resume_keeps_a_dup_and_releases_what_it_was_lent(
        self, pki: PKI, tls_version: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """What OpenSSL lends is freed with its connection; the cache holds dups of its own."""
        b = _openssl.binding()
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        lent: list[int] = []
        kept: list[SessionHandle] = []
        cache = SessionCache(on_new=_keeping(kept))
        per = _per_handshake(tls_version)
        with free_watch(client) as watch:
            original = b.watch_new_sessions

            def watching(
                tls: ssl.SSLObject | ssl.SSLSocket, target: Callable[[int], None]
            ) -> str | None:
                def tagged(session: int) -> None:
                    lent.append(session)
                    watch.watch(session, len(lent))  # tag i: the i-th session lent
                    target(session)

                return original(tls, tagged)

            monkeypatch.setattr(b, "watch_new_sessions", watching)
            pair = Pair(cache, client, server)
            pair.handshake()
            pair.server_says()
            assert len(lent) == len(kept) == per
            dups = [h.payload._ptr for h in kept]  # type: ignore[attr-defined]
            # The cache holds copies: each made while the session lent was alive, so
            # at another address (a later one may reuse the address of a freed one).
            assert all(dup != ptr for dup, ptr in zip(dups, lent, strict=True))
            for i, ptr in enumerate(dups):
                watch.watch(ptr, 100 + i)
            assert client.session_stats()["number"] == 0  # nothing in OpenSSL's own cache
            if tls_version == "1.3":
                # The second ticket replaced the first as the connection's session:
                # the first is freed already, so the reference lent for its
                # callback was released when the callback returned.
                assert watch.freed(1) == [lent[0]]
                assert watch.freed(2) == []
            else:
                assert watch.freed(1) == []  # still the connection's session
            pair.close()
            del pair
            gc.collect()
            for i, ptr in enumerate(lent, start=1):
                assert watch.freed(i) == [ptr]  # freed once, with its connection: no leak
            assert all(watch.freed(100 + i) == [] for i in range(per))  # the dups live on
            assert cache.clear() == per
            for i, ptr in enumerate(dups):
                assert watch.freed(100 + i) == [ptr]

    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:notes-5",
        "SSL_CTX_sess_set_get_cb:notes-7",
    )
    def test_returning_one_hands_the_reference_to_the_application(
        self, pki: PKI, tls_version: str
    ) -> None:
        """A callback returning 1 owns a reference: the session outlives its connection."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        lent: list[int] = []
        b = _openssl.binding()
        with free_watch() as watch:

            def keep(session: int) -> int:
                lent.append(session)
                watch.watch(session, 200 + len(lent))
                return 1

            _own_callback(client, keep, mode=_CLIENT | _NO_INTERNAL_STORE)
            c, s = memory_handshake(client, server)
            del c, s
            gc.collect()
            assert len(lent) == _per_handshake(tls_version)
            for i, ptr in enumerate(lent, start=201):
                assert ptr not in watch.freed(i)  # the connection is gone, our reference not
                b.session_free(ptr)  # SSL_SESSION_free(): the application's duty
                assert ptr in watch.freed(i)

    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-6")
    def test_returning_zero_releases_the_reference(self, pki: PKI, tls_version: str) -> None:
        """A callback returning 0 keeps nothing: each session is freed with its connection."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        lent: list[int] = []
        with free_watch() as watch:

            def note(session: int) -> int:
                lent.append(session)
                watch.watch(session, 300 + len(lent))
                return 0

            _own_callback(client, note, mode=_CLIENT | _NO_INTERNAL_STORE)
            c, s = memory_handshake(client, server)
            del c, s
            gc.collect()
            assert len(lent) == _per_handshake(tls_version)
            for i, ptr in enumerate(lent, start=301):
                assert watch.freed(i) == [ptr]


# -- the getters, and another library's callback ----------------------------------------


class TestGetters:
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:desc-6",
        "SSL_CTX_sess_set_get_cb:desc-7",
        "SSL_CTX_sess_set_get_cb:ret-1",
    )
    def test_the_getters_return_what_was_set_or_null(self, pki: PKI, tls_version: str) -> None:
        """NULL until resume installs its one callback; then that one, on every client context."""
        client, other = pki.client_context(tls_version), pki.client_context(tls_version)
        server = pki.server_context(tls_version)
        assert _installed(client) is None and _installed(other) is None
        for context in (client, other):
            pair = Pair(SessionCache(), context, server)
            pair.handshake()
            pair.close()
        thunk = _address(_openssl._NEW_SESSION_THUNK)
        assert _installed(client) == _installed(other) == thunk
        assert _installed(server) is None  # a server context is never touched
        mode = _openssl.binding()._lib.SSL_CTX_ctrl(_ctx_ptr(client), _GET_MODE, 0, None)
        assert mode & (_CLIENT | _NO_INTERNAL_STORE) == _CLIENT | _NO_INTERNAL_STORE
        # The Python mirrors: a cache's callbacks are None until set, then what was set.
        cache = SessionCache()
        assert cache.on_new is None and cache.on_remove is None

        def on_new(_c: SessionCache, _h: SessionHandle) -> bool:
            return False

        def on_remove(_c: SessionCache, _h: SessionHandle) -> None:
            pass

        cache.on_new, cache.on_remove = on_new, on_remove
        assert cache.on_new is on_new and cache.on_remove is on_remove

    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:desc-6")
    def test_another_librarys_callback_is_kept_and_sessions_are_captured_at_close(
        self, pki: PKI, tls_version: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """resume reads the installed callback, leaves it in place and captures at close."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        theirs: list[int] = []
        thunk = _own_callback(client, _noting(theirs), mode=_CLIENT | _NO_INTERNAL_STORE)
        caplog.set_level(logging.INFO, logger="resume")
        cache = SessionCache()
        reused, stored = [], []
        for _ in range(3):
            pair = Pair(cache, client, server)
            pair.handshake()
            pair.server_says()
            reused.append(pair.conn.reused)
            assert not pair.conn.stored  # nothing arrived through resume
            stored.append(pair.conn.close(pair.client, clean=True))
        assert reused == [False, True, True]
        # Stored at the clean close: TLS 1.2, the full handshake's session (the
        # resumed ones use it); TLS 1.3, the latest ticket of each connection.
        assert stored == ([True, False, False] if tls_version == "1.2" else [True] * 3)
        assert _installed(client) == _address(thunk)  # never replaced
        # Theirs still runs: TLS 1.2, the full handshake's session (no renewal on
        # a resumption); TLS 1.3, two tickets, then one per resumption.
        assert len(theirs) == (1 if tls_version == "1.2" else 4)
        said = [r.getMessage() for r in caplog.records if "captured when" in r.getMessage()]
        assert len(said) == 1  # once per context
        assert "another library installed a new-session callback" in said[0]
        cache.clear()


# -- the remove callback: SessionCache.on_remove ------------------------------------------


def _removals(into: list[Removal]) -> Callable[[SessionCache, SessionHandle], None]:
    """An ``on_remove`` that checks the handle is still valid and notes the call."""

    def on_remove(cache: SessionCache, handle: SessionHandle) -> None:
        assert not handle.freed  # valid during the call
        into.append((cache, handle))

    return on_remove


class TestRemoveCallback:
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:desc-2",
        "SSL_CTX_sess_set_get_cb:desc-3",
        "SSL_CTX_sess_set_get_cb:notes-15",
        "SSL_CTX_sess_set_get_cb:notes-18",
    )
    def test_a_fatal_error_removes_what_the_connection_added(
        self, pki: PKI, tls_version: str
    ) -> None:
        """A bad record after the handshake: the connection's sessions go, through on_remove."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        added: list[SessionHandle] = []
        removed: list[Removal] = []
        cache = SessionCache(on_new=_keeping(added), on_remove=_removals(removed))
        pair = Pair(cache, client, server)
        pair.handshake()
        pair.server_says()
        assert len(cache) == len(added) == _per_handshake(tls_version)
        pair.c_in.write(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # no key opens this record
        with pytest.raises(ssl.SSLError) as info:
            pair.client.read(1)
        assert is_fatal(info.value)  # what the adapters ask before they call fail()
        pair.conn.fail()
        assert [(c, h) for c, h in removed] == [(cache, h) for h in added]
        assert len(cache) == 0
        pair.close()

    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:desc-3",
        "SSL_CTX_sess_set_get_cb:notes-15",
        "SSL_CTX_sess_set_get_cb:notes-18",
    )
    def test_an_expired_session_is_removed(self, pki: PKI, tls_version: str) -> None:
        """Past the cache's timeout, flush() removes each session and tells on_remove."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        clock = FakeClock(now=time.time())
        added: list[SessionHandle] = []
        removed: list[Removal] = []
        cache = SessionCache(
            timeout=60, clock=clock, on_new=_keeping(added), on_remove=_removals(removed)
        )
        pair = Pair(cache, client, server)
        pair.handshake()
        pair.server_says()
        pair.close()
        assert removed == []
        clock.advance(61)
        assert cache.flush() == len(added) == _per_handshake(tls_version)
        assert sorted(id(h) for _, h in removed) == sorted(id(h) for h in added)
        assert all(c is cache for c, _ in removed)
        assert cache.statistics().timeouts == len(added)

    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-19")
    def test_on_remove_gives_no_feedback(self, pki: PKI, tls_version: str) -> None:
        """Whatever on_remove returns, the session leaves and the cache's reference is freed."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        added: list[SessionHandle] = []
        cache = SessionCache(on_new=_keeping(added))
        # A callback that answers "keep it": the answer is not asked for, and ignored.
        cache.on_remove = cast(Any, lambda _c, _h: True)
        pair = Pair(cache, client, server)
        pair.handshake()
        pair.server_says()
        pair.close()
        key = _key(client)
        assert cache.remove(key)
        assert len(cache) == 0 and key not in cache
        assert all(h.freed for h in added)

    @pytest.mark.manpage("SSL_CTX_sess_set_get_cb:notes-17")
    def test_clearing_the_cache_removes_every_session(self, pki: PKI, tls_version: str) -> None:
        """clear(), what SSL_CTX_free() does to a cache: on_remove for every session, all freed."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        added: list[SessionHandle] = []
        removed: list[Removal] = []
        cache = SessionCache(on_new=_keeping(added), on_remove=_removals(removed))
        for port in (443, 444, 445):
            pair = Pair(cache, client, server, port=port)
            pair.handshake()
            pair.server_says()
            pair.close()
        assert len(cache) == 3 * _per_handshake(tls_version)
        assert cache.clear() == len(added)
        assert sorted(id(h) for _, h in removed) == sorted(id(h) for h in added)
        assert len(cache) == 0 and all(h.freed for h in added)

    def test_a_cut_after_a_verified_handshake_keeps_its_sessions(
        self, pki: PKI, tls_version: str
    ) -> None:
        """Unlike OpenSSL (RFC 5246, 7.2.1 allows it): no close_notify, the sessions are kept."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        removed: list[Removal] = []
        cache = SessionCache(on_remove=_removals(removed))
        pair = Pair(cache, client, server)
        pair.handshake()
        pair.server_says()
        pair.close(clean=False)  # cut: no close_notify was sent or received
        del pair
        gc.collect()  # SSL_free() without SSL_shutdown()
        assert removed == []
        assert len(cache) == _per_handshake(tls_version)
        again = Pair(cache, client, server)
        again.handshake()
        assert again.conn.reused
        again.close()
        cache.clear()

    def test_a_connection_that_ends_before_its_handshake_completed_removes_its_session(
        self, pki: PKI, tls_version: str
    ) -> None:
        """Cancelled between do_handshake() and the policy's handshake_complete(): nothing kept."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        removed: list[Removal] = []
        cache = SessionCache(on_remove=_removals(removed))
        pair = Pair(cache, client, server)
        pair.handshake(tell_policy=False)
        pair.server_says()
        assert len(cache) == _per_handshake(tls_version)
        pair.close(clean=False)
        assert len(cache) == 0
        assert len(removed) == _per_handshake(tls_version)


# -- external caching: on_new and on_remove keep a database in step --------------------------


class TestExternalCache:
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:notes-1",
        "SSL_CTX_sess_set_get_cb:notes-2",
    )
    def test_a_database_kept_by_the_callbacks_resumes_in_a_new_cache(
        self, pki: PKI, tls_version: str, tmp_path: Path
    ) -> None:
        """on_new writes each session (i2d) to SQLite, on_remove deletes it; a new cache resumes."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        db = sqlite3.connect(tmp_path / "sessions.db")
        db.execute("CREATE TABLE sessions (id BLOB PRIMARY KEY, der BLOB NOT NULL)")

        def save(_cache: SessionCache, handle: SessionHandle) -> bool:
            db.execute("INSERT INTO sessions VALUES (?, ?)", (handle.id, handle.to_der()))
            return False

        def forget(_cache: SessionCache, handle: SessionHandle) -> None:
            db.execute("DELETE FROM sessions WHERE id = ?", (handle.id,))

        def rows() -> int:
            return int(db.execute("SELECT count(*) FROM sessions").fetchone()[0])

        cache = SessionCache(on_new=save, on_remove=forget)
        pair = Pair(cache, client, server)
        pair.handshake()
        pair.server_says()
        assert rows() == len(cache) == _per_handshake(tls_version)  # written as they arrived
        pair.close()
        db.commit()
        stored = [bytes(der) for (der,) in db.execute("SELECT der FROM sessions")]
        assert cache.clear() == len(stored)
        assert rows() == 0  # on_remove kept the table in step
        # A new cache (a new process, say) filled from the saved bytes (d2i) resumes.
        fresh = SessionCache()
        for der in stored:
            handle = SessionHandle.from_der(der)
            assert fresh.add(_key(client), handle)
            handle.free()
        again = Pair(fresh, client, server)
        again.handshake()
        assert again.conn.reused
        again.close()
        fresh.clear()
        db.close()


# -- single use in TLS 1.3 -------------------------------------------------------------------


class TestSingleUse:
    @pytest.mark.manpage(
        "SSL_CTX_sess_set_get_cb:notes-13",
        "SSL_CTX_sess_set_get_cb:notes-14",
    )
    def test_a_tls13_ticket_leaves_the_cache_when_it_is_offered(
        self, pki: PKI, tls_version: str
    ) -> None:
        """TLS 1.3: the offered ticket is removed before the handshake; TLS 1.2: it stays, lent."""
        client, server = pki.client_context(tls_version), pki.server_context(tls_version)
        removed: list[Removal] = []
        cache = SessionCache(on_remove=_removals(removed))
        first = Pair(cache, client, server)
        first.handshake()
        first.server_says()
        first.close()
        before = len(cache)
        second = Pair(cache, client, server)
        offered = second.conn.offered
        assert offered is not None
        if tls_version == "1.3":
            assert [h for _, h in removed] == [offered]  # SSL_CTX_remove_session() at once
            assert offered.owner is None and len(cache) == before - 1
        else:
            assert removed == [] and offered.owner is cache and len(cache) == before
        second.handshake()
        assert second.conn.reused
        second.close()
        cache.clear()
