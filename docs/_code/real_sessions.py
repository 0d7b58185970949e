"""Real TLS sessions for synchronous tests: blocking handshakes on loopback.

A recipe from the how-to guide "Testing code that uses resume"; the docs' own
doctests use it too, so it runs on every docs build.
"""

from __future__ import annotations

import socket
import ssl
import threading

import trustme


def context_pair(version: ssl.TLSVersion) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return ``(server, client)`` contexts for "localhost", both pinned to *version*."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    for context in (server, client):
        context.minimum_version = context.maximum_version = version
    return server, client


def connect_once(
    server: ssl.SSLContext,
    client: ssl.SSLContext,
    session: ssl.SSLSession | None = None,
) -> tuple[ssl.SSLSession, bool]:
    """Make one loopback connection, offering *session*; return ``(session, reused)``.

    The client reads one byte before it looks at its session, because TLS 1.3
    tickets arrive after the handshake, with the first application data.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            with server.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"x")
                tls.recv(1)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            port = listener.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)) as raw, client.wrap_socket(
                raw, server_hostname="localhost", session=session
            ) as tls:
                tls.recv(1)
                tls.sendall(b"y")
                new_session, reused = tls.session, bool(tls.session_reused)
        finally:
            thread.join()
    assert new_session is not None
    return new_session, reused
