"""``resume demo``: the main job, end to end (trio and asyncio, TLS 1.2 and 1.3)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from resume._cli import main


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("adapter", ["trio", "asyncio"])
def test_json_report(capsys: pytest.CaptureFixture[str], version: str, adapter: str) -> None:
    """Every connection after the first resumes; the JSON carries the promised fields."""
    argv = ["demo", "--tls", version, "--count", "6", "--json"]
    if adapter == "asyncio":
        argv.append("--asyncio")
    # The report counts the live handles of the whole process: collect what earlier
    # tests left in reference cycles, so that only the demo's own are counted.
    gc.collect()
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["adapter"] == adapter
    assert report["connections"] == 6
    assert report["resumed"] == 5
    assert report["resumable"] == 5
    assert report["resumption_rate"] == 1.0
    assert report["tls_version"] == f"TLSv{version}"
    assert report["full_handshake_ms"] > 0
    assert report["resumed_handshake_ms"] > 0
    assert [row["resumed"] for row in report["rows"]] == [False] + [True] * 5
    assert [row["connection"] for row in report["rows"]] == [1, 2, 3, 4, 5, 6]
    assert report["server"]["resumed"] == 5 and report["server"]["full"] == 1
    assert report["cache"]["hits"] == 5
    # The cache holds the sessions still alive; every connection freed its own.
    assert report["live_handles"] == report["cache"]["number"]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_table(capsys: pytest.CaptureFixture[str], version: str) -> None:
    """The table has one row per connection and a summary a person can read."""
    assert main(["demo", "--tls", version, "--count", "4"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[:3] for r in rows] == [
        ["1", f"TLSv{version}", "no"],
        ["2", f"TLSv{version}", "yes"],
        ["3", f"TLSv{version}", "yes"],
        ["4", f"TLSv{version}", "yes"],
    ]
    assert "resumed: 3 of 3 connections that could resume (100%)" in out
    assert "median handshake: full" in out
    assert "live session handles:" in out


def test_one_connection(capsys: pytest.CaptureFixture[str]) -> None:
    """A single connection cannot resume; the rate says so instead of dividing by zero."""
    assert main(["demo", "--count", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["resumed"], report["resumption_rate"], report["resumed_handshake_ms"]) == (
        0,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "between 1 and 100000"),
        (["--count", "many"], "expected a whole number"),
        (["--tls", "1.1"], "invalid choice"),
    ],
)
def test_bad_options(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_help_explains_and_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "throwaway certificates" in out
    assert "examples:" in out and "resume demo --tls 1.2" in out


def test_installed_entry_point() -> None:
    """``python -m resume demo`` runs as a user would start it, and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "resume", "demo", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "resumed: 2 of 2" in done.stdout
    assert done.stderr == ""
