# Theory of operation: a ``ManPage`` as reStructuredText.
#
# ``to_rst`` is a pure function from the parsed page to reST lines (in the manner of
# sphinx-click): the Sphinx directive only feeds these lines to
# ``nested_parse_with_titles``, so every cross-reference goes through Sphinx's own
# resolution and a nitpicky build checks it. Hence the care taken here:
#
# - prose is escaped (``*``, `````, ``|``, ``_``, ``\``) so OpenSSL's text never turns
#   into accidental markup, and a paragraph that would read as a list is escaped too;
# - a prototype becomes ``.. c:function::`` only when it parsed (and, in a build, when
#   Sphinx's C parser accepts it: the ``signature_ok`` hook); anything else is shown
#   in a code block;
# - a Python equivalent is linked only when the target exists in ``resume``; a
#   SEE ALSO entry is linked (``:doc:``) only when its page is in the generated set;
#   ``func()`` mentions link (``:c:func:``) only to functions this page declares;
# - the COPYRIGHT paragraphs are always kept (the pages are Apache-2.0 documents).
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from ._mapping import python_equivalent, python_target_exists
from ._model import Block, ManPage, Prototype, Reference
from ._sentences import is_normative, split_sentences

__all__ = ["escape", "sentence_label", "to_rst"]

# ``_`` is markup only at a word's edge (``name_``, ``_target``); inside a word it is text.
_SPECIAL = re.compile(r"([\\*`|]|(?<!\w)_|_(?!\w))")
_LIST_START = re.compile(r"^(?:[-+*•]\s|\d+[.)]\s|\(\d+\)\s|[A-Za-z#][.)]\s|\.\.|:|>>>|\|)")
_TOKEN = re.compile(
    # a name's length is bounded, as in the parser: linear on a long run without "("
    r"(?P<ref>\b[A-Za-z_][\w.:+-]{0,127}\(\d[A-Za-z0-9]*\))"
    r"|(?P<func>\b[A-Za-z_]\w*\(\))"
    r"|(?P<url>https?://[^\s<>\"']+[^\s<>\"'.,;:)])"
    r"|(?P<name>\b[A-Za-z_]\w*\b)"
)


# What may follow inline markup directly (docutils' end-string rules), roughly.
_ENDS_ROLE = re.compile(r"[\s.,;:!?'\")\]}/\\>-]")


def escape(text: str) -> str:
    """Escape *text* so that reST shows it literally (no emphasis, roles or refs)."""
    return _SPECIAL.sub(r"\\\1", text)


