"""The docs browser check (docs/browser_check.py) on tiny hand-made sites.

CI runs the check on the real site after the docs build; these tests prove that it
passes a sound site and fails on each kind of problem it promises to catch. They
run the script as CI does, with the real headless Chromium.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from programs import require

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "browser_check.py"

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
    """A sound two-page site with a stylesheet and a link to an anchor (checked in Chromium)."""
    require("chromium")
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


def _load_check() -> Any:
    spec = importlib.util.spec_from_file_location("browser_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("browser_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return sys.modules["browser_check"]


class TestUnrunProofs:
    def test_rules(self) -> None:
        """'not run' fails unless a missing program is named; 'skipped' fails if it is here."""
        check = _load_check()
        installed = {"openssl"}

        def which(name: str) -> str | None:
            return f"/usr/bin/{name}" if name in installed else None

        cells = [
            "test_a.py::test_one \u2014 passed",
            "test_a.py::test_two \u2014 not run (this build was given no test report)",
            "test_a.py::test_three \u2014 not run",
            "test_b.py::test_four \u2014 skipped (needs redis-server)",
            "test_b.py::test_five \u2014 skipped (needs openssl)",
            "test_b.py::test_six \u2014 not run (needs redis-server)\n"
            "test_b.py::test_seven \u2014 skipped (Linux only)",
        ]
        problems = check.unrun_proofs(cells, which=which)
        assert problems == [
            "proof test_a.py::test_two shows 'not run' (this build was given no test report) "
            "but could have run where the site was built",
            "proof test_a.py::test_three shows 'not run' (no reason) "
            "but could have run where the site was built",
            "proof test_b.py::test_five was skipped (needs openssl) but openssl is installed "
            "where the site was built",
        ]


MATRIX = """<table class="conformance-matrix"><tbody>
<tr><td>desc-1</td><td>A sentence.</td><td>x</td>
<td><p><code>test_p.py::test_ran</code> \u2014 <strong>passed</strong></p>
<p><code>test_p.py::test_skipped</code> \u2014 <strong>skipped</strong>
(needs no-such-program-here)</p></td></tr>
<tr><td>desc-2</td><td>Another.</td><td>x</td>
<td><code>test_p.py::test_idle</code> \u2014 <strong>not run</strong>
(this build was given no test report)</td></tr>
</tbody></table>"""

LONG = "x = " + "1 + " * 60 + "1"


class TestNewChecks:
    def test_clipped_code_and_unrun_proof_fail(self, site: Path) -> None:
        """A code line wider than its box and a proof that could have run both fail."""
        _write(site, "index.html", "Index",
               f'<pre style="width: 300px; overflow: auto">{LONG}</pre>'
               '<div class="resume-scroll"><pre style="width: 300px; overflow: auto">'
               f"{LONG.replace('x', 'y')}</pre></div>"
               '<pre style="width: 300px">short = 1</pre>' + MATRIX)
        result = _run(site, "index.html")
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert "index.html: code line clipped at the default width (300 px box" in out
        assert "'x = 1 + 1 + " in out
        assert "'y = " not in out  # marked resume-scroll: deliberately scrollable
        assert "short = 1" not in out
        assert ("index.html: proof test_p.py::test_idle shows 'not run' (this build was "
                "given no test report) but could have run where the site was built") in out
        assert "test_ran" not in out and "test_skipped" not in out
        assert "2 problems" in out

    def test_code_that_fits_passes(self, site: Path) -> None:
        """The same page with a wide enough box and proofs that ran passes."""
        _write(site, "index.html", "Index",
               f'<pre style="width: 1100px; font-size: 12px">{LONG[:100]}</pre>'
               + MATRIX.replace("not run", "passed"))
        result = _run(site, "index.html")
        assert result.returncode == 0, result.stdout + result.stderr
