# Sentence splitting and sentence IDs for normative man-page text.
#
# The IDs are a contract between three parties: the man-page parser, the
# ``@pytest.mark.manpage`` marks in tests/, and the conformance matrix in the docs.
# An ID is ``PAGE:ABBR-N``: PAGE the page's file name (``SSL_SESSION_free``), ABBR
# the section's abbreviation (``section_abbreviation``) and N the 1-based number of
# the sentence within that section, counted across its paragraphs in order.
# Changing the splitting rules renumbers sentences: do it only with the tests.
#
# Which sections are normative: the standard ones of NORMATIVE_SECTIONS, and every
# section a page names itself (a headed rendering keeps them: "REPLAY PROTECTION" of
# SSL_read_early_data(3), "PARAMETERS", "FLAGS", "VERIFY PROCESS"), which in OpenSSL's
# manual are parts of the description. Only the sections of _INFORMATIVE (the name,
# the declarations, examples, pointers and history) are not.
from __future__ import annotations

import re

__all__ = [
    "NORMATIVE_SECTIONS",
    "is_normative",
    "section_abbreviation",
    "sentence_id",
    "split_sentences",
]

#: The sections whose sentences are normative (get IDs and need a proof).
NORMATIVE_SECTIONS = frozenset(
    {"DESCRIPTION", "NOTES", "RETURN VALUES", "WARNINGS", "BUGS", "ERRORS", "RESTRICTIONS"}
)

# The standard sections that state no rules (see the top).
_INFORMATIVE = frozenset({
    "NAME", "SYNOPSIS", "DATA STRUCTURES", "HEADER FILES", "ENVIRONMENT", "EXAMPLES",
    "CONFORMING TO", "SEE ALSO", "HISTORY", "COPYRIGHT",
})


def is_normative(section: str) -> bool:
    """True when the sentences of *section* are normative (get IDs and need a proof).

    The sections of ``NORMATIVE_SECTIONS``, and a page's own sections ("REPLAY
    PROTECTION"), which only a headed rendering has.
    """
    return section in NORMATIVE_SECTIONS or section not in _INFORMATIVE


_ABBREVIATIONS = {"DESCRIPTION": "desc", "RETURN VALUES": "ret", "WARNINGS": "warn"}

# Words that end with a period without ending a sentence.
_NOT_AN_END = re.compile(r"(?:\b(?:e\.g|i\.e|etc|cf|vs|viz|approx|incl|resp|no|fig|eq)\.|\.\.\.)$",
                         re.IGNORECASE)
# A sentence ends at ., ! or ? (maybe closed by a quote or bracket) before
# white space and a capital, a digit, a quote, a bracket or "<".
_END = re.compile(r"[.!?][\"')\]]*(?=\s+[A-Z0-9\"'(<\[])")


def section_abbreviation(section: str) -> str:
    """The short name of a section in sentence IDs: ``"RETURN VALUES"`` -> ``"ret"``."""
    canonical = " ".join(section.upper().split())
    if canonical in _ABBREVIATIONS:
        return _ABBREVIATIONS[canonical]
    return re.sub(r"[^a-z0-9]+", "-", canonical.lower()).strip("-")


def sentence_id(page: str, section: str, number: int) -> str:
    """The stable ID of sentence *number* (1-based) of *section* on *page*."""
    return f"{page}:{section_abbreviation(section)}-{number}"


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences, keeping abbreviations such as "e.g." whole."""
    text = " ".join(paragraph.split())
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        end = match.end()
        # only the sentence's last word can be an abbreviation: looking at it alone
        # keeps a paragraph of many "e.g. X" linear
        word = max(start, text.rfind(" ", start, end) + 1)
        if _NOT_AN_END.search(text[word:end]):
            continue
        sentences.append(text[start:end].strip())
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences
