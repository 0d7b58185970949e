"""Tests of reST generation, the mapping table and the conformance matrix (no Sphinx)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import resume
from resume.manpage import parse
from resume.manpage._mapping import PYTHON_EQUIVALENTS, python_equivalent, python_target_exists
from resume.manpage._matrix import (
    build_matrix,
    collect_marks,
    load_pages,
    load_reasons,
    load_report,
    matrix_rst,
    uncovered,
    unknown_ids,
)
from resume.manpage._rst import escape, to_rst

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "docs" / "manpages" / "source"


def rst(name: str, **kwargs: object) -> str:
    page = parse((SHARED / f"{name}.txt").read_text(), name=name)
    return "\n".join(to_rst(page, **kwargs))  # type: ignore[arg-type]


class TestToRst:
    """``to_rst`` writes headings, C declarations, links and the licence."""

    def test_title_and_sections(self) -> None:
        text = rst("SSL_SESSION_free")
        assert text.startswith("SSL_SESSION_free(3ssl)\n======================\n")
        for heading in ("DESCRIPTION", "NOTES", "RETURN VALUES", "SEE ALSO", "HISTORY"):
            assert f"\n{heading}\n{'-' * len(heading)}\n" in text

    def test_prototypes_are_c_functions(self) -> None:
        text = rst("SSL_SESSION_free")
        assert ".. c:function:: SSL_SESSION *SSL_SESSION_dup(const SSL_SESSION *src)" in text
        second = rst("SSL_SESSION_free", no_index=True)
        assert ".. c:function::" not in second
        assert "   SSL_SESSION *SSL_SESSION_dup(const SSL_SESSION *src);" in second
        assert ".. _`" not in second
        assert ":c:func:" not in second

    def test_rejected_signature_falls_back_to_code(self) -> None:
        text = rst("SSL_SESSION_free", signature_ok=lambda sig: "dup" not in sig)
        assert ".. c:function:: SSL_SESSION *SSL_SESSION_dup" not in text
        assert "   SSL_SESSION *SSL_SESSION_dup(const SSL_SESSION *src);" in text
        assert ":c:func:`SSL_SESSION_dup`" not in text

    def test_python_equivalents_are_linked(self) -> None:
        text = rst("SSL_SESSION_free")
        assert "Python equivalent: :py:obj:`resume.SessionHandle.up_ref`" in text
        assert "Python equivalent: :py:obj:`resume.session_free`" in text

    def test_see_also_links_known_pages_only(self) -> None:
        text = rst("SSL_SESSION_free", known_pages={"SSL_get_session": "/man/SSL_get_session"})
        see_also = text.split("SEE ALSO\n--------\n")[1].split("\n\n")[0]
        assert ":doc:`SSL_get_session(3) </man/SSL_get_session>`" in see_also
        assert "ssl(7)" in see_also
        assert ":doc:`ssl(7)" not in see_also

    def test_copyright_is_kept(self) -> None:
        for name in ("SSL_SESSION_free", "ssl", "d2i_SSL_SESSION"):
            text = rst(name)
            assert "COPYRIGHT\n---------" in text
            assert "Licensed under the Apache License 2.0" in text

    def test_definition_list(self) -> None:
        text = rst("SSL_CTX_set_session_cache_mode")
        item = "\nSSL_SESS_CACHE_OFF\n   No session caching for client or server takes place.\n"
        assert item in text

    def test_function_mentions_link_to_declarations(self) -> None:
        text = rst("SSL_SESSION_free")
        assert ":c:func:`SSL_SESSION_new` creates a new SSL_SESSION structure" in text
        # a function this page does not declare stays literal
        assert "``SSL_get1_session()``" in text

    def test_escaping(self) -> None:
        assert escape("a *b* `c` d_ _e x|y \\") == "a \\*b\\* \\`c\\` d\\_ \\_e x\\|y \\\\"
        assert escape("SSL_SESSION_free") == "SSL_SESSION_free"

    def test_list_like_paragraph_is_escaped(self) -> None:
        text = "X(3ssl) OpenSSL X(3ssl)\n\nx_f - do x\n\n1. first thing\n\n2024-01-01 3.0.0\n"
        lines = to_rst(parse(text))
        assert "\\1. first thing" in lines


class TestMapping:
    """One table maps C functions to their Python equivalents."""

    def test_the_table(self) -> None:
        assert python_equivalent("SSL_SESSION_up_ref") == "resume.SessionHandle.up_ref"
        assert python_equivalent("SSL_get0_session") == python_equivalent("SSL_get_session")
        assert python_equivalent("SSL_new") is None
        assert len(PYTHON_EQUIVALENTS) == 22
        assert python_equivalent("SSL_write_early_data") == "resume.trio.open_tls_stream"

    def test_existing_targets_are_found(self) -> None:
        assert python_target_exists("resume.SessionHandle.dup")
        assert python_target_exists("resume.session_free")
        assert not python_target_exists("resume.SessionHandle.no_such_method")
        assert not python_target_exists("no_such_package.thing")

    def test_core_targets_exist(self) -> None:
        core = [t for t in PYTHON_EQUIVALENTS.values() if not t.endswith(("_der",))]
        assert all(python_target_exists(t) for t in core), core
        assert resume.SessionHandle is not None


TEST_FILE = textwrap.dedent(
    """
    import pytest

    pytestmark = pytest.mark.manpage("P:notes-1")


    @pytest.mark.manpage("P:desc-1", "P:desc-2")
    def test_one():
        pass


    @pytest.mark.parametrize("x", [1, 2])
    @pytest.mark.manpage("P:desc-2")
    async def test_two(x):
        pass


    @pytest.mark.manpage("P:ret-1")
    class TestThing:
        pytestmark = [pytest.mark.manpage("P:desc-3")]

        def test_three(self):
            pass

        def helper(self):
            pass


    def not_a_test():
        pass


    from pytest import mark


    @mark.manpage("P:ret-1")
    def test_four():
        pass
    """
)

PAGE = textwrap.dedent(
    """\
    P(3ssl) OpenSSL P(3ssl)

    P_do - do things

    P_do() does one thing. It does another.

    P_do() also does a third thing.

    Applications should not care.

    P_do() returns 1 on success or 0 on error.

    Copyright 2024 The OpenSSL Project Authors. All Rights Reserved.

    2024-01-01 3.0.0
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_p.py").write_text(TEST_FILE)
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "P.txt").write_text(PAGE)
    return tmp_path


