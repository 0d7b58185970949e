"""tests/programs.require: a missing program skips with the package to install, or fails in CI."""

from __future__ import annotations

import shutil

import pytest
from programs import PACKAGES, require


def _nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)


def test_found_program_returns_its_path() -> None:
    """A program on PATH: its path, nothing skipped."""
    path = shutil.which("python3")
    assert path is not None
    assert require("python3") == path


def test_missing_program_skips_with_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside CI the test is skipped, and the reason names the Debian package."""
    monkeypatch.delenv("CI", raising=False)
    _nothing_installed(monkeypatch)
    with pytest.raises(pytest.skip.Exception, match=r"needs nginx: apt-get install nginx-light"):
        require("nginx")


def test_missing_program_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true a missing program is a failure: CI must install it."""
    monkeypatch.setenv("CI", "true")
    _nothing_installed(monkeypatch)
    with pytest.raises(pytest.fail.Exception, match=r"needs redis-server.*CI=true"):
        require("redis-server")


def test_every_program_has_a_package() -> None:
    """The programs the integration tests run all name their package."""
    assert set(PACKAGES) >= {"openssl", "curl", "redis-server", "nginx", "chromium"}


def test_unit_tests_cannot_open_a_network_socket() -> None:
    """The guard in tests/conftest.py: a unit test that binds a TCP socket fails."""
    import socket

    with socket.socket() as sock, pytest.raises(AssertionError, match="tests/integration"):
        sock.bind(("127.0.0.1", 0))
