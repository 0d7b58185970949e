"""``resume serve``: the echo server as a user runs it (a subprocess), TLS 1.2 and 1.3."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from fake_redis import FakeRedis
from redis_server import RedisServer
from serverhelpers import ServerPKI, blocking_client

from resume._cli import main
from resume.ticketkeys import SECRET_ENV


@pytest.fixture(scope="module")
def pki() -> ServerPKI:
    return ServerPKI()


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, preamble: str = "") -> None:
        self.proc = proc
        self.port = port
        #: What the server logged before "listening on" (warnings).
        self.preamble = preamble

    def log_line(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.readline().rstrip("\n")


@contextmanager
def serve(pki: ServerPKI, *extra: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resume",
            "serve",
            "--port",
            "0",
            "--cert",
            str(pki.cert_file),
            "--key",
            str(pki.key_file),
            *extra,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stderr is not None
        preamble = ""
        while line := proc.stderr.readline():
            found = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
            if found:
                break
            preamble += line
        assert found, preamble
        yield Served(proc, int(found.group(1)), preamble)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def stop(served: Served) -> str:
    """Press Ctrl-C; return the rest of stderr after a clean exit."""
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.stderr is not None
    rest = served.proc.stderr.read()
    assert served.proc.wait(timeout=30) in (0, 130)
    assert "Traceback" not in rest
    return rest


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_echo_logs_and_resumes(pki: ServerPKI, version: str) -> None:
    """It echoes, logs one line per connection, resumes, and stops on Ctrl-C."""
    client = pki.client_context(version)
    with serve(pki, "--tls", version) as served:
        first = blocking_client(served.port, client, message=b"hello")
        line1 = served.log_line()
        second = blocking_client(served.port, client, session=first.session, message=b"again")
        line2 = served.log_line()
        rest = stop(served)
    assert (first.reply, second.reply) == (b"hello", b"again")
    assert (first.reused, second.reused) == (False, True)
    assert re.fullmatch(rf"127\.0\.0\.1:\d+ TLSv{version} full handshake early-data=none", line1)
    assert re.fullmatch(rf"127\.0\.0\.1:\d+ TLSv{version} resumed early-data=none", line2)
    assert "stopping (SIGINT)" in rest
    assert "served 2 connections: 1 resumed, 1 full, 0 failed" in rest


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_certificates(pki: ServerPKI, version: str) -> None:
    """--require-client-cert refuses clients without one and resumes those with one."""
    with serve(
        pki, "--tls", version, "--cafile", str(pki.ca_file), "--require-client-cert"
    ) as served:
        good = pki.client_context(version, client_cert=True)
        first = blocking_client(served.port, good)
        second = blocking_client(served.port, good, session=first.session)
        assert (first.reused, second.reused) == (False, True)
        with pytest.raises((ssl.SSLError, OSError)):
            blocking_client(served.port, pki.client_context(version))
        rest = stop(served)
    assert "1 failed" in rest


def test_options_feed_the_server(pki: ServerPKI) -> None:
    """--num-tickets and --session-timeout reach the server (TLS 1.3 ticket lifetime)."""
    with serve(pki, "--tls", "1.3", "--num-tickets", "1", "--session-timeout", "90") as served:
        result = blocking_client(served.port, pki.client_context("1.3"))
        stop(served)
    assert result.session is not None and result.session.ticket_lifetime_hint == 90


def test_missing_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--cert", "/nonexistent/cert.pem"]) == 2
    assert "resume serve:" in capsys.readouterr().err


def test_client_cert_needs_cafile(pki: ServerPKI, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "serve",
        "--port",
        "0",
        "--cert",
        str(pki.cert_file),
        "--key",
        str(pki.key_file),
        "--require-client-cert",
    ]
    assert main(argv) == 2
    assert "needs --cafile" in capsys.readouterr().err


def test_port_in_use(pki: ServerPKI, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [
            "serve",
            "--port",
            str(port),
            "--cert",
            str(pki.cert_file),
            "--key",
            str(pki.key_file),
        ]
        assert main(argv) == 1
    assert "in use" in capsys.readouterr().err


def test_bad_knob(pki: ServerPKI, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "serve",
        "--port",
        "0",
        "--cert",
        str(pki.cert_file),
        "--key",
        str(pki.key_file),
        "--num-tickets",
        "-3",
    ]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "argument --num-tickets" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "echo server" in out and "examples:" in out and "--require-client-cert" in out


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("source", ["file", "redis"])
def test_ticket_keys_let_a_fleet_resume_each_others_sessions(
    pki: ServerPKI, version: str, source: str, tmp_path: Path
) -> None:
    """Two `resume serve` processes sharing --ticket-keys resume each other's tickets."""
    with ExitStack() as stack:
        if source == "file":
            spec = f"file:{tmp_path / 'ticket.keys'}"
        else:
            redis = stack.enter_context(RedisServer(tmp_path))
            spec = redis.url
        env = {SECRET_ENV: base64.b64encode(os.urandom(32)).decode()}
        a = stack.enter_context(serve(pki, "--tls", version, "--ticket-keys", spec, env=env))
        b = stack.enter_context(serve(pki, "--tls", version, "--ticket-keys", spec, env=env))
        client = pki.client_context(version)
        first = blocking_client(a.port, client)
        assert not first.reused
        hopped = blocking_client(b.port, client, session=first.session)
        assert hopped.reused
        back = blocking_client(a.port, client, session=hopped.session)
        assert back.reused
        if source == "file":
            assert (tmp_path / "ticket.keys").stat().st_mode & 0o777 == 0o600
        for served in (a, b):
            stop(served)