class TestMatrix:
    """Marks are read statically; sentences without proof or reason are reported."""

    def test_collect_marks(self, project: Path) -> None:
        marks = collect_marks(project / "tests")
        assert marks == {
            "P:notes-1": [
                "tests/test_p.py::test_one",
                "tests/test_p.py::test_two",
                "tests/test_p.py::TestThing::test_three",
                "tests/test_p.py::test_four",
            ],
            "P:desc-1": ["tests/test_p.py::test_one"],
            "P:desc-2": ["tests/test_p.py::test_one", "tests/test_p.py::test_two"],
            "P:ret-1": [
                "tests/test_p.py::TestThing::test_three", "tests/test_p.py::test_four",
            ],
            "P:desc-3": ["tests/test_p.py::TestThing::test_three"],
        }

    def test_syntax_error_in_a_test_file(self, project: Path) -> None:
        (project / "tests" / "test_bad.py").write_text("def test(:\n")
        with pytest.raises(SyntaxError):
            collect_marks(project / "tests")

    def test_matrix_and_uncovered(self, project: Path) -> None:
        pages = load_pages(project / "pages")
        assert [s.id for s in pages[0].sentences] == [
            "P:desc-1", "P:desc-2", "P:desc-3", "P:notes-1", "P:ret-1",
        ]
        marks = collect_marks(project / "tests")
        del marks["P:desc-3"]
        report = {"P:desc-2": {"tests/test_p.py::test_two[1]": "failed",
                               "tests/test_p.py::test_two[2]": "passed",
                               "tests/test_p.py::test_one": "passed"}}
        rows = build_matrix(pages, marks, {}, report)
        assert uncovered(rows) == ["P:desc-3"]
        desc2 = rows[1]
        assert [(t.nodeid, t.outcome) for t in desc2.tests] == [
            ("tests/test_p.py::test_one", "passed"),
            ("tests/test_p.py::test_two", "failed"),
        ]
        assert rows[0].tests[0].outcome == (
            "not run (the test run that made the report did not include it)"
        )
        without_report = build_matrix(pages, marks, {}, {})
        assert without_report[0].tests[0].outcome == (
            "not run (this build was given no test report)"
        )
        assert "**not run** (this build was given no test report)" in "\n".join(
            matrix_rst(without_report)
        )
        rows = build_matrix(pages, marks, {"P:desc-3": "needs a real server"}, report)
        assert uncovered(rows) == []
        assert rows[2].reason == "needs a real server"
        assert unknown_ids(rows, ["P:desc-1", "P:desc-9"]) == ["P:desc-9"]
        table = "\n".join(matrix_rst(rows, page_docs={"P": "/man/P"}))
        assert ".. list-table::" in table
        assert ":ref:`desc-3 <p:desc-3>`" in table
        assert "5 normative sentences: 4 proved by tests, 1 with a recorded reason." in table
        assert "``desc-3``" in "\n".join(matrix_rst(rows))
        assert "``test_p.py::test_two`` — **failed**" in table
        assert "*Not tested:* needs a real server" in table
        assert "**failed**" in table
        assert ":doc:`P </man/P>`" in table

    def test_python_equivalent_per_sentence(self) -> None:
        pages = load_pages(SHARED)
        rows = {r.sentence.id: r for r in build_matrix(pages, {}, {}, {})}
        assert rows["SSL_SESSION_free:desc-4"].python == ("resume.SessionHandle.up_ref",)
        assert rows["SSL_get_session:desc-4"].python == (
            "resume.SessionCache.get1", "resume.SessionCache.get0",
        )
        # a sentence naming no function gets the page's
        assert "resume.SessionHandle.dup" in rows["SSL_SESSION_free:desc-3"].python

    def test_report_and_reasons_files(self, tmp_path: Path) -> None:
        assert load_report(None) == {}
        assert load_report(tmp_path / "absent.json") == {}
        report = tmp_path / "report.json"
        report.write_text(json.dumps(
            {"sentences": {"P:desc-1": [{"test": "t::a", "outcome": "passed"}]}}
        ))
        assert load_report(report) == {"P:desc-1": {"t::a": "passed"}}
        report.write_text(json.dumps({"sentences": {"P:desc-1": [
            {"test": "t::a", "outcome": "skipped", "reason": "needs redis-server"}
        ]}}))
        assert load_report(report) == {"P:desc-1": {"t::a": "skipped (needs redis-server)"}}
        report.write_text('{"tests": []}')
        with pytest.raises(ValueError, match="not a conformance report"):
            load_report(report)
        reasons = tmp_path / "reasons.json"
        reasons.write_text('{"P:desc-1": "why"}')
        assert load_reasons(reasons) == {"P:desc-1": "why"}
        reasons.write_text('{"P:desc-1": ""}')
        with pytest.raises(ValueError, match="non-empty reason"):
            load_reasons(reasons)
        reasons.write_text("[1, 2")
        with pytest.raises(ValueError, match="not valid JSON"):
            load_reasons(reasons)
