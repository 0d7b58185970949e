"""``resume connect``: real runs (subprocesses) against ``openssl s_server``, with stores.

Run twice with the same store, the second run resumes: with SQLite and with a
real redis-server, under TLS 1.2 and TLS 1.3. A store that is down does not
fail the connection.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from programs import require
from redis_server import RedisServer, redis_server

from resume._cli.connect import parse_target

__all__ = ["SServer", "redis_server", "resume_connect"]

class SServer:
    """``openssl s_server -rev`` (answers each line reversed) on 127.0.0.1, a free port."""

    def __init__(
        self, directory: Path, version: str, ca: trustme.CA | None = None, port: int = 0
    ) -> None:
        openssl = require("openssl")
        self.ca = ca = ca if ca is not None else trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        self.cafile = directory / f"ca-{port}.pem" if port else directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.cafile))
        server_pem = directory / (f"server-{port}.pem" if port else "server.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
        self.proc = subprocess.Popen(
            [
                openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(server_pem),
                "-rev", "-tls1_3" if version == "1.3" else "-tls1_2",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.port = 0
        self._want = port
        self._listening = threading.Event()
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        # s_server prints "ACCEPT 127.0.0.1:PORT" once it listens (not with -quiet).
        if not self._listening.wait(20) or not self.port:
            self.close()
            raise RuntimeError("openssl s_server did not start listening")

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not self.port:
                # With an explicit port, s_server prints a bare "ACCEPT".
                match = re.match(rb"ACCEPT(?:\s+\S*:(\d+))?\s*$", raw)
                if match:
                    self.port = int(match.group(1)) if match.group(1) else self._want
                    self._listening.set()
        self._listening.set()  # exited

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            self.proc.kill()
            self.proc.wait()
        self._drain.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def s_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SServer]:
    server = SServer(tmp_path, request.param)
    server.version = request.param  # type: ignore[attr-defined]
    yield server
    server.close()


def resume_connect(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m resume connect ARGS`` in a new process."""
    proc = subprocess.run(
        [sys.executable, "-m", "resume", "connect", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"},
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_json(server: SServer, *extra: str) -> dict[str, Any]:
    proc = resume_connect(
        f"localhost:{server.port}", "--cafile", str(server.cafile), "--json", *extra
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


class TestTwoRuns:
    def test_sqlite_store_second_run_resumes(self, s_server: SServer, tmp_path: Path) -> None:
        """With --sessions sqlite:PATH the second run resumes; the file and its key are 0600."""
        store = f"sqlite:{tmp_path / 'sessions.db'}"
        first = run_json(s_server, "--sessions", store)
        key = (tmp_path / "sessions.db.key").read_bytes()
        second = run_json(s_server, "--sessions", store)
        assert (tmp_path / "sessions.db.key").read_bytes() == key  # made once, on first use
        assert stat.S_IMODE((tmp_path / "sessions.db.key").stat().st_mode) == 0o600
        version = f"TLSv{s_server.version}"  # type: ignore[attr-defined]
        assert (first["resumed"], first["tls_version"]) == (False, version)
        assert (second["resumed"], second["tls_version"]) == (True, version)
        assert first["answer"] == second["answer"] == "olleh"
        assert first["stored"] is True
        assert stat.S_IMODE((tmp_path / "sessions.db").stat().st_mode) == 0o600

    def test_redis_store_second_run_resumes(
        self, s_server: SServer, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """With --sessions redis://... --store-key-file FILE the second run resumes."""
        key = tmp_path / "redis.key"
        args = ("--sessions", redis_server.url, "--store-key-file", str(key))
        first = run_json(s_server, *args)
        assert stat.S_IMODE(key.stat().st_mode) == 0o600  # made on first use
        second = run_json(s_server, *args)
        assert (first["resumed"], second["resumed"]) == (False, True)
        assert second["store"] == "redis"

    def test_redis_store_needs_a_key_or_the_opt_out(
        self, s_server: SServer, redis_server: RedisServer
    ) -> None:
        """Without a key file, redis:// is bad usage; the opt-out works and warns every run."""
        proc = resume_connect(
            f"localhost:{s_server.port}", "--cafile", str(s_server.cafile),
            "--sessions", redis_server.url, check=False,
        )
        assert proc.returncode == 2
        assert "--store-key-file FILE" in proc.stderr
        results = []
        for _ in range(2):
            proc = resume_connect(
                f"localhost:{s_server.port}", "--cafile", str(s_server.cafile), "--json",
                "--sessions", redis_server.url, "--insecure-unauthenticated-store",
            )
            results.append(json.loads(proc.stdout)["resumed"])
            assert "insecure_unauthenticated=True: entries are not authenticated" in proc.stderr
        assert results == [False, True]

    def test_without_a_store_nothing_is_kept(self, s_server: SServer) -> None:
        """Without --sessions every run is a full handshake."""
        assert [run_json(s_server)["resumed"] for _ in range(2)] == [False, False]

    def test_tls_option_pins_the_version(self, s_server: SServer, tmp_path: Path) -> None:
        """--tls 1.2 / 1.3 is the version used and reported."""
        version = s_server.version  # type: ignore[attr-defined]
        result = run_json(s_server, "--tls", version)
        assert result["tls_version"] == f"TLSv{version}"

    def test_encrypted_store_with_a_key_file(self, s_server: SServer, tmp_path: Path) -> None:
        """--key-file encrypts the store; another key finds nothing and does a full handshake."""
        key = tmp_path / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        other = tmp_path / "other"
        other.write_bytes(os.urandom(32))
        other.chmod(0o600)
        store = f"sqlite:{tmp_path / 's.db'}"
        run_json(s_server, "--sessions", store, "--key-file", str(key))
        assert run_json(s_server, "--sessions", store, "--key-file", str(other))["resumed"] is False
        assert run_json(s_server, "--sessions", store, "--key-file", str(key))["resumed"] is True

    def test_text_output(self, s_server: SServer, tmp_path: Path) -> None:
        """Without --json: one line with the version and the outcome."""
        store = f"sqlite:{tmp_path / 's.db'}"
        args = (f"localhost:{s_server.port}", "--cafile", str(s_server.cafile), "--sessions", store)
        first = resume_connect(*args).stdout
        second = resume_connect(*args).stdout
        assert "full handshake" in first
        assert re.search(r"TLSv1\.[23], resumed", second)


class TestStoreDown:
    def test_redis_down_does_not_fail_the_connection(
        self, s_server: SServer, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """Redis stopped: exit 0, full handshake, one warning line; back up: resumption returns."""
        store = ("--sessions", redis_server.url, "--store-key-file", str(tmp_path / "key"))
        run_json(s_server, *store)
        redis_server.stop()
        proc = resume_connect(
            f"localhost:{s_server.port}", "--cafile", str(s_server.cafile), "--json", *store
        )
        assert json.loads(proc.stdout)["resumed"] is False
        warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "unavailable" in warnings[0]
        redis_server.start()
        assert run_json(s_server, *store)["resumed"] is False
        assert run_json(s_server, *store)["resumed"] is True

    def test_password_never_reaches_stderr(self, s_server: SServer, tmp_path: Path) -> None:
        """A Redis password in --sessions is redacted from every line the command prints."""
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        for url in (f"redis://user:hunter2@127.0.0.1:{port}/0",
                    f"redis://127.0.0.1:{port}/0?password=hunter2"):
            proc = resume_connect(
                f"localhost:{s_server.port}", "--cafile", str(s_server.cafile), "--json",
                "--sessions", url, "--store-key-file", str(tmp_path / "key"),
            )
            assert "unavailable" in proc.stderr
            assert "hunter2" not in proc.stderr + proc.stdout
        bad = resume_connect("localhost:1", "--sessions", "mysql://user:hunter2@db/", check=False)
        assert bad.returncode == 2 and "hunter2" not in bad.stderr and "***" in bad.stderr


class TestErrors:
    def test_connection_refused(self, tmp_path: Path) -> None:
        """Nobody listening: exit 1 and a message naming the target."""
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = resume_connect(f"127.0.0.1:{port}", check=False)
        assert proc.returncode == 1
        assert f"127.0.0.1:{port}: connection refused" in proc.stderr

    def test_untrusted_certificate(self, s_server: SServer, tmp_path: Path) -> None:
        """A server the CA file does not vouch for: exit 1, verification error, nothing stored."""
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        store = tmp_path / "s.db"
        proc = resume_connect(
            f"localhost:{s_server.port}", "--cafile", str(other), "--sessions", f"sqlite:{store}",
            check=False,
        )
        assert proc.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr or "certificate" in proc.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["localhost:0"], "port must be a number from 1 to 65535"),
            (["localhost:1", "--sessions", "mysql://x"], "sqlite:PATH or redis://"),
            (["localhost:1", "--sessions", "sqlite:"], "needs a path"),
        ],
    )
    def test_bad_usage(self, args: list[str], message: str) -> None:
        """Bad arguments: exit 2 and a message saying what is expected."""
        proc = resume_connect(*args, check=False)
        assert proc.returncode == 2
        assert message in proc.stderr

    def test_loose_key_file_is_refused(self, tmp_path: Path) -> None:
        """A key file others can read: exit 1, 'chmod 600'."""
        key = tmp_path / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o644)
        proc = resume_connect(
            "localhost:1", "--sessions", f"sqlite:{tmp_path / 's.db'}", "--key-file", str(key),
            check=False,
        )
        assert proc.returncode == 1
        assert "chmod 600" in proc.stderr


class TestParseTarget:
    @pytest.mark.parametrize(
        ("target", "expected"),
        [
            ("example.com:443", ("example.com", 443)),
            ("127.0.0.1:8443", ("127.0.0.1", 8443)),
            ("[::1]:443", ("::1", 443)),
            # The port defaults to 443, as in resume probe.
            ("example.com", ("example.com", 443)),
            ("[::1]", ("::1", 443)),
        ],
    )
    def test_good(self, target: str, expected: tuple[str, int]) -> None:
        """HOST:PORT and [IPV6]:PORT are split."""
        assert parse_target(target) == expected

    @pytest.mark.parametrize("target", ["", ":443", "host:", "host:x", "host:70000",
                                        "[::1]443"])
    def test_bad(self, target: str) -> None:
        """Anything else is a ValueError."""
        with pytest.raises(ValueError, match=r"expected|port|host"):
            parse_target(target)
