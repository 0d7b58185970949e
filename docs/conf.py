"""Sphinx configuration for the resume documentation site.

Build it as CI does (warnings are errors, every cross-reference must resolve)::

    sphinx-build -n -W --keep-going -b html docs docs/_build/html
    sphinx-build -n -W --keep-going -b doctest docs docs/_build/doctest

The build needs no network: references to the standard library and to trio are
resolved from a small local table (``_ext/external_refs.py``), not intersphinx.

The conformance matrix shows the outcomes of ``docs/_build/conformance.json``,
written by the test run (``pytest --conformance-report=docs/_build/conformance.json``,
as ``.ci/run`` does). A build on its own (Read the Docs, where ``READTHEDOCS`` is
set, or any build with ``RESUME_DOCS_RUN_PROOFS=1``) runs the proof tests itself
(``pytest -m manpage``, about 20 s) when there is no report, so the published
matrix shows real results; a proof that fails is a build warning (an error
under ``-W``). The tests need the ``test`` extra: ``pip install -e '.[docs,test]'``.
"""

from __future__ import annotations

import doctest
import os
import subprocess
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
# ClientConnection (public since the HTTP integrations) names two private helpers
# in its signatures: the TypeVar of begin()'s created object, and the Protocol of
# what it reads from an SSL object (ssl.SSLObject, ssl.SSLSocket, trio.SSLStream).
nitpick_ignore = [
    ("py:class", "resume._core.policy.T"),
    ("py:class", "resume._core.policy.TLSObject"),
]
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
html_js_files = ["resume.js"]
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


#: Where the test run leaves its conformance report (reference/conformance.rst reads it).
CONFORMANCE_REPORT = _HERE / "_build" / "conformance.json"


def _run_proofs(app: object) -> None:
    # A build on its own runs the proof tests so that the matrix shows real results.
    from sphinx.util import logging

    wanted = os.environ.get("RESUME_DOCS_RUN_PROOFS", "")
    if wanted in ("", "0") and not os.environ.get("READTHEDOCS"):
        return
    if CONFORMANCE_REPORT.exists() and wanted != "always":
        return
    logger = logging.getLogger("resume.docs")
    logger.info("running the proof tests for the conformance matrix (pytest -m manpage)")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "manpage", "-q", "-p", "no:cacheprovider",
         f"--conformance-report={CONFORMANCE_REPORT}"],
        cwd=_HERE.parent, capture_output=True, text=True, check=False,
    )
    if not CONFORMANCE_REPORT.exists():
        logger.warning("the proof tests wrote no report (pytest exit %s): %s",
                       done.returncode, done.stdout[-2000:] + done.stderr[-2000:])
    elif done.returncode != 0:
        summary = (done.stdout.strip().splitlines() or ["?"])[-1]
        logger.warning("some proof tests failed: %s (the matrix shows which)", summary)


def setup(app: Any) -> None:
    """Connect the site's own checks and the proof run."""
    app.connect("builder-inited", _check_manpage_pages)
    app.connect("builder-inited", _run_proofs)
