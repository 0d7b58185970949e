"""Sphinx configuration for the resume documentation site.

The whole site, proof results included, in one command (``nox`` comes with the
``test`` extra)::

    nox -s docs browser

Build it as CI does (warnings are errors, every cross-reference must resolve)::

    sphinx-build -E -n -W --keep-going -b html docs docs/_build/html
    sphinx-build -E -n -W --keep-going -b doctest docs docs/_build/doctest

The build needs no network: references to the standard library and to trio are
resolved from a small local table (``_ext/external_refs.py``), not intersphinx.
``pip install -e '.[docs]'`` is all it needs (the docs extra includes the HTTP
clients, whose integration modules the API pages import).

The conformance matrix shows the outcomes of ``docs/_build/conformance.json``,
written by a test run (``pytest --conformance-report=docs/_build/conformance.json``,
as ``.ci/run`` and ``nox -s tests-3.11`` do). ``RESUME_DOCS_RUN_PROOFS`` says
whether the build runs the proof tests itself (``pytest -m manpage``, about 10 s),
which needs the ``test`` extra too:

* unset or ``0`` (a plain ``sphinx-build``, and ``.ci/run``): never; the matrix
  shows whatever report there is, and "not run" without one;
* ``1`` (``nox -s docs`` sets it; Read the Docs, where ``READTHEDOCS`` is set,
  behaves so too): when the report is not fresh, that is missing, older than a
  ``.py`` file of ``resume/`` or ``tests/``, or silent about a proof (a run that
  stopped early, or ran only some of the tests);
* ``always``: on every build.

A proof that fails is a build warning (an error under ``-W``). The matrix page
depends on the report file, so an incremental build picks a new report up.
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


def _report_staleness(report: Path) -> str | None:
    # Why *report* is not fresh, or None if it is: it exists, is newer than the code
    # and the tests, and has an outcome for every test that claims a sentence.
    from resume.manpage._matrix import collect_marks, load_report

    if not report.is_file():
        return "there is no test report"
    written = report.stat().st_mtime
    project = _HERE.parent
    for folder in ("resume", "tests"):
        for path in (project / folder).rglob("*.py"):
            if path.stat().st_mtime > written:
                return f"{path.relative_to(project)} changed after the test report was written"
    try:
        results = load_report(report)
    except ValueError as exc:
        return str(exc)
    for sentence_id, nodeids in collect_marks(project / "tests").items():
        outcomes = results.get(sentence_id, {})
        for nodeid in nodeids:
            mine = [o for n, o in outcomes.items() if n == nodeid or n.startswith(f"{nodeid}[")]
            if not mine or any(o.startswith("not run") for o in mine):
                return f"the test report has no outcome for {nodeid}"
    return None


def _run_proofs(app: object) -> None:
    # Run the proof tests when asked to and the report is not fresh (see the top).
    import importlib.util

    from sphinx.util import logging

    logger = logging.getLogger("resume.docs")
    wanted = os.environ.get("RESUME_DOCS_RUN_PROOFS", "").strip().lower()
    if wanted in ("", "0") and os.environ.get("READTHEDOCS"):
        wanted = "1"
    stale = _report_staleness(CONFORMANCE_REPORT)
    if wanted in ("", "0"):
        if stale is not None:
            logger.info(
                "conformance matrix: %s; RESUME_DOCS_RUN_PROOFS=1 (as nox -s docs sets) "
                "runs the proof tests first", stale,
            )
        return
    if wanted not in ("1", "always"):
        logger.warning("RESUME_DOCS_RUN_PROOFS must be 0, 1 or always, not %r", wanted)
        return
    if wanted == "1" and stale is None:
        logger.info("conformance matrix: the test report is fresh (%s)", CONFORMANCE_REPORT)
        return
    if importlib.util.find_spec("pytest") is None:
        logger.warning(
            "RESUME_DOCS_RUN_PROOFS=%s, but pytest is missing: pip install -e '.[docs,test]'",
            wanted,
        )
        return
    logger.info(
        "conformance matrix: %s; running the proof tests (pytest -m manpage)",
        stale or "RESUME_DOCS_RUN_PROOFS=always",
    )
    CONFORMANCE_REPORT.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "manpage", "-q", "-p", "no:cacheprovider",
         f"--conformance-report={CONFORMANCE_REPORT}"],
        cwd=_HERE.parent, capture_output=True, text=True, check=False,
    )
    summary = (done.stdout.strip().splitlines() or ["?"])[-1]
    if not CONFORMANCE_REPORT.is_file():
        logger.warning("the proof tests wrote no report (pytest exit %s): %s",
                       done.returncode, done.stdout[-2000:] + done.stderr[-2000:])
    elif done.returncode != 0:
        logger.warning("some proof tests failed: %s (the matrix shows which)", summary)
    else:
        logger.info("conformance matrix: proof tests %s", summary)


def setup(app: Any) -> None:
    """Connect the site's own checks and the proof run."""
    app.connect("builder-inited", _check_manpage_pages)
    app.connect("builder-inited", _run_proofs)