def _inline(
    text: str,
    *,
    declared: set[str],
    known_pages: Mapping[str, str],
) -> str:
    """Escape prose, turning references to other pages and functions into links."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if match.group("name") and token not in declared:
            # plain text: escaped with the text around it (a word's edges are never
            # an escape's context), one call per span rather than per word
            continue
        out.append(escape(text[pos : match.start()]))
        if match.group("ref"):
            name, _, rest = token.partition("(")
            out.append(_page_link(Reference(name, rest.rstrip(")")), known_pages))
        elif match.group("func"):
            name = token[:-2]
            if name in declared:
                out.append(f":c:func:`{name}`")
            else:
                out.append(f"``{token}``")
        elif match.group("url"):
            out.append(f"`{token} <{token}>`__")
        else:  # a name this page declares
            out.append(f":c:func:`{token}`")
        pos = match.end()
        # keep the following character from gluing onto the role
        if out[-1].endswith("`") and pos < len(text) and not _ENDS_ROLE.match(text[pos]):
            out.append("\\ ")
    out.append(escape(text[pos:]))
    line = "".join(out)
    if _LIST_START.match(text):
        line = "\\" + line
    return line


def _page_link(ref: Reference, known_pages: Mapping[str, str]) -> str:
    docname = known_pages.get(ref.name)
    if docname is not None:
        return f":doc:`{ref.name}({ref.section}) <{docname}>`"
    return f"{escape(ref.name)}({ref.section})"


def _heading(text: str, char: str) -> list[str]:
    title = escape(text)
    return [title, char * max(len(title), 3), ""]


def _code_block(lines: Iterable[str]) -> list[str]:
    body = [f"   {line}" if line.strip() else "" for line in lines]
    return [".. code-block:: c", "   :force:", "", *body, ""]


def _python_line(function: str) -> list[str]:
    target = python_equivalent(function)
    if target is None:
        return []
    if python_target_exists(target):
        return [f"   Python equivalent: :py:obj:`{target}`", ""]
    return [f"   Python equivalent: ``{target}`` (not available in this version)", ""]


def _prototype(
    prototype: Prototype,
    *,
    no_index: bool,
    signature_ok: Callable[[str], bool] | None,
) -> list[str]:
    signature = prototype.signature
    if no_index or (signature_ok is not None and not signature_ok(signature)):
        lines = _code_block([prototype.text + ";"])
        target = python_equivalent(prototype.name)
        if target is not None:
            lines.extend(line.strip() for line in _python_line(prototype.name))
        return lines
    lines = [f".. c:function:: {signature}", ""]
    lines.extend(_python_line(prototype.name))
    return lines


def _synopsis(
    page: ManPage,
    *,
    no_index: bool,
    signature_ok: Callable[[str], bool] | None,
    declared: set[str],
    known_pages: Mapping[str, str],
) -> list[str]:
    lines: list[str] = []
    code: list[str] = []
    seen: set[str] = set()
    for entry in page.synopsis.entries:
        if isinstance(entry, Prototype) and entry.name in seen:
            entry = entry.text + ";"  # listed twice: declare it once
        if isinstance(entry, str) and _looks_like_declaration(entry):
            code.append(entry)
            continue
        if code:
            lines.extend(_code_block(code))
            code = []
        if isinstance(entry, str):
            lines.extend([_inline(entry, declared=declared, known_pages=known_pages), ""])
        else:
            seen.add(entry.name)
            lines.extend(_prototype(entry, no_index=no_index, signature_ok=signature_ok))
    if code:
        lines.extend(_code_block(code))
    return lines


def _looks_like_declaration(text: str) -> bool:
    return not re.search(r"[.:]\s*$", text) or text.rstrip().endswith(";")


def sentence_label(sentence_id: str) -> str:
    """The Sphinx label of a sentence on its generated page (``:ref:`` target)."""
    return sentence_id.lower()


def _labels(ids: Iterable[str]) -> list[str]:
    out = [f".. _`{sentence_id}`:" for sentence_id in ids]
    return [*out, ""] if out else []


def _blocks(
    blocks: Iterable[Block],
    *,
    declared: set[str],
    known_pages: Mapping[str, str],
    labels: Mapping[int, list[str]],
) -> list[str]:
    lines: list[str] = []
    pending_code: list[str] = []

    def flush_code() -> None:
        if pending_code:
            lines.extend(_code_block(pending_code))
            pending_code.clear()

    for block in blocks:
        if block.kind == "code":
            pending_code.append(" " * block.indent + block.text)
            continue
        flush_code()
        lines.extend(_labels(labels.get(id(block), ())))
        if block.kind == "item" and block.term:
            lines.append(_inline(block.term, declared=declared, known_pages=known_pages))
            body = block.body or block.term
            lines.extend([f"   {_inline(body, declared=declared, known_pages=known_pages)}", ""])
            continue
        if block.kind == "subheading":
            lines.extend([f".. rubric:: {escape(block.text)}", ""])
            continue
        lines.extend([_inline(block.text, declared=declared, known_pages=known_pages), ""])
    flush_code()
    return lines


def _sentence_labels(page: ManPage) -> dict[int, list[str]]:
    """id(block) -> the IDs of the normative sentences in it, for their labels."""
    sentences = page.sentences
    taken = 0  # an index, not a list shortened from the front (quadratic)
    out: dict[int, list[str]] = {}
    for block in page.blocks:
        if not is_normative(block.section) or block.kind in ("code", "subheading"):
            continue
        count = len(split_sentences(block.text))
        out[id(block)] = [s.id for s in sentences[taken : taken + count]]
        taken += count
    return out


def to_rst(
    page: ManPage,
    *,
    known_pages: Mapping[str, str] | None = None,
    no_index: bool = False,
    signature_ok: Callable[[str], bool] | None = None,
    heading_chars: str = "=-",
) -> list[str]:
    """Render *page* as reStructuredText lines.

    Args:
        page: The parsed page (:func:`resume.manpage.parse`).
        known_pages: Page name -> Sphinx docname of the other generated pages;
            SEE ALSO entries (and other ``name(N)`` mentions) to these pages become
            ``:doc:`` links, the others stay plain text.
        no_index: Declare nothing: prototypes are shown as code, not as
            ``c:function`` entries (Sphinx's C domain has no ``:no-index:``), and
            the sentence labels are left out. For a second rendering of a page
            that is also rendered elsewhere. Otherwise each normative sentence
            gets a label, ``sentence_label(ID)``, that the matrix links to.
        signature_ok: Optional check of a C signature (the Sphinx extension passes
            Sphinx's own C parser); a prototype it rejects is shown as code.
        heading_chars: Underline characters for the page title and its sections.

    Returns:
        The reST lines, with the page title as the top heading.
    """
    known = dict(known_pages or {})
    known.pop(page.name, None)
    declared = {p.name for p in page.synopsis.prototypes}
    if no_index:
        declared = set()
    elif signature_ok is not None:
        declared = {p.name for p in page.synopsis.prototypes if signature_ok(p.signature)}
    labels = {} if no_index else _sentence_labels(page)
    top, sub = heading_chars[0], heading_chars[1]
    lines = _heading(f"{page.name}({page.manual_section})", top)
    if page.summary:
        lines.extend([escape(page.summary[:1].upper() + page.summary[1:]), ""])
    meta = ", ".join(x for x in (f"OpenSSL {page.version}" if page.version else "", page.date) if x)
    if meta:
        lines.extend([f"*{escape(meta)}*", ""])
    for section in page.sections:
        lines.extend(_heading(section.title, sub))
        if section.title == "NAME":
            names = ", ".join(f"``{name}``" for name in page.functions)
            summary = f" — {escape(page.summary)}" if page.summary else ""
            lines.extend([f"{names}{summary}", ""])
        elif section.title == "SYNOPSIS":
            lines.extend(
                _synopsis(page, no_index=no_index, signature_ok=signature_ok,
                          declared=declared, known_pages=known)
            )
        elif section.title == "SEE ALSO":
            refs = page.see_also
            lines.extend([", ".join(_page_link(r, known) for r in refs) or "", ""])
        else:
            lines.extend(
                _blocks(section.blocks, declared=declared, known_pages=known, labels=labels)
            )
    return lines
