# The data model of a parsed man page.
#
# Everything here is an immutable value: ``parse`` builds a ``ManPage`` once and the
# reST generator, the conformance matrix and the tests only read it. A page is a flat,
# ordered list of ``Block``s (one per input paragraph, per SYNOPSIS line and per code
# line), each labelled with its canonical section heading; every other view
# (sections, synopsis, references, sentences) is derived from that list, so the
# blocks are the single source of truth and the views can never disagree with them.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, final

__all__ = [
    "Block",
    "BlockKind",
    "ManPage",
    "ManPageError",
    "Parameter",
    "Prototype",
    "Reference",
    "Section",
    "Sentence",
    "Synopsis",
]

#: What a block is: prose, an item of a tagged list (``term`` holds its tag), one
#: line of code (SYNOPSIS lines, examples) or a sub-heading.
BlockKind = Literal["paragraph", "item", "code", "subheading"]


@final
class ManPageError(ValueError):
    """The text given to :func:`resume.manpage.parse` is not a man page.

    Raised for empty input, binary data and text without the header line, the
    ``NAME`` paragraph or the footer of a ``man`` rendering.
    """


@final
@dataclass(frozen=True, slots=True)
class Block:
    """One paragraph (or one SYNOPSIS or code line) of a man page, in input order.

    Attributes:
        section: The canonical heading of the section the block belongs to,
            such as ``"DESCRIPTION"`` or ``"RETURN VALUES"``.
        text: The block's text on one line, white space normalised.
        kind: ``"paragraph"``, ``"item"`` (a tagged list entry), ``"code"`` (a
            SYNOPSIS or code line, kept verbatim) or ``"subheading"``.
        term: For an ``"item"``, its tag (such as ``"SSL_SESS_CACHE_OFF"``);
            ``text`` then starts with it.
        indent: For a ``"code"`` line of a headed rendering, its indentation
            relative to the code around it (the heading-less format has none).
    """

    section: str
    text: str
    kind: BlockKind = "paragraph"
    term: str | None = None
    indent: int = 0

    @property
    def body(self) -> str:
        """The text after the item's term (the whole text for other blocks)."""
        if self.term is not None and self.text.startswith(self.term):
            return self.text[len(self.term) :].strip()
        return self.text


@final
@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a C prototype: ``const SSL_SESSION *src`` -> type and name.

    ``name`` is empty for an unnamed parameter (``void``, ``...`` or a bare type).
    """

    type: str
    name: str

    def __str__(self) -> str:
        if not self.name or "(" in self.type:
            # unnamed, or a function pointer whose type already holds its name
            return self.type
        if self.type.endswith("*"):
            return f"{self.type}{self.name}"
        return f"{self.type} {self.name}"


@final
@dataclass(frozen=True, slots=True)
class Prototype:
    """A C function prototype of the SYNOPSIS.

    Attributes:
        return_type: ``"SSL_SESSION *"``, ``"int"``, ...
        name: The function's name.
        parameters: The parameters in order (empty for ``(void)``).
        text: The prototype as written, joined onto one line, without the ``;``.
    """

    return_type: str
    name: str
    parameters: tuple[Parameter, ...]
    text: str

    @property
    def signature(self) -> str:
        """The prototype rebuilt from its parts, as Sphinx's ``c:function`` reads it."""
        params = ", ".join(str(p) for p in self.parameters) or "void"
        sep = "" if self.return_type.endswith("*") else " "
        return f"{self.return_type}{sep}{self.name}({params})"


