# Theory of operation: the conformance matrix, without Sphinx.
#
# Every normative sentence of the shipped man pages must be proved by a test or
# carry a recorded reason why it is not. The proof is found statically: the test
# files are parsed with ``ast`` (never imported, never run) and every
# ``@pytest.mark.manpage("PAGE:sec-N", ...)`` on a test function or class (or in a
# module's ``pytestmark``) is collected with the test's node ID. A JSON report
# written by ``pytest --conformance-report=PATH`` (tests/conftest.py) adds each test's
# latest outcome when it exists. The Sphinx directive only renders what
# ``build_matrix`` returns and fails the build on ``uncovered``.
from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import final

from ._mapping import PYTHON_EQUIVALENTS
from ._model import ManPage, Sentence
from ._parser import parse

__all__ = [
    "MatrixRow",
    "ProvingTest",
    "build_matrix",
    "collect_marks",
    "load_pages",
    "load_reasons",
    "load_report",
    "matrix_rst",
    "uncovered",
    "unknown_ids",
]


@final
@dataclass(frozen=True, slots=True)
class ProvingTest:
    """A test that proves a sentence, with its outcome in the latest report."""

    nodeid: str
    outcome: str


@final
@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One normative sentence with its Python equivalents, tests and reason."""

    sentence: Sentence
    python: tuple[str, ...]
    tests: tuple[ProvingTest, ...]
    reason: str | None


def _mark_ids(node: ast.expr) -> list[str]:
    """The sentence IDs of a ``pytest.mark.manpage(...)`` call (or a list of marks)."""
    if isinstance(node, ast.List | ast.Tuple):
        return [i for element in node.elts for i in _mark_ids(element)]
    if not isinstance(node, ast.Call):
        return []
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "manpage"):
        return []
    owner = func.value  # pytest.mark, or mark after "from pytest import mark"
    is_mark = (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark"
    )
    if not is_mark:
        return []
    return [
        arg.value
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ]


def _collect_from(
    body: Sequence[ast.stmt], prefix: str, inherited: list[str], out: dict[str, list[str]]
) -> None:
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if not stmt.name.startswith("test"):
                continue
            ids = inherited + [i for d in stmt.decorator_list for i in _mark_ids(d)]
            for sentence_id in ids:
                out.setdefault(sentence_id, []).append(f"{prefix}::{stmt.name}")
        elif isinstance(stmt, ast.ClassDef) and stmt.name.startswith("Test"):
            ids = inherited + [i for d in stmt.decorator_list for i in _mark_ids(d)]
            for inner in stmt.body:
                if (
                    isinstance(inner, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in inner.targets)
                ):
                    ids = ids + _mark_ids(inner.value)
            _collect_from(stmt.body, f"{prefix}::{stmt.name}", ids, out)


def collect_marks(tests_dir: Path, *, root: Path | None = None) -> dict[str, list[str]]:
    """Sentence ID -> node IDs of the tests marked ``@pytest.mark.manpage(ID, ...)``.

    The files ``test_*.py`` under *tests_dir* are parsed, not imported. Node IDs are
    relative to *root* (by default the parent of *tests_dir*, the project root),
    as pytest writes them: ``tests/integration/test_handle.py::TestFree::test_twice``.

    Raises:
        SyntaxError: a test file does not parse.
    """
    root = root if root is not None else tests_dir.parent
    out: dict[str, list[str]] = {}
    for path in sorted(tests_dir.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module_ids: list[str] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
            ):
                module_ids += _mark_ids(stmt.value)
        try:
            prefix = path.relative_to(root).as_posix()
        except ValueError:
            prefix = path.as_posix()
        _collect_from(tree.body, prefix, module_ids, out)
    return out


def load_report(path: Path | None) -> dict[str, dict[str, str]]:
    """Sentence ID -> {node ID: outcome} from a conformance report, {} if absent.

    An outcome with a reason (a skip's) reads ``skipped (needs redis-server)``.

    Raises:
        ValueError: the file exists but is not a report of the expected shape.
    """
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sentences = data["sentences"]
        return {
            str(sid): {
                str(e["test"]): str(e["outcome"]) + (f" ({e['reason']})" if e.get("reason") else "")
                for e in entries
            }
            for sid, entries in sentences.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a conformance report ({exc})") from exc


def load_reasons(path: Path | None) -> dict[str, str]:
    """Sentence ID -> why it has no test, from a JSON object; {} if the file is absent.

    Raises:
        ValueError: the file is not a JSON object of strings.
    """
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items()
    ):
        raise ValueError(f"{path}: must be a JSON object of sentence ID -> non-empty reason")
    return dict(data)


def load_pages(folder: Path) -> list[ManPage]:
    """Parse every ``*.txt`` man page of *folder* (named by its file name), sorted."""
    return [
        parse(path.read_text(encoding="utf-8"), name=path.stem)
        for path in sorted(folder.glob("*.txt"))
    ]


def _python_for(sentence: Sentence, page: ManPage) -> tuple[str, ...]:
    """The Python equivalents of the functions a sentence names (in its order).

    A sentence that names none ("The copy is not owned by any cache.") is about the
    page's functions, so it gets theirs.
    """
    positions: list[tuple[int, str]] = []
    for function in PYTHON_EQUIVALENTS:
        match = re.search(rf"\b{re.escape(function)}\b", sentence.text)
        if match is not None:
            positions.append((match.start(), function))
    functions = [f for _, f in sorted(positions)] or [
        f for f in page.functions if f in PYTHON_EQUIVALENTS
    ]
    targets: list[str] = []
    for function in functions:
        target = PYTHON_EQUIVALENTS[function]
        if target not in targets:
            targets.append(target)
    return tuple(targets)


def _outcome(nodeid: str, report: Mapping[str, str], *, have_report: bool = True) -> str:
    outcomes = [o for n, o in report.items() if n == nodeid or n.startswith(f"{nodeid}[")]
    if not outcomes:
        if not have_report:
            return "not run (this build was given no test report)"
        return "not run (the test run that made the report did not include it)"
    for bad in ("failed", "error"):
        if bad in outcomes:
            return bad
    if "passed" in outcomes:
        return "passed"
    return outcomes[0]


def build_matrix(
    pages: Iterable[ManPage],
    marks: Mapping[str, Sequence[str]],
    reasons: Mapping[str, str],
    report: Mapping[str, Mapping[str, str]],
) -> list[MatrixRow]:
    """One row per normative sentence of *pages*, in page and sentence order."""
    rows: list[MatrixRow] = []
    for page in pages:
        for sentence in page.sentences:
            results = report.get(sentence.id, {})
            tests = tuple(
                ProvingTest(nodeid, _outcome(nodeid, results, have_report=bool(report)))
                for nodeid in marks.get(sentence.id, ())
            )
            rows.append(
                MatrixRow(sentence, _python_for(sentence, page), tests, reasons.get(sentence.id))
            )
    return rows


def uncovered(rows: Iterable[MatrixRow]) -> list[str]:
    """The IDs of sentences with neither a proving test nor a recorded reason."""
    return [row.sentence.id for row in rows if not row.tests and not row.reason]


def unknown_ids(rows: Iterable[MatrixRow], ids: Iterable[str]) -> list[str]:
    """The IDs among *ids* (from marks or reasons) that name no sentence."""
    known = {row.sentence.id for row in rows}
    return sorted({i for i in ids if i not in known})


def _cell(lines: Sequence[str]) -> list[str]:
    first, *rest = list(lines) or [""]
    return [f"     - {first}"] + [f"       {line}" for line in rest]


def matrix_rst(
    rows: Sequence[MatrixRow],
    *,
    page_docs: Mapping[str, str] | None = None,
) -> list[str]:
    """The matrix as a reST ``list-table`` (one table per page).

    Args:
        rows: From :func:`build_matrix`.
        page_docs: Page name -> docname of its generated page, for a link per table.
    """
    from ._rst import escape, sentence_label

    page_docs = page_docs or {}
    lines: list[str] = []
    by_page: dict[str, list[MatrixRow]] = {}
    for row in rows:
        by_page.setdefault(row.sentence.id.split(":", 1)[0], []).append(row)
    for page, page_rows in by_page.items():
        proved = sum(1 for r in page_rows if r.tests)
        reasoned = sum(1 for r in page_rows if not r.tests and r.reason)
        neither = len(page_rows) - proved - reasoned
        title = escape(page)
        lines += [f".. rubric:: {title}", ""]
        if page in page_docs:
            lines += [f"Generated page: :doc:`{page} <{page_docs[page]}>`.", ""]
        lines += [
            f"{len(page_rows)} normative sentences: {proved} proved by tests, "
            f"{reasoned} with a recorded reason{f', {neither} with neither' if neither else ''}.",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 10 50 14 26",
            "   :class: conformance-matrix",
            "",
            "   * - ID",
            "     - Sentence",
            "     - Python",
            "     - Proof",
        ]
        for row in page_rows:
            python = [_python_cell(t) for t in row.python]
            if row.tests:
                proof = [
                    f"``{_short_nodeid(t.nodeid)}`` — {_outcome_rst(t.outcome)}" for t in row.tests
                ]
            else:
                proof = [f"*Not tested:* {escape(row.reason or '')}"]
            # the page is the table's heading: the cell shows the section part, "desc-4"
            short = row.sentence.id.split(":", 1)[1]
            if page in page_docs:
                label = sentence_label(row.sentence.id)
                lines += [f"   * - :ref:`{short} <{label}>`"]
            else:
                lines += [f"   * - ``{short}``"]
            lines += _cell([escape(row.sentence.text)])
            lines += _cell(_as_lines(python) or ["—"])
            lines += _cell(_as_lines(proof))
        lines.append("")
    return lines


def _outcome_rst(outcome: str) -> str:
    """``skipped (needs redis-server)`` as ``**skipped** (needs redis-server)``."""
    from ._rst import escape

    word, sep, reason = outcome.partition(" (")
    return f"**{word}**" + (f" ({escape(reason)}" if sep else "")


def _python_cell(target: str) -> str:
    """``resume.SessionCache.flush`` shown as ``SessionCache.flush``, linked if it exists."""
    shown = target.removeprefix("resume.")
    return f":py:obj:`{shown} <{target}>`" if _exists(target) else f"``{shown}``"


def _short_nodeid(nodeid: str) -> str:
    return nodeid.removeprefix("tests/")


def _as_lines(items: Sequence[str]) -> list[str]:
    """Items as a reST bullet list inside a table cell (plain text for one item)."""
    if len(items) <= 1:
        return list(items)
    out: list[str] = []
    for item in items:
        out += [f"* {item}"]
    return out


def _exists(target: str) -> bool:
    from ._mapping import python_target_exists

    return python_target_exists(target)
