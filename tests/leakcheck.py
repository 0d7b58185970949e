"""Count the memory a long run of resumed TLS connections costs (run as a script).

``python tests/leakcheck.py --connections=3000 --tls=1.3 [--client=trio|asyncio]
[--fallback] [--every=N]`` runs a ``resume.trio.serve_tls`` server and a resume
client in one process; the client makes sequential connections (handshake, one
line each way, clean close) with one SessionCache, so every connection after
the first resumes. RSS (``VmRSS`` of /proc/self/status) is sampled after a
warm-up of a tenth of the run and then every *every* connections; the last
line printed is a JSON object: ``growth_kb`` (RSS at the end minus after
warm-up), ``samples_kb``, ``reused``, ``connections`` and ``native`` (whether
the native session path was used).

``--fallback`` makes the OpenSSL binding's probe refuse (as on a build whose
``_ssl`` layout is unknown), so sessions go through ``SSLObject.session``: the
path that leaks on CPython builds without the gh-116810 fix.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import ssl
import sys
import threading
from functools import partial
from pathlib import Path

import trio
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import resume
import resume.asyncio
import resume.trio
from resume._openssl import binding as _binding

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def rss_kb() -> int:
    """The resident set size of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def contexts(version: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    for ctx in (server, client):
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return server, client


async def _handler(stream: resume.trio.TLSServerStream) -> None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(100)
        if not chunk:
            return
        data += chunk
    await stream.send_all(data[::-1])


class Sampler:
    def __init__(self, total: int, every: int) -> None:
        self.total = total
        self.every = every
        self.warm = max(total // 10, 1)
        self.samples: list[int] = []
        self.reused = 0

    def after(self, i: int, reused: bool) -> None:
        self.reused += reused
        done = i + 1
        if done == self.warm or (done > self.warm and (done - self.warm) % self.every == 0):
            gc.collect()
            self.samples.append(rss_kb())


async def trio_client(port: int, client: ssl.SSLContext, sampler: Sampler) -> None:
    cache = resume.SessionCache()
    for i in range(sampler.total):
        stream = await resume.trio.open_tls_stream(
            "127.0.0.1", port, server_hostname="localhost", ssl_context=client, cache=cache
        )
        async with stream:
            await stream.send_all(b"ping\n")
            reply = b""
            while not reply.endswith(b"gnip"):
                chunk = await stream.receive_some(100)
                if not chunk:
                    break
                reply += chunk
            reused = stream.session_reused
        sampler.after(i, reused)
    cache.clear()


def asyncio_client(port: int, client: ssl.SSLContext, sampler: Sampler) -> None:
    async def main() -> None:
        cache = resume.SessionCache()
        for i in range(sampler.total):
            reader, writer = await resume.asyncio.open_connection(
                "127.0.0.1", port, server_hostname="localhost", ssl=client, cache=cache
            )
            writer.write(b"ping\n")
            reply = b""
            while not reply.endswith(b"gnip"):
                chunk = await reader.read(100)
                if not chunk:
                    break
                reply += chunk
            reused = resume.asyncio.session_info(writer).session_reused
            writer.close()
            await writer.wait_closed()
            sampler.after(i, reused)
        cache.clear()

    asyncio.run(main())


async def run(args: argparse.Namespace, sampler: Sampler) -> None:
    server_ctx, client_ctx = contexts(args.tls)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(_handler_server, server_ctx)
        )
        if args.client == "trio":
            await trio_client(server.port, client_ctx, sampler)
        else:
            await trio.to_thread.run_sync(asyncio_client, server.port, client_ctx, sampler)
        nursery.cancel_scope.cancel()


async def _handler_server(
    server_ctx: ssl.SSLContext, task_status: trio.TaskStatus[resume.trio.TLSServer]
) -> None:
    await resume.trio.serve_tls(
        _handler, 0, ssl_context=server_ctx, host="127.0.0.1", task_status=task_status
    )


def main(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--tls", choices=sorted(VERSIONS), default="1.3")
    parser.add_argument("--client", choices=["trio", "asyncio"], default="trio")
    parser.add_argument("--fallback", action="store_true")
    args = parser.parse_args(argv)
    if args.fallback:
        _binding._reset_for_tests()
        _binding._HEADER_SIZE = object.__basicsize__ + 8  # the probe refuses
    native = _binding.available() is not None
    sampler = Sampler(args.connections, args.every)
    assert threading.current_thread() is threading.main_thread()
    trio.run(run, args, sampler)
    result = {
        "connections": args.connections,
        "tls": args.tls,
        "client": args.client,
        "native": native,
        "reused": sampler.reused,
        "samples_kb": sampler.samples,
        "growth_kb": sampler.samples[-1] - sampler.samples[0],
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
