"""A trio TLS server that resumes sessions, with its statistics.

serve_tls resumes out of the box (OpenSSL's session cache and tickets). This
example serves on a free loopback port, lets a plain ``ssl`` client connect
four times reusing its session, then prints what the server counted and exits.

    python examples/trio_server.py
"""

from __future__ import annotations

import socket
import ssl
from functools import partial

import trio

from resume.testing import ThrowawayPKI
from resume.trio import TLSServerStream, serve_tls


async def handler(stream: TLSServerStream) -> None:
    # Each connection tells how it was made; then answer one request.
    request = await stream.receive_some()
    how = "resumed" if stream.session_reused else "full handshake"
    print(f"server: {stream.peer[0]} {stream.tls_version} {how}, got {request!r}")
    await stream.send_all(b"hello from serve_tls")


def client(port: int, context: ssl.SSLContext, session: ssl.SSLSession | None) -> ssl.SSLSession:
    # A blocking standard-library client that offers the session it got last time.
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(b"GET /")
        tls.recv(100)  # reading the answer also collects the TLS 1.3 tickets
        assert tls.session is not None
        return tls.session


async def main() -> None:
    pki = ThrowawayPKI()  # a throwaway CA and a certificate for localhost
    server_ctx = pki.server_context()
    client_ctx = pki.client_context()  # trusts the throwaway CA

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_tls,
                handler,
                0,
                ssl_context=server_ctx,
                host="127.0.0.1",
                handshake_timeout=5.0,
                num_tickets=2,
                session_timeout=3600,
            )
        )
        session = None
        for _ in range(4):
            session = await trio.to_thread.run_sync(
                client, server.port, client_ctx, session
            )
        stats = server.statistics()
        print(
            f"server statistics: accepted={stats.accepted} full={stats.full} "
            f"resumed={stats.resumed} failed={stats.failed}"
        )
        print(
            f"OpenSSL's own counters: hits={stats.session_stats['hits']} "
            f"accept_good={stats.session_stats['accept_good']}"
        )
        server.close()


if __name__ == "__main__":
    trio.run(main)
