"""Nox sessions for resume: tests, lint, typecheck, docs and benchmarks.

CI (``.ci/run``) runs the tests with the README's command, then these sessions.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (real TLS on loopback, openssl, curl, redis-server)."""
    session.install("-e", ".[test]")
    session.run("python", "-c", "import ssl; print(ssl.OPENSSL_VERSION)")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "resume", "tests", "examples", "benchmarks", "docs", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check resume and the tests with mypy --strict."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict", "resume", "tests")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with -n -W --keep-going, then run its doctests."""
    session.install("-e", ".[docs,test]")
    session.run("sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    session.run("sphinx-build", "-n", "-W", "--keep-going", "-b", "doctest", "docs", "docs/_build/doctest")


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """Run the benchmarks in benchmarks/ and print the figures (not part of CI)."""
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
