"""Sphinx configuration for the resume documentation site.

Build it as CI does (warnings are errors, every cross-reference must resolve)::

    sphinx-build -n -W --keep-going -b html docs docs/_build/html
    sphinx-build -n -W --keep-going -b doctest docs docs/_build/doctest

The build needs no network: references to the standard library and to trio are
resolved from a small local table (``_ext/external_refs.py``), not intersphinx.
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path
from typing import Any

import resume

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE / "_ext"))

# -- project -------------------------------------------------------------------------

project = "resume"
author = "The resume developers"
copyright = "The resume developers; OpenSSL manual pages © The OpenSSL Project Authors"
release = resume.__version__
version = ".".join(release.split(".")[:2])

# -- general -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "myst_parser",
    # ``.. manpage::`` and ``.. conformance-matrix::``:
    "resume.manpage.sphinxext",
    # Local helpers in docs/_ext:
    "external_refs",
    "resume_cli",
    "public_api",
    "markdown_doctests",
]

nitpicky = True
exclude_patterns = ["_build", "manpages/source", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
root_doc = "index"
pygments_style = "friendly"
# Curly quotes and ellipses, but no dashes: "--sessions" must stay two hyphens.
smartquotes_action = "qe"

# The README is Markdown; it is included on the front page with MyST, never copied.
source_suffix = {".rst": "restructuredtext"}
myst_heading_anchors = 2

# -- autodoc ---------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- doctest ---------------------------------------------------------------------------

doctest_test_doctest_blocks = "default"
# The doctests make real TLS sessions with the recipe of the testing how-to.
trim_doctest_flags = True
# Like the default, but exception messages are compared too (they are documented).
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1

# -- HTML ------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"resume {release}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_css_files = ["resume.css"]
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
    "top_of_page_buttons": [],
}


# -- checks ----------------------------------------------------------------------------


def _check_manpage_pages(app: object) -> None:
    # Every shipped man page has its page (docs/manpages/NAME.rst), named after it so
    # that :doc:`/manpages/NAME` resolves; a new .txt without one fails the build.
    from sphinx.util import logging

    logger = logging.getLogger("resume.docs")
    shipped = {p.stem for p in (_HERE / "manpages" / "source").glob("*.txt")}
    pages = {p.stem for p in (_HERE / "manpages").glob("*.rst")}
    for name in sorted(shipped - pages):
        logger.warning("man page source/%s.txt has no page docs/manpages/%s.rst", name, name)
    for name in sorted(pages - shipped):
        logger.warning("docs/manpages/%s.rst has no man page source/%s.txt", name, name)


def setup(app: Any) -> None:
    """Connect the site's own checks."""
    app.connect("builder-inited", _check_manpage_pages)
