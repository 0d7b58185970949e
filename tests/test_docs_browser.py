"""The docs browser check (docs/browser_check.py) on tiny hand-made sites.

CI runs the check on the real site after the docs build; these tests prove that it
passes a sound site and fails on each kind of problem it promises to catch. They
run the script as CI does, with the real headless Chromium.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "browser_check.py"

GOOD_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="{css}"></head>
<body><h1 id="top">{title}</h1>{body}</body></html>
"""


def _write(root: Path, name: str, title: str, body: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    css = "../" * name.count("/") + "style.css"
    path.write_text(GOOD_PAGE.format(title=title, body=body, css=css), encoding="utf-8")


def _run(root: Path, *pages: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(SCRIPT), str(root), "--search", ""]
    for page in pages:
        args += ["--page", page]
    return subprocess.run(args, capture_output=True, text=True, timeout=110, check=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A sound two-page site with a stylesheet and a link to an anchor."""
    root = tmp_path / "html"
    root.mkdir()
    (root / "style.css").write_text("body { margin: 2em; }\n")
    _write(root, "index.html", "Index", '<p><a href="sub/page.html#part">a page</a></p>')
    _write(root, "sub/page.html", "Page",
           '<h2 id="part">Part</h2><p><a href="../index.html#top">back</a></p>')
    return root


class TestBrowserCheck:
    def test_sound_site_passes(self, site: Path) -> None:
        """A site with no broken link, missing asset or console error passes."""
        result = _run(site, "index.html")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 problems, 0 console errors" in result.stdout
        assert "2 pages opened in Chromium" in result.stdout

    def test_every_kind_of_problem_fails(self, site: Path) -> None:
        """A broken link, a missing fragment, a missing asset and console errors all fail."""
        _write(
            site,
            "index.html",
            "Index",
            '<p><a href="nowhere.html">gone</a> <a href="sub/page.html#nope">bad anchor</a></p>'
            "<script>const img = document.createElement('img'); img.src = 'ghost.png';"
            "document.body.append(img); console.error('boom');</script>"
            "<script>throw new Error('kaboom');</script>",
        )
        result = _run(site, "index.html")
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert "link 'nowhere.html' -> missing file nowhere.html" in out
        assert "link 'sub/page.html#nope' -> no id 'nope'" in out
        assert "server answered 404 for /ghost.png" in out
        assert "console.error: boom" in out
        assert "uncaught exception: Error: kaboom" in out

    def test_missing_site_is_a_usage_error(self, tmp_path: Path) -> None:
        """A folder without index.html is refused with a clear message, status 2."""
        result = _run(tmp_path)
        assert result.returncode == 2
        assert "holds no index.html: build the site first" in result.stderr
