"""docs/conf.py decides when a docs build must run the proof tests itself.

``nox -s docs`` (``RESUME_DOCS_RUN_PROOFS=1``) runs them when the conformance
report is not fresh: missing, older than a ``.py`` file of ``resume/`` or
``tests/``, or silent about a test that claims a sentence. These tests give
``_report_staleness`` hand-made reports; no build and no test run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from resume.manpage._matrix import collect_marks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("resume_docs_conf", ROOT / "docs" / "conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)  # conf.py puts docs/_ext first on sys.path
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def write_report(path: Path, *, outcome: str = "passed", drop: str | None = None) -> None:
    """A report with *outcome* for every marked test (parametrised), except *drop*."""
    sentences = {
        sentence_id: [
            {"test": f"{nodeid}[1.3]", "outcome": outcome}
            for nodeid in nodeids
            if nodeid != drop
        ]
        for sentence_id, nodeids in collect_marks(ROOT / "tests").items()
    }
    path.write_text(json.dumps({"sentences": sentences}), encoding="utf-8")
    later = time.time() + 60  # newer than every source file, whatever the clock did
    os.utime(path, (later, later))


class TestReportStaleness:
    """Only a report newer than the code and complete for every proof is fresh."""

    def test_complete_and_newer_is_fresh(self, conf: ModuleType, tmp_path: Path) -> None:
        """Every marked test has an outcome (parametrised IDs count) and nothing changed."""
        report = tmp_path / "conformance.json"
        write_report(report)
        assert conf._report_staleness(report) is None

    def test_missing(self, conf: ModuleType, tmp_path: Path) -> None:
        """No report at all (a fresh clone, or the README's test command)."""
        assert conf._report_staleness(tmp_path / "nope.json") == "there is no test report"

    def test_older_than_the_code(self, conf: ModuleType, tmp_path: Path) -> None:
        """A source or test file changed after the run that wrote the report."""
        report = tmp_path / "conformance.json"
        write_report(report)
        os.utime(report, (0, 0))
        reason = conf._report_staleness(report)
        assert reason is not None and "changed after the test report was written" in reason

    def test_a_proof_missing(self, conf: ModuleType, tmp_path: Path) -> None:
        """A run of only some of the tests says nothing about the others."""
        nodeid = sorted({n for ids in collect_marks(ROOT / "tests").values() for n in ids})[0]
        report = tmp_path / "conformance.json"
        write_report(report, drop=nodeid)
        assert conf._report_staleness(report) == f"the test report has no outcome for {nodeid}"

    def test_a_run_that_stopped(self, conf: ModuleType, tmp_path: Path) -> None:
        """A run stopped early (-x, Ctrl-C) reports "not run" for what it did not reach."""
        report = tmp_path / "conformance.json"
        write_report(report, outcome="not run")
        reason = conf._report_staleness(report)
        assert reason is not None and reason.startswith("the test report has no outcome for")

    def test_failures_are_fresh(self, conf: ModuleType, tmp_path: Path) -> None:
        """A failed proof is a result: the matrix shows it, the build warns; no rerun."""
        report = tmp_path / "conformance.json"
        write_report(report, outcome="failed")
        assert conf._report_staleness(report) is None

    def test_not_a_report(self, conf: ModuleType, tmp_path: Path) -> None:
        """A file of another shape is named in the reason."""
        report = tmp_path / "conformance.json"
        report.write_text("[]", encoding="utf-8")
        later = time.time() + 60
        os.utime(report, (later, later))
        reason = conf._report_staleness(report)
        assert reason is not None and "not a conformance report" in reason
