# Theory of operation: the Sphinx side of resume.manpage, kept thin.
#
# Both directives turn files into reST lines with the pure functions of ``_rst`` and
# ``_matrix`` and hand them to ``nested_parse_with_titles`` (as sphinx-click does),
# so cross-references and the nitpicky checks apply to the generated text exactly
# as to hand-written text. Each directive registers the files it read as
# dependencies of its document, so an edit to a man page, a test or the reasons
# file rebuilds the right pages; the test report counts even while it is missing,
# so the matrix never keeps showing "not run" once a report exists. The only state
# kept in the environment is the set of documents that render man pages (to
# resolve OpenSSL's C types to plain text there); it is purged and merged per
# document, which keeps parallel reads safe.
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles
from sphinx.util.typing import ExtensionMetadata, OptionSpec

from .._version import __version__
from ._matrix import (
    build_matrix,
    collect_marks,
    load_pages,
    load_reasons,
    load_report,
    matrix_rst,
    uncovered,
    unknown_ids,
)
from ._model import ManPageError
from ._parser import parse
from ._rst import to_rst

__all__ = ["ConformanceMatrixDirective", "ManPageDirective", "setup"]

logger = logging.getLogger(__name__)

_ENV_KEY = "resume_manpage_docs"
_UNCOVERED_KEY = "resume_manpage_uncovered"


def _uncovered(env: BuildEnvironment) -> dict[str, list[str]]:
    """Docname -> sentence IDs its conformance matrix found without proof or reason."""
    found: dict[str, list[str]] | None = getattr(env, _UNCOVERED_KEY, None)
    if found is None:
        found = {}
        setattr(env, _UNCOVERED_KEY, found)
    return found


def _manpage_docs(env: BuildEnvironment) -> set[str]:
    docs: set[str] | None = getattr(env, _ENV_KEY, None)
    if docs is None:
        docs = set()
        setattr(env, _ENV_KEY, docs)
    return docs


def _known_pages(env: BuildEnvironment, here: str) -> dict[str, str]:
    """Page name -> absolute docname, for every document named like a page."""
    folder = here.rpartition("/")[0]
    known: dict[str, str] = {}
    for docname in sorted(env.found_docs):
        stem = docname.rpartition("/")[2]
        same_folder = docname.rpartition("/")[0] == folder
        if stem not in known or same_folder:
            known[stem] = f"/{docname}"
    return known


def _signature_checker(env: BuildEnvironment) -> Any:
    from sphinx.domains.c._parser import DefinitionParser
    from sphinx.util.cfamily import DefinitionError

    def ok(signature: str) -> bool:
        parser = DefinitionParser(signature, location=("manpage", 0), config=env.config)
        try:
            parser.parse_declaration("function", "function")
            parser.skip_ws()
            parser.assert_end()
        except DefinitionError:
            return False
        return True

    return ok


class _LinesDirective(SphinxDirective):
    def _parse_lines(self, lines: list[str], source: str) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        content = StringList(lines, source=source)
        nested_parse_with_titles(self.state, content, container)
        return list(container.children)


class ManPageDirective(_LinesDirective):
    """``.. manpage:: PATH``: a man page rendered as this document's content."""

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[OptionSpec] = {"no-index": directives.flag}

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(rel)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self.error(f"manpage: cannot read {rel}: {exc}") from exc
        try:
            page = parse(text, name=Path(path).stem)
        except ManPageError as exc:
            raise self.error(f"manpage: {rel}: {exc}") from exc
        _manpage_docs(self.env).add(self.env.docname)
        lines = to_rst(
            page,
            known_pages=_known_pages(self.env, self.env.docname),
            no_index="no-index" in self.options,
            signature_ok=_signature_checker(self.env),
        )
        return self._parse_lines(lines, path)


