# Theory of operation: parsing a man page rendering into a ``ManPage``.
#
# Two input formats are accepted and told apart by their shape:
#
# - "headed": what ``MANWIDTH=80 man -P cat 3ssl NAME`` prints. Headings sit in
#   column 0 (``NAME``, ``RETURN VALUES``), prose is indented 7 columns and wrapped,
#   paragraphs are separated by blank lines, a tagged-list item is its tag on one
#   line and its body indented 4 more, and verbatim text (SYNOPSIS, examples) is
#   indented one column more than the prose around it (Pod::Man's layout: prose at
#   7 + 4k, verbatim at 8 + 4k). Sections are read from the headings, so they are
#   exact.
# - "plain": the format of the shipped pages: headings removed, one paragraph per
#   line, SYNOPSIS and code lines one per line. Sections are recovered from the
#   wording and the order of the blocks (see ``_sections``).
#
# Both start with the header line (``SSL_SESSION_FREE(3ssl) OpenSSL ...``) and end
# with a footer that holds the version and date, in either order. Everything is
# normalised to the same blocks (one per paragraph, item, SYNOPSIS or code line), so
# that a page parses to the same model from either format.
#
# What is not a page is refused early and cheaply: no header line, or a NAME
# paragraph that does not list names, a dash and a summary. On heading-less input the
# NAME paragraph is the first line after the header and is checked before any other
# line is looked at (the section search is the dear part); on headed input it is
# checked once the blocks are split, before the SYNOPSIS and the sentences.
#
# Linear on any input: the patterns read a line one way only (see ``_PROTOTYPE`` and
# ``_split_parameter``), and references are found from their "(3)" back
# (``_sections.reference_spans``).
from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from ._model import (
    Block,
    BlockKind,
    ManPage,
    ManPageError,
    Parameter,
    Prototype,
    Reference,
    Section,
    Sentence,
    Synopsis,
)
from ._sections import item_term, label_blocks, reference_spans
from ._sentences import is_normative, sentence_id, split_sentences

__all__ = ["find_references", "parse", "parse_prototype"]

# "SSL_FREE(3ssl)"; a long title squeezes the rest of the header line, so the closing
# parenthesis may be missing: "LONG_TITLE(3SSOpenSSL...", "LONGER_TITLE(3OpLONG..."
_HEADER = re.compile(r"^\s*([A-Za-z0-9_.:+-]+)\((\d(?:[a-z]+|[A-Z]+(?![a-z]))?)?")
_DATE = re.compile(r"\b(\d{4}-\d\d(?:-\d\d)?)")
_VERSION = re.compile(r"(?<![\w.-])(\d+\.\d+(?:\.\d+)?[a-z]?(?:-[\w.]+)?)(?![\w-])")
_HEADING = re.compile(r"^[A-Z][A-Z0-9 ,/&()'_-]*[A-Z0-9)]$")
# a reference's end, "(3ssl)"; its name is found by ``_sections.reference_spans``, in
# one pass (a pattern that tried the name from each character cost 128 steps a
# character on a long run of name characters)
_REFERENCE_TAIL = re.compile(r"\((\d[A-Za-z0-9]*)\)")
_ALIASES = {"NOTE": "NOTES", "RETURN VALUE": "RETURN VALUES", "EXAMPLE": "EXAMPLES"}
_PROSE_INDENT = 7


def find_references(text: str) -> list[Reference]:
    """Every ``name(N)`` man-page reference in *text*, in order."""
    return [
        Reference(text[start:opening], tail.group(1))
        for start, opening, tail in reference_spans(text, _REFERENCE_TAIL)
    ]


def _canonical(heading: str) -> str:
    heading = " ".join(heading.upper().split())
    return _ALIASES.get(heading, heading)


def _join_wrapped(lines: Sequence[str]) -> str:
    """Join wrapped lines into one, undoing line breaks after a hyphen in a word.

    Linear: each line is looked at once (only the end of the line before decides
    whether a space goes between them), and the pieces are joined at the end.
    """
    parts: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if parts and not _HYPHENATED.search(parts[-1][-2:]):
            parts.append(" ")
        parts.append(line)
    out = _URL_IN_BRACKETS.sub(r"\1", "".join(parts))
    return " ".join(out.split())


