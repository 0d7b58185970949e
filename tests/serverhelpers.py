# Test helpers for the server adapters (resume.trio.serve_tls, resume.asyncio.start_server).
#
# * ServerPKI: a trustme CA, a server certificate for localhost/127.0.0.1 and two
#   client certificates, with contexts pinned to one TLS version (every TLS test
#   runs under TLS 1.2 and TLS 1.3) and PEM files on disk for openssl and curl.
# * Handlers: echo (until EOF), http (a tiny HTTP/1.0 answer, for curl and
#   s_time), and reader-only.
# * blocking_client(): a plain ``ssl`` client that reports whether it resumed and
#   returns the session it got, for tests that need a client nobody here wrote
#   beyond the standard library.
from __future__ import annotations

import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import trio
import trustme

from resume._adapters.trio_server import TLSServerStream
from resume.testing import TLS_VERSION_NAMES, TLS_VERSIONS

VERSIONS = TLS_VERSIONS
VERSION_NAMES = TLS_VERSION_NAMES

HTTP_RESPONSE = (
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
    b"Connection: close\r\n\r\nhello\n"
)


def pin(context: ssl.SSLContext, version: str) -> ssl.SSLContext:
    """Pin *context* to TLS *version* ("1.2" or "1.3")."""
    context.minimum_version = VERSIONS[version]
    context.maximum_version = VERSIONS[version]
    return context


@dataclass
class ServerPKI:
    """A CA, a server certificate and two client certificates, also as PEM files."""

    ca: trustme.CA = field(default_factory=trustme.CA)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="resume-pki-")))

    def __post_init__(self) -> None:
        self.server_cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.client_a = self.ca.issue_cert("client-a@example.test")
        self.client_b = self.ca.issue_cert("client-b@example.test")
        self.ca_file = self.directory / "ca.pem"
        self.cert_file = self.directory / "server.pem"
        self.key_file = self.directory / "server.key"
        self.client_cert_file = self.directory / "client.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server_cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        for pem in self.server_cert.cert_chain_pems[1:]:
            pem.write_to_path(str(self.cert_file), append=True)
        self.server_cert.private_key_pem.write_to_path(str(self.key_file))
        self.client_a.private_key_and_cert_chain_pem.write_to_path(str(self.client_cert_file))

    def server_context(self, version: str, *, client_certs: bool = False) -> ssl.SSLContext:
        ctx = pin(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), version)
        self.server_cert.configure_cert(ctx)
        if client_certs:
            self.ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self, version: str, *, client_cert: bool = False) -> ssl.SSLContext:
        ctx = pin(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), version)
        self.ca.configure_trust(ctx)
        if client_cert:
            self.client_a.configure_cert(ctx)
        return ctx


async def echo_handler(stream: TLSServerStream) -> None:
    """Send back what arrives until EOF."""
    while data := await stream.receive_some():
        await stream.send_all(data)


async def http_handler(stream: TLSServerStream) -> None:
    """Read one request head and answer with a tiny HTTP/1.0 response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some()
        if not data:
            return
        buf += data
    await stream.send_all(HTTP_RESPONSE)


@dataclass
class BlockingResult:
    reused: bool
    version: str | None
    session: ssl.SSLSession | None
    reply: bytes


def blocking_client(
    port: int,
    context: ssl.SSLContext,
    *,
    session: ssl.SSLSession | None = None,
    message: bytes = b"ping",
) -> BlockingResult:
    """Connect with plain ``ssl``, send *message*, read the echo, close cleanly."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(message)
        reply = b""
        while len(reply) < len(message):
            chunk = tls.recv(65536)
            if not chunk:
                break
            reply += chunk
        result = BlockingResult(bool(tls.session_reused), tls.version(), tls.session, reply)
        tls.unwrap()
    return result


async def run_blocking_client(
    port: int, context: ssl.SSLContext, *, session: ssl.SSLSession | None = None
) -> BlockingResult:
    """:func:`blocking_client` in a worker thread."""
    return await trio.to_thread.run_sync(lambda: blocking_client(port, context, session=session))
