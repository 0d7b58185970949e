# A real nginx for tests: started in the foreground, one process, everything in a
# temporary directory.
#
# Why nginx: it is the TLS terminator most fleets run, and its session cache and
# ticket switches (ssl_session_cache, ssl_session_tickets, ssl_session_ticket_key)
# are exactly the configurations a resumption client must cope with.
#
# How it runs: ``daemon off; master_process off;`` keeps nginx a single child of
# the test process, so stopping it is one signal to one pid. The pid file, the
# error and access logs and every temporary directory nginx insists on creating
# live in the server's own directory, so nothing outside it is touched and
# several servers can run side by side (one per backend of a "fleet").
#
# API (meant for reuse by HTTP-client tests too):
#
#   ca = trustme.CA()
#   site = NginxSite(server_names=("localhost",), session_tickets=False)
#   with NginxServer(ca, [site]) as server:
#       port = server.port(0)          # the port of site 0 (a free one if port=0)
#       ... connect, verify with server.ca_file ...
#       server.access_log()            # one dict per request, with ``reused``
#
# Each site is one ``server { }`` block: its names, the addresses it listens
# on (all on one port, so two backends on 127.0.0.2 and 127.0.0.3 can share a
# port number), its TLS versions and its resumption switches. The access log
# is JSON (``escape=json``), one object per request: remote and server address,
# server port, SNI name, TLS version, ``$ssl_session_reused`` ("r" or "."),
# request line, status, ``$connection`` (the connection's serial number) and
# ``$ssl_early_data``, under both ``early`` and ``early_data`` ("1" for a
# request nginx read as TLS 1.3 early data, before its handshake ended; ""
# otherwise).
#
# Note: nginx cannot share a session cache between instances (the shared zone is
# shared memory of one nginx); fleets share a ticket key file instead.
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from peer_process import stop_process, wait_listening
from programs import require

__all__ = ["NginxServer", "NginxSite", "free_port", "nginx_binary"]

#: How long nginx gets to start listening.
_START_TIMEOUT = 15.0


def nginx_binary() -> str:
    """The nginx executable; skips the test (fails it under CI=true) when nginx is missing."""
    return require("nginx")


def free_port(addresses: Sequence[str]) -> int:
    """A TCP port that is free on every address of *addresses* (IPv4) right now."""
    for _ in range(50):
        first = socket.socket()
        try:
            first.bind((addresses[0], 0))
            port = int(first.getsockname()[1])
            others: list[socket.socket] = []
            try:
                for address in addresses[1:]:
                    sock = socket.socket()
                    others.append(sock)
                    sock.bind((address, port))
            except OSError:
                continue
            finally:
                for sock in others:
                    sock.close()
            return port
        finally:
            first.close()
    raise RuntimeError(f"no port free on all of {addresses}")


@dataclass(frozen=True)
class NginxSite:
    """One ``server { }`` block of an :class:`NginxServer`.

    ``session_cache`` is the value of ``ssl_session_cache`` ("shared:NAME:SIZE",
    "builtin", "none" or "off"); ``ticket_key_file`` is a file of 80 (or 48)
    random bytes for ``ssl_session_ticket_key``, shared by a fleet.
    """

    server_names: tuple[str, ...] = ("localhost",)
    addresses: tuple[str, ...] = ("127.0.0.1",)
    port: int = 0
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    session_cache: str = "shared:resume_tests:1m"
    session_tickets: bool = True
    ticket_key_file: Path | None = None
    session_timeout: int = 300
    body: str = "hello\n"
    extra: str = ""
    certificate: trustme.LeafCert | None = None
    #: Serve HTTP/2 too (``listen ... ssl http2``, offered through ALPN).
    http2: bool = False


@dataclass
class NginxServer:
    """An nginx process serving *sites* with certificates issued by *ca*."""

    ca: trustme.CA
    sites: Sequence[NginxSite]
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="resume-nginx-")))
    _ports: list[int] = field(default_factory=list, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that verifies every site."""
        return self.directory / "ca.pem"

    @property
    def error_log(self) -> Path:
        """nginx's error log."""
        return self.directory / "error.log"

    def port(self, site: int = 0) -> int:
        """The port site number *site* listens on."""
        return self._ports[site]

    def access_log(self) -> list[dict[str, Any]]:
        """Every request logged so far, oldest first (``reused`` is "r" or ".")."""
        path = self.directory / "access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def config(self) -> str:
        """The nginx.conf text for the current sites and ports."""
        d = self.directory
        lines = [
            "daemon off;",
            "master_process off;",
            f"pid {d / 'nginx.pid'};",
            f"error_log {d / 'error.log'} info;",
            "events { worker_connections 256; }",
            "http {",
        ]
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            lines.append(f"  {temp}_temp_path {d / temp};")
        lines += [
            "  log_format resume_tests escape=json '{"
            '"remote_addr":"$remote_addr","server_addr":"$server_addr",'
            '"server_port":"$server_port","sni":"$ssl_server_name",'
            '"protocol":"$ssl_protocol","reused":"$ssl_session_reused",'
            '"request":"$request","status":"$status","connection":"$connection",'
            '"early":"$ssl_early_data","early_data":"$ssl_early_data"'
            "}';",
            f"  access_log {d / 'access.log'} resume_tests;",
        ]
        for index, site in enumerate(self.sites):
            cert, key = d / f"site{index}.pem", d / f"site{index}.key"
            lines.append("  server {")
            for address in site.addresses:
                h2 = " http2" if site.http2 else ""
                lines.append(f"    listen {address}:{self._ports[index]} ssl{h2};")
            lines += [
                f"    server_name {' '.join(site.server_names)};",
                f"    ssl_certificate {cert};",
                f"    ssl_certificate_key {key};",
                f"    ssl_protocols {' '.join(site.protocols)};",
                f"    ssl_session_cache {site.session_cache};",
                f"    ssl_session_tickets {'on' if site.session_tickets else 'off'};",
                f"    ssl_session_timeout {site.session_timeout}s;",
            ]
            if site.ticket_key_file is not None:
                lines.append(f"    ssl_session_ticket_key {site.ticket_key_file};")
            if site.extra:
                lines.append(f"    {site.extra}")
            body = json.dumps(site.body)  # a double-quoted string nginx accepts
            lines.append(f"    location / {{ return 200 {body}; }}")
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def start(self) -> NginxServer:
        """Write certificates and the config, start nginx and wait until it listens."""
        binary = nginx_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._ports = []
        for index, site in enumerate(self.sites):
            cert = site.certificate or self.ca.issue_cert(*site.server_names, *site.addresses)
            cert.private_key_pem.write_to_path(str(self.directory / f"site{index}.key"))
            chain = self.directory / f"site{index}.pem"
            chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
            self._ports.append(site.port or free_port(site.addresses))
        conf = self.directory / "nginx.conf"
        conf.write_text(self.config())
        self._proc = subprocess.Popen(
            [binary, "-p", str(self.directory), "-c", str(conf), "-e", str(self.error_log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        assert self._proc is not None
        addresses = [
            (address, self._ports[i]) for i, s in enumerate(self.sites) for address in s.addresses
        ]
        log = self.error_log
        wait_listening(self._proc, addresses, "nginx",
                       lambda: log.read_text() if log.exists() else "", _START_TIMEOUT)
    def stop(self) -> None:
        """Stop nginx (SIGQUIT, then SIGKILL) and wait for it."""
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGQUIT)
    def cleanup(self) -> None:
        """Stop nginx and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
