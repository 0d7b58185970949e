"""An asyncio client that resumes TLS sessions, against resume's asyncio server.

resume.asyncio.open_connection is asyncio.open_connection plus a session cache;
resume.asyncio.start_server is asyncio.start_server plus handshake statistics.
Everything runs on loopback with a throwaway certificate from resume.testing.

    python examples/asyncio_client.py
"""

from __future__ import annotations

import asyncio

from resume import SessionCache
from resume.asyncio import open_connection, start_server
from resume.testing import ThrowawayPKI


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()


async def main() -> None:
    pki = ThrowawayPKI()  # a throwaway CA and a certificate for localhost
    server_ctx = pki.server_context()
    client_ctx = pki.client_context()  # trusts the throwaway CA

    cache = SessionCache()
    async with await start_server(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        for number in range(1, 6):
            reader, writer = await open_connection(
                "127.0.0.1",
                server.port,
                ssl=client_ctx,
                cache=cache,
                server_hostname="localhost",
            )
            writer.write(b"ping")
            reply = await reader.readexactly(4)
            print(
                f"connection {number}: resumed={writer.session_reused}, "
                f"reply={reply!r}"
            )
            writer.close()
            await writer.wait_closed()  # a clean close stores the session
        stats = server.statistics()
    print(f"server: {stats.full} full, {stats.resumed} resumed")
    cache.clear()


if __name__ == "__main__":
    asyncio.run(main())
