"""One table of what goes into a key, and contexts whose state resume cannot know (issue 8).

* Every entry of ``resume._core.key.KEY_TABLE`` changes both the in-process key and
  the persisted digest, and each test below changes that entry alone.
* A context whose full state resume cannot know (a tracking wrapper removed or
  replaced, a client certificate loaded before tracking began) gets one
  ``UntrackedContextWarning`` and neither resumes nor stores nor persists.
* ALPN set before resume first saw a context is read from a ClientHello.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trustme
from clienthelpers import PKI, pin, start_echo_server

import resume
import resume.trio
from resume import SessionCache, UntrackedContextWarning, create_client_context
from resume._core.key import (
    _STATES,
    KEY_TABLE,
    _parse_hello,
    _state,
    connection_key,
    make_key,
    persisted_digests,
)
from resume.stores import MemoryStore, attach_store, context_label_digest

Change = Callable[[ssl.SSLContext, Path, trustme.CA], None]


def _verify_mode(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.verify_mode = ssl.CERT_OPTIONAL


def _check_hostname(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.check_hostname = not ctx.check_hostname


def _verify_flags(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.verify_flags ^= ssl.VERIFY_X509_PARTIAL_CHAIN


def _minimum_version(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3


def _maximum_version(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2


def _options(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.options ^= ssl.OP_NO_TICKET


def _host_flags(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.hostname_checks_common_name = not ctx.hostname_checks_common_name


def _post_handshake_auth(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.post_handshake_auth = True


def _ciphers(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.set_ciphers("ECDHE+AESGCM:!AES128:@SECLEVEL=2")


def _security_level(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    # The same cipher list as _PREPARE sets, at a lower level: only the level changes.
    ctx.set_ciphers("ECDHE+AESGCM:@SECLEVEL=1")


def _ca_certs(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    # Around the tracking (through the class), so that only the getter sees it;
    # then a tracked no-op makes resume read the getters again.
    ssl.SSLContext.load_verify_locations(ctx, cadata=ca.cert_pem.bytes().decode())
    _STATES[ctx].generation += 1


def _trust_calls(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.load_verify_locations(capath=str(tmp))  # an empty directory: no CA visible


def _client_certificate(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ca.issue_cert("client@example.test").configure_cert(ctx)


def _alpn_protocols(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.set_alpn_protocols(["h2"])


def _npn_protocols(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    # NPN is deprecated and missing from this OpenSSL build (ssl.HAS_NPN); record
    # a call as the tracking wrapper would.
    _STATES[ctx].record("set_npn_protocols", (["h2"],), {})


def _ecdh_curve(ctx: ssl.SSLContext, tmp: Path, ca: trustme.CA) -> None:
    ctx.set_ecdh_curve("secp384r1")


CHANGES: dict[str, Change] = {
    "verify_mode": _verify_mode,
    "check_hostname": _check_hostname,
    "verify_flags": _verify_flags,
    "minimum_version": _minimum_version,
    "maximum_version": _maximum_version,
    "options": _options,
    "host_flags": _host_flags,
    "post_handshake_auth": _post_handshake_auth,
    "ciphers": _ciphers,
    "security_level": _security_level,
    "ca_certs": _ca_certs,
    "trust_calls": _trust_calls,
    "client_certificate": _client_certificate,
    "alpn_protocols": _alpn_protocols,
    "npn_protocols": _npn_protocols,
    "ecdh_curve": _ecdh_curve,
}


def _prepared(tmp: Path) -> ssl.SSLContext:
    ctx = create_client_context(cadata=trustme.CA().cert_pem.bytes().decode())
    ctx.check_hostname = False  # so that verify_mode can change alone
    ctx.set_ciphers("ECDHE+AESGCM:@SECLEVEL=2")
    return ctx


def _entries(ctx: ssl.SSLContext) -> list[object]:
    state = _state(ctx)
    return [entry.read(ctx, state) for entry in KEY_TABLE]


class TestOneTable:
    def test_every_entry_has_a_change(self) -> None:
        """The tests below cover the table exactly: a new entry needs a new test."""
        assert list(CHANGES) == [entry.name for entry in KEY_TABLE]

    @pytest.mark.parametrize("name", [entry.name for entry in KEY_TABLE])
    def test_changing_an_entry_changes_both_keys(self, name: str, tmp_path: Path) -> None:
        """Changing one entry, and only it, changes the in-process key and the persisted digest."""
        ctx = _prepared(tmp_path)
        before = _entries(ctx)
        key = make_key(ctx, "a.test", 443)
        digest, stable = persisted_digests(ctx, "label")
        assert stable is not None and stable == context_label_digest(ctx, "label")
        CHANGES[name](ctx, tmp_path, trustme.CA())
        after = _entries(ctx)
        changed = [e.name for e, b, a in zip(KEY_TABLE, before, after, strict=True) if a != b]
        assert changed == [name]
        assert make_key(ctx, "a.test", 443) != key
        new_digest, new_stable = persisted_digests(ctx, "label")
        assert new_digest != digest
        assert new_stable is not None and new_stable != stable

    def test_label_changes_only_the_persisted_digest(self) -> None:
        """The label is in the persisted digest, and the per-context token is not.

        (Contexts made by create_client_context() have no token: see
        test_no_shared_context.py. Plain ones keep theirs.)
        """
        a, b = ssl.create_default_context(), ssl.create_default_context()
        assert persisted_digests(a, "x")[1] == persisted_digests(b, "x")[1]
        assert persisted_digests(a, "x")[1] != persisted_digests(a, "y")[1]
        assert persisted_digests(a, "x")[0] != persisted_digests(b, "x")[0]  # the token

    def test_alpn_set_before_tracking_is_read_from_a_client_hello(self) -> None:
        """ALPN set before resume saw a context gives the digest of the same list set after."""
        early = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        early.set_alpn_protocols(["h2", "http/1.1"])
        late = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        make_key(late, "a.test", 443)
        late.set_alpn_protocols(["h2", "http/1.1"])
        assert persisted_digests(early, "l")[1] == persisted_digests(late, "l")[1]
        plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        assert persisted_digests(plain, "l")[1] != persisted_digests(early, "l")[1]

    def test_the_client_hello_parser_refuses_garbage(self) -> None:
        """Anything but handshake records holding a ClientHello is a ValueError."""
        for data in (b"", b"\x17\x03\x03\x00\x01x", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
                     b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03"):
            with pytest.raises(ValueError, match=r"record|ClientHello|truncated"):
                _parse_hello(data)


class TestUntrackable:
    def test_a_removed_wrapper_means_no_resumption_and_one_warning(self) -> None:
        """`del ctx.load_cert_chain` makes the context untrackable: warned once, key not trusted."""
        ctx = create_client_context()
        key, trusted = connection_key(ctx, "a.test", 443)
        assert trusted
        del ctx.load_cert_chain
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            other, trusted = connection_key(ctx, "a.test", 443)
            again = connection_key(ctx, "a.test", 443)[1]
        assert [w.category for w in caught] == [UntrackedContextWarning]
        assert "removed or replaced" in str(caught[0].message)
        assert trusted is again is False
        assert other != key

    def test_a_replaced_wrapper_is_untrackable(self) -> None:
        """A wrapper replaced by something else is untrackable too."""
        ctx = create_client_context()
        make_key(ctx, "a.test", 443)
        ctx.set_alpn_protocols = lambda alpn_protocols: None  # type: ignore[method-assign]
        with pytest.warns(UntrackedContextWarning):
            assert connection_key(ctx, "a.test", 443)[1] is False

    def test_a_method_replaced_before_first_sight_is_untrackable(self) -> None:
        """A tracked method already replaced on the instance is neither wrapped nor trusted."""
        ctx = ssl.create_default_context()
        mine = ctx.load_cert_chain
        ctx.load_cert_chain = mine  # type: ignore[method-assign]
        with pytest.warns(UntrackedContextWarning, match="replaced on the instance"):
            assert connection_key(ctx, "a.test", 443)[1] is False
        assert ctx.load_cert_chain is mine

    def test_an_untrackable_context_is_never_persisted(self) -> None:
        """register_context refuses it (no second warning); context_label_digest raises."""
        ctx = create_client_context()
        del ctx.set_alpn_protocols
        link = attach_store(SessionCache(), MemoryStore())
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                link.register_context(ctx, label="x")
                with pytest.raises(ValueError, match="cannot be persisted"):
                    context_label_digest(ctx, "x")
                key = make_key(ctx, "a.test", 443)
            assert [w.category for w in caught] == [UntrackedContextWarning]
            assert link.store_key(key) is None
        finally:
            link.detach()

    def test_a_certificate_loaded_before_tracking_is_never_persisted(
        self, tmp_path: Path
    ) -> None:
        """CVE-2016-5419's pattern: a certificate loaded before tracking keeps a context local."""
        pki = PKI()
        ctx = ssl.create_default_context()
        pki.client_a.configure_cert(ctx)
        link = attach_store(SessionCache(), MemoryStore())
        try:
            with pytest.warns(UntrackedContextWarning, match="client certificate was loaded"):
                link.register_context(ctx, label="x")
            assert link.store_key(make_key(ctx, "a.test", 443)) is None
        finally:
            link.detach()

    def test_a_plain_default_context_is_registered_without_a_warning(self) -> None:
        """The common case: ssl.create_default_context() given to resume as it is."""
        ctx = ssl.create_default_context()
        link = attach_store(SessionCache(), MemoryStore())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                link.register_context(ctx, label="x")
            assert link.store_key(make_key(ctx, "a.test", 443)) is not None
        finally:
            link.detach()

    def test_a_certificate_loaded_on_a_created_context_is_persisted(self) -> None:
        """create_client_context() then load_cert_chain(): tracked, so it may be registered."""
        pki = PKI()
        ctx = create_client_context()
        pki.client_a.configure_cert(ctx)
        link = attach_store(SessionCache(), MemoryStore())
        try:
            link.register_context(ctx, label="x")
            assert link.store_key(make_key(ctx, "a.test", 443)) is not None
        finally:
            link.detach()


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _connect(port: int, ctx: ssl.SSLContext, cache: SessionCache) -> bool:
    stream = await resume.trio.open_tls_stream(
        "127.0.0.1", port, ssl_context=ctx, cache=cache, server_hostname="localhost"
    )
    async with stream:
        await stream.send_all(b"ping")
        assert await stream.receive_some(10) == b"ping"
    return stream.session_reused