_HYPHENATED = re.compile(r"[A-Za-z0-9]-\Z")
_URL_IN_BRACKETS = re.compile(r"<(https?://[^>\s]+)>")


def _check_text(text: object) -> list[str]:
    if not isinstance(text, str):
        raise ManPageError(f"a man page must be given as text (str), not {type(text).__name__}")
    if not text.strip():
        raise ManPageError("the man page is empty")
    bad = _CONTROL.search(text) is not None
    if bad or text.count("\ufffd") > len(text) // 100 + 1:
        raise ManPageError("the input looks like binary data, not a man page rendering")
    # overstrike sequences (bold "N\bN") from a rendering that kept formatting
    text = re.sub(r".\x08", "", text)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    # the blank lines around the page, cut once (popping the first line one at a time
    # moves the rest each time: quadratic in the number of leading blank lines)
    first = next((i for i, line in enumerate(lines) if line), len(lines))
    last = len(lines)
    while last > first and not lines[last - 1]:
        last -= 1
    return lines[first:last]


# control characters other than tab, newline, carriage return, form feed and backspace
_CONTROL = re.compile(r"[\x00-\x07\x0b\x0e-\x1f]")


def _parse_footer(line: str) -> tuple[str, str] | None:
    date = _DATE.search(line)
    rest = _DATE.sub(" ", line)
    rest = _HEADER.sub(" ", rest)
    version = _VERSION.search(rest)
    if date is None and version is None:
        return None
    return (version.group(1) if version else "", date.group(1) if date else "")


def _is_headed(lines: Sequence[str]) -> bool:
    return any(line == "NAME" for line in lines[1:])


def _headed_blocks(lines: Sequence[str]) -> list[Block]:
    """Split a headed rendering into blocks, with sections taken from its headings."""
    blocks: list[Block] = []
    section = ""
    group: list[str] = []

    def flush() -> None:
        if not group:
            return
        indents = [len(g) - len(g.lstrip()) for g in group]
        first = indents[0]
        relative = first - _PROSE_INDENT
        if relative > 0 and relative % 4 != 0:
            # verbatim (SYNOPSIS, code): one block per line
            for line in group:
                indent = len(line) - len(line.lstrip()) - (_PROSE_INDENT + 1)
                blocks.append(Block(section, line.strip(), "code", indent=max(indent, 0)))
        elif first < _PROSE_INDENT and section:
            blocks.append(Block(section, _join_wrapped(group), "subheading"))
        else:
            body_at = next((i for i, ind in enumerate(indents) if ind > first), None)
            # a short tag with its body on the same line: "1   The operation succeeded."
            inline = re.match(r"^\s*(\S(?:.*?\S)?)\s{2,}(?=\S)", group[0])
            body_column = indents[body_at] if body_at is not None else first + 4
            text = _join_wrapped(group)
            if inline is not None and inline.end() == body_column:
                blocks.append(Block(section, text, "item", inline.group(1)))
            elif body_at is not None and body_at <= 2:
                blocks.append(Block(section, text, "item", _join_wrapped(group[:body_at])))
            else:
                blocks.append(Block(section, text, "paragraph"))
        group.clear()

    for line in lines:
        if not line.strip():
            flush()
            continue
        if not line[0].isspace() and _HEADING.match(line):
            flush()
            section = _canonical(line)
            continue
        if not section:
            raise ManPageError(f"text before the first heading: {line.strip()[:60]!r}")
        group.append(line)
    flush()
    return blocks


