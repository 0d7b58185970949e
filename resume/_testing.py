# Theory of operation: resume.testing, the helpers behind our own tests
# =====================================================================
#
# Code that uses resume wants to test itself the way resume tests itself: with
# real TLS handshakes, never with mocks of ``ssl``. Three things make that cheap
# and deterministic:
#
# * ThrowawayPKI: a private CA (trustme, in memory) with one server certificate
#   and two client certificates, the contexts that use them pinned to one TLS
#   version, and PEM files written on request for tools that want paths
#   (``openssl s_server``, ``curl``, ``resume serve``). Nothing ships in the
#   package and the CA's key dies with the process.
# * FakeClock: a clock for SessionCache(clock=...) that moves only when told, so
#   expiry is tested without sleeping.
# * memory_handshake() and loopback_handshake(): a full TLS handshake between two
#   contexts, over memory BIOs (no sockets, no threads: the SSLObjects pass the
#   bytes to each other) or over a real loopback socket with a server thread. Both
#   read one byte of application data on the client after the handshake, because
#   a TLS 1.3 client only receives its tickets with the first record that follows
#   the handshake.
#
# The module imports trustme (a dependency of resume) but never trio or asyncio.
from __future__ import annotations

import pathlib
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import trustme

from ._core import limits as _limits
from ._core.limits import pin_tls_version

if TYPE_CHECKING:
    from ._core.handle import SessionHandle

__all__ = [
    "FakeClock",
    "PKIFiles",
    "TLS_VERSIONS",
    "TLS_VERSION_NAMES",
    "ThrowawayPKI",
    "loopback_handshake",
    "memory_handshake",
    "pin_tls_version",
]

#: The TLS versions every TLS test should run under, by their short names:
#: ``"1.2"`` and ``"1.3"`` to :class:`ssl.TLSVersion` members.
TLS_VERSIONS: Final = _limits.TLS_VERSIONS

#: What :meth:`ssl.SSLObject.version` reports for each of them (``"TLSv1.2"``, ``"TLSv1.3"``).
TLS_VERSION_NAMES: Final = _limits.TLS_VERSION_NAMES

#: The names the server certificate is valid for, unless others are asked for.
DEFAULT_NAMES: Final = ("localhost", "127.0.0.1", "::1")

#: Bytes enough for any handshake to finish over memory BIOs: each round moves
#: every pending byte, and TLS 1.2 needs two round trips, TLS 1.3 one and a half.
_MAX_ROUNDS: Final = 10


@final
@dataclass(frozen=True)
class PKIFiles:
    """The PEM files :meth:`ThrowawayPKI.write` made.

    Attributes:
        ca: the CA certificate (what a client trusts: ``--cafile``).
        cert: the server certificate chain.
        key: the server's private key (mode 0600).
        client: the first client certificate and its key, in one file.
    """

    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path
    client: pathlib.Path


@final
class ThrowawayPKI:
    """A throwaway certificate authority with a server certificate and two client certificates.

    Made with trustme, in memory. Never use it for anything that matters: the CA's
    private key lives in this process only.

    Args:
        names: the names and addresses the server certificate is valid for.
        key_type: ``"ecdsa"`` (fast, the default) or ``"rsa"`` (RSA-2048).

    >>> from resume.testing import ThrowawayPKI
    >>> pki = ThrowawayPKI()
    >>> server = pki.server_context("1.3")
    >>> client = pki.client_context("1.3")
    >>> client.maximum_version
    <TLSVersion.TLSv1_3: 772>
    """

    def __init__(self, *names: str, key_type: str = "ecdsa") -> None:
        types = {"ecdsa": trustme.KeyType.ECDSA, "rsa": trustme.KeyType.RSA}
        if key_type not in types:
            raise ValueError(f"key_type must be 'ecdsa' or 'rsa', got {key_type!r}")
        kind = types[key_type]
        #: The trustme CA (``ca.configure_trust(context)`` trusts it).
        self.ca = trustme.CA(key_type=kind)
        #: The names the server certificate is valid for.
        self.names: tuple[str, ...] = names or DEFAULT_NAMES
        #: The server's trustme leaf certificate.
        self.server_cert = self.ca.issue_cert(*self.names, key_type=kind)
        #: Two client certificates, for tests where the certificate changes.
        self.client_certs = (
            self.ca.issue_cert("client-a@example.test", key_type=kind),
            self.ca.issue_cert("client-b@example.test", key_type=kind),
        )

    def server_context(
        self,
        tls: str | None = None,
        *,
        client_certs: ssl.VerifyMode = ssl.CERT_NONE,
        tickets: bool = True,
        alpn: list[str] | None = None,
    ) -> ssl.SSLContext:
        """A server context with the certificate, pinned to *tls* (``"1.2"``/``"1.3"``) if given.

        Args:
            tls: the only TLS version to allow, or None for the defaults.
            client_certs: ``CERT_OPTIONAL`` or ``CERT_REQUIRED`` to ask for a client
                certificate issued by this CA.
            tickets: False sets ``OP_NO_TICKET`` (TLS 1.2 session ids only;
                stateful TLS 1.3 tickets).
            alpn: protocols to select from, if any.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(context)
        if client_certs != ssl.CERT_NONE:
            self.ca.configure_trust(context)
            context.verify_mode = client_certs
        if not tickets:
            context.options |= ssl.OP_NO_TICKET
        if alpn:
            context.set_alpn_protocols(alpn)
        return pin_tls_version(context, tls) if tls else context

    def client_context(
        self, tls: str | None = None, *, client_cert: int | None = None
    ) -> ssl.SSLContext:
        """A client context that trusts this CA, pinned to *tls* if given.

        Args:
            tls: the only TLS version to allow, or None for the defaults.
            client_cert: 0 or 1 to present the first or second client certificate.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        if client_cert is not None:
            self.client_certs[client_cert].configure_cert(context)
        return pin_tls_version(context, tls) if tls else context

    def write(self, directory: str | pathlib.Path) -> PKIFiles:
        """Write the CA certificate, the server chain, its key and a client certificate as PEM.

        The key files are created with mode 0600.
        """
        where = pathlib.Path(directory)
        files = PKIFiles(
            where / "ca.pem", where / "server.pem", where / "server.key", where / "client.pem"
        )
        self.ca.cert_pem.write_to_path(str(files.ca))
        files.cert.write_bytes(b"".join(pem.bytes() for pem in self.server_cert.cert_chain_pems))
        for path, pem in (
            (files.key, self.server_cert.private_key_pem),
            (files.client, self.client_certs[0].private_key_and_cert_chain_pem),
        ):
            path.touch(mode=0o600)
            path.chmod(0o600)
            pem.write_to_path(str(path))
        return files