async def test_untrackable_context_neither_resumes_nor_stores(tls_version: str) -> None:
    """Real handshakes: after `del ctx.load_cert_chain`, full handshakes and an empty cache."""
    pki = PKI()
    ctx = pin(create_client_context(cadata=pki.ca.cert_pem.bytes().decode()), tls_version)
    cache = SessionCache()
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        assert [await _connect(server.port, ctx, cache) for _ in range(2)] == [False, True]
        del ctx.load_cert_chain
        with pytest.warns(UntrackedContextWarning):
            results = [await _connect(server.port, ctx, cache) for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert results == [False, False, False]
    assert server.reused == [False, True, False, False, False]


async def test_plain_default_context_keeps_resuming(tls_version: str) -> None:
    """ssl.create_default_context() passed to resume as it is resumes, with no warning."""
    pki = PKI()
    ctx = pin(ssl.create_default_context(cadata=pki.ca.cert_pem.bytes().decode()), tls_version)
    cache = SessionCache()
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        results = [await _connect(server.port, ctx, cache) for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert results == [False, True, True]


def test_create_client_context_mirrors_create_default_context(tmp_path: Path) -> None:
    """Same verification settings as ssl.create_default_context(), and tracked from birth."""
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    ours = create_client_context(cafile=cafile)
    theirs = ssl.create_default_context(cafile=cafile)
    for attr in ("protocol", "verify_mode", "check_hostname", "verify_flags", "options",
                 "minimum_version", "maximum_version"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.get_ca_certs() == theirs.get_ca_certs()
    assert "load_cert_chain" in vars(ours)
    assert resume.default_ssl_context().check_hostname
