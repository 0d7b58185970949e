"""The public surface: every public namespace re-exports only, and each name is documented.

As in trio's test_exports: objects report their public module (``resume.trio.serve_tls``,
not ``resume._adapters.trio_server.serve_tls``), every name in ``__all__`` exists and has a
docstring, and the public modules hold no implementation of their own.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import resume

PUBLIC_MODULES = [
    "resume",
    *sorted(
        f"resume.{info.name}"
        for info in pkgutil.iter_modules(resume.__path__)
        if not info.name.startswith("_")
    ),
]


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_has_all(name: str) -> None:
    """Each public module declares its surface in __all__, and every name there exists."""
    module = _module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which is missing"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_objects_report_their_public_module(name: str) -> None:
    """Classes and functions say where users import them from, as trio's objects do."""
    module = _module(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            home = obj.__module__
            assert home in PUBLIC_MODULES, f"{name}.{attr} reports {home}"
            # Re-exported from another public namespace: it must really live there.
            assert getattr(_module(home), attr) is obj, f"{name}.{attr} is not {home}.{attr}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_name_is_documented(name: str) -> None:
    """Every public class and function has a docstring, and so do public methods."""
    module = _module(name)
    assert module.__doc__, f"{name} has no module docstring"
    for attr in module.__all__:
        obj = getattr(module, attr)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") or not (
                    inspect.isfunction(value) or isinstance(value, (property, classmethod))
                ):
                    continue
                assert inspect.getdoc(getattr(obj, member)), (
                    f"{name}.{attr}.{member} has no docstring"
                )


def test_private_modules_are_not_exported() -> None:
    """Nothing in resume.__all__ is a module, and no public module re-exports a private one."""
    for name in PUBLIC_MODULES:
        module = _module(name)
        for attr in module.__all__:
            assert not inspect.ismodule(getattr(module, attr)), f"{name}.{attr} is a module"


def test_boundary_names_are_public() -> None:
    """The names issue 8 added are re-exported from resume and report it as their home."""
    for attr in ("create_client_context", "UntrackedContextWarning"):
        assert attr in resume.__all__
        assert getattr(resume, attr).__module__ == "resume"


def test_probe_names_are_public() -> None:
    """resume.probe and its result classes are exported from resume itself."""
    names = {"probe", "ProbeResult", "VersionProbe", "ResumptionTally", "FleetMatrix",
             "ProbeError"}
    assert names <= set(resume.__all__)
    for name in names:
        assert getattr(resume, name).__module__ == "resume"
    assert inspect.iscoroutinefunction(resume.probe)


def test_integration_extension_point_is_public() -> None:
    """The sans-I/O client policy and the key are public, for the next integration (issue 10)."""
    for attr in ("ClientConnection", "make_key", "SessionKey"):
        assert attr in resume.__all__
        assert getattr(resume, attr).__module__ == "resume"


def test_importing_resume_imports_no_http_client() -> None:
    """``import resume`` never imports httpx, aiohttp or requests (they are optional extras)."""
    import subprocess
    import sys

    code = (
        "import sys, resume, resume.trio, resume.asyncio, resume.stores\n"
        "bad = [m for m in ('httpx', 'httpcore', 'aiohttp', 'requests', 'urllib3') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("resume.httpx", ["AsyncHTTPTransport", "HTTPTransport"]),
        ("resume.aiohttp", ["TCPConnector"]),
        ("resume.requests", ["HTTPAdapter"]),
    ],
)
def test_http_integrations_are_public(module: str, names: list[str]) -> None:
    """Each HTTP client integration re-exports exactly its classes, which report their home."""
    mod = _module(module)
    assert sorted(mod.__all__) == sorted(names)
    for attr in names:
        assert getattr(mod, attr).__module__ == module