class ConformanceMatrixDirective(_LinesDirective):
    """``.. conformance-matrix::``: each normative sentence with its proof."""

    has_content = False
    option_spec: ClassVar[OptionSpec] = {
        "manpages": directives.unchanged_required,
        "tests": directives.unchanged_required,
        "reasons": directives.unchanged,
        "report": directives.unchanged,
    }

    def _path(self, option: str, *, required: bool) -> Path | None:
        value = self.options.get(option)
        if not value:
            if required:
                raise self.error(f"conformance-matrix: the :{option}: option is required")
            return None
        rel, path = self.env.relfn2path(value, self.env.docname)
        if Path(path).is_file() or option == "report":
            # A missing report is a dependency too: Sphinx rereads a document whose
            # dependency is missing, so the matrix shows a report written later.
            self.env.note_dependency(rel)
        return Path(path)

    def run(self) -> list[nodes.Node]:
        manpages = self._path("manpages", required=True)
        tests = self._path("tests", required=True)
        assert manpages is not None and tests is not None  # required above
        reasons_path = self._path("reasons", required=False)
        report_path = self._path("report", required=False)
        if not manpages.is_dir() or not tests.is_dir():
            raise self.error(f"conformance-matrix: no such folder: {manpages} or {tests}")
        try:
            pages = load_pages(manpages)
            marks = collect_marks(tests)
            reasons = load_reasons(reasons_path)
            report = load_report(report_path)
        except (ManPageError, ValueError, SyntaxError) as exc:
            raise self.error(f"conformance-matrix: {exc}") from exc
        for path in sorted(manpages.glob("*.txt")) + sorted(tests.rglob("test_*.py")):
            self.env.note_dependency(str(path))
        rows = build_matrix(pages, marks, reasons, report)
        location = self.get_location()
        stray = unknown_ids(rows, list(marks) + list(reasons))
        if stray:
            logger.warning(
                "conformance-matrix: tests or reasons name unknown sentence IDs: %s",
                ", ".join(stray), location=location, type="manpage", subtype="unknown",
            )
        missing = uncovered(rows)
        if missing:
            message = (
                f"conformance-matrix: {len(missing)} normative sentence(s) have neither a "
                "test (@pytest.mark.manpage) nor a reason in "
                f"{reasons_path.name if reasons_path else 'a reasons file'}: "
                + ", ".join(missing)
            )
            logger.warning(message, location=location, type="manpage", subtype="uncovered")
            if self.config.manpage_uncovered != "warning":
                _uncovered(self.env)[self.env.docname] = missing
        page_docs = {
            name: doc
            for name, doc in _known_pages(self.env, self.env.docname).items()
            if any(p.name == name for p in pages)
        }
        return self._parse_lines(matrix_rst(rows, page_docs=page_docs), str(manpages))


def _resolve_c_types(
    app: Sphinx, env: BuildEnvironment, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Show OpenSSL's undocumented C types as plain text on man-page documents."""
    if node.get("refdomain") != "c" or node.get("reftype") not in ("identifier", "type"):
        return None
    if node.get("refdoc") not in _manpage_docs(env):
        return None
    if not re.fullmatch(r"[A-Za-z_]\w*", str(node.get("reftarget", ""))):
        return None
    return contnode


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    _manpage_docs(env).discard(docname)
    _uncovered(env).pop(docname, None)


def _merge(
    app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment
) -> None:
    _manpage_docs(env).update(_manpage_docs(other) & docnames)
    _uncovered(env).update(
        {doc: ids for doc, ids in _uncovered(other).items() if doc in docnames}
    )


def _fail_if_uncovered(app: Sphinx, exception: BaseException | None) -> None:
    """Make the build fail, even without -W, when a sentence lacks proof and reason."""
    if exception is not None:
        return
    found = _uncovered(app.env)
    if found:
        ids = sorted(i for doc_ids in found.values() for i in doc_ids)
        logger.info(
            "conformance-matrix: the build fails: %d sentence(s) without a test or a "
            "reason: %s", len(ids), ", ".join(ids),
        )
        app.statuscode = 1


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the ``manpage`` and ``conformance-matrix`` directives."""
    app.add_config_value("manpage_uncovered", "error", "env", types=frozenset({str}))
    app.add_directive("manpage", ManPageDirective)
    app.add_directive("conformance-matrix", ConformanceMatrixDirective)
    app.connect("missing-reference", _resolve_c_types)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("build-finished", _fail_if_uncovered)
    return {
        "version": __version__,
        "env_version": 1,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
