"""TEMPORARY stand-in for resume.manpage.sphinxext until it lands: raw man-page text."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class ManpageStandin(SphinxDirective):
    """``.. manpage:: source/NAME.txt`` rendered as a literal block."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        path = Path(self.env.doc2path(self.env.docname)).parent / self.arguments[0]
        self.env.note_dependency(str(path))
        text = path.read_text(encoding="utf-8")
        section = nodes.section(ids=[path.stem.lower()])
        section += nodes.title(path.stem, path.stem)
        section += nodes.literal_block(text, text)
        return [section]


class MatrixStandin(SphinxDirective):
    """``.. conformance-matrix::`` placeholder."""

    option_spec: ClassVar[dict[str, Any]] = {
        "manpages": directives.unchanged,
        "tests": directives.unchanged,
        "reasons": directives.unchanged,
        "report": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        return [nodes.paragraph("", "The conformance matrix is generated here.")]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("manpage", ManpageStandin)
    app.add_directive("conformance-matrix", MatrixStandin)
    return {"version": "0", "parallel_read_safe": True, "parallel_write_safe": True}
