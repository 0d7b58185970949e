# A plain HTTP/1.1 backend for the TLS terminators of the tests (stunnel, and
# nginx's proxy_pass where a response must be held).
#
# It runs in a child Python process (its CPU is not the client's, and a stuck
# handler cannot hang the test process), on 127.0.0.1, on a port the child
# picks and prints. Every GET is answered with the same body; ``?delay=200``
# holds the response about 200 ms first, so that concurrent requests open
# connections beside a pooled one. Connections are kept alive (HTTP/1.1 with a
# Content-Length) until the client or the terminator closes them, so an idle
# pooled TLS connection in front of it stays open.
#
#   with HTTPBackend() as backend:
#       backend.port                   # plain HTTP on 127.0.0.1
from __future__ import annotations

import subprocess
import sys
import textwrap
from types import TracebackType

__all__ = ["HTTPBackend"]

_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    BODY = sys.argv[1].encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            query = parse_qs(urlsplit(self.path).query)
            delay = int(query.get("delay", ["0"])[0])
            if delay > 0:
                time.sleep(min(delay, 10_000) / 1000)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    # socketserver's listen backlog is 5: a burst of 10 connections from nginx
    # overflowed it, and the dropped SYNs came back a second later.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


class HTTPBackend:
    """A keep-alive HTTP/1.1 server in a child process, answering *body* to every GET."""

    def __init__(self, body: str = "hello\n") -> None:
        self.body = body
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> HTTPBackend:
        """Start the child and wait until it listens (it prints its port)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, self.body],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the HTTP backend did not start (it printed {line!r})")
        self.port = int(line)
        return self

    def stop(self) -> None:
        """Stop the child and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> HTTPBackend:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
