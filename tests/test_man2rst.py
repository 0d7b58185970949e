"""Tests of ``resume man2rst FILE``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from resume._cli import main

ROOT = Path(__file__).resolve().parent.parent
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
        assert main(["man2rst", str(tmp_path / "absent.txt")]) == 1
        assert "no such file" in capsys.readouterr().err
