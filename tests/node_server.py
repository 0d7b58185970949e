# A real Node.js HTTPS server for tests, everything in a temporary directory.
#
# Why Node.js: its TLS server sends TLS 1.3 tickets only after full handshakes
# (two of them, OpenSSL's default; none after a resumed handshake: checked here
# with Node 20.20 on OpenSSL 3.0.19, see
# tests/integration/test_pools_real_servers.py::test_node_sends_tickets_only_after_full_handshakes).
# A client that uses each ticket once therefore runs dry every third
# connection, which is what SessionCache(tls13_ticket_reuse=True) is for. On
# TLS 1.2 it resumes from its (stateless) tickets.
#
# How it runs: ``node server.js config.json``; the script is written by this
# module into the server's directory beside the certificate, the key and the
# config. The process stays a child of the test process.
#
# The server's record: for every request, before it answers, the script appends
# one JSON line to ``requests.jsonl``:
#
#   {"connection": 3, "remote_port": 40112, "protocol": "TLSv1.3",
#    "reused": true, "path": "/?delay=200"}
#
# ``reused`` is ``req.socket.isSessionReused()`` (SSL_session_reused() on the
# server's SSL*); ``connection`` numbers the TLS connections in the order
# their handshakes completed. A GET with ``?delay=MS`` is held about MS
# milliseconds before its answer (at most 10 s). Keep-alive connections stay
# open for a minute, so an idle pooled connection is not closed under a test.
#
#   ca = trustme.CA()
#   with NodeServer(ca, protocols=("TLSv1.3",)) as server:
#       port = server.port
#       ... connect to https://localhost:port/, verify with server.ca_file ...
#       server.requests()                  # one dict per request
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from nginx_server import free_port
from peer_process import stop_process, wait_listening
from programs import require

__all__ = ["NodeServer", "node_binary"]

#: How long node gets to start listening.
_START_TIMEOUT = 15.0

_SCRIPT = """\
'use strict';
const fs = require('fs');
const https = require('https');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let connections = 0;
const server = https.createServer({
  key: fs.readFileSync(config.key),
  cert: fs.readFileSync(config.cert),
  minVersion: config.minVersion,
  maxVersion: config.maxVersion,
}, (req, res) => {
  const socket = req.socket;
  const url = new URL(req.url, 'https://localhost');
  const delay = Math.min(Number(url.searchParams.get('delay') || 0), 10000);
  fs.appendFileSync(config.log, JSON.stringify({
    connection: socket.resumeConnection,
    remote_port: socket.remotePort,
    protocol: socket.getProtocol(),
    reused: socket.isSessionReused(),
    path: req.url,
  }) + '\\n');
  const answer = () => {
    res.writeHead(200, {'Content-Type': 'text/plain',
                        'Content-Length': Buffer.byteLength(config.body)});
    res.end(config.body);
  };
  if (delay > 0) setTimeout(answer, delay); else answer();
});
server.on('secureConnection', (socket) => { socket.resumeConnection = ++connections; });
server.keepAliveTimeout = 60000;
server.listen(config.port, '127.0.0.1');
"""


def node_binary() -> str:
    """The node executable; skips the test (fails it under CI=true) when it is missing."""
    return require("node")


@dataclass
class NodeServer:
    """A Node.js ``https`` server on 127.0.0.1 with a certificate issued by *ca*."""

    ca: trustme.CA
    protocols: Sequence[str] = ("TLSv1.2", "TLSv1.3")
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    body: str = "hello\n"
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="resume-node-")))
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that verifies the server."""
        return self.directory / "ca.pem"

    @property
    def log_file(self) -> Path:
        """One JSON line per request (see the top of this module)."""
        return self.directory / "requests.jsonl"

    @property
    def stderr_file(self) -> Path:
        """What node wrote to its standard error."""
        return self.directory / "stderr.log"

    def requests(self) -> list[dict[str, Any]]:
        """Every request so far, oldest first (``reused``, ``connection``, ``protocol``...)."""
        if not self.log_file.exists():
            return []
        lines = self.log_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def start(self) -> NodeServer:
        """Write the script, certificate and config, start node and wait until it listens."""
        binary = node_binary()
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert = self.ca.issue_cert(*self.server_names)
        cert.private_key_pem.write_to_path(str(d / "server.key"))
        (d / "server.pem").write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        (d / "server.js").write_text(_SCRIPT)
        self.port = self.port or free_port(("127.0.0.1",))
        versions = sorted(self.protocols)
        config = {
            "key": str(d / "server.key"),
            "cert": str(d / "server.pem"),
            "minVersion": versions[0],
            "maxVersion": versions[-1],
            "port": self.port,
            "log": str(self.log_file),
            "body": self.body,
        }
        (d / "config.json").write_text(json.dumps(config))
        with open(self.stderr_file, "wb") as stderr:
            self._proc = subprocess.Popen(
                [binary, str(d / "server.js"), str(d / "config.json")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=d,
            )
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        assert self._proc is not None
        stderr = self.stderr_file
        wait_listening(self._proc, [("127.0.0.1", self.port)], "node",
                       lambda: stderr.read_text(errors="replace"), _START_TIMEOUT)
    def stop(self) -> None:
        """Stop node (SIGTERM, then SIGKILL) and wait for it."""
        proc, self._proc = self._proc, None
        stop_process(proc)
    def cleanup(self) -> None:
        """Stop node and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> NodeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
