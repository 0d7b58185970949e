"""The tree is the architecture: which room may do what.

* only resume/_openssl/ imports ctypes (all unsafe code is in the guarded binding);
* only resume/_compat.py names private attributes of CPython's ssl/_ssl and of
  trio (every such access is written once there, with its probe or fallback);
* the I/O-free core never imports trio, asyncio, socket or a store.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "resume"
MODULES = sorted(PACKAGE.rglob("*.py"))

#: Private names of CPython's ssl/_ssl and of trio that resume has needed.
PRIVATE_NAMES = frozenset({
    "_sslobj", "_ssl_object", "_SSLContext", "_SSLSocket", "_wrap_socket",
    "_msg_callback", "_sslcontext", "_ssl_protocol", "_sslobject", "_create",
    "_app_transport", "_sslpipe", "_real_close",
})
#: Undocumented modules of the standard library that only _compat may import.
PRIVATE_MODULES = frozenset({"_ssl", "asyncio.sslproto", "trio._ssl"})
#: Modules whose private names only _compat may use.
FOREIGN_MODULES = frozenset({"ssl", "_ssl", "trio", "asyncio", "socket", "httpcore", "aiohttp"})


def _room(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _private_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in PRIVATE_MODULES)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(
                f"{node.module}.{a.name}" for a in node.names
                if f"{node.module}.{a.name}" in PRIVATE_MODULES
            )
            if node.module in PRIVATE_MODULES:
                found.add(node.module)
    return found


def _private_accesses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            own = isinstance(base, ast.Name) and base.id in {"self", "cls"}
            if node.attr in PRIVATE_NAMES and not own:
                found.append(f"line {node.lineno}: .{node.attr}")
            elif (
                node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(base, ast.Name) and base.id in FOREIGN_MODULES
            ):
                found.append(f"line {node.lineno}: {base.id}.{node.attr}")
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"} and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant) and node.args[1].value in PRIVATE_NAMES
        ):
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_binding_imports_ctypes(path: Path) -> None:
    """ctypes appears in resume/_openssl/ and nowhere else."""
    if _room(path) == "_openssl":
        return
    assert "ctypes" not in _imports(ast.parse(path.read_text())), path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_compat_touches_private_names(path: Path) -> None:
    """Private attributes of ssl, _ssl and trio are reached through resume._compat only."""
    if path.name == "_compat.py":
        return
    tree = ast.parse(path.read_text())
    assert not _private_modules(tree), f"{path} imports {_private_modules(tree)}"
    assert _private_accesses(tree) == [], path


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "_core").glob("*.py")), ids=lambda p: p.name
)
def test_the_core_does_no_io(path: Path) -> None:
    """resume/_core imports no event loop, no socket, no store."""
    tree = ast.parse(path.read_text())
    imports = _imports(tree)
    assert not imports & {"trio", "asyncio", "socket", "sqlite3", "redis", "ctypes"}, path
    outer = {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module
    }
    # the core may use the guarded binding (native sessions), no outer room
    assert outer <= {"_openssl", "_compat"}, f"{path} imports {outer}"


def test_the_checks_see_what_they_forbid() -> None:
    """The scanner finds each kind of forbidden access in a sample."""
    sample = ast.parse(
        "import _ssl\nfrom asyncio import sslproto\n"
        "x = obj._sslobj\ny = ssl._create_default_https_context\n"
        "z = getattr(stream, '_ssl_object')\nself._ssl_object = z\n"
    )
    assert _private_modules(sample) == {"_ssl", "asyncio.sslproto"}
    assert len(_private_accesses(sample)) == 3