def _plain_blocks(lines: Sequence[str]) -> list[Block]:
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise ManPageError("the man page has no NAME paragraph")
    # the NAME paragraph decides "not a man page" before the rest is read
    functions, _ = _name_entry(" ".join(first.split()))
    texts = [" ".join(line.split()) for line in lines if line.strip()]
    labels, code_flags = label_blocks(texts, functions=functions)
    blocks: list[Block] = []
    for index, (label, text) in enumerate(zip(labels, texts, strict=True)):
        kind: BlockKind = "paragraph"
        term = None
        if label == "SYNOPSIS":
            code = code_flags[index] or _continues_prototype(texts, index)
            kind = "code" if code else "paragraph"
        elif label not in ("NAME", "SEE ALSO", "COPYRIGHT", "HISTORY") and code_flags[index]:
            kind = "code"
        else:
            term = item_term(text) if label not in ("NAME", "SEE ALSO", "COPYRIGHT") else None
            if term is not None:
                kind = "item"
        blocks.append(Block(label, text, kind, term))
    return _confirm_items(blocks)


def _continues_prototype(texts: Sequence[str], index: int) -> bool:
    """True when SYNOPSIS line *index* ends a prototype that the previous line opened."""
    joined = ""
    for text in texts[max(1, index - 4) : index]:
        joined += " " + text
    return joined.count("(") > joined.count(")")


def _confirm_items(blocks: list[Block]) -> list[Block]:
    """Keep a one-line item only inside a run of items (or after an intro ending ':')."""
    out = list(blocks)
    for i, block in enumerate(blocks):
        if block.kind != "item":
            continue
        prev_item = (
            i > 0 and blocks[i - 1].kind == "item" and blocks[i - 1].section == block.section
        )
        next_item = (
            i + 1 < len(blocks)
            and blocks[i + 1].kind == "item"
            and blocks[i + 1].section == block.section
        )
        intro = i > 0 and blocks[i - 1].text.rstrip().endswith(":")
        if not (prev_item or next_item or intro):
            out[i] = Block(block.section, block.text, "paragraph", None)
    return out


def _name_entry(text: str) -> tuple[tuple[str, ...], str]:
    """The names and the summary of a NAME paragraph ("SSL_free, SSL_new - summary").

    Raises:
        ManPageError: it does not list names, a dash and a summary: not a man page.
    """
    functions, summary = _split_name(text)
    if not functions or any(not _NAME.match(f) for f in functions):
        raise ManPageError(
            "not a man page: the NAME paragraph must list names, a dash and a summary "
            f"(got {text[:60]!r})"
        )
    return functions, summary


_NAME = re.compile(r"^[\w.:+-]+$")


def _split_name(text: str) -> tuple[tuple[str, ...], str]:
    match = re.match(r"^(.*?)\s+(?:-|\u2014|\u2013|\\-)\s+(.*)$", text)
    names_part, summary = (match.group(1), match.group(2)) if match else (text, "")
    names = tuple(n.strip() for n in names_part.split(",") if n.strip())
    return names, summary.strip()


