"""The first hour on the command line (issue 17, item 5).

One wording for each error, exit 2 for usage and missing input, the subcommand
named in every hint, no errno or Python names, and no traceback when the reader
of the output goes away.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from test_cli_errors import cli, free_port, one_line


class TestFirstHour:
    """Issue 17: one wording, exit 2 for usage, the subcommand named, no errno or Python names."""

    def test_an_unknown_option_names_the_subcommand(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`resume probe HOST --bogus` points at `resume probe --help`, not `resume --help`."""
        code, err = cli(capsys, "probe", "localhost", "--bogus")
        assert code == 2
        assert one_line(err) == (
            "resume probe: unrecognized arguments: --bogus (see 'resume probe --help')"
        )

    def test_a_missing_ticket_key_folder_names_the_users_path(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--ticket-keys file:/missing/x.keys names that path, never the lock file or an errno."""
        pem = tmp_path / "server.pem"
        trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(pem)
        missing = tmp_path / "missing" / "x.keys"
        code, err = cli(
            capsys, "serve", "--cert", str(pem), "--port", "0", "--ticket-keys", f"file:{missing}"
        )
        line = one_line(err)
        assert code == 2
        assert str(missing) in line and ".lock" not in line and "Errno" not in line
        assert "does not exist" in line

    def test_redis_ticket_keys_without_a_secret_speak_the_command_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The missing-secret message names the environment variable and the flag, not Python."""
        monkeypatch.delenv("RESUME_TICKET_KEYS_SECRET", raising=False)
        pem = tmp_path / "server.pem"
        trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(pem)
        code, err = cli(
            capsys, "serve", "--cert", str(pem), "--port", "0",
            "--ticket-keys", f"redis://127.0.0.1:{free_port()}/0",
        )
        line = one_line(err)
        assert code == 2
        assert "RESUME_TICKET_KEYS_SECRET" in line and "--insecure-unauthenticated-store" in line
        assert "insecure_unauthenticated=True" not in line

    def test_a_closed_pipe_ends_quietly(self) -> None:
        """`resume man2rst PAGE | head -1`: no BrokenPipeError, no traceback."""
        page = Path(__file__).parents[2] / "docs" / "manpages" / "source" / "ssl.txt"
        with subprocess.Popen(
            [sys.executable, "-m", "resume", "man2rst", str(page)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()  # the reader is gone before the first write
            err = proc.stderr.read().decode()
            code = proc.wait(timeout=60)
        assert "Traceback" not in err and "BrokenPipe" not in err, err
        assert code == 1

    def test_benchmarks_help_lists_them_and_says_what_to_install(self) -> None:
        """`python -m benchmarks --help` lists the benchmarks without importing them."""
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks", "--help"], capture_output=True, text=True,
            timeout=60, check=False, cwd=Path(__file__).parents[2],
        )
        assert proc.returncode == 0, proc.stderr
        assert "bench_client" in proc.stdout and "pip install -e '.[test]'" in proc.stdout

    def test_a_missing_input_file_is_worded_alike_and_exits_2(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """probe, connect and man2rst: "PATH: no such file", exit 2."""
        lines = []
        for argv in (
            ("probe", "localhost", "--cafile", "/nonexistent/ca.pem"),
            ("connect", "localhost:1", "--cafile", "/nonexistent/ca.pem"),
            ("man2rst", "/nonexistent/page.txt"),
        ):
            code, err = cli(capsys, *argv)
            assert code == 2, argv
            lines.append(one_line(err))
        assert lines == [
            "resume probe: --cafile /nonexistent/ca.pem: no such file",
            "resume connect: --cafile /nonexistent/ca.pem: no such file",
            "resume man2rst: /nonexistent/page.txt: no such file",
        ]

    def test_connect_defaults_the_port_as_probe_does(self) -> None:
        """`resume connect HOST` means port 443, as `resume probe HOST` does."""
        from resume._cli.connect import parse_target
        from resume._cli.probe import parse_host_port

        for target in ("example.org", "[::1]", "example.org:8443"):
            assert parse_target(target) == parse_host_port(target)
        assert parse_target("example.org") == ("example.org", 443)
