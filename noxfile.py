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
measured, not asserted), and so is ``nox -s peers`` (the HTTP clients' own test
suites with resume's classes swapped in; it downloads their sdists).

Interpreters are found on ``PATH`` as ``python3.X``; where pyenv installed one that
``PATH`` cannot run (this project's machine image has 3.10, 3.12 and 3.13 so, behind
pyenv shims), its ``bin`` folder is put first, so plain ``nox`` finds all four.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tarfile
import tempfile

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
    # early data (0-RTT): clients, servers, replay records, the OpenSSL page
    "tests/unit/test_replay_guard.py",
    "tests/unit/test_early_data_core.py",
    "tests/integration/test_early_data_client.py",
    "tests/integration/test_early_data_server.py",
    "tests/integration/test_manpage_early_data.py",
    "tests/integration/test_httpx_early_data.py",
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


#: The clients whose own suites ``nox -s peers`` runs: the extra test requirements
#: of each suite, its tests, and the package folder of its sdist (removed, so that
#: the suite tests the installed package, not the sdist's copy).
PEERS = {
    "requests": (
        ["pytest-httpbin==2.1.0", "httpbin~=0.10.0", "trustme", "PySocks"],
        # Left out: the tests that connect to a non-routable private address
        # (10.255.255.1) to provoke a connect timeout, and the one that looks up
        # a public name: loopback only here.
        [
            "tests", "-k",
            "not test_connect_timeout and not test_total_timeout_connect and not test_errors",
        ],
        "src/requests",
    ),
    "httpx": (
        ["trustme", "uvicorn", "chardet", "zstandard", "brotli", "click", "rich", "pygments",
         "socksio", "trio", "cryptography"],
        ["tests", "-m", "not network"],  # loopback only
        "httpx",
    ),
    "aiohttp": (
        # coverage: named by aiohttp's warning filters
        ["pytest-mock", "freezegun", "trustme", "coverage"],
        ["tests/test_connector.py", "tests/test_client_session.py"],
        "aiohttp",
    ),
}


@nox.session(python=PYTHON)
def peers(session: nox.Session) -> None:
    """Run requests', httpx's and aiohttp's own tests, as is and with resume's class (opt-in)."""
    # Each client's suite comes from the sdist of the version installed here
    # (pip download --no-binary); tests/peers/resume_peers.py swaps resume's
    # class in, and tests/peers/peers_compare.py compares the two runs.
    # ``nox -s peers -- httpx`` runs one client.
    session.install("-e", ".[test]")
    clients = session.posargs or list(PEERS)
    for client in clients:
        session.install(*PEERS[client][0])
    _show_versions(session)
    here = os.getcwd()
    work = tempfile.mkdtemp(prefix="resume-peers-")
    env = {"PYTHONPATH": os.path.join(here, "tests", "peers"), "RESUME_PEERS_CLIENT": ""}
    failed = []
    for client in clients:
        _, tests, package = PEERS[client]
        version = str(session.run(
            "python", "-c", f"import importlib.metadata as m; print(m.version({client!r}))",
            silent=True,
        )).strip()
        session.run(
            "python", "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
            f"{client}=={version}", "-d", work,
        )
        with tarfile.open(os.path.join(work, f"{client}-{version}.tar.gz")) as archive:
            archive.extractall(work, filter="data")
        source = os.path.join(work, f"{client}-{version}")
        shutil.rmtree(os.path.join(source, package))
        reports = []
        for swap in ("0", "1"):
            report = os.path.join(work, f"{client}-{'swapped' if swap == '1' else 'plain'}.json")
            reports.append(report)
            session.chdir(source)
            session.run(
                "python", "-m", "pytest", "-p", "resume_peers", "-p", "no:cacheprovider",
                "-o", "addopts=", "-o", "timeout=120", "-q", "--no-header", "-rN",
                *tests,
                env={**env, "RESUME_PEERS_CLIENT": client, "RESUME_PEERS_SWAP": swap,
                     "RESUME_PEERS_REPORT": report},
                success_codes=[0, 1],
            )
            session.chdir(here)
        output = str(session.run(
            "python", "tests/peers/peers_compare.py", *reports, success_codes=[0, 1, 3, 4],
            silent=True,
        ))
        print(output)
        if not output.rstrip().splitlines()[-1].startswith(f"{client}: OK"):
            failed.append(client)
    shutil.rmtree(work, ignore_errors=True)
    if failed:
        session.error(f"resume's classes fail tests that pass as is: {', '.join(failed)}")
