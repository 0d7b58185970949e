"""Tests of ``resume man2rst FILE``."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from resume._cli import main, man2rst
from resume._cli.man2rst import MAX_INPUT_BYTES, MAX_INPUT_LINES

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "docs" / "manpages" / "source"
HEADED = ROOT / "tests" / "data" / "manpages" / "headed"


class TestMan2Rst:
    """The command prints reST for either input format and reports bad input."""

    def test_heading_less_page(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["man2rst", str(SHARED / "SSL_SESSION_free.txt")]) == 0
        out = capsys.readouterr().out
        assert out.startswith("SSL_SESSION_free(3ssl)\n")
        assert ".. c:function:: void SSL_SESSION_free(SSL_SESSION *session)" in out

    def test_headed_page(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["man2rst", str(HEADED / "SSL_get_session.txt")]) == 0
        out = capsys.readouterr().out
        assert "RETURN VALUES\n-------------" in out
        assert ".. c:function:: SSL_SESSION *SSL_get_session(const SSL *ssl)" in out

    def test_links(self, capsys: pytest.CaptureFixture[str]) -> None:
        path = str(SHARED / "SSL_SESSION_free.txt")
        assert main(["man2rst", "--link", "SSL_get_session", path]) == 0
        assert ":doc:`SSL_get_session(3) <SSL_get_session>`" in capsys.readouterr().out

    def test_stdin(self, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
        text = (SHARED / "d2i_SSL_SESSION.txt").read_text()
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))
        assert main(["man2rst", "-"]) == 0
        assert capsys.readouterr().out.startswith("d2i_SSL_SESSION(3ssl)\n")

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "empty"),
            (b"\x00\x01\x02binary junk\xff\xfe", "cannot read it"),
            (b"just some text\nthat is no man page\n", "not a man page"),
        ],
    )
    def test_bad_input(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       content: bytes, message: str) -> None:
        path = tmp_path / "page.txt"
        path.write_bytes(content)
        assert main(["man2rst", str(path)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert message in captured.err
        assert "Traceback" not in captured.err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["man2rst", str(tmp_path / "absent.txt")]) == 2  # usage error
        assert "no such file" in capsys.readouterr().err


class TestInputLimit:
    """Input over MAX_INPUT_BYTES or MAX_INPUT_LINES is refused, in one line, with exit status 2."""

    def test_over_the_limit_is_refused(self, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "huge.txt"
        with path.open("wb") as file:
            file.truncate(MAX_INPUT_BYTES + 1)  # sparse: nothing is written
        assert main(["man2rst", str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1
        assert f"{path}: over the input limit of 2,097,152 bytes (2 MiB)" in captured.err

    def test_the_limit_itself_is_accepted(self, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        text = (SHARED / "SSL_SESSION_free.txt").read_bytes()
        path = tmp_path / "SSL_SESSION_free.txt"
        path.write_bytes(text)
        monkeypatch.setattr(man2rst, "MAX_INPUT_BYTES", len(text))
        assert main(["man2rst", str(path)]) == 0
        assert capsys.readouterr().out.startswith("SSL_SESSION_free(3ssl)\n")
        monkeypatch.setattr(man2rst, "MAX_INPUT_BYTES", len(text) - 1)
        assert main(["man2rst", str(path)]) == 2
        assert "over the input limit" in capsys.readouterr().err

    def test_stdin_over_the_limit(self, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
        text = (SHARED / "d2i_SSL_SESSION.txt").read_bytes()
        monkeypatch.setattr(man2rst, "MAX_INPUT_BYTES", len(text) - 1)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
        assert main(["man2rst", "-"]) == 2
        assert "-: over the input limit" in capsys.readouterr().err

    def test_over_the_line_limit_is_refused(self, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        """50,000 short lines (100 KB): refused before parsing, as they were the dearest
        shape (1 MiB of one-letter lines took 14 s and 440 MB)."""
        page = (SHARED / "SSL_SESSION_free.txt").read_text()
        path = tmp_path / "long.txt"
        path.write_text(page + "x\n" * MAX_INPUT_LINES)
        assert main(["man2rst", str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (
            f"resume man2rst: {path}: over the input limit of 50,000 lines; "
            "a man page is far shorter: check the file\n"
        )

    def test_the_line_limit_itself_is_accepted(self, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        text = (SHARED / "SSL_SESSION_free.txt").read_text()
        path = tmp_path / "SSL_SESSION_free.txt"
        path.write_text(text)
        monkeypatch.setattr(man2rst, "MAX_INPUT_LINES", text.count("\n") + 1)
        assert main(["man2rst", str(path)]) == 0
        capsys.readouterr()
        monkeypatch.setattr(man2rst, "MAX_INPUT_LINES", text.count("\n"))
        assert main(["man2rst", str(path)]) == 2
        assert "over the input limit of" in capsys.readouterr().err

    def test_no_traceback_from_the_command(self, tmp_path: Path) -> None:
        path = tmp_path / "huge.txt"
        with path.open("wb") as file:
            file.truncate(MAX_INPUT_BYTES + 1)
        done = subprocess.run([sys.executable, "-m", "resume", "man2rst", str(path)],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("resume man2rst: ")
        assert done.stderr.count("\n") == 1
