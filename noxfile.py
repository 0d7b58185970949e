"""Nox sessions for resume: tests, lint, typecheck, docs, browser, benchmarks and fuzz.

CI (``.ci/run``) runs the README's test command, then the same checks as the
lint, typecheck, docs and browser sessions. ``nox`` alone runs the default set;
``nox -s benchmarks``, ``nox -s fuzz`` and ``nox -s soak`` are opt-in (slow, and measured,
not asserted).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs", "browser"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.11"]
REPORT = "docs/_build/conformance.json"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (real TLS on loopback, openssl, curl, redis-server, chromium)."""
    session.install("-e", ".[test]")
    session.run("python", "-c", "import ssl; print(ssl.OPENSSL_VERSION)")
    os.makedirs("docs/_build", exist_ok=True)
    session.run("python", "-m", "pytest", f"--conformance-report={REPORT}", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "resume", "tests", "examples", "benchmarks", "docs", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check resume and the tests with mypy --strict."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict", "resume", "tests")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site with -n -W --keep-going (using the last test report), then its doctests."""
    session.install("-e", ".[docs,test]")
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build", "-n", "-W", "--keep-going", "-b", builder,
            "docs", f"docs/_build/{builder}",
        )


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """Open the built site in headless Chromium: assets, internal links, console errors."""
    session.install("-e", ".[docs]")
    session.run("python", "docs/browser_check.py", "docs/_build/html")


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """Run the benchmarks in benchmarks/ and print the figures (opt-in, not part of CI)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Fuzz SessionHandle.from_der with 1,000,000 fixed-seed inputs (about 3 minutes; opt-in)."""
    session.install("-e", ".[test]")
    inputs = os.environ.get("RESUME_FUZZ_INPUTS", "1000000")
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "slow",
        "tests/test_der_fuzz.py", *session.posargs,
        env={"RESUME_FUZZ_INPUTS": inputs},
    )


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Soak and fault suite: leaks, 1,000 clients, slow-loris, fds, Redis restarts (opt-in)."""
    session.install("-e", ".[test,redis]")
    session.run("python", "-m", "benchmarks.soak", *session.posargs)
