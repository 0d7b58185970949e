"""tests/programs.require: a missing program skips with the package to install, or fails in CI."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

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
    assert set(PACKAGES) >= {
        "openssl", "curl", "redis-server", "nginx", "chromium", "node", "stunnel4"
    }


def test_unit_tests_cannot_open_a_network_socket() -> None:
    """The guard in tests/conftest.py: a unit test that binds a TCP socket fails."""
    import socket

    with socket.socket() as sock, pytest.raises(AssertionError, match="tests/integration"):
        sock.bind(("127.0.0.1", 0))


_SPAWNERS = {"run", "Popen", "create_subprocess_exec", "run_process", "check_output", "call",
             "check_call"}


def _spawned_by_name(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in _SPAWNERS:
            continue
        first = node.args[0]
        if isinstance(first, ast.List | ast.Tuple) and first.elts:
            first = first.elts[0]
        if isinstance(first, ast.Constant) and first.value in PACKAGES:
            found.append(f"line {node.lineno}: {first.value}")
    return found


def test_every_program_is_found_through_require() -> None:
    """No test runs openssl, curl, redis-server, nginx or chromium by bare name.

    Run by bare name, a missing program is a FileNotFoundError; found with
    require(), it is a skip that names the package (and a failure in CI).
    """
    root = Path(__file__).resolve().parents[1]
    bad = {
        str(path.relative_to(root)): found
        for path in sorted(root.rglob("*.py"))
        if (found := _spawned_by_name(ast.parse(path.read_text())))
    }
    assert bad == {}
    sample = ast.parse("subprocess.run(['curl', '-s'])\ntrio.run_process(['openssl', 'x'])\n")
    assert len(_spawned_by_name(sample)) == 2
