"""The programs the integration tests run, and what to do when one is missing.

``require("openssl")`` returns the program's path. When it is not installed the
test is skipped with a reason that names the Debian package to install ("needs
openssl: apt-get install openssl"; docs/browser_check.py reads the "needs
PROGRAM" part), except under ``CI=true``, where a missing program is a failure:
CI must install everything, and a skip there would hide a missing install step.

A test that runs a program from inside trio or asyncio declares it with
``@pytest.mark.requires("openssl")`` (tests/conftest.py checks it before the test
starts): a skip raised inside an event loop reaches pytest without its reason.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: Program -> the Debian package that installs it.
PACKAGES = {
    "openssl": "openssl",
    "curl": "curl",
    "redis-server": "redis-server",
    "nginx": "nginx-light",
    "chromium": "chromium",
    "node": "nodejs",
    "stunnel4": "stunnel4",
}


def require(program: str) -> str:
    """Return the path of *program*; skip the test (fail under CI=true) when it is missing."""
    path = shutil.which(program)  # daemons (nginx) are in sbin: keep it on PATH
    if path is not None:
        return path
    package = PACKAGES.get(program, program)
    reason = f"needs {program}: apt-get install {package}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: CI must install it)", pytrace=False)
    pytest.skip(reason)
