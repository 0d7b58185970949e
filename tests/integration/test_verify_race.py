"""A connection is decided from its SSL object itself (issue 18, finding 2).

``SSL_new()`` copies the context's verify settings with the GIL released, so a
thread can loosen a setting and restore it while the SSL object is being made:
read before and after, the context looks unchanged, yet the connection does not
verify. Such a connection must neither store its session under the strict key
nor be offered one of that key's sessions.

Two forms of the attack:

* deterministic: an SSLContext subclass whose ``wrap_bio`` sets CERT_NONE around
  the real call and CERT_REQUIRED after it. Its first connection (to a server the
  client does not trust) completes unverified, as plain ssl's would; what it
  yields must not let the next strict connections skip verification;
* statistical: a thread toggling ``verify_mode`` while connections are made over
  memory BIOs (real handshakes, no sockets); no connection whose SSL object has
  SSL_VERIFY_PEER may complete against the untrusted server.

The race runs in a child ``python -X dev`` with a tiny switch interval, so that
the toggling thread runs inside ``SSL_new()`` often.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import trio
from clienthelpers import PKI, pin, start_echo_server

import resume.asyncio
import resume.trio
from resume import SessionCache
from resume._core.key import KeySettings
from resume._core.policy import agrees
from resume._openssl.binding import ConnectionSettings, available


@pytest.fixture(params=["1.2", "1.3"])
def tls_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


class _Loosening(ssl.SSLContext):
    """A client context that makes its SSL objects with CERT_NONE while ``loosen`` is set."""

    loosen = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        if not self.loosen:
            return super().wrap_bio(*args, **kwargs)
        self.check_hostname = False
        self.verify_mode = ssl.CERT_NONE
        try:
            return super().wrap_bio(*args, **kwargs)
        finally:
            self.verify_mode = ssl.CERT_REQUIRED
            self.check_hostname = True


def _untrusting(pki: PKI, version: str) -> _Loosening:
    # A strict client that trusts only another CA: the test server is untrusted.
    ctx = _Loosening(ssl.PROTOCOL_TLS_CLIENT)
    pin(ctx, version)
    pki.other_ca.configure_trust(ctx)
    return ctx


async def test_trio_loosened_wrap_bio_never_lends_its_session(pki: PKI, tls_version: str) -> None:
    """trio: after a wrap_bio that ran CERT_NONE, 5 of 5 strict connections are refused."""
    ctx = _untrusting(pki, tls_version)
    cache = SessionCache()
    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", server.port, ssl_context=ctx, cache=cache, server_hostname="localhost"
        )
        async with stream:  # completes unverified, as plain ssl's would
            await stream.send_all(b"ping")
            assert await stream.receive_some(10) == b"ping"
        ctx.loosen = False
        refused = 0
        for _ in range(5):
            with pytest.raises(trio.BrokenResourceError) as info:
                await resume.trio.open_tls_stream(
                    "127.0.0.1", server.port, ssl_context=ctx, cache=cache,
                    server_hostname="localhost",
                )
            refused += isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        nursery.cancel_scope.cancel()
    assert refused == 5
    assert server.reused == [False]  # only the loosened handshake reached the server's end
    assert cache.statistics().decisions.get("context changed", 0) >= 1


async def test_asyncio_loosened_wrap_bio_never_lends_its_session(
    pki: PKI, tls_version: str
) -> None:
    """asyncio: after a wrap_bio that ran CERT_NONE, 5 of 5 strict connections are refused."""
    ctx = _untrusting(pki, tls_version)
    cache = SessionCache()

    async def main(port: int) -> list[object]:
        reader, writer = await resume.asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost"
        )
        async with writer:
            writer.write(b"ping")
            assert await reader.read(10) == b"ping"
        ctx.loosen = False
        outcomes: list[object] = []
        for _ in range(5):
            try:
                await resume.asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, cache=cache, server_hostname="localhost"
                )
            except ssl.SSLError as exc:
                outcomes.append(exc)
            else:  # pragma: no cover - the assertion below fails
                outcomes.append(None)
        return outcomes

    async with trio.open_nursery() as nursery:
        server = await start_echo_server(nursery, pki.server_context(tls_version))
        outcomes = await trio.to_thread.run_sync(asyncio.run, main(server.port))
        nursery.cancel_scope.cancel()
    assert all(isinstance(o, ssl.SSLCertVerificationError) for o in outcomes), outcomes
    assert len(outcomes) == 5


# -- agrees(): the comparison itself ----------------------------------------------------------

_STRICT = KeySettings(
    verify_mode=2, check_hostname=True, verify_flags=0x8000, minimum_version=771,
    maximum_version=-1, options=0x82520050, host_flags=4, post_handshake_auth=False,
)
_STRICT_SSL = ConnectionSettings(
    verify_mode=3, verify_flags=0x8000, host_flags=4, host="localhost", ip=None,
    options=0x82520050, minimum_version=771, maximum_version=0,
)


class TestAgrees:
    """agrees() compares the key's settings with what the SSL* will do."""

    def test_the_same_settings_agree(self) -> None:
        """An SSL object made as keyed agrees (names are compared as the key spells them)."""
        assert agrees(_STRICT, "localhost", _STRICT_SSL)
        assert agrees(_STRICT, "localhost", _STRICT_SSL._replace(host="LocalHost"))

    @pytest.mark.parametrize(
        "change",
        [
            {"verify_mode": 0},
            {"verify_mode": 1},
            {"verify_flags": 0},
            {"host_flags": 0},
            {"host": None},
            {"host": "other.test"},
            {"options": 0},
            {"minimum_version": 0},
            {"maximum_version": 772},
        ],
    )
    def test_any_difference_disagrees(self, change: dict[str, Any]) -> None:
        """Each setting the SSL* reports differently makes the connection disagree."""
        assert not agrees(_STRICT, "localhost", _STRICT_SSL._replace(**change))

    def test_addresses_are_compared_canonically(self) -> None:
        """An address checked by the SSL* matches the key's canonical spelling."""
        got = _STRICT_SSL._replace(host=None, ip="0:0:0:0:0:0:0:1")
        assert agrees(_STRICT, "::1", got)
        assert not agrees(_STRICT, "::2", got)

    def test_no_hostname_check_means_no_name_on_the_ssl_object(self) -> None:
        """check_hostname=False agrees only with an SSL* that checks no name."""
        loose = _STRICT._replace(check_hostname=False)
        assert agrees(loose, "localhost", _STRICT_SSL._replace(host=None))
        assert not agrees(loose, "localhost", _STRICT_SSL)

    def test_idna_names(self) -> None:
        """ssl checks the A-label of a Unicode name; the key keeps the name as given."""
        got = _STRICT_SSL._replace(host="xn--bcher-kva.test")
        assert agrees(_STRICT, "bücher.test", got)


