"""Run the ``>>>`` examples of Markdown files (the README) as doctests.

MyST turns a fenced ``python`` block into a literal block, which the doctest
builder skips. This turns each such block whose first line starts with ``>>>``
into a doctest block, so the README's examples run with
``sphinx-build -b doctest`` like the examples written in reST.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx


def _convert(app: Sphinx, doctree: nodes.document) -> None:
    for block in list(doctree.findall(nodes.literal_block)):
        source = str(block.source or block.get("source") or "")
        text = block.astext()
        if source.endswith(".md") and text.lstrip().startswith(">>>"):
            block.replace_self(nodes.doctest_block(text, text))


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the conversion (on ``doctree-read``)."""
    app.connect("doctree-read", _convert)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
