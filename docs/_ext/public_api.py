"""The API reference, generated from ``__all__``, and a check that it is complete.

``.. public-api:: resume.trio`` documents every name in the module's ``__all__``
with the matching autodoc directive, grouped by kind. A name whose object lives
in another public module (``resume.trio.SessionKey`` is ``resume.SessionKey``) is
listed as a re-export with a link to the one place it is documented.

At the end of reading, every public module of ``resume`` (every module or package
whose dotted name has no part starting with ``_``) is imported, and a warning,
which fails the ``-W`` build, names each public name that no page documents.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.util
import inspect
import pkgutil
import re
from typing import Any

from docutils import nodes
from docutils.nodes import Element, TextElement, make_id
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: (title, kind) in the order the groups appear on a page.
GROUPS = (
    ("Functions", "function"),
    ("Classes", "class"),
    ("Exceptions and warnings", "exception"),
    ("Constants", "data"),
    ("Re-exported names", "alias"),
)


def public_modules(package: str = "resume") -> list[str]:
    """The public modules of *package*: itself and every submodule without a ``_`` part."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _home(obj: Any) -> str | None:
    # The dotted name under which *obj* is documented, if it names its home.
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and (
        inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)
    ):
        return f"{module}.{qualname}"
    return None


def _is_public_home(home: str, name: str, module_name: str) -> bool:
    # True if *home* is another public module that exports the object under *name*.
    home_module = home.rsplit(".", 1)[0]
    if home_module == module_name or any(p.startswith("_") for p in home_module.split(".")):
        return False
    try:
        return name in getattr(importlib.import_module(home_module), "__all__", [])
    except ImportError:
        return False


def _inherits_only_own(cls: type) -> bool:
    # True if every base class with members is resume's own: then the inherited
    # methods are part of this class's documented surface (a store's get/put).
    bases = [
        base for base in cls.__mro__[1:]
        if base is not object and base.__module__ not in ("abc", "typing")
    ]
    return bool(bases) and all(base.__module__.startswith("resume") for base in bases)


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
        return "function"
    return "data"


def _defining_module(module_name: str, name: str) -> str:
    # The module that *name* is imported from in *module_name* (itself if none).
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and any(
            (alias.asname or alias.name) == name for alias in node.names
        ):
            package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
            return importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    return module_name


def _data_rst(module_name: str, name: str, value: Any) -> list[str]:
    # A constant: its value and the ``#:`` comment where it is defined. (autodata
    # would show the docstring of the value's type for a re-exported constant.)
    home = _defining_module(module_name, name)
    docs = ModuleAnalyzer.for_module(home).find_attr_docs().get(("", name))
    if not docs and name == "__version__":
        docs = ["The version of this package (``resume --version`` prints it too)."]
    if not docs:
        logger.warning("public constant %s.%s has no #: comment where it is defined (%s)",
                       module_name, name, home)
    lines = [f".. py:data:: {name}", f"   :module: {module_name}", f"   :value: {value!r}", ""]
    lines += [f"   {line}" for line in (docs or [])]
    return lines


def api_rst(module_name: str) -> list[tuple[str, list[str]]]:
    """The reST of a module's public names, as ``(group title, lines)`` pairs."""
    module = importlib.import_module(module_name)
    exported: list[str] = list(getattr(module, "__all__", []))
    groups: dict[str, list[str]] = {kind: [] for _, kind in GROUPS}
    for name in exported:
        obj = getattr(module, name)
        home = _home(obj)
        if home is not None and _is_public_home(home, name, module_name):
            # A target under this module's name too (so that references written
            # in this module's docstrings resolve), shown as a link to the home.
            kind = _kind(obj)
            role = {"class": "class", "exception": "exc", "function": "func"}[kind]
            groups["alias"] += [
                f".. py:{kind}:: {name}",
                f"   :module: {module_name}",
                "   :no-typesetting:",
                "",
                f"* ``{module_name}.{name}`` is :{role}:`{home}`.",
                "",
            ]
            continue
        kind = _kind(obj)
        target = f"{module_name}.{name}"
        if kind == "class":
            lines = [f".. autoclass:: {target}", "   :members:"]
            if _inherits_only_own(obj):
                lines.append("   :inherited-members:")
            if issubclass(obj, enum.Enum):
                lines.append("   :undoc-members:")
        elif kind == "exception":
            lines = [f".. autoexception:: {target}", "   :members:"]
        elif kind == "function":
            lines = [f".. autofunction:: {target}"]
        else:
            lines = _data_rst(module_name, name, obj)
        groups[kind] += [*lines, ""]
    return [(title, groups[kind]) for title, kind in GROUPS if groups[kind]]


