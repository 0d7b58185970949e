"""Sphinx extension: OpenSSL man pages as documentation pages, and the conformance matrix.

Add ``"resume.manpage.sphinxext"`` to ``extensions`` in ``conf.py``. Then:

``.. manpage:: source/SSL_SESSION_free.txt``
    renders a man page (either format ``resume.manpage.parse`` reads; the path is
    relative to the document) as reST, with its own title and sections. The page's
    name is its file name. SEE ALSO entries link to the documents whose name is a
    page name (the one in the same folder first). Option ``:no-index:`` renders the
    C declarations without indexing them.

``.. conformance-matrix::``
    lists every normative sentence of the man pages in ``:manpages:`` with its
    Python equivalent and the tests that prove it (``@pytest.mark.manpage`` in the
    ``test_*.py`` files of ``:tests:``, with outcomes from the JSON ``:report:`` when
    it exists). A sentence with neither a test nor a reason in ``:reasons:`` is
    reported as a warning naming its ID, and fails the build even without ``-W``
    (``manpage_uncovered = "error"``, the default; ``"warning"`` only warns).
    Paths are relative to the document.

C types of the OpenSSL prototypes (``SSL_SESSION``, ``size_t``...) are not documented
here; on pages rendered by ``manpage`` their references show as plain text instead
of failing a nitpicky build.
"""

from __future__ import annotations

from ._sphinxext import setup as setup
