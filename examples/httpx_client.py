"""httpx resumes TLS sessions with resume.httpx's transport (asyncio, trio and sync).

A local HTTPS server (the standard library's http.server over TLS, with a
throwaway certificate from trustme) answers each request with whether the
server resumed the session; every request goes on a new connection
(``Connection: close``), which is when resumption saves a handshake.
"""

from __future__ import annotations

import asyncio
import http.server
import ssl
import tempfile
import threading

import httpx
import trio
import trustme

import resume
import resume.httpx


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


async def async_requests(url: str, client_context: ssl.SSLContext, label: str) -> None:
    transport = resume.httpx.AsyncHTTPTransport(verify=client_context)
    async with httpx.AsyncClient(transport=transport) as client:
        for n in range(1, 4):
            r = await client.get(url, headers={"Connection": "close"})
            print(f"{label} request {n}: {r.text}")


def main() -> None:
    ca = trustme.CA()
    server = start_server(ca)
    url = f"https://localhost:{server.server_address[1]}/"
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        ca.cert_pem.write_to_path(ca_file.name)
        client_context = resume.create_client_context(cafile=ca_file.name)

    asyncio.run(async_requests(url, client_context, "asyncio"))
    trio.run(async_requests, url, client_context, "trio")
    transport = resume.httpx.HTTPTransport(verify=client_context)
    with httpx.Client(transport=transport) as client:
        for n in range(1, 4):
            response = client.get(url, headers={"Connection": "close"})
            print(f"sync request {n}: {response.text}")
    stats = resume.default_cache().statistics()
    print(f"decisions: {dict(sorted(stats.decisions.items()))}")
    server.shutdown()


if __name__ == "__main__":
    main()
