# A real stunnel for tests: TLS in front of a plain HTTP backend, everything in a
# temporary directory.
#
# Why stunnel: with ``options = NO_TICKET`` it resumes TLS 1.2 from a session-ID
# cache only, the server-side state that OpenSSL forgets when a connection ends
# without close_notify or in a fatal alert (ssl_clear_bad_session()). A client
# that keeps resuming against it keeps its sessions alive on the server too;
# tickets hide that, because the client holds the whole state.
#
# How it runs: ``foreground = yes`` keeps stunnel a child of the test process
# (one signal to one pid stops it); its log, certificate and key live in the
# server's own directory. The backend is tests/http_backend.py's HTTPBackend,
# started and stopped with the server unless one is given.
#
# The server's record: stunnel logs, at level 6 (info), one line per TLS
# connection after its handshake, tagged with the connection's number:
#
#   2026.01.01 12:00:00 LOG5[3]: Service [https] accepted connection from 127.0.0.1:40112
#   2026.01.01 12:00:00 LOG6[3]: TLS accepted: previous session reused
#   2026.01.01 12:00:00 LOG6[4]: TLS accepted: new session negotiated
#
# (stunnel 5.68; checked against ``openssl s_client -sess_in``, which said
# "Reused" exactly where stunnel said "previous session reused"), and how the
# client ended the connection: "TLS closed (SSL_read)" after a close_notify,
# "TLS socket closed (SSL_read)" after a bare EOF. connections() parses them:
# one StunnelConnection per completed handshake, oldest first.
#
#   ca = trustme.CA()
#   with StunnelServer(ca) as server:      # TLS 1.2, NO_TICKET
#       port = server.port
#       ... connect to https://localhost:port/, verify with server.ca_file ...
#       server.connections()               # [StunnelConnection(number, reused, ...), ...]
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import trustme
from http_backend import HTTPBackend
from nginx_server import free_port
from peer_process import stop_process, wait_listening
from programs import require

__all__ = ["StunnelConnection", "StunnelServer", "stunnel_binary"]

#: How long stunnel gets to start listening.
_START_TIMEOUT = 15.0

_ACCEPTED = re.compile(
    r"LOG\d\[(\d+)\]: TLS accepted: (new session negotiated|previous session reused)"
)
_CLOSED = re.compile(r"LOG\d\[(\d+)\]: TLS (socket )?closed \(SSL_read\)")


def stunnel_binary() -> str:
    """The stunnel executable; skips the test (fails it under CI=true) when it is missing."""
    return require("stunnel4")


@dataclass(frozen=True)
class StunnelConnection:
    """One TLS connection stunnel accepted: its number in the log and whether it resumed."""

    number: int
    reused: bool
    #: How the client ended it, as stunnel saw it: True after a close_notify
    #: ("TLS closed"), False after a bare EOF ("TLS socket closed"), None while
    #: it is open or when it ended otherwise.
    close_notify: bool | None = None


@dataclass
class StunnelServer:
    """stunnel on 127.0.0.1 with a certificate issued by *ca*, in front of an HTTP backend.

    ``options`` are stunnel ``options =`` lines (OpenSSL SSL_OP_* names without
    the prefix); the default, NO_TICKET, leaves the session-ID cache as the only
    way to resume. ``protocols`` are the TLS versions allowed (sslVersionMin/Max).
    """

    ca: trustme.CA
    protocols: Sequence[str] = ("TLSv1.2",)
    options: Sequence[str] = ("NO_TICKET",)
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    session_timeout: int = 300
    backend: HTTPBackend | None = None
    directory: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="resume-stunnel-"))
    )
    port: int = 0
    _own_backend: HTTPBackend | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that verifies the server."""
        return self.directory / "ca.pem"

    @property
    def log_file(self) -> Path:
        """stunnel's log (level 6: one "TLS accepted" line per connection)."""
        return self.directory / "stunnel.log"

    def connections(self) -> list[StunnelConnection]:
        """Every TLS connection accepted so far, oldest first (per the log)."""
        if not self.log_file.exists():
            return []
        accepted: dict[int, bool] = {}
        closed: dict[int, bool] = {}
        for line in self.log_file.read_text(errors="replace").splitlines():
            if match := _ACCEPTED.search(line):
                accepted[int(match[1])] = match[2].startswith("previous")
            elif match := _CLOSED.search(line):
                closed[int(match[1])] = match[2] is None
        return [
            StunnelConnection(number, reused, closed.get(number))
            for number, reused in accepted.items()
        ]

    def config(self, backend_port: int) -> str:
        """The stunnel.conf text."""
        d = self.directory
        lines = [
            "foreground = yes",
            "pid =",
            "debug = info",
            f"output = {self.log_file}",
            "[https]",
            f"accept = 127.0.0.1:{self.port}",
            f"connect = 127.0.0.1:{backend_port}",
            f"cert = {d / 'server.pem'}",
            f"key = {d / 'server.key'}",
            f"sslVersionMin = {min(self.protocols)}",
            f"sslVersionMax = {max(self.protocols)}",
            f"sessionCacheTimeout = {self.session_timeout}",
        ]
        lines += [f"options = {option}" for option in self.options]
        return "\n".join(lines) + "\n"

    def start(self) -> StunnelServer:
        """Write the certificate and the config, start stunnel (and the backend), wait."""
        binary = stunnel_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert = self.ca.issue_cert(*self.server_names)
        key = self.directory / "server.key"
        cert.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)  # stunnel warns about a key others can read
        chain = self.directory / "server.pem"
        chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        backend = self.backend
        if backend is None:
            backend = self._own_backend = HTTPBackend().start()
        self.port = self.port or free_port(("127.0.0.1",))
        conf = self.directory / "stunnel.conf"
        conf.write_text(self.config(backend.port))
        self._proc = subprocess.Popen(
            [binary, str(conf)],
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
        # A bare TCP connection: stunnel logs it (no TLS accepted line).
        assert self._proc is not None
        log = self.log_file
        wait_listening(self._proc, [("127.0.0.1", self.port)], "stunnel",
                       lambda: log.read_text() if log.exists() else "", _START_TIMEOUT)
    def stop(self) -> None:
        """Stop stunnel (SIGTERM, then SIGKILL) and the backend it started."""
        proc, self._proc = self._proc, None
        stop_process(proc)
        backend, self._own_backend = self._own_backend, None
        if backend is not None:
            backend.stop()
    def cleanup(self) -> None:
        """Stop everything and remove the directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> StunnelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