class PublicApiDirective(SphinxDirective):
    """``.. public-api:: MODULE``: document every name in ``MODULE.__all__``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        result: list[nodes.Node] = []
        for title, lines in api_rst(module_name):
            section = nodes.section(ids=[make_id(f"{module_name}-{title}")])
            section += nodes.title(title, title)
            content = StringList(lines, source=f"<{module_name}.__all__>")
            self.state.nested_parse(content, self.content_offset, section)
            result.append(section)
        return result


def _check_complete(app: Sphinx, env: BuildEnvironment) -> None:
    documented = set(env.domains["py"].objects)
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if module_name not in documented:
            logger.warning("public module %s is not documented (add a page with "
                           ".. automodule:: and .. public-api::)", module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            home = _home(obj)
            if f"{module_name}.{name}" not in documented and home not in documented:
                logger.warning("public name %s.%s is not documented", module_name, name)


def _resolve_in_package(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: TextElement
) -> Element | None:
    # A docstring of resume.stores that writes :meth:`SessionHandle.to_der` means
    # resume.SessionHandle.to_der: Python looks names up in the module, Sphinx only
    # in the module, its class and the top level. Try the top-level package too,
    # and only for names that are documented there.
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", ""))
    if not target or target.startswith("resume"):
        return None
    candidate = f"resume.{target}"
    domain = env.domains["py"]
    if candidate not in domain.objects:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
    )


_PRIVATE_IN_SIGNATURE = re.compile(r"resume\._|[(,\s]_[A-Za-z]")


def _hide_private_constructor(
    app: Sphinx, what: str, name: str, obj: Any, options: Any,
    signature: str | None, return_annotation: str | None,
) -> tuple[str, str | None] | None:
    # A class whose constructor takes a private type or a private parameter is
    # made by the library (ResumingSSLStream by open_tls_stream), never by the
    # reader: show it without a signature rather than with one nobody can call.
    if what in ("class", "exception") and signature and _PRIVATE_IN_SIGNATURE.search(signature):
        return "", return_annotation
    # A dataclass field with default_factory shows its default as "<factory>",
    # which is not Python and breaks the parsing of the whole signature.
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def _is_phrase(text: str) -> bool:
    # Words with spaces and no type syntax: "The TCP socket (do not read it".
    return (
        not any(c in text for c in "[]|.`")
        and re.search(r"[A-Za-z]+ [a-z]+", text) is not None
    )


def _undo_napoleon_phrase_type(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    # napoleon reads the first line of a property's docstring as "type: text"
    # when it has a colon, so "The session in use: the resumed one" became the
    # type "The session in use". The house style writes property docstrings
    # that way and puts types in annotations: a "type" that is a plain phrase
    # (capitalised words, no dots, brackets or pipes) goes back into the text.
    if what not in ("property", "attribute"):
        return
    for index, line in enumerate(lines):
        if line.startswith(":type: ") and _is_phrase(line[7:].strip()):
            phrase = line[7:].strip()
            del lines[index]
            if lines:
                lines[0] = f"{phrase}: {lines[0]}"
            return


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive, the completeness check and the package resolver."""
    # After napoleon (priority 500), which makes the ":type:" line.
    app.connect("autodoc-process-docstring", _undo_napoleon_phrase_type, priority=600)
    app.connect("autodoc-process-signature", _hide_private_constructor)
    app.add_directive("public-api", PublicApiDirective)
    app.connect("missing-reference", _resolve_in_package, priority=800)
    app.connect("env-check-consistency", _check_complete)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
