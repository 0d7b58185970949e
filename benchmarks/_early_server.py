"""A small HTTP/1.1 server on ``resume.trio.serve_tls`` with early data, for bench_early.

Run as a child process (``python -m benchmarks._early_server CERT KEY``): it
prints its port on the first line of stdout, then one JSON line per request,
``{"request": "GET /path HTTP/1.1", "reused": "r" or ".", "early": "1" or ""}``,
the same fields as nginx's log in tests/nginx_server.py. Every answer is
``200`` with a six-byte body, sent as soon as the request head is read: on a
connection whose request came as early data, that is before the handshake
ends (0.5-RTT), as nginx does.
"""

from __future__ import annotations

import json
import sys
from functools import partial

import trio

from resume.trio import TLSServerStream, serve_tls

_BODY = b"hello\n"


async def _handler(stream: TLSServerStream) -> None:
    buffered = b""
    while True:
        while b"\r\n\r\n" not in buffered:
            try:
                chunk = await stream.receive_some()
            except trio.BrokenResourceError:
                return
            if not chunk:
                return
            buffered += chunk
        head, _, buffered = buffered.partition(b"\r\n\r\n")
        request = head.split(b"\r\n", 1)[0].decode("latin-1")
        close = b"connection: close" in head.lower()
        # Answer first (the client's clock is running), then log.
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n"
            + (b"Connection: close\r\n" if close else b"")
            + b"\r\n"
            + _BODY
        )
        line = {
            "request": request,
            "reused": "r" if stream.session_reused else ".",
            "early": "1" if stream.early_data else "",
        }
        print(json.dumps(line), flush=True)
        if close:
            return


async def _main(cert: str, key: str) -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_tls, _handler, 0, ssl_context=context, host="127.0.0.1",
                max_early_data=16384,
            )
        )
        print(server.port, flush=True)


if __name__ == "__main__":
    trio.run(_main, sys.argv[1], sys.argv[2])
