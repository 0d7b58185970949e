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
from dataclasses import dataclass
from pathlib import Path

import trio

from resume._adapters.trio_server import TLSServerStream
from resume.testing import TLS_VERSION_NAMES, TLS_VERSIONS, ThrowawayPKI, pin_tls_version

VERSIONS = TLS_VERSIONS
VERSION_NAMES = TLS_VERSION_NAMES

HTTP_RESPONSE = (
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
    b"Connection: close\r\n\r\nhello\n"
)


pin = pin_tls_version


class ServerPKI:
    """resume.testing's ThrowawayPKI (localhost, 127.0.0.1) with its PEM files on disk.

    ``ca_file``, ``cert_file``, ``key_file`` and ``client_cert_file`` (the first
    client certificate with its key) are written into a fresh temporary folder.
    """

    def __init__(self) -> None:
        self._pki = ThrowawayPKI("localhost", "127.0.0.1")
        self.ca = self._pki.ca
        self.server_cert = self._pki.server_cert
        self.client_a, self.client_b = self._pki.client_certs
        self.directory = Path(tempfile.mkdtemp(prefix="resume-pki-"))
        files = self._pki.write(self.directory)
        self.ca_file, self.cert_file, self.key_file = files.ca, files.cert, files.key
        self.client_cert_file = files.client

    def server_context(self, version: str, *, client_certs: bool = False) -> ssl.SSLContext:
        return self._pki.server_context(
            version, client_certs=ssl.CERT_REQUIRED if client_certs else ssl.CERT_NONE
        )

    def client_context(self, version: str, *, client_cert: bool = False) -> ssl.SSLContext:
        return self._pki.client_context(version, client_cert=0 if client_cert else None)


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
