"""The client cache key: which settings separate sessions, and bad input."""

from __future__ import annotations

import gc
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from resume import SessionKey
from resume._core.key import TRACKED_METHODS, context_digest, make_key, normalize_peer


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def client_context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class TestMakeKey:
    def test_same_context_same_peer_gives_equal_keys(self) -> None:
        """Two connections with one unchanged context to one server share a key."""
        ctx = client_context()
        assert make_key(ctx, "example.test", 443) == make_key(ctx, "example.test", 443)

    def test_key_names_peer_port_and_digest(self) -> None:
        """The key is a readable (peer, port, digest) tuple."""
        key = make_key(client_context(), "Example.TEST", 8443)
        assert isinstance(key, SessionKey)
        assert key.peer == "example.test"
        assert key.port == 8443
        assert len(key.digest) == 32
        int(key.digest, 16)

    def test_port_and_name_separate_keys(self) -> None:
        """Another port or another server name is another key."""
        ctx = client_context()
        base = make_key(ctx, "a.test", 443)
        assert make_key(ctx, "a.test", 8443) != base
        assert make_key(ctx, "b.test", 443) != base

    def test_trailing_dot_is_another_peer(self) -> None:
        """Nothing but case is folded: 'a.test.' is not 'a.test'."""
        ctx = client_context()
        assert make_key(ctx, "a.test.", 443) != make_key(ctx, "a.test", 443)

    def test_addresses_are_canonical(self) -> None:
        """Spellings of one IPv6 address give one key."""
        ctx = client_context()
        assert make_key(ctx, "0:0::1", 443) == make_key(ctx, "::1", 443)
        assert make_key(ctx, "[::1]", 443).peer == "::1"
        assert make_key(ctx, "127.0.0.1", 443).peer == "127.0.0.1"

    def test_two_contexts_with_equal_settings_have_different_keys(self) -> None:
        """Sessions never cross SSLContext objects, even identical ones."""
        one, two = client_context(), client_context()
        assert make_key(one, "a.test", 443) != make_key(two, "a.test", 443)

    def test_a_recycled_id_does_not_recycle_the_key(self) -> None:
        """A new context at the address of a dead one gets a new key (random token, not id())."""
        seen: dict[int, str] = {}
        for _ in range(500):
            ctx = client_context()
            digest = context_digest(ctx)
            if id(ctx) in seen:
                assert seen[id(ctx)] != digest
                break
            seen[id(ctx)] = digest
            del ctx
            gc.collect()
        else:
            pytest.fail("CPython did not reuse an address in 500 tries; the test proves nothing")


def _set_verify_off(ctx: ssl.SSLContext) -> None:
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE


def _max_12(ctx: ssl.SSLContext) -> None:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2