# Reads one way only (a word ends at \b; stars after it, then one space), so that a
# declaration which does not match fails in one pass instead of trying every split of
# its words (exponential in their length).
# A run of stars is taken whole by the word before it ((?!\*)), or not at all: split
# between that word and the name, "int " and 8,000 stars cost 1.6 s.
_PROTOTYPE = re.compile(
    r"^((?:[A-Za-z_]\w*\b\s*(?:\*+(?!\*)\s*)?)+?)\**\s*([A-Za-z_]\w*)\s*\((.*)\)$"
)
_FUNC_PTR = re.compile(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)\s*\(")
_C_KEYWORDS = {
    "const", "unsigned", "signed", "struct", "enum", "union", "volatile", "long", "short",
    "int", "char", "void", "float", "double", "restrict",
}


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    for index, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts


_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*")
_SPACES = re.compile(r"\s*")
_CLOSE = re.compile(r"\]")


def _split_parameter(text: str) -> tuple[str, str, str] | None:
    """Split ``const char *name[4][2]`` into type, name and arrays, or None.

    What ``^(.*?)\\b([A-Za-z_]\\w*)\\s*((?:\\[[^\\]]*\\])*)$`` finds, in one pass: that
    pattern tried every word as the name and read the rest of the text each time, so
    a parameter of many unclosed ``a[`` took a quadratic time. The name is the first
    word after which only spaces and whole ``[...]`` groups remain; where those
    groups can start is worked out once, from the end, over the ``]`` of the text.
    """
    closes = [m.start() for m in _CLOSE.finditer(text)]
    # tail_ok[i]: after closes[i], the text is whole groups (or nothing)
    tail_ok = [False] * len(closes)
    for i in range(len(closes) - 1, -1, -1):
        after = closes[i] + 1
        tail_ok[i] = after == len(text) or (
            text[after] == "[" and i + 1 < len(closes) and tail_ok[i + 1]
        )

    def groups_from(start: int) -> bool:
        if start == len(text):
            return True
        if text[start] != "[":
            return False
        i = bisect.bisect_right(closes, start)  # the first "]" after the "["
        return i < len(closes) and tail_ok[i]

    for word in _IDENTIFIER.finditer(text):
        spaces = _SPACES.match(text, word.end())
        arrays_at = spaces.end() if spaces else word.end()
        if groups_from(arrays_at):
            return text[: word.start()], word.group(), text[arrays_at:]
    return None


def _parse_parameter(text: str) -> Parameter | None:
    text = " ".join(text.split())
    if text in ("void", "..."):
        return Parameter(text, "")
    pointer = _FUNC_PTR.search(text)
    if pointer is not None:
        return Parameter(text, pointer.group(1))
    split = _split_parameter(text)
    if split is None:
        return None
    type_, name, arrays = split[0].strip(), split[1], split[2]
    if not type_ or type_.endswith(("(", ",")):
        return None
    if name in _C_KEYWORDS or (type_ and type_.split()[-1] in ("struct", "enum", "union")):
        # a bare type such as "unsigned int" or "struct foo"
        return Parameter(text, "")
    type_ = re.sub(r"\s*\*", " *", type_).replace("* *", "**").strip()
    type_ = re.sub(r"\*\s+\*", "**", type_)
    return Parameter(type_, f"{name}{arrays}")


def parse_prototype(text: str) -> Prototype | None:
    """Parse one C prototype (``int f(SSL *s, long n);``), or None if it is not one.

    Function-pointer return types, macros and anything else that is not a plain
    ``TYPE NAME(PARAMS);`` declaration return None.
    """
    joined = " ".join(text.split()).rstrip().rstrip(";").strip()
    if joined.startswith(("#", "typedef", "/*")) or joined.count("(") == 0:
        return None
    match = _PROTOTYPE.match(joined)
    if match is None:
        return None
    head = joined[: match.start(2)].strip()
    name = match.group(2)
    inner = match.group(3)
    if not head or "(" in head:
        return None
    depth = 0
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return None
    if depth != 0:
        return None
    return_type = re.sub(r"\s*\*", " *", head).strip()
    return_type = re.sub(r"\*\s+\*", "**", return_type)
    if return_type.split()[-1] in ("return", "if", "while", "for", "sizeof", "else"):
        return None
    params: list[Parameter] = []
    if inner.strip() not in ("", "void"):
        for part in _split_top_level(inner):
            param = _parse_parameter(part)
            if param is None:
                return None
            params.append(param)
    return Prototype(return_type, name, tuple(params), joined)


def _build_synopsis(blocks: Sequence[Block]) -> Synopsis:
    includes: list[str] = []
    prototypes: list[Prototype] = []
    other: list[str] = []
    entries: list[Prototype | str] = []
    # the lines of the declaration being read, and its parentheses still open: kept as
    # a list and a count so that a long unbalanced declaration is read in linear time
    pieces: list[str] = []
    depth = 0
    for block in blocks:
        line = block.text.strip()
        if not pieces and line.startswith("#include"):
            includes.append(line[len("#include") :].strip())
            entries.append(line)
            continue
        if line:
            pieces.append(line)
        depth += line.count("(") - line.count(")")
        if not pieces or (depth > 0 and not line.endswith(";")):
            continue
        pending = " ".join(pieces)
        pieces.clear()
        depth = 0
        prototype = parse_prototype(pending) if pending.endswith(";") else None
        if prototype is not None:
            prototypes.append(prototype)
            entries.append(prototype)
        else:
            other.append(pending)
            entries.append(pending)
    if pieces:
        pending = " ".join(pieces)
        other.append(pending)
        entries.append(pending)
    return Synopsis(tuple(includes), tuple(prototypes), tuple(other), tuple(entries))


def _sentences(page_name: str, blocks: Sequence[Block]) -> tuple[Sentence, ...]:
    counts: dict[str, int] = {}
    out: list[Sentence] = []
    for block in blocks:
        if not is_normative(block.section) or block.kind in ("code", "subheading"):
            continue
        for text in split_sentences(block.text):
            number = counts.get(block.section, 0) + 1
            counts[block.section] = number
            out.append(Sentence(sentence_id(page_name, block.section, number), block.section,
                                number, text))
    return tuple(out)


def _group_sections(blocks: Sequence[Block]) -> tuple[Section, ...]:
    order: list[str] = []
    grouped: dict[str, list[Block]] = {}
    for block in blocks:
        if block.section not in grouped:
            order.append(block.section)
            grouped[block.section] = []
        grouped[block.section].append(block)
    return tuple(Section(title, tuple(grouped[title])) for title in order)


def parse(text: str, *, name: str | None = None) -> ManPage:
    """Parse a man page rendering, with or without its section headings.

    Args:
        text: A ``man`` rendering (``MANWIDTH=80 man -P cat 3ssl NAME``) or the
            heading-less one-paragraph-per-line format of the shipped pages.
        name: The page's name for sentence IDs; by default the NAME entry that
            matches the header's title (``SSL_SESSION_FREE`` -> ``SSL_SESSION_free``).

    Returns:
        The parsed page.

    Raises:
        ManPageError: *text* is empty, binary, or lacks the header line or the
            NAME paragraph of a man page.
    """
    lines = _check_text(text)
    header = _HEADER.match(lines[0])
    if header is None:
        raise ManPageError(
            "not a man page: the first line must be the header, such as "
            f"'SSL_SESSION_FREE(3ssl) OpenSSL SSL_SESSION_FREE(3ssl)', not {lines[0][:60]!r}"
        )
    title, manual_section = header.group(1), (header.group(2) or "").lower()
    if not manual_section:
        # squeezed to "TITLE(OTITLE(3SSL)": the header's right-hand copy has it
        copy = re.search(rf"{re.escape(title)}\((\d[A-Za-z]*)\)", lines[0][header.end() :])
        manual_section = copy.group(1).lower() if copy else ""
    body = lines[1:]
    version = date = ""
    if body and body[-1][:1].isdigit() and len(body[-1].split()) <= 8:
        footer = _parse_footer(body[-1])
        if footer is not None:
            version, date = footer
            body = body[:-1]
    if not lines[0][header.end() :].startswith(")") and version:
        # a long title squeezes the header: take the manual section from the footer
        full = _HEADER.search(lines[-1][lines[-1].find(title[:8]) :] if title[:8] in lines[-1]
                              else "")
        if full is not None and full.group(1) == title:
            manual_section = full.group(2).lower()
    if _is_headed(body):
        blocks = _headed_blocks(body)
        source_format: str = "headed"
    else:
        blocks = _plain_blocks(body)
        source_format = "plain"
    name_blocks = [b for b in blocks if b.section == "NAME"]
    if not name_blocks:
        raise ManPageError("not a man page: it has no NAME paragraph")
    functions, summary = _name_entry(" ".join(b.text for b in name_blocks))
    if name is None:
        name = next((f for f in functions if f.upper() == title.upper()), None)
        if name is None:
            name = title if not title.isupper() else functions[0]
    return ManPage(
        name=name,
        title=title,
        manual_section=manual_section,
        version=version,
        date=date,
        functions=functions,
        summary=summary,
        synopsis=_build_synopsis([b for b in blocks if b.section == "SYNOPSIS"]),
        blocks=tuple(blocks),
        sentences=_sentences(name, blocks),
        source_format="headed" if source_format == "headed" else "plain",
        _sections=_group_sections(blocks),
    )
