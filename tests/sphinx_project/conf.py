# A tiny Sphinx project that exercises resume.manpage.sphinxext end to end.
# tests/unit/test_sphinxext.py copies it into a temporary folder, adds the man pages and
# builds it with warnings as errors, as the real docs are built.
from __future__ import annotations

project = "manpage-test"
extensions = ["resume.manpage.sphinxext"]
nitpicky = True
exclude_patterns = ["_build", "manpages/source", "fake_tests"]
html_theme = "basic"
