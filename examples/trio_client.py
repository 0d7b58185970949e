"""A trio client that resumes TLS sessions through one cache.

Runs on loopback by itself: it starts a small TLS echo server (serve_tls, with a
throwaway certificate from resume.testing), then connects five times. The first connection
makes a full handshake; the others resume the session the cache kept.

    python examples/trio_client.py
"""

from __future__ import annotations

from functools import partial

import trio

from resume import SessionCache
from resume.testing import ThrowawayPKI
from resume.trio import TLSServerStream, open_tls_stream, serve_tls


async def echo(stream: TLSServerStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


async def main() -> None:
    pki = ThrowawayPKI()  # a throwaway CA and a certificate for localhost
    server_ctx = pki.server_context()
    client_ctx = pki.client_context()  # trusts the throwaway CA

    cache = SessionCache()  # one cache for every connection of this client
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_tls, echo, 0, ssl_context=server_ctx, host="127.0.0.1")
        )
        for number in range(1, 6):
            stream = await open_tls_stream(
                "127.0.0.1",
                server.port,
                ssl_context=client_ctx,
                cache=cache,
                server_hostname="localhost",
            )
            await stream.send_all(b"ping")
            reply = await stream.receive_some()  # reading also collects TLS 1.3 tickets
            print(
                f"connection {number}: {stream.version()}, "
                f"resumed={stream.session_reused}, reply={reply!r}"
            )
            await stream.aclose()  # its sessions entered the cache as they arrived
        nursery.cancel_scope.cancel()
    print(f"cache: {cache.statistics().hits} hits, {cache.statistics().misses} misses")
    cache.clear()


if __name__ == "__main__":
    trio.run(main)
