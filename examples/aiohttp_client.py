"""aiohttp resumes TLS sessions with resume.aiohttp's connector.

A local HTTPS server (the standard library's http.server over TLS, with a
throwaway certificate from trustme) answers each request with whether the
server resumed the session. The first ClientSession makes one request per
new connection (``Connection: close``); the second is a new ClientSession,
whose first connection resumes too (aiohttp uses one TLS context for every
connector, and here both use the same context).
"""

from __future__ import annotations

import asyncio
import http.server
import ssl
import tempfile
import threading

import aiohttp
import trustme

import resume
import resume.aiohttp


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"server resumed={self.connection.session_reused}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def start_server(ca: trustme.CA) -> http.server.ThreadingHTTPServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def main() -> None:
    ca = trustme.CA()
    server = start_server(ca)
    url = f"https://localhost:{server.server_address[1]}/"
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        ca.cert_pem.write_to_path(ca_file.name)
        context = resume.create_client_context(cafile=ca_file.name)

    connector = resume.aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as s:
        for n in range(1, 4):
            async with s.get(url, headers={"Connection": "close"}) as r:
                print(f"new connection {n}: {await r.text()}")
    async with (
        aiohttp.ClientSession(
            connector=resume.aiohttp.TCPConnector(ssl=context)
        ) as s,
        s.get(url) as r,
    ):
        print(f"new session: {await r.text()}")
    stats = resume.default_cache().statistics()
    print(f"decisions: {dict(sorted(stats.decisions.items()))}")
    server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