@final
class FakeClock:
    """A clock for ``SessionCache(clock=...)`` that moves only when told to.

    >>> from resume.testing import FakeClock
    >>> clock = FakeClock(100.0)
    >>> clock.advance(5)
    >>> clock()
    105.0
    """

    def __init__(self, now: float = 1_000_000.0) -> None:
        #: The time the clock shows, in seconds.
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock *seconds* forward."""
        self.now += seconds


def memory_handshake(
    client: ssl.SSLContext,
    server: ssl.SSLContext,
    *,
    server_hostname: str = "localhost",
    session: ssl.SSLSession | None = None,
    handle: SessionHandle | None = None,
    read_tickets: bool = True,
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A real handshake between two SSLObjects over memory BIOs; return ``(client, server)``.

    No socket and no thread: the bytes each side writes are handed to the other
    until both handshakes are done. The server then writes one byte; with
    *read_tickets* the client reads it, and with it the TLS 1.3 tickets that came
    before it.

    Args:
        session: an :class:`ssl.SSLSession` to offer.
        handle: a :class:`~resume.SessionHandle` to offer instead (``SSL_set_session()``).
    """
    from ._core.offer import offer

    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=server_hostname, session=session)
    if handle is not None:
        offer(c, handle)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done_c = done_s = False
    for _ in range(_MAX_ROUNDS):
        if not done_c:
            done_c = _step(c)
        s_in.write(c_out.read())
        if not done_s:
            done_s = _step(s)
        c_in.write(s_out.read())
        if done_c and done_s:
            break
    else:
        raise ssl.SSLError("the memory handshake did not finish")
    s.write(b"x")
    c_in.write(s_out.read())
    if read_tickets and c.read(1) != b"x":
        raise ssl.SSLError("the client did not receive the server's byte")
    return c, s


def _step(side: ssl.SSLObject) -> bool:
    try:
        side.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


def loopback_handshake(
    client: ssl.SSLContext,
    server: ssl.SSLContext,
    *,
    server_hostname: str = "localhost",
    session: ssl.SSLSession | None = None,
    clean: bool = True,
    timeout: float = 10.0,
) -> tuple[ssl.SSLSession, bool]:
    """One real connection on 127.0.0.1: handshake, one byte each way, close.

    The server runs in a thread on a free port. With *clean* both sides send
    close_notify (``SSL_shutdown()``) before closing the socket; without it they
    just close, which OpenSSL treats as an unclean end (a server removes the
    session from its cache).

    Returns:
        the client's session, read after the server's byte arrived (so a TLS 1.3
        ticket is in it), and whether the connection resumed *session*.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout)
        port = listener.getsockname()[1]
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(timeout)
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"x")
                    tls.recv(1)
                    if clean:
                        tls.unwrap().close()
            except BaseException as exc:  # reported in the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=serve, name="resume-loopback-server")
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, (
                client.wrap_socket(raw, server_hostname=server_hostname, session=session)
            ) as tls:
                if tls.recv(1) != b"x":
                    raise ssl.SSLError("the client did not receive the server's byte")
                reused = bool(tls.session_reused)
                tls.sendall(b"y")
                got = tls.session
                if clean:
                    tls.unwrap().close()
        finally:
            thread.join(timeout)
        if errors:
            raise errors[0]
        if got is None:
            raise ssl.SSLError("the connection ended without a session")
        return got, reused
