"""resume.default_ssl_context() is shared, so it is read-only (issue 18)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
import trustme

import resume
from resume._core.key import context_digest, make_key

Change = Callable[[ssl.SSLContext], object]

#: Every kind of change a caller could make to the shared context.
CHANGES: dict[str, Change] = {
    "verify_mode": lambda c: setattr(c, "verify_mode", ssl.CERT_NONE),
    "check_hostname": lambda c: setattr(c, "check_hostname", False),
    "verify_flags": lambda c: setattr(c, "verify_flags", ssl.VERIFY_DEFAULT),
    "options": lambda c: setattr(c, "options", 0),
    "minimum_version": lambda c: setattr(c, "minimum_version", ssl.TLSVersion.TLSv1_2),
    "hostname_checks_common_name": lambda c: setattr(c, "hostname_checks_common_name", True),
    "keylog_filename": lambda c: setattr(c, "keylog_filename", "/dev/null"),
    "sni_callback": lambda c: setattr(c, "sni_callback", None),
    "load_verify_locations": lambda c: c.load_verify_locations(
        cadata=trustme.CA().cert_pem.bytes().decode()
    ),
    "load_cert_chain": lambda c: c.load_cert_chain("/nonexistent.pem"),
    "load_default_certs": lambda c: c.load_default_certs(),
    "set_default_verify_paths": lambda c: c.set_default_verify_paths(),
    "set_alpn_protocols": lambda c: c.set_alpn_protocols(["h2"]),
    "set_ciphers": lambda c: c.set_ciphers("ALL"),
    "set_ecdh_curve": lambda c: c.set_ecdh_curve("prime256v1"),
    "set_servername_callback": lambda c: c.set_servername_callback(None),
    "del tracked method": lambda c: delattr(c, "load_cert_chain"),
}


class TestDefaultContext:
    def test_one_context_for_everyone(self) -> None:
        """Every call returns the same verifying context."""
        context = resume.default_ssl_context()
        assert context is resume.default_ssl_context()
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname

    @pytest.mark.parametrize("change", list(CHANGES))
    def test_every_change_is_refused(self, change: str) -> None:
        """Attributes raise AttributeError, load_*/set_* methods TypeError; nothing changes."""
        context = resume.default_ssl_context()
        key = make_key(context, "a.test", 443)
        with pytest.raises((AttributeError, TypeError), match="read-only"):
            CHANGES[change](context)
        assert make_key(context, "a.test", 443) == key
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    def test_refusal_does_not_make_it_untrackable(self) -> None:
        """The tracking wrappers are still there: the context keeps resuming."""
        context = resume.default_ssl_context()
        with pytest.raises(TypeError):
            context.load_cert_chain("/nonexistent.pem")
        from resume._core.key import connection_key

        assert connection_key(context, "a.test", 443)[1]

    def test_it_shares_keys_with_contexts_made_alike(self) -> None:
        """Its sessions flow to a create_client_context() of the same settings, and back."""
        from resume._openssl.binding import available

        if available() is None:
            pytest.skip("the OpenSSL binding is unavailable: born contexts keep their tokens")
        own = resume.create_client_context()
        assert context_digest(own) == context_digest(resume.default_ssl_context())
        own.set_alpn_protocols(["h2"])  # the caller's own context: free to change
        assert context_digest(own) != context_digest(resume.default_ssl_context())

    def test_going_through_the_class_is_still_seen_by_the_key(self) -> None:
        """The C setter called through the class bypasses the refusal, not the key."""
        from resume._core.defaults import read_only_context

        context = read_only_context()  # not the process's default: this test changes it
        key = make_key(context, "a.test", 443)
        ssl.SSLContext.verify_mode.__set__(context, ssl.CERT_OPTIONAL)  # type: ignore[attr-defined]
        assert make_key(context, "a.test", 443) != key
