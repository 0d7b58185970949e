# Test helpers for the client adapters: certificates, contexts, peers.
#
# * PKI: resume.testing's ThrowawayPKI with the names and ALPN these tests use;
#   contexts pinned to one TLS version (every TLS test runs under 1.2 and 1.3).
# * TrioEchoServer: a minimal trio.SSLStream echo server on 127.0.0.1 (free
#   port) that records, per connection, whether the server resumed the session
#   and which client certificate it saw; it can also cut connections without
#   close_notify.
# * SServer: ``openssl s_server`` on a free port (``-accept 0``; the port is read
#   from its ``ACCEPT`` line), with readiness wait and cleanup.
from __future__ import annotations

import contextlib
import hashlib
import re
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trustme
from programs import require

from resume.testing import (
    TLS_VERSION_NAMES,
    TLS_VERSIONS,
    ThrowawayPKI,
    pin_tls_version,
)

VERSIONS = TLS_VERSIONS
VERSION_NAMES = TLS_VERSION_NAMES


pin = pin_tls_version


class PKI:
    """resume.testing's ThrowawayPKI with a certificate for localhost/127.0.0.1/alias.test.

    Also a second, unrelated CA (``other_ca``), and the two client certificates
    as ``client_a``/``client_b``. Server contexts offer ALPN "a" and "b".
    """

    def __init__(self) -> None:
        self._pki = ThrowawayPKI("localhost", "127.0.0.1", "alias.test")
        self.ca = self._pki.ca
        self.other_ca = trustme.CA()
        self.server_cert = self._pki.server_cert
        self.client_a, self.client_b = self._pki.client_certs

    def server_context(
        self, version: str, *, request_client_cert: bool = False, tickets: bool = True
    ) -> ssl.SSLContext:
        return self._pki.server_context(
            version,
            client_certs=ssl.CERT_OPTIONAL if request_client_cert else ssl.CERT_NONE,
            tickets=tickets,
            alpn=["a", "b"],
        )

    def client_context(self, version: str) -> ssl.SSLContext:
        return self._pki.client_context(version)


def cert_fingerprint(der: bytes | None) -> str | None:
    return None if der is None else hashlib.sha256(der).hexdigest()[:16]


# -- a minimal trio TLS echo server ---------------------------------------------------


@dataclass
class ServerRecord:
    reused: bool
    version: str | None
    client_cert: str | None
    alpn: str | None


@dataclass
class TrioEchoServer:
    """A trio.SSLStream echo server; ``records`` holds one entry per handshake."""

    context: ssl.SSLContext
    port: int = 0
    records: list[ServerRecord] = field(default_factory=list)
    #: When set, the server answers, then closes TCP without close_notify.
    cut: bool = False
    #: When set, the server accepts TCP and never answers the ClientHello.
    stall: bool = False
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        if self.stall:
            try:
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(tcp)
        stream = trio.SSLStream(tcp, self.context, server_side=True)
        try:
            await stream.do_handshake()
            obj = stream._ssl_object
            self.records.append(
                ServerRecord(
                    obj.session_reused,
                    obj.version(),
                    cert_fingerprint(obj.getpeercert(binary_form=True)),
                    obj.selected_alpn_protocol(),
                )
            )
            while True:
                data = await stream.receive_some()
                if not data:
                    break
                await stream.send_all(data)
                if self.cut:
                    await trio.aclose_forcefully(tcp)
                    return
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel_scope:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            await trio.serve_listeners(self._handle, listeners, task_status=task_status)

    @property
    def reused(self) -> list[bool]:
        return [r.reused for r in self.records]


async def start_echo_server(
    nursery: trio.Nursery, context: ssl.SSLContext, *, cut: bool = False
) -> TrioEchoServer:
    server = TrioEchoServer(context, cut=cut)
    await nursery.start(server.run)
    return server


# -- openssl s_server ------------------------------------------------------------------

class SServer:
    """``openssl s_server -rev`` (reverses each line) on 127.0.0.1 and a free port."""

    def __init__(self, pki: PKI, version: str, *, tickets: bool = True) -> None:
        openssl = require("openssl")
        self._dir = tempfile.TemporaryDirectory()
        d = Path(self._dir.name)
        pki.server_cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
        args = [
            openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", str(d / "server.pem"),
            "-rev", "-tls1_3" if version == "1.3" else "-tls1_2",
        ]
        if not tickets:
            args.append("-no_ticket")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.port = self._wait_ready()
        assert self.proc.stdout is not None
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _wait_ready(self) -> int:
        assert self.proc.stdout is not None
        # s_server prints "ACCEPT 127.0.0.1:PORT" once it listens (with -accept
        # 0, the port the kernel chose). The read blocks until it does or exits.
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            match = re.match(r"ACCEPT\s+\S*:(\d+)", line)
            if match:
                return int(match.group(1))
        self.close()
        raise RuntimeError("openssl s_server exited before it listened")

    def _drain_output(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_drain"):
            self._drain.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._dir.cleanup()


@contextlib.contextmanager
def s_server(pki: PKI, version: str, *, tickets: bool = True) -> Iterator[SServer]:
    server = SServer(pki, version, tickets=tickets)
    try:
        yield server
    finally:
        server.close()
