"""End-to-end builds of a tiny Sphinx project with ``resume.manpage.sphinxext``.

As sphinx-click tests its extension: the project in ``tests/sphinx_project`` is
copied into a temporary folder with the shipped man pages and built with
``-n -W`` (nitpicky, warnings are errors), like the real docs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from sphinx.cmd.build import build_main

from resume.manpage._matrix import load_pages

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "tests" / "sphinx_project"
SHARED = ROOT / "docs" / "manpages" / "source"
PAGES = ("SSL_SESSION_free", "SSL_get_session", "d2i_SSL_SESSION", "ssl")
# proved by the marks in tests/sphinx_project/fake_tests/test_fake.py
MARKED = {"SSL_SESSION_free:desc-1", "SSL_SESSION_free:desc-2", "SSL_SESSION_free:desc-3",
          "SSL_SESSION_free:desc-4"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(PROJECT, src)
    fake = src / "fake_tests" / "test_fake.py.txt"
    fake.rename(fake.with_suffix(""))
    (src / "manpages" / "source").mkdir()
    for name in PAGES:
        shutil.copy(SHARED / f"{name}.txt", src / "manpages" / "source")
    pages = load_pages(src / "manpages" / "source")
    reasons = {s.id: "covered elsewhere" for p in pages for s in p.sentences if s.id not in MARKED}
    (src / "reasons.json").write_text(json.dumps(reasons))
    (src / "report.json").write_text(json.dumps({"sentences": {
        "SSL_SESSION_free:desc-4": [
            {"test": "fake_tests/test_fake.py::TestFree::test_free", "outcome": "passed"}
        ]
    }}))
    return src


def build(src: Path, out: Path, builder: str = "html", *, strict: bool = True) -> int:
    flags = ["-n", "-W"] if strict else []
    return build_main([*flags, "-q", "-E", "-b", builder, str(src), str(out)])


class TestBuild:
    """The extension renders pages and the matrix in a nitpicky, warnings-as-errors build."""

    def test_clean_build(self, source: Path, tmp_path: Path) -> None:
        out = tmp_path / "out"
        assert build(source, out) == 0
        page = (out / "manpages" / "SSL_SESSION_free.html").read_text()
        assert "SSL_SESSION_free(3ssl)" in page
        assert 'id="c.SSL_SESSION_dup"' in page
        # SEE ALSO links to the generated page; Python equivalents link to the API page
        assert 'href="SSL_get_session.html"' in page
        assert "api.html#resume.SessionHandle.up_ref" in page
        assert "Licensed under the Apache License 2.0" in page
        matrix = (out / "conformance.html").read_text()
        assert ">desc-4<" in matrix
        # each sentence ID links to the sentence on its generated page
        assert 'href="manpages/SSL_SESSION_free.html#ssl-session-free-desc-4"' in matrix
        assert 'id="ssl-session-free-desc-4"' in page
        assert "fake_tests/test_fake.py::TestFree::test_free" in matrix
        assert ">SessionHandle.up_ref<" in matrix
        assert "passed" in matrix
        assert "covered elsewhere" in matrix
        text_page = (out / "manpages" / "SSL_get_session.html").read_text()
        assert "RETURN VALUES" in text_page

    def test_text_builder(self, source: Path, tmp_path: Path) -> None:
        out = tmp_path / "text"
        assert build(source, out, "text") == 0
        text = (out / "manpages" / "SSL_SESSION_free.txt").read_text()
        assert "Python equivalent: \"resume.SessionHandle.up_ref\"" in text
        assert "DESCRIPTION" in text

    def test_uncovered_sentence_fails_the_build(
        self, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        reasons = json.loads((source / "reasons.json").read_text())
        del reasons["SSL_get_session:notes-3"]
        del reasons["d2i_SSL_SESSION:ret-1"]
        (source / "reasons.json").write_text(json.dumps(reasons))
        # even without -W
        assert build(source, tmp_path / "out", strict=False) != 0
        err = capsys.readouterr().err
        assert "2 normative sentence(s) have neither a test" in err
        assert "SSL_get_session:notes-3" in err
        assert "d2i_SSL_SESSION:ret-1" in err
        assert "conformance.rst" in err

    def test_uncovered_as_warning(self, source: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        reasons = json.loads((source / "reasons.json").read_text())
        del reasons["ssl:desc-1"]
        (source / "reasons.json").write_text(json.dumps(reasons))
        conf = source / "conf.py"
        conf.write_text(conf.read_text() + '\nmanpage_uncovered = "warning"\n')
        assert build(source, tmp_path / "out", strict=False) == 0
        assert "ssl:desc-1" in capsys.readouterr().err
        # a warning still fails a -W build
        assert build(source, tmp_path / "out2") != 0
        assert "ssl:desc-1" in capsys.readouterr().err

    def test_unknown_sentence_id_warns(self, source: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        reasons = json.loads((source / "reasons.json").read_text())
        reasons["SSL_SESSION_free:desc-99"] = "a typo"
        (source / "reasons.json").write_text(json.dumps(reasons))
        assert build(source, tmp_path / "out") != 0
        assert "SSL_SESSION_free:desc-99" in capsys.readouterr().err

    def test_bad_man_page_fails_clearly(self, source: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        (source / "manpages" / "bad.rst").write_text(".. manpage:: source/not_a_page.txt\n")
        (source / "manpages" / "source" / "not_a_page.txt").write_text("hello\n")
        index = source / "index.rst"
        index.write_text(index.read_text() + "   manpages/bad\n")
        assert build(source, tmp_path / "out") != 0
        err = capsys.readouterr().err
        assert "not_a_page.txt" in err
        assert "not a man page" in err

    def test_report_written_after_a_build_is_picked_up(
        self, source: Path, tmp_path: Path
    ) -> None:
        """An incremental build (no -E) rereads the matrix once the report appears or changes."""
        report = source / "report.json"
        saved = report.read_text()
        report.unlink()
        out = tmp_path / "out"
        incremental = ["-n", "-W", "-q", "-b", "html", str(source), str(out)]
        assert build_main(incremental) == 0
        matrix = out / "conformance.html"
        assert "this build was given no test report" in matrix.read_text()
        report.write_text(saved)
        assert build_main(incremental) == 0
        assert "<strong>passed</strong>" in matrix.read_text()
        report.write_text(saved.replace('"passed"', '"failed"'))
        os.utime(report, (time.time() + 5, time.time() + 5))  # newer than the last read
        assert build_main(incremental) == 0
        assert "<strong>failed</strong>" in matrix.read_text()

    def test_extension_metadata(self, source: Path, tmp_path: Path) -> None:
        from sphinx.application import Sphinx
        from sphinx.util.docutils import docutils_namespace

        # docutils_namespace undoes the global node registrations, as build_main does
        with docutils_namespace():
            app = Sphinx(str(source), str(source), str(tmp_path / "out"),
                         str(tmp_path / "dt"), "html", status=None, warning=None)
            extension = app.extensions["resume.manpage.sphinxext"]
        assert extension.parallel_read_safe is True
        assert extension.parallel_write_safe is True


def test_every_corpus_page_builds(tmp_path: Path) -> None:
    """Every page of the test corpus, in both formats, renders cleanly under -n -W.

    The heading-less copies are rendered with ``:no-index:`` beside the headed ones,
    which also checks that a second rendering of a page declares nothing twice.
    """
    corpus = ROOT / "tests" / "data" / "manpages"
    src = tmp_path / "src"
    docs: list[str] = []
    for kind in ("headed", "plain"):
        (src / kind / "source").mkdir(parents=True)
        for page in sorted((corpus / kind).glob("*.txt")):
            shutil.copy(page, src / kind / "source" / page.name)
            option = "   :no-index:\n" if kind == "plain" else ""
            (src / kind / f"{page.stem}.rst").write_text(
                f".. manpage:: source/{page.name}\n{option}"
            )
            docs.append(f"{kind}/{page.stem}")
    shutil.copy(PROJECT / "api.rst", src / "api.rst")
    (src / "conf.py").write_text(
        'extensions = ["resume.manpage.sphinxext"]\nnitpicky = True\n'
        'exclude_patterns = ["*/source"]\nhtml_theme = "basic"\n'
    )
    toctree = "".join(f"   {doc}\n" for doc in [*docs, "api"])
    (src / "index.rst").write_text(f"Corpus\n======\n\n.. toctree::\n\n{toctree}")
    assert len(docs) >= 90
    assert build(src, tmp_path / "out") == 0
    html = (tmp_path / "out" / "headed" / "ASN1_item_sign.html").read_text()
    assert "EXAMPLES" in html
    assert 'id="c.ASN1_item_sign"' in html
