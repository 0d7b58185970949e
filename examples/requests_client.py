"""requests resumes TLS sessions with resume.requests' adapter.

A local HTTPS server (the standard library's http.server over TLS, with a
throwaway certificate from trustme) answers each request with whether the
server resumed the session. Each request here comes from a new
requests.Session, as short scripts often do: each adapter makes its own TLS
context, and contexts configured alike share their cache keys, so the
sessions carry over.
"""

from __future__ import annotations

import http.server
import ssl
import tempfile
import threading

import requests
import trustme

import resume
import resume.requests


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


def main() -> None:
    ca = trustme.CA()
    server = start_server(ca)
    url = f"https://localhost:{server.server_address[1]}/"
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        ca.cert_pem.write_to_path(ca_file.name)
        for n in range(1, 4):
            with requests.Session() as session:
                session.mount("https://", resume.requests.HTTPAdapter())
                print(f"request {n}: {session.get(url, verify=ca_file.name).text}")
    stats = resume.default_cache().statistics()
    print(f"decisions: {dict(sorted(stats.decisions.items()))}")
    server.shutdown()


if __name__ == "__main__":
    main()