@final
@dataclass(frozen=True, slots=True)
class Synopsis:
    """The SYNOPSIS: ``#include`` lines, parsed prototypes and every other line.

    ``other`` keeps what is neither an include nor a parseable prototype (macros,
    typedefs, function-pointer declarations, prose), joined per declaration.
    ``entries`` holds all of them in their order on the page (an include as its
    ``#include`` line).
    """

    includes: tuple[str, ...] = ()
    prototypes: tuple[Prototype, ...] = ()
    other: tuple[str, ...] = ()
    entries: tuple[Prototype | str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Reference:
    """A reference to another man page: ``SSL_get_session(3)``."""

    name: str
    section: str

    def __str__(self) -> str:
        return f"{self.name}({self.section})"


@final
@dataclass(frozen=True, slots=True)
class Sentence:
    """A normative sentence with its stable ID (see ``resume.manpage.sentence_id``)."""

    id: str
    section: str
    number: int
    text: str


@final
@dataclass(frozen=True, slots=True)
class Section:
    """A section of the page: its canonical heading and its blocks in order."""

    title: str
    blocks: tuple[Block, ...]


@final
@dataclass(frozen=True)
class ManPage:
    """A parsed man page (see :func:`resume.manpage.parse`).

    Attributes:
        name: The page's name (``"SSL_SESSION_free"``), as in its file name and in
            sentence IDs.
        title: The title of the header line (``"SSL_SESSION_FREE"``).
        manual_section: The manual section of the header (``"3ssl"``, ``"7ssl"``).
        version: The version of the footer (``"3.2.1"``), or ``""``.
        date: The date of the footer (``"2024-01-30"``), or ``""``.
        functions: The names listed in NAME, in order.
        summary: The one-line summary after the dash in NAME.
        synopsis: The parsed SYNOPSIS.
        blocks: Every block in input order, each with its section.
        sentences: The normative sentences (``is_normative`` sections) with IDs.
        source_format: ``"headed"`` for a ``man`` rendering with headings,
            ``"plain"`` for the heading-less one-paragraph-per-line format.
    """

    name: str
    title: str
    manual_section: str
    version: str
    date: str
    functions: tuple[str, ...]
    summary: str
    synopsis: Synopsis
    blocks: tuple[Block, ...]
    sentences: tuple[Sentence, ...]
    source_format: Literal["headed", "plain"]
    _sections: tuple[Section, ...] = field(default=(), repr=False)

    @property
    def sections(self) -> tuple[Section, ...]:
        """The sections in order of first appearance, each with its blocks."""
        return self._sections

    def section(self, title: str) -> tuple[Block, ...]:
        """The blocks of the section *title* (``"NOTES"``), empty if there is none."""
        wanted = " ".join(title.upper().split())
        return tuple(b for b in self.blocks if b.section == wanted)

    def _texts(self, title: str) -> tuple[str, ...]:
        return tuple(b.text for b in self.section(title))

    @property
    def description(self) -> tuple[str, ...]:
        """The paragraphs of DESCRIPTION."""
        return self._texts("DESCRIPTION")

    @property
    def notes(self) -> tuple[str, ...]:
        """The paragraphs of NOTES."""
        return self._texts("NOTES")

    @property
    def return_values(self) -> tuple[str, ...]:
        """The paragraphs of RETURN VALUES."""
        return self._texts("RETURN VALUES")

    @property
    def history(self) -> tuple[str, ...]:
        """The paragraphs of HISTORY."""
        return self._texts("HISTORY")

    @property
    def copyright(self) -> tuple[str, ...]:
        """The paragraphs of COPYRIGHT (the licence must be kept with any copy)."""
        return self._texts("COPYRIGHT")

    @property
    def see_also(self) -> tuple[Reference, ...]:
        """The references of SEE ALSO, as name and manual section."""
        from ._parser import find_references

        refs: list[Reference] = []
        for block in self.section("SEE ALSO"):
            refs.extend(find_references(block.text))
        return tuple(refs)

    @property
    def other_sections(self) -> tuple[Section, ...]:
        """The sections other than the standard ones (EXAMPLES, BUGS, DATA STRUCTURES...)."""
        standard = {
            "NAME", "SYNOPSIS", "DESCRIPTION", "NOTES", "RETURN VALUES",
            "SEE ALSO", "HISTORY", "COPYRIGHT",
        }
        return tuple(s for s in self._sections if s.title not in standard)