def test_without_shared_keys_a_fleet_does_not_resume(pki: ServerPKI) -> None:
    """The control: two servers with their own keys make every hop a full handshake."""
    with serve(pki, "--tls", "1.3") as a, serve(pki, "--tls", "1.3") as b:
        client = pki.client_context("1.3")
        first = blocking_client(a.port, client)
        assert not blocking_client(b.port, client, session=first.session).reused
        for served in (a, b):
            stop(served)


def test_bad_ticket_key_source(pki: ServerPKI, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --ticket-keys scheme is a clear error and exit code 2."""
    code = main(
        ["serve", "--port", "0", "--cert", str(pki.cert_file), "--key", str(pki.key_file),
         "--ticket-keys", "ftp://nowhere"]
    )
    assert code == 2
    assert "--ticket-keys" in capsys.readouterr().err


def _serve_main(pki: ServerPKI, *extra: str) -> int:
    return main(["serve", "--port", "0", "--cert", str(pki.cert_file), "--key",
                 str(pki.key_file), *extra])


def test_redis_ticket_keys_need_a_secret(
    pki: ServerPKI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--ticket-keys redis://... without the secret: exit 2, naming both ways out."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert _serve_main(pki, "--ticket-keys", "redis://127.0.0.1:1/0") == 2
    err = capsys.readouterr().err
    assert SECRET_ENV in err and "--insecure-unauthenticated-store" in err


def test_the_opt_out_warns_at_every_start(pki: ServerPKI, tmp_path: Path) -> None:
    """--insecure-unauthenticated-store runs, and says what it costs, at every start."""
    with RedisServer(tmp_path) as redis:
        for _ in range(2):
            with serve(pki, "--ticket-keys", redis.url, "--insecure-unauthenticated-store",
                       env={SECRET_ENV: ""}) as served:
                assert "without a secret (insecure_unauthenticated)" in served.preamble
                assert not blocking_client(served.port, pki.client_context("1.3")).reused
                stop(served)


@pytest.mark.parametrize(
    "url", ["redis://user:hunter2@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0?password=hunter2",
            "ftp://user:hunter2@nowhere/"],
)
def test_ticket_key_password_is_never_printed(
    pki: ServerPKI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, url: str
) -> None:
    """A Redis password in --ticket-keys never reaches stderr or the log, whatever fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(SECRET_ENV, base64.b64encode(os.urandom(32)).decode())
    assert _serve_main(pki, "--ticket-keys", url.format(port=port)) == 2
    err = capsys.readouterr().err
    assert "--ticket-keys" in err and "***" in err
    assert "hunter2" not in err + caplog.text


def test_loose_ticket_key_file_is_refused(
    pki: ServerPKI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A ticket-key file others can read: exit 2, 'chmod 600', the file unchanged."""
    from resume.ticketkeys import KeyFile

    path = tmp_path / "ticket.keys"
    KeyFile(path).load()
    path.chmod(0o644)
    before = path.read_bytes()
    assert _serve_main(pki, "--ticket-keys", f"file:{path}") == 2
    assert "chmod 600" in capsys.readouterr().err
    assert path.read_bytes() == before and path.stat().st_mode & 0o777 == 0o644


class TestHostileRedis:
    """--ticket-keys redis:// against a Redis that misbehaves: exit 2 with one clear line."""

    @pytest.mark.parametrize(
        ("mode", "message"),
        [
            ("trickle", "no complete answer within 2 s"),
            ("silent", "no complete answer within 2 s"),
            ("endless_array", "an array of 4294967295 elements (the limit is 64)"),
            ("huge_string", "the reply is larger than the limit of 1048576 bytes"),
            ("wrong_type", "GET 'resume:ticket-keys': expected a string or nil, got an integer"),
        ],
    )
    def test_start_ends_with_a_clear_error(self, pki: ServerPKI, mode: str, message: str) -> None:
        """The server does not hang at start, or crash: it names what Redis did, exit 2."""
        with FakeRedis(mode) as fake:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "resume", "serve", "--port", "0",
                     "--cert", str(pki.cert_file), "--key", str(pki.key_file),
                     "--ticket-keys", fake.url],
                    capture_output=True, text=True, timeout=60, check=False,
                    env={**os.environ, SECRET_ENV: base64.b64encode(os.urandom(32)).decode()},
                )
            except subprocess.TimeoutExpired:
                pytest.fail("resume serve was still starting after 60 s")
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            f"resume serve: --ticket-keys: cannot read ticket keys from Redis at {fake.url}: "
            f"{message}"
        ]
