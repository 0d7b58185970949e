"""Nox sessions for resume: tests, core, lint, typecheck, docs, browser, benchmarks and fuzz.

The suite runs on every Python resume supports: ``nox -s tests`` runs all of it on
3.10, 3.11, 3.12 and 3.13 (``nox -s tests-3.10`` picks one); ``nox -s core`` runs
the core, binding and adapter tests (with the demo and the examples), which is what
CI runs on the three Pythons besides 3.11. CI (``.ci/run``) runs the README's test
command on 3.11, then the same checks as the lint, typecheck, docs and browser
sessions. ``nox -s docs browser`` builds the whole site and checks it in Chromium:
the docs session runs the proof tests for the conformance matrix itself unless a
fresh report is there (see docs/conf.py). ``nox`` alone runs the default set;
``nox -s benchmarks``, ``nox -s fuzz`` and ``nox -s soak`` are opt-in (slow, and
measured, not asserted).

Interpreters are found on ``PATH`` as ``python3.X``; where pyenv installed one that
``PATH`` cannot run (this project's machine image has 3.10, 3.12 and 3.13 so, behind
pyenv shims), its ``bin`` folder is put first, so plain ``nox`` finds all four.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs", "browser"]
nox.options.reuse_existing_virtualenvs = True

#: The Python of the single-version sessions (lint, docs, ...) and of CI's full run.
PYTHON = ["3.11"]
#: Every Python resume supports and tests (pyproject.toml's classifiers, the README).
TEST_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
REPORT = "docs/_build/conformance.json"

#: The core, binding and adapter tests: the I/O-free core, the guarded OpenSSL
#: binding (whose probe reads version-specific object layouts), both adapters'
#: clients and servers against real peers, and the demo and the examples, which
#: must run on every supported Python. Left out: the stores (SQLite, Redis), the
#: man-page tools and the docs, which lean on no version-specific internals.
CORE_TESTS = [
    # core
    "tests/integration/test_handle.py",
    "tests/unit/test_cache.py",
    "tests/unit/test_core_statemachine.py",
    "tests/unit/test_key.py",
    "tests/unit/test_client_policy.py",
    "tests/integration/test_der.py",
    "tests/unit/test_exports.py",
    "tests/unit/test_pythons.py",
    # binding
    "tests/integration/test_openssl_binding.py",
    "tests/integration/test_ticketkeys.py",
    # adapters
    "tests/integration/test_trio_client.py",
    "tests/integration/test_asyncio_client.py",
    "tests/integration/test_client_scenarios.py",
    "tests/integration/test_client_openssl_peer.py",
    "tests/integration/test_native_path.py",
    "tests/integration/test_trio_server.py",
    "tests/integration/test_asyncio_server.py",
    "tests/integration/test_server_peers.py",
    # what users run first
    "tests/integration/test_cli_demo.py",
    "tests/integration/test_examples.py",
]


def _runs(name: str) -> bool:
    # A pyenv shim is on PATH even when it would refuse to run that version.
    exe = shutil.which(name)
    return exe is not None and subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0


def _add_pyenv_pythons() -> None:
    # Put pyenv's newest 3.X.Y on PATH for each tested 3.X that PATH cannot run.
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for version in TEST_PYTHONS:
        if _runs(f"python{version}"):
            continue
        found = sorted(
            glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")),
            key=lambda path: [int(p) for p in path.split(os.sep)[-3].split(".") if p.isdigit()],
        )
        if found:
            os.environ["PATH"] = os.pathsep.join([os.path.dirname(found[-1]), os.environ["PATH"]])


_add_pyenv_pythons()


def _show_versions(session: nox.Session) -> None:
    session.run("python", "-c", "import ssl, sys; print(sys.version); print(ssl.OPENSSL_VERSION)")


@nox.session(python=TEST_PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (real TLS on loopback, openssl, curl, redis-server, chromium)."""
    session.install("-e", ".[test]")
    _show_versions(session)
    report = []
    if session.python == PYTHON[0]:  # the docs' conformance matrix comes from CI's Python
        os.makedirs("docs/_build", exist_ok=True)
        report = [f"--conformance-report={REPORT}"]
    session.run("python", "-m", "pytest", *report, *session.posargs)


@nox.session(python=TEST_PYTHONS)
def core(session: nox.Session) -> None:
    """Run the core, binding and adapter tests, the demo and the examples (CI: 3.10, 3.12, 3.13)."""
    session.install("-e", ".[test]")
    _show_versions(session)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *CORE_TESTS, *session.posargs)


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
    """Build the whole site, proof results included (-E -n -W --keep-going), then its doctests."""
    session.install("-e", ".[docs,test]")
    # docs/conf.py runs the proof tests (pytest -m manpage) when the conformance
    # report is missing, older than the code or the tests, or silent about a proof;
    # RESUME_DOCS_RUN_PROOFS=always runs them on every build, 0 never.
    env = {"RESUME_DOCS_RUN_PROOFS": os.environ.get("RESUME_DOCS_RUN_PROOFS", "1")}
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build", "-E", "-n", "-W", "--keep-going", "-b", builder,
            "docs", f"docs/_build/{builder}", env=env,
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
        "tests/unit/test_der_fuzz.py", *session.posargs,
        env={"RESUME_FUZZ_INPUTS": inputs},
    )


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Soak and fault suite: leaks, 1,000 clients, slow-loris, fds, Redis restarts (opt-in)."""
    session.install("-e", ".[test,redis]")
    session.run("python", "-m", "benchmarks.soak", *session.posargs)
