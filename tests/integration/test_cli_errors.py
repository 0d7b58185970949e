"""Command-line errors: one line on stderr naming what is at fault, and the exit code.

Usage errors exit 2, failures at run time exit 1, and none prints a traceback.
Each case runs the real command line: ``main()`` with captured stderr where
the process state does not matter, a subprocess where it does (a FIFO that
would block, a file size limit, a prompt for a passphrase).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from serverhelpers import ServerPKI
from test_cli_connect import SServer

from resume._cli import main
from resume._cli._common import parse_port, plural
from resume._cli.connect import MAX_LINE


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``resume ARGV`` in this process; return the exit code and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    """The single stderr line (asserting there is exactly one and no traceback)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def subprocess_cli(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "resume", *argv],
        capture_output=True, text=True, timeout=60, **kwargs,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(params=["1.2", "1.3"], ids=["tls1.2", "tls1.3"])
def s_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SServer]:
    server = SServer(tmp_path, request.param)
    yield server
    server.close()


class TestServeFiles:
    def test_missing_certificate_names_the_file(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--cert /nonexistent.pem: exit 2, the file named, 'no such file'."""
        code, err = cli(capsys, "serve", "--port", "0", "--cert", "/nonexistent.pem")
        assert code == 2
        assert one_line(err) == "resume serve: --cert /nonexistent.pem: no such file"

    def test_missing_key_file_names_the_file(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--key naming a missing file: exit 2, that file named."""
        missing = tmp_path / "nope.key"
        code, err = cli(capsys, "serve", "--cert", str(pki.cert_file), "--key", str(missing))
        assert code == 2
        assert one_line(err) == f"resume serve: --key {missing}: no such file"

    def test_certificate_without_its_key(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--cert alone, the key elsewhere ('[SSL] PEM lib' before): say to pass --key."""
        code, err = cli(capsys, "serve", "--cert", str(pki.cert_file))
        assert code == 2
        line = one_line(err)
        assert f"--cert {pki.cert_file}: no private key in it" in line and "--key FILE" in line

    def test_mismatched_key(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A key of another certificate: both files named, 'do not match'."""
        other = tmp_path / "other.key"
        trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(other))
        code, err = cli(capsys, "serve", "--cert", str(pki.cert_file), "--key", str(other))
        assert code == 2
        assert one_line(err) == (
            f"resume serve: --cert {pki.cert_file} and --key {other}: "
            "the certificate and the private key do not match"
        )

    def test_unreadable_key_is_named(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A --key file that holds no key (here: the certificate): that file named."""
        code, err = cli(capsys, "serve", "--cert", str(pki.cert_file), "--key", str(pki.cert_file))
        assert code == 2
        assert f"--key {pki.cert_file}: no PEM private key in it" in one_line(err)

    def test_encrypted_key_is_refused_without_a_prompt(
        self, pki: ServerPKI, tmp_path: Path
    ) -> None:
        """An encrypted key: exit 2 and a hint, not OpenSSL's passphrase prompt."""
        encrypted = tmp_path / "encrypted.key"
        pem = pki.server_cert.private_key_pem.bytes()
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(pem, password=None)
        encrypted.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        proc = subprocess_cli(
            "serve", "--port", "0", "--cert", str(pki.cert_file), "--key", str(encrypted),
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        assert proc.returncode == 2
        assert f"--key {encrypted}: the private key is encrypted" in one_line(proc.stderr)

    def test_fifo_as_cafile_is_refused(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A FIFO as --cafile: refused up front (reading it would block)."""
        fifo = tmp_path / "ca.fifo"
        os.mkfifo(fifo)
        code, err = cli(
            capsys, "serve", "--cert", str(pki.cert_file), "--key", str(pki.key_file),
            "--cafile", str(fifo),
        )
        assert code == 2
        assert one_line(err) == f"resume serve: --cafile {fifo}: not a regular file (a FIFO)"


class TestServeAddress:
    def test_taken_port_names_the_address(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A port another socket listens on: exit 1, HOST:PORT named, what to do."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            code, err = cli(
                capsys, "serve", "--port", str(port), "--cert", str(pki.cert_file),
                "--key", str(pki.key_file),
            )
        assert code == 1
        line = one_line(err)
        assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in line
        assert "--port" in line

    @pytest.mark.parametrize("port", ["\u0668\u0664\u0664\u0663", "65536", "-1", "8443x", ""])
    def test_bad_listen_port(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], port: str
    ) -> None:
        """--port in Arabic-Indic digits or out of 0-65535: exit 2, the value named."""
        code, err = cli(
            capsys, "serve", f"--port={port}", "--cert", str(pki.cert_file),
            "--key", str(pki.key_file),
        )
        assert code == 2
        assert f"the port must be a number from 0 to 65535, got {port!r}" in one_line(err)

    @pytest.mark.parametrize("option", ["--handshake-timeout", "--session-timeout"])
    @pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
    def test_bad_seconds(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], option: str, value: str
    ) -> None:
        """Seconds must be finite and positive."""
        code, err = cli(
            capsys, "serve", "--cert", str(pki.cert_file), f"{option}={value}",
        )
        assert code == 2
        assert f"argument {option}: expected a finite number of seconds" in one_line(err)

    def test_bad_ticket_count(self, pki: ServerPKI, capsys: pytest.CaptureFixture[str]) -> None:
        """--num-tickets -3: exit 2, the option named."""
        code, err = cli(capsys, "serve", "--cert", str(pki.cert_file), "--num-tickets=-3")
        assert code == 2
        assert "argument --num-tickets: expected a whole number from 0 to 1000" in one_line(err)


class TestConnectErrors:
    def test_connection_refused_names_the_address(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Nobody listening: exit 1, 'ADDRESS:PORT: connection refused'."""
        port = free_port()
        code, err = cli(capsys, "connect", f"127.0.0.1:{port}")
        assert code == 1
        assert one_line(err).startswith(f"resume connect: 127.0.0.1:{port}: connection refused")

    def test_untrusted_server_hints_at_cafile(
        self, s_server: SServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A certificate the system does not trust: the reason and a --cafile hint."""
        code, err = cli(capsys, "connect", f"localhost:{s_server.port}")
        assert code == 1
        line = one_line(err)
        assert "certificate verification failed for 'localhost'" in line
        assert "unable to get local issuer certificate" in line
        assert "--cafile FILE" in line

    def test_wrong_name_hints_at_server_name(
        self, s_server: SServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A certificate for another name: the reason and a --server-name hint."""
        code, err = cli(
            capsys, "connect", f"127.0.0.1:{s_server.port}", "--cafile", str(s_server.cafile),
            "--server-name", "example.org",
        )
        assert code == 1
        line = one_line(err)
        assert "certificate verification failed for 'example.org'" in line
        assert "Hostname mismatch" in line and "--server-name NAME" in line

    @pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "soon"])
    def test_bad_timeout(self, capsys: pytest.CaptureFixture[str], value: str) -> None:
        """--timeout -1 / nan / inf: exit 2, the value named (a traceback before)."""
        code, err = cli(capsys, "connect", "127.0.0.1:1", f"--timeout={value}")
        assert code == 2
        line = one_line(err)
        assert line.startswith("resume connect: argument --timeout: expected")
        assert repr(value) in line

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("a b", "'a b' is not a server name: expected a DNS name"),
            ("a b:443", "the port goes in HOST:PORT"),
            ("example.com:443", "the port goes in HOST:PORT"),
            ("", "must not be empty"),
            ("-bad-.example", "is not a server name"),
        ],
    )
    def test_bad_server_name(
        self, capsys: pytest.CaptureFixture[str], name: str, message: str
    ) -> None:
        """--server-name with a space, a port, or empty: refused (no silent fallback)."""
        code, err = cli(capsys, "connect", "127.0.0.1:1", f"--server-name={name}")
        assert code == 2
        assert message in one_line(err)

    @pytest.mark.parametrize(
        "target", ["127.0.0.1:\u0664\u0664\u0663", "127.0.0.1:0", "127.0.0.1:65536",
                   "127.0.0.1:+443", "127.0.0.1: 443", "127.0.0.1:\uff14\uff14\uff13"]
    )
    def test_bad_port(self, capsys: pytest.CaptureFixture[str], target: str) -> None:
        """Ports in non-ASCII digits, signed, spaced or out of 1-65535: exit 2."""
        code, err = cli(capsys, "connect", target)
        assert code == 2
        assert "the port must be a number from 1 to 65535" in one_line(err)

    def test_fifo_as_sqlite_store_is_refused(self, tmp_path: Path) -> None:
        """A FIFO as --sessions sqlite:PATH: exit 2 at once (it hung past --timeout)."""
        fifo = tmp_path / "sessions.fifo"
        os.mkfifo(fifo)
        proc = subprocess_cli(
            "connect", "127.0.0.1:1", "--timeout", "1", "--sessions", f"sqlite:{fifo}"
        )
        assert proc.returncode == 2
        assert one_line(proc.stderr) == (
            f"resume connect: --sessions sqlite:{fifo}: not a regular file (a FIFO); "
            "give the path of a database file"
        )

    def test_missing_cafile(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """--cafile naming a missing file: exit 2, the file named."""
        code, err = cli(capsys, "connect", "127.0.0.1:1", "--cafile", str(tmp_path / "ca.pem"))
        assert code == 2
        assert one_line(err) == f"resume connect: --cafile {tmp_path / 'ca.pem'}: no such file"


class TestDiskFull:
    """A store on a full disk says so and names the file; the connection still works."""

    def test_file_size_limit(self, s_server: SServer, tmp_path: Path) -> None:
        """RLIMIT_FSIZE (the kernel refuses writes past it): 'cannot write ... PATH'."""
        store = tmp_path / "sessions.db"

        def limit() -> None:  # runs in the child before exec
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

        proc = subprocess_cli(
            "connect", f"localhost:{s_server.port}", "--cafile", str(s_server.cafile),
            "--sessions", f"sqlite:{store}", preexec_fn=limit,
        )
        assert "cannot rollback" not in proc.stderr
        assert f"cannot write session store {str(store)!r}" in one_line(proc.stderr)
        assert "Traceback" not in proc.stderr

    def test_full_tmpfs(self, s_server: SServer, tmp_path: Path) -> None:
        """A 64 KB tmpfs filled up: 'cannot write session store PATH: the disk is full'."""
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root")
        mount = tmp_path / "tiny"
        mount.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
            capture_output=True, check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        store = mount / "sessions.db"
        args = (
            "connect", f"localhost:{s_server.port}", "--cafile", str(s_server.cafile),
            "--sessions", f"sqlite:{store}",
        )
        try:
            # the first run makes the key file and the database, then the disk fills up
            assert subprocess_cli(*args).returncode == 0
            fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass  # ENOSPC: the disk is full
            finally:
                os.close(fd)
            proc = subprocess_cli(*args)
        finally:
            subprocess.run(["umount", str(mount)], check=True)
        assert proc.returncode == 1
        assert "cannot rollback" not in proc.stderr
        line = one_line(proc.stderr)
        # SQLite reports a full disk as SQLITE_FULL or, while writing its WAL, as an I/O error
        assert line.startswith(f"resume connect: cannot write session store {str(store)!r}: ")
        assert "disk full" in line or "the disk is full" in line


class TestCount:
    def test_connect_count_shows_resumption_in_one_run(
        self, s_server: SServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--count 3: three lines, the first a full handshake, the others resumed."""
        code = main(
            ["connect", f"localhost:{s_server.port}", "--cafile", str(s_server.cafile),
             "--count", "3"]
        )
        out = capsys.readouterr().out.splitlines()
        assert code == 0
        assert len(out) == 4
        first = r"#1 localhost:\d+: TLSv1\.[23], full handshake, answer 'olleh'"
        assert re.fullmatch(first, out[0])
        assert all(re.search(r"^#[23] .*, resumed,", line) for line in out[1:3])
        assert out[3] == "2 of 3 connections resumed"

    def test_connect_count_json_lines(
        self, s_server: SServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--count 2 --json: one JSON object per connection, numbered."""
        code = main(
            ["connect", f"localhost:{s_server.port}", "--cafile", str(s_server.cafile),
             "--count", "2", "--json"]
        )
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0
        assert [(r["connection"], r["resumed"]) for r in rows] == [(1, False), (2, True)]

    def test_demo_count_one_is_singular(self, capsys: pytest.CaptureFixture[str]) -> None:
        """resume demo --count 1 prints '1 connection' (not '1 connections')."""
        assert main(["demo", "--count", "1"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("resume demo: 1 connection to a loopback TLS server")
        assert "1 connections" not in out and "1 misses" not in out
        assert "resumed: n/a (one connection" in out

    @pytest.mark.parametrize("value", ["0", "-2", "two", "\u0663"])
    def test_bad_count(self, capsys: pytest.CaptureFixture[str], value: str) -> None:
        """--count must be a whole number from 1."""
        code, err = cli(capsys, "connect", "127.0.0.1:1", f"--count={value}")
        assert code == 2
        assert "argument --count:" in one_line(err)


class TestHelpers:
    def test_plural(self) -> None:
        """Singular for exactly one, the plural (regular or given) otherwise."""
        assert [plural(n, "connection") for n in (0, 1, 2)] == [
            "0 connections", "1 connection", "2 connections",
        ]
        assert plural(2, "miss", "misses") == "2 misses"

    def test_parse_port(self) -> None:
        """The one port parser: ASCII digits only; 0 only where it is allowed."""
        assert parse_port("443") == 443
        assert parse_port("0", allow_zero=True) == 0
        for bad in ("0", "65536", "\u0664\u0664\u0663", "4 43", "0x1bb", "1e3"):
            with pytest.raises(ValueError, match="the port must be a number"):
                parse_port(bad)


class EndlessLineServer:
    """A TLS server on 127.0.0.1 that reads the client's line, then answers with a
    line of ``x`` in 16 KiB chunks, without a newline, until the client closes or
    *cap* bytes went out (so the loop is bounded even if the client never closes),
    then *tail*. ``sent`` is how much it got out.
    """

    def __init__(
        self, context: ssl.SSLContext, cap: int = 256 * 1024 * 1024, tail: bytes = b""
    ) -> None:
        self.context, self.cap, self.tail, self.sent = context, cap, tail, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(30)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.settimeout(30)
        chunk = b"x" * 16384
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                while self.sent < self.cap:
                    tls.sendall(chunk)
                    self.sent += len(chunk)
                tls.sendall(self.tail)
                tls.recv(4096)  # until the client closes
        except OSError:
            pass  # the client closed

    def close(self) -> None:
        self.listener.close()
        self.thread.join(30)


class TestConnectLineLimit:
    @pytest.mark.parametrize("version", ["1.2", "1.3"])
    def test_endless_line_is_one_line_error(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], version: str
    ) -> None:
        """An answer that never sends a newline: exit 1 with one line once MAX_LINE is
        passed (it was buffered until --timeout: 177 MB in 30 s)."""
        server = EndlessLineServer(pki.server_context(version))
        try:
            code, err = cli(
                capsys, "connect", f"127.0.0.1:{server.port}", "--cafile", str(pki.ca_file),
                "--tls", version, "--timeout", "60",
            )
        finally:
            server.close()
        assert code == 1
        assert one_line(err) == (
            f"resume connect: 127.0.0.1:{server.port}: the answer has no end of line within "
            f"{MAX_LINE} bytes (resume connect reads one line)"
        )
        assert server.sent < server.cap  # the client hung up; the server did not run out

    @pytest.mark.parametrize("version", ["1.2", "1.3"])
    def test_long_line_then_close_is_refused(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], version: str
    ) -> None:
        """1 MiB without a newline, then EOF: the same error (it printed the megabyte)."""
        server = EndlessLineServer(pki.server_context(version), cap=1024 * 1024)
        try:
            code, err = cli(
                capsys, "connect", f"127.0.0.1:{server.port}", "--cafile", str(pki.ca_file),
                "--tls", version, "--count", "2",
            )
        finally:
            server.close()
        assert code == 1
        assert one_line(err).startswith(
            f"resume connect: connection 1 of 2: 127.0.0.1:{server.port}: "
            f"the answer has no end of line within {MAX_LINE} bytes"
        )

    @pytest.mark.parametrize("version", ["1.2", "1.3"])
    def test_line_at_the_limit_is_read(
        self, pki: ServerPKI, capsys: pytest.CaptureFixture[str], version: str
    ) -> None:
        """A line of exactly MAX_LINE bytes is an answer; only what follows its newline is not."""
        server = EndlessLineServer(pki.server_context(version), cap=MAX_LINE, tail=b"\nmore\n")
        try:
            code = main([
                "connect", f"127.0.0.1:{server.port}", "--cafile", str(pki.ca_file),
                "--tls", version, "--json",
            ])
        finally:
            server.close()
        out, err = capsys.readouterr()
        assert (code, err) == (0, "")
        assert json.loads(out)["answer"] == "x" * MAX_LINE
