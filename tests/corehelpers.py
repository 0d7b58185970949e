"""Real TLS sessions for the core tests: blocking loopback handshakes with trustme certificates."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

import trustme

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass
class Pki:
    """A throwaway CA, a server context and a client context that trusts it."""

    ca: trustme.CA
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_pki(version: str) -> Pki:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    for ctx in (server, client):
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return Pki(ca, server, client)


def handshake(
    pki: Pki, session: ssl.SSLSession | None = None, *, clean: bool = True
) -> tuple[ssl.SSLSession, bool]:
    """One loopback connection: handshake, one byte each way, then close.

    With *clean* both sides shut TLS down (``SSL_shutdown``) before closing the
    socket; without it they just close, which OpenSSL treats as an unclean end.
    Returns the client's session after the data arrived (TLS 1.3 tickets come
    after the handshake) and whether the connection resumed *session*.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with pki.server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"x")
                    tls.recv(1)
                    if clean:
                        tls.unwrap().close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw, pki.client.wrap_socket(
                raw, server_hostname="localhost", session=session
            ) as tls:
                assert tls.recv(1) == b"x"
                reused = bool(tls.session_reused)
                tls.sendall(b"y")
                got = tls.session
                assert got is not None
                if clean:
                    tls.unwrap().close()
        finally:
            thread.join(10)
        if errors:
            raise errors[0]
        return got, reused


class FakeClock:
    """A clock for SessionCache that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
