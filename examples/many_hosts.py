"""One session cache shared by connections to many servers.

The cache files each session under the server's name, port and TLS settings,
so a session is only ever offered back to the server it came from. Three
servers on loopback (three ports, each its own certificate authority and
context) are visited in turn, three rounds: round 1 makes full handshakes,
rounds 2 and 3 resume, each with its own server's session.

    python examples/many_hosts.py
"""

from __future__ import annotations

from functools import partial

import trio

from resume import SessionCache
from resume.testing import ThrowawayPKI
from resume.trio import TLSServerStream, open_tls_stream, serve_tls

NAMES = ["alpha.localhost", "beta.localhost", "gamma.localhost"]


async def hello(stream: TLSServerStream) -> None:
    await stream.receive_some()
    await stream.send_all(b"hi")


async def main() -> None:
    pki = ThrowawayPKI(*NAMES)  # a throwaway CA and a certificate for every name
    client_ctx = pki.client_context()  # one client context for every host
    cache = SessionCache()

    async with trio.open_nursery() as nursery:
        servers = {}
        for name in NAMES:
            ctx = pki.server_context()
            servers[name] = await nursery.start(
                partial(serve_tls, hello, 0, ssl_context=ctx, host="127.0.0.1")
            )
        for round_number in (1, 2, 3):
            for name, server in servers.items():
                # Connect to 127.0.0.1 but verify and key the session by the name.
                stream = await open_tls_stream(
                    "127.0.0.1",
                    server.port,
                    ssl_context=client_ctx,
                    cache=cache,
                    server_hostname=name,
                )
                await stream.send_all(b"hello")
                await stream.receive_some()
                print(f"round {round_number}: {name:<16} resumed={stream.session_reused}")
                await stream.aclose()
        stats = cache.statistics()
        print(
            f"cache: {stats.keys} keys, {stats.number} sessions, {stats.hits} hits, "
            f"{stats.misses} misses"
        )
        for name, server in servers.items():
            s = server.statistics()
            print(f"server {name}: {s.full} full, {s.resumed} resumed")
        nursery.cancel_scope.cancel()
    cache.clear()


if __name__ == "__main__":
    trio.run(main)