def _min_13(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3


def _options(ctx: ssl.SSLContext) -> None:
    ctx.options |= ssl.OP_NO_TICKET


def _verify_flags(ctx: ssl.SSLContext) -> None:
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT ^ (ctx.verify_flags & ssl.VERIFY_X509_STRICT)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def _ciphers(ctx: ssl.SSLContext) -> None:
    ctx.set_ciphers("ECDHE+AESGCM")


def _alpn(ctx: ssl.SSLContext) -> None:
    ctx.set_alpn_protocols(["h2"])


def _common_name(ctx: ssl.SSLContext) -> None:
    ctx.hostname_checks_common_name = not ctx.hostname_checks_common_name


def _pha(ctx: ssl.SSLContext) -> None:
    ctx.post_handshake_auth = True


CHANGES: dict[str, Callable[[ssl.SSLContext], None]] = {
    "verification off": _set_verify_off,
    "maximum_version": _max_12,
    "minimum_version": _min_13,
    "options": _options,
    "verify_flags": _verify_flags,
    "ciphers": _ciphers,
    "alpn": _alpn,
    "hostname_checks_common_name": _common_name,
    "post_handshake_auth": _pha,
}


class TestSettingsChangeTheKey:
    @pytest.mark.parametrize("change", list(CHANGES))
    def test_each_setting_changes_the_key(self, change: str) -> None:
        """Changing a setting of a context already in use gives its next connection a new key."""
        ctx = client_context()
        before = make_key(ctx, "a.test", 443)
        CHANGES[change](ctx)
        after = make_key(ctx, "a.test", 443)
        assert after != before
        assert after.digest != before.digest
        assert make_key(ctx, "a.test", 443) == after  # and it is stable afterwards

    def test_ca_bundle_change_changes_the_key(self, ca: trustme.CA) -> None:
        """load_verify_locations() after first use (cadata, cafile) changes the key."""
        ctx = client_context()
        k0 = make_key(ctx, "a.test", 443)
        ctx.load_verify_locations(cadata=ca.cert_pem.bytes().decode())
        k1 = make_key(ctx, "a.test", 443)
        other = trustme.CA()
        with other.cert_pem.tempfile() as path:
            ctx.load_verify_locations(cafile=path)
        k2 = make_key(ctx, "a.test", 443)
        assert len({k0, k1, k2}) == 3

    def test_ca_directory_and_default_paths_change_the_key(self, tmp_path: Path) -> None:
        """A CA directory (capath) or the default paths added after first use change the key.

        Certificates in a directory are loaded lazily, so the trust store shows
        no change until a handshake needs them (curl CVE-2021-22924 compared CA
        paths wrongly): the call itself must count.
        """
        ctx = client_context()
        k0 = make_key(ctx, "a.test", 443)
        ctx.load_verify_locations(capath=str(tmp_path))
        k1 = make_key(ctx, "a.test", 443)
        ctx.set_default_verify_paths()
        k2 = make_key(ctx, "a.test", 443)
        ctx.load_default_certs()
        k3 = make_key(ctx, "a.test", 443)
        assert len({k0, k1, k2, k3}) == 4

    def test_client_certificate_change_on_the_same_context_changes_the_key(
        self, ca: trustme.CA
    ) -> None:
        """load_cert_chain() called again on a context in use gives a new key (CVE-2016-5419)."""
        ctx = client_context()
        ca.issue_cert("a@example.test").configure_cert(ctx)
        k_a = make_key(ctx, "a.test", 443)
        ca.issue_cert("b@example.test").configure_cert(ctx)
        k_b = make_key(ctx, "a.test", 443)
        assert k_a != k_b

    def test_reloading_an_earlier_certificate_never_gives_the_earlier_key(
        self, ca: trustme.CA
    ) -> None:
        """Certificates A, B, then A again: three keys (no change is assumed undone)."""
        ctx = client_context()
        a, b = ca.issue_cert("a@example.test"), ca.issue_cert("b@example.test")
        keys = []
        for cert in (a, b, a):
            cert.configure_cert(ctx)
            keys.append(make_key(ctx, "a.test", 443))
        assert len(set(keys)) == 3

    def test_setting_alpn_back_gives_the_earlier_key(self) -> None:
        """ALPN is replaced, not added to: the same list means the same key again."""
        ctx = client_context()
        make_key(ctx, "a.test", 443)  # tracking starts when resume first sees a context
        ctx.set_alpn_protocols(["h2"])
        h2 = make_key(ctx, "a.test", 443)
        ctx.set_alpn_protocols(["http/1.1"])
        http11 = make_key(ctx, "a.test", 443)
        ctx.set_alpn_protocols(["h2"])
        assert make_key(ctx, "a.test", 443) == h2 != http11

    def test_state_stays_bounded_under_many_changes(self, ca: trustme.CA) -> None:
        """Thousands of changes keep a constant-size record per context."""
        from resume._core.key import _STATES

        ctx = client_context()
        context_digest(ctx)
        pem = ca.cert_pem.bytes().decode()
        for i in range(2000):
            ctx.set_alpn_protocols([f"p{i % 3}"])
            ctx.load_verify_locations(cadata=pem)
        state = _STATES[ctx]
        assert set(state.tracked) == {"alpn_protocols", "trust_calls"}
        assert len(state.tracked["trust_calls"]) == 64

    def test_the_same_certificate_loaded_into_two_contexts_still_separates_them(
        self, ca: trustme.CA
    ) -> None:
        """The context token separates contexts whatever they hold."""
        cert = ca.issue_cert("a@example.test")
        c1, c2 = client_context(), client_context()
        cert.configure_cert(c1)
        cert.configure_cert(c2)
        assert make_key(c1, "a.test", 443) != make_key(c2, "a.test", 443)

    def test_digest_is_cached_until_something_changes(self) -> None:
        """The expensive digest is not recomputed per connection."""
        ctx = client_context()
        d1 = context_digest(ctx)
        assert context_digest(ctx) is d1

    def test_tracking_wrappers_are_instance_attributes_that_forward(self) -> None:
        """The tracking wrappers keep each method's behaviour, name and errors."""
        ctx = client_context()
        context_digest(ctx)
        for name in TRACKED_METHODS:
            if hasattr(ssl.SSLContext, name):
                assert name in vars(ctx)
                assert getattr(ctx, name).__name__ == name
        with pytest.raises(ssl.SSLError):
            ctx.set_ciphers("NO-SUCH-CIPHER")
        ctx.set_alpn_protocols(["h2", "http/1.1"])  # still works
        with pytest.raises(FileNotFoundError):
            ctx.load_cert_chain("/nonexistent/cert.pem")

    def test_a_failed_call_does_not_change_the_key(self) -> None:
        """A tracked method that raised changed nothing, so the key stays."""
        ctx = client_context()
        before = make_key(ctx, "a.test", 443)
        with pytest.raises(ssl.SSLError):
            ctx.set_ciphers("NO-SUCH-CIPHER")
        assert make_key(ctx, "a.test", 443) == before

    def test_the_context_is_not_kept_alive(self) -> None:
        """Tracking holds no strong reference: a context dies when its user drops it."""
        import weakref

        ctx = client_context()
        context_digest(ctx)
        ref = weakref.ref(ctx)
        del ctx
        gc.collect()
        assert ref() is None


class TestBadInput:
    def test_not_a_context(self) -> None:
        """Anything but an SSLContext is a TypeError."""
        with pytest.raises(TypeError, match=r"ssl\.SSLContext"):
            make_key("context", "a.test", 443)  # type: ignore[arg-type]

    def test_server_context(self) -> None:
        """A server-side context is refused with a clear message."""
        with pytest.raises(ValueError, match="server-side"):
            make_key(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), "a.test", 443)

    @pytest.mark.parametrize("port", [0, -1, 65536, 10**9])
    def test_port_out_of_range(self, port: int) -> None:
        """Ports outside 1-65535 are a ValueError."""
        with pytest.raises(ValueError, match="port"):
            make_key(client_context(), "a.test", port)

    @pytest.mark.parametrize("port", ["443", 443.0, True, None])
    def test_port_of_wrong_type(self, port: object) -> None:
        """A port that is not an int is a TypeError (True included)."""
        with pytest.raises(TypeError, match="port"):
            make_key(client_context(), "a.test", port)  # type: ignore[arg-type]

    @pytest.mark.parametrize("host", ["", "a b", "a\x00b", "a\n"])
    def test_malformed_server_name(self, host: str) -> None:
        """Empty names and names with NUL or whitespace are a ValueError."""
        with pytest.raises(ValueError, match="server name"):
            normalize_peer(host)

    def test_server_name_of_wrong_type(self) -> None:
        """A bytes server name is a TypeError."""
        with pytest.raises(TypeError, match="str"):
            normalize_peer(b"a.test")

    def test_bad_input_leaves_no_state(self) -> None:
        """A refused call does not start tracking the context."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with pytest.raises(ValueError, match="server-side"):
            make_key(ctx, "a.test", 443)
        assert "load_cert_chain" not in vars(ctx)


# -- contexts tracked from birth share keys (issue 18) -----------------------------------------


def _cert_none(ctx: ssl.SSLContext, ca: trustme.CA) -> None:
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE


def _no_hostname_check(ctx: ssl.SSLContext, ca: trustme.CA) -> None:
    ctx.check_hostname = False


def _extra_ca(ctx: ssl.SSLContext, ca: trustme.CA) -> None:
    ctx.load_verify_locations(cadata=ca.cert_pem.bytes().decode())


def _client_certificate(ctx: ssl.SSLContext, ca: trustme.CA) -> None:
    ca.issue_cert("client@example.test").configure_cert(ctx)


def _other_alpn(ctx: ssl.SSLContext, ca: trustme.CA) -> None:
    ctx.set_alpn_protocols(["h2"])


#: How an owner loosens (or otherwise changes) its own context.
LOOSENINGS: dict[str, Callable[[ssl.SSLContext, trustme.CA], None]] = {
    "CERT_NONE": _cert_none,
    "check_hostname off": _no_hostname_check,
    "extra CA": _extra_ca,
    "client certificate": _client_certificate,
    "ALPN": _other_alpn,
}


@pytest.fixture
def binding_available() -> None:
    from resume._openssl.binding import available

    if available() is None:
        pytest.skip("the OpenSSL binding is unavailable: born contexts keep their tokens")


@pytest.mark.usefixtures("binding_available")
class TestContextsTrackedFromBirth:
    def test_two_created_contexts_alike_share_a_key(self) -> None:
        """create_client_context() twice: two objects, one key (sessions may flow)."""
        from resume import create_client_context

        one, two = create_client_context(), create_client_context()
        assert one is not two
        assert make_key(one, "a.test", 443) == make_key(two, "a.test", 443)

    @pytest.mark.parametrize("change", list(LOOSENINGS))
    def test_a_change_to_one_separates_it_from_its_siblings(
        self, ca: trustme.CA, change: str
    ) -> None:
        """Loosening one context changes its key only; the strict siblings keep theirs."""
        from resume import create_client_context

        strict, loose, later = create_client_context(), create_client_context(), None
        key = make_key(strict, "a.test", 443)
        LOOSENINGS[change](loose, ca)
        later = create_client_context()
        assert make_key(loose, "a.test", 443) != key
        assert make_key(strict, "a.test", 443) == key
        assert make_key(later, "a.test", 443) == key

    @pytest.mark.parametrize("change", list(LOOSENINGS))
    def test_the_same_change_on_two_contexts_gives_one_key_again(
        self, ca: trustme.CA, change: str
    ) -> None:
        """Two contexts changed alike share a key again (the digest is of the settings)."""
        from resume import create_client_context

        one, two = create_client_context(), create_client_context()
        if change == "client certificate":
            cert = ca.issue_cert("client@example.test")
            cert.configure_cert(one)
            cert.configure_cert(two)
        else:
            LOOSENINGS[change](one, ca)
            LOOSENINGS[change](two, ca)
        assert make_key(one, "a.test", 443) == make_key(two, "a.test", 443)

    def test_a_plain_context_never_shares_with_a_born_one(self) -> None:
        """ssl.create_default_context() has a token: no key in common with anything else."""
        from resume import create_client_context

        plain = ssl.create_default_context()
        assert make_key(plain, "a.test", 443) != make_key(create_client_context(), "a.test", 443)

    def test_a_ca_directory_that_changed_separates_contexts(self, tmp_path: Path) -> None:
        """capath is read lazily; a directory changed between two births gives two keys."""
        from resume import create_client_context

        one, two = (create_client_context(capath=tmp_path) for _ in range(2))
        assert make_key(one, "a.test", 443) == make_key(two, "a.test", 443)
        (tmp_path / "new.pem").write_text("")
        three = create_client_context(capath=tmp_path)
        assert make_key(three, "a.test", 443) != make_key(one, "a.test", 443)

    def test_default_paths_from_another_environment_separate_contexts(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """load_default_certs() reads SSL_CERT_DIR when called: another one, another key."""
        from resume import create_client_context

        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        one = create_client_context()
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
        two = create_client_context()
        assert make_key(one, "a.test", 443) != make_key(two, "a.test", 443)

    def test_untrackable_born_contexts_keep_their_tokens(self) -> None:
        """A born context that became untrackable shares nothing (and warns once)."""
        from resume import UntrackedContextWarning, create_client_context

        one, two = create_client_context(), create_client_context()
        del one.load_cert_chain
        del two.load_cert_chain
        with pytest.warns(UntrackedContextWarning):
            k1 = make_key(one, "a.test", 443)
        with pytest.warns(UntrackedContextWarning):
            k2 = make_key(two, "a.test", 443)
        assert k1 != k2

    def test_tracked_from_birth(self) -> None:
        """Contexts made by create_client_context() are, plain ones never (even once seen)."""
        from resume import create_client_context
        from resume._core.key import tracked_from_birth

        plain = client_context()
        assert not tracked_from_birth(plain)
        context_digest(plain)
        assert not tracked_from_birth(plain)
        assert tracked_from_birth(create_client_context())


def test_without_the_binding_born_contexts_keep_their_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where SSL_set_session() cannot be reached, sessions cannot cross contexts: no shared key."""
    from resume import create_client_context
    from resume._openssl import binding

    monkeypatch.setattr(binding, "available", lambda: None)
    one, two = create_client_context(), create_client_context()
    assert make_key(one, "a.test", 443) != make_key(two, "a.test", 443)