# -- the race, in a child process under -X dev ------------------------------------------------

_RACE = textwrap.dedent(
    """
    import json, ssl, sys, threading
    import trustme
    from resume import SessionCache, ClientConnection
    from resume._openssl.binding import binding

    version, count = sys.argv[1], int(sys.argv[2])
    sys.setswitchinterval(1e-6)
    pin = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ca.issue_cert("localhost").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ca.configure_trust(client)  # the server is untrusted
    for ctx in (server, client):
        ctx.minimum_version = ctx.maximum_version = pin
    b = binding()
    cache = SessionCache()
    stop = False

    def toggle():
        while not stop:
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            client.verify_mode = ssl.CERT_REQUIRED
            client.check_hostname = True

    def step(obj):
        try:
            obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    counts = {"verified_completed": 0, "unverified_completed": 0, "refused": 0,
              "reused": 0, "offered": 0}
    thread = threading.Thread(target=toggle, daemon=True)
    thread.start()
    for _ in range(count):
        bios = [ssl.MemoryBIO() for _ in range(4)]
        c_in, c_out, s_in, s_out = bios
        try:
            conn, c = ClientConnection.begin(
                cache, client, "localhost", 443,
                lambda: client.wrap_bio(c_in, c_out, server_hostname="localhost"),
                lambda obj: obj,
            )
        except ValueError:
            continue  # check_hostname toggled between its check and the call
        counts["offered"] += conn.offered is not None
        peer_bit = b.connection_settings(c).verify_mode & 1
        s = server.wrap_bio(s_in, s_out, server_side=True)
        done_c = done_s = False
        try:
            for _ in range(20):
                if not done_c:
                    done_c = step(c)
                s_in.write(c_out.read())
                if not done_s:
                    done_s = step(s)
                c_in.write(s_out.read())
                if done_c and done_s:
                    break
        except ssl.SSLError:
            conn.fail()
            counts["refused"] += 1
            continue
        conn.handshake_complete(c)
        s.write(b"x")
        c_in.write(s_out.read())
        c.read(1)
        counts["reused"] += c.session_reused
        counts["verified_completed" if peer_bit else "unverified_completed"] += 1
        conn.close(c, clean=True)
    stop = True
    thread.join()
    print(json.dumps(counts))
    """
)


def race(version: str, count: int) -> dict[str, int]:
    """Run the race in a child ``python -X dev``; return its counts."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _RACE, version, str(count)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.skipif(available() is None, reason="the OpenSSL binding is refused on this build")
def test_no_verified_connection_completes_to_an_untrusted_server(tls_version: str) -> None:
    """Under a thread toggling verify_mode, no SSL_VERIFY_PEER connection completes."""
    counts = race(tls_version, 600)
    assert counts["verified_completed"] == 0, counts
    # The race really ran: both kinds of SSL object were made, and loose ones resumed.
    assert counts["unverified_completed"] > 0, counts
    assert counts["refused"] > 0, counts
