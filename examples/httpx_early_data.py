"""httpx sends safe requests as TLS 1.3 early data (0-RTT) with resume.httpx.

A trio TLS server (``resume.trio.serve_tls`` with ``max_early_data``, a
throwaway certificate for localhost) answers each request with whether it
arrived as early data; every request goes on a new connection
(``Connection: close``), which is where early data saves a round trip. The
first connection has no session yet (a full handshake); later GETs resume and
go out with the ClientHello; a POST and a GET that opts out never do.

Read docs/howto/early-data.rst ("0-RTT: when it is safe") before you turn
early data on: a recorded first flight can be replayed.

    python examples/httpx_early_data.py
"""

from __future__ import annotations

import ssl
from functools import partial

import httpx
import trio

import resume.httpx
from resume.testing import ThrowawayPKI
from resume.trio import TLSServerStream, serve_tls


async def handler(stream: TLSServerStream) -> None:
    # Read one HTTP/1.1 request head (and a short body, if any); answer whether the
    # request's first bytes came as early data, before the handshake had finished.
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = await stream.receive_some()
        if not chunk:
            return
        request += chunk
    method = request.split(b" ", 1)[0].decode()
    body = f"{method} early_data={stream.early_data}".encode()
    await stream.send_all(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (len(body), body)
    )


def show(label: str, response: httpx.Response) -> None:
    early = response.extensions.get("early_data", False)
    print(f"{label}: client early_data={early}, server says {response.text}")


async def async_requests(url: str, context: ssl.SSLContext) -> None:
    transport = resume.httpx.AsyncHTTPTransport(verify=context, early_data=True)
    close = {"Connection": "close"}
    async with httpx.AsyncClient(transport=transport) as client:
        for n in range(1, 4):
            show(f"trio GET {n}", await client.get(url, headers=close))
        show("trio POST", await client.post(url, content=b"x", headers=close))
        opted_out = await client.get(url, headers=close, extensions={"early_data": False})
        show("trio GET opted out", opted_out)


def sync_requests(url: str, context: ssl.SSLContext) -> None:
    transport = resume.httpx.HTTPTransport(verify=context, early_data=True)
    with httpx.Client(transport=transport) as client:
        for n in range(1, 3):
            show(f"sync GET {n}", client.get(url, headers={"Connection": "close"}))


async def main() -> None:
    pki = ThrowawayPKI()  # a throwaway CA and a certificate for localhost
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_tls,
                handler,
                0,
                ssl_context=pki.server_context("1.3"),
                host="127.0.0.1",
                max_early_data=16384,  # what the tickets allow (OpenSSL's default limit)
            )
        )
        url = f"https://localhost:{server.port}/"
        await async_requests(url, pki.client_context())
        await trio.to_thread.run_sync(sync_requests, url, pki.client_context())
        server.close()


if __name__ == "__main__":
    trio.run(main)
