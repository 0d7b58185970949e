# Theory of operation: recovering section headings from heading-less text.
#
# The heading-less format keeps every paragraph but drops the headings, so the section
# of each block must be inferred. Two kinds of evidence are combined:
#
# 1. Wording and structure of each block (its "emission" score per section): a list
#    of ``name(N)`` references is SEE ALSO; "Copyright"/"Licensed under" is
#    COPYRIGHT; "was added in OpenSSL 1.1.1" is HISTORY; C declarations right after
#    NAME are SYNOPSIS; "X() returns 1 on success" is RETURN VALUES; a paragraph that
#    opens with one of the page's functions is DESCRIPTION, general prose after the
#    functions have all been described is NOTES; and so on (``_emissions``).
# 2. The order of sections in OpenSSL's manual (NAME, SYNOPSIS, DESCRIPTION, then
#    NOTES / RETURN VALUES in either order, EXAMPLES, SEE ALSO, HISTORY, COPYRIGHT),
#    surveyed over the 737 distinct pages of OpenSSL 3.0 (``_RANK``). Sections are
#    contiguous: switching section costs ``_SWITCH``; going back to an earlier rank
#    costs ``_BACK``, so a lone paragraph that merely *sounds* like another section
#    does not split the one around it. NOTES, RETURN VALUES and the page's own
#    sections (3.) follow DESCRIPTION in any order but each at most once (no page of
#    libssl-doc repeats a section): "f() may return 3 possible values:" inside
#    DESCRIPTION cannot be RETURN VALUES when the real one comes later.
# 3. References of the page to itself: 'see "REPLAY PROTECTION" below' names a section
#    that no rule could (``_own_sections``). It becomes a state of the search, after
#    the block that refers to it "below"; a block that uses the heading's words makes
#    entering it cheaper (an entry bonus on that block's row, ``ENTRY``).
#
# The best labelling is found by dynamic programming over the blocks (a Viterbi
# search over sections as states, ``_Model``): it maximises the summed emission
# scores minus the switching costs. The scores are additive and small on purpose;
# every cue is a property of the OpenSSL manual's style, not of any one page. Among
# them: a paragraph that names one of the page's functions for the first time (after
# the SYNOPSIS) is DESCRIPTION (of 2,792 such paragraphs in libssl-doc, 2,674 are),
# not NOTES.
#
# Rules only, on purpose: a learned layer (an averaged perceptron over ~580 headed
# pages, 490 KB of weights) was tried and removed; see docs/explanation/manpage-sections.rst
# for what it gained and cost. Every step is linear in the input: the cues read at most
# ``_CUE_HEAD`` + ``_CUE_TAIL`` characters of a block, and no cue is a pattern that is
# tried again from each match of its first part ("X.*Y": quadratic in one call; see
# "cues of the form X, then Y" below); the per-block passes look back at most a fixed
# number of blocks; the search costs at most one pass over the pairs of sections per
# block, reads the blocks' scores as they are made and keeps one byte per block and
# section.
from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet

__all__ = ["KNOWN_SECTIONS", "label_blocks", "recover_sections", "reference_spans"]

# Rank of each section in the order OpenSSL's manual uses. Same rank: either order.
_RANK: dict[str, int] = {
    "NAME": 0,
    "SYNOPSIS": 1,
    "DESCRIPTION": 2,
    "DATA STRUCTURES": 3,
    "HEADER FILES": 4,
    "NOTES": 5,
    "RETURN VALUES": 5,
    "ERRORS": 6,
    "RESTRICTIONS": 6,
    "WARNINGS": 6,
    "BUGS": 6,
    "ENVIRONMENT": 6,
    "EXAMPLES": 7,
    "CONFORMING TO": 8,
    "SEE ALSO": 9,
    "HISTORY": 10,
    "COPYRIGHT": 11,
}

#: The sections that heading-less input can be recovered into.
KNOWN_SECTIONS = tuple(_RANK)

_SWITCH = 3.0  # cost of starting a new section
_COMMON_SWITCH = 0.5  # cost of the most common changes (DESCRIPTION -> NOTES, ...)
_BACK = 9.0  # extra cost of going back to an earlier rank
_NEW_SUBJECT = 1.2  # DESCRIPTION: a paragraph opens with a function not yet described
_UNCOVERED = 1.5  # NOTES: DESCRIPTION has not yet named the page's functions
_NOTES_PROSE = 1.4  # NOTES: general prose once the functions are described
_NEW_MENTION = 0.8  # DESCRIPTION: a paragraph names a function not yet named
_MENTION_NOT_NOTES = 2.0
_MENTION_NOT_RETURN = 1.0
_WORD = re.compile(r"\w+")

# A reference, "SSL_new(3)". The name's length is bounded (OpenSSL's longest are under
# 50 characters) so that a long run of name characters without a "(" costs a bounded
# scan from each of its positions, not a scan to its end: linear, not quadratic.
_REF = r"[A-Za-z_][\w.:+-]{0,127}\(\d\w*\)"
# A list of references (commas sometimes missing): "ssl(7), SSL_new(3) SSL_free(3)".
# Each separator has one reading ("and" only between spaces), so that a line which is
# almost a list fails in one pass instead of trying every split of it (exponential).
_REF_LIST = re.compile(
    rf"^\s*{_REF}(?:(?:\s*,\s*|\s+(?:(?:and|or)\s+)?)?{_REF})*\s*[.,]?\s*$"
)
# The end of a reference, "(3)": where the search for references starts.
_REF_TAIL = re.compile(r"\(\d\w*\)")
_NAME_RUN = re.compile(r"[\w.:+-]*")
_NAME_START = re.compile(r"[A-Za-z_]")
_REF_NAME_MAX = 128


def reference_spans(
    text: str, tail: re.Pattern[str] = _REF_TAIL
) -> Iterator[tuple[int, int, re.Match[str]]]:
    """Each reference ``name(3)`` of *text*: (start, where "(" is, the match of *tail*).

    What ``re.finditer(r"[A-Za-z_][\\w.:+-]{0,127}" + tail)`` finds, without trying the
    name from every one of its characters (128 steps a character on a long run of
    name characters): the tails "(3)" are found first, and the name of each is the
    run of name characters before it, from its first letter or "_", at most 128
    characters back and not into the previous reference.
    """
    done = 0
    for found in tail.finditer(text):
        opening = found.start()
        low = max(done, opening - _REF_NAME_MAX)
        run = _NAME_RUN.match(text[low:opening][::-1])
        first = _NAME_START.search(text, opening - (run.end() if run else 0), opening)
        if first is None:
            continue
        yield first.start(), opening, found
        done = found.end()


def _count_references(text: str) -> int:
    return sum(1 for _ in reference_spans(text))


# The cues read at most the first _CUE_HEAD and the last _CUE_TAIL characters of a
# block (the longest paragraph of the surveyed pages has 2,100; a NAME list 6,100), so
# that a pathological block costs the rules a bounded amount of work.
_CUE_HEAD = 8192
_CUE_TAIL = 1024


def _cue(text: str) -> str:
    """The part of a block the rules read: all of it, or its head and its tail."""
    if len(text) <= _CUE_HEAD + _CUE_TAIL:
        return text
    return f"{text[:_CUE_HEAD]} {text[-_CUE_TAIL:]}"


# -- cues of the form "X, then Y further on" ------------------------------------------
#
# A pattern such as ``X.*Y`` or ``X[^.]*Y`` is tried again from every match of X, and
# each try reads to the end of the text (or of the sentence) and back: on a block that
# is full of X and has no Y, one call is quadratic in the block ("OpenSSL 1 " 800 times
# took 0.5 s, "RFC" and 8,000 digits 1.5 s, in one call each; the 8 KB cue bounds the
# block, not the square). The cues below find what those patterns found, reading each
# character a bounded number of times: X once, then Y once from where X ended.


def _then(first: re.Pattern[str], second: re.Pattern[str], text: str) -> bool:
    """What ``first.*second`` finds on one line: *second* after the leftmost *first*.

    The leftmost match of *first* is the one that ends soonest for the word lists used
    here (none of their matches holds another), so it leaves *second* the most room.
    """
    found = first.search(text)
    return found is not None and second.search(text, found.end()) is not None


def _then_in_sentence(first: re.Pattern[str], second: re.Pattern[str], text: str) -> bool:
    """What ``first[^.]*second`` finds: *second* after a *first* in the same sentence.

    Neither pattern may match a full stop. Each stretch between two full stops is read
    once: after its first *first*, a later one would only see less of it.
    """
    pos = 0
    while (found := first.search(text, pos)) is not None:
        stop = text.find(".", found.end())
        if stop < 0:
            stop = len(text)
        if second.search(text, found.end(), stop) is not None:
            return True
        pos = stop + 1
    return False


_OPENSSL_VERSION = re.compile(r"\bOpenSSL\s+\d", re.IGNORECASE)
_VERSION_TAIL = re.compile(r"[\w.]*")
_CHANGE_VERB = re.compile(
    r"\b(?:was|were|has been|have been|are|is|became|become)\s+(?:\w+\s+)?"
    r"(?:added|introduced|deprecated|removed|made|changed|renamed|available|"
    r"reimplemented|replaced|moved|first)\b",
    re.IGNORECASE,
)
_SINCE_VERSION = re.compile(r"\b(?:in|since|before|prior to|from)\s+OpenSSL\s+\d", re.IGNORECASE)
_CHANGED = re.compile(r"\b(?:added|deprecated|removed|introduced|changed|renamed)", re.IGNORECASE)
_CHANGED_STRONG = re.compile(
    r"\b(?:added|introduced|deprecated|removed|renamed|first appeared|appeared first|"
    r"became available|were made|was made)\b",
    re.IGNORECASE,
)
_CHANGED_AFTER_VERSION = re.compile(
    r"\b(?:added|introduced|deprecated|removed|renamed)\b", re.IGNORECASE
)
_VERSION_FIRST = re.compile(
    r"^(?:In|Since|Before|Prior to|From)\s+(?:OpenSSL\s+)?(?:versions?\s+)?\d+\.\d",
    re.IGNORECASE,
)


def _history(text: str) -> bool:
    """A hint of HISTORY: "was added ... in OpenSSL 1.1.0", "since OpenSSL 3.0", "OpenSSL 3.0
    ... deprecated"."""
    return (
        _SINCE_VERSION.search(text) is not None
        or _then(_CHANGE_VERB, _OPENSSL_VERSION, text)
        or _then(_OPENSSL_VERSION, _CHANGED, text)
    )


def _history_strong(text: str) -> bool:
    """HISTORY for sure: "added in OpenSSL 1.1.0" or "OpenSSL 3.0 deprecated ..." within one
    sentence, or a paragraph that opens with "In OpenSSL 1.1.0"."""
    return (
        _VERSION_FIRST.match(text) is not None
        or _then_in_sentence(_CHANGED_STRONG, _OPENSSL_VERSION, text)
        or _version_then_change(text)
    )


def _version_then_change(text: str) -> bool:
    """What ``OpenSSL\\s+\\d[\\w.]*[^.]*\\b(?:added|...)\\b`` finds: a change after a version in
    the rest of its sentence (the full stops of "1.1.0" do not end it).

    The versions are read in order; the text already searched for the verb (up to the
    furthest sentence end so far) is not searched again, so each character is read a
    bounded number of times.
    """
    searched = 0
    for version in _OPENSSL_VERSION.finditer(text):
        tail = _VERSION_TAIL.match(text, version.end())
        stop = text.find(".", tail.end() if tail else version.end())
        if stop < 0:
            stop = len(text)
        start = max(version.end(), searched)
        if start < stop and _CHANGED_AFTER_VERSION.search(text, start, stop) is not None:
            return True
        searched = max(searched, stop)
    return False


_RETURN = re.compile(r"\b(?:returns?|returned|return values?)\b", re.IGNORECASE)
_RETURN_STRONG = re.compile(
    r"\breturn values?\b|\b(?:returns?|returned)\s+(?:-?\d|NULL|zero|non-?zero|a negative|"
    r"a positive|1 on|0 on|-1 on|no value|nothing)|\bdoes not return a value\b|"
    r"\b(?:on|for|upon|in case of)\s+(?:success|failure|error)\b|"
    r"\breturns? the values?\b|\bvalues? (?:is |are )?returned by\b|"
    r"\b(?:does|do) not (?:provide|return) (?:any )?(?:diagnostic information|values?)\b",
    re.IGNORECASE,
)
# "SSL_get_session() returns ...", "f() and g() return ..."
_FUNCTION_RETURNS = re.compile(
    r"^(?:(?:The|All|These|Both)\s+)?[\w*]+\(\)(?:,?\s+(?:and\s+|or\s+)?[\w*]+\(\))*"
    r"(?:\s+(?:functions?|macros?|calls?))?\s+(?:always\s+|will\s+|also\s+)?returns?\b"
    r"|^(?:These|All these|All of these|Both)\s+(?:functions|macros|calls)\s+"
    r"(?:always\s+|will\s+)?return\b"
)
_BUGS = re.compile(
    r"\b(?:bugs?|buggy|flaws?|flawed|broken|limitations?|inconsistent|unfortunately|"
    r"currently (?:no|not|impossible)|not currently|cannot currently|no way to|"
    r"should (?:really|ideally)|would be (?:better|nice)|is not (?:possible|supported)|"
    r"does not (?:currently )?(?:support|work)|not (?:thread[- ]safe|handled)|"
    r"misleading|ugly|a kludge|workaround)\b",
    re.IGNORECASE,
)
_BUGS_STRONG = re.compile(
    r"\b(?:bugs?|buggy|flaw(?:s|ed)?|incomplete|inaccurate|unpredictable|only been tested|"
    r"not (?:yet )?implemented|handled incorrectly|is a limitation)\b",
    re.IGNORECASE,
)
_WARNINGS = re.compile(
    r"\b(?:warning|caution|careful(?:ly)?|dangerous|insecure|do not|never|not safe|"
    r"security (?:risk|hole|issue)|vulnerab\w+|be aware)\b",
    re.IGNORECASE,
)
_EXAMPLE_WORD = re.compile(r"\b(?:examples?|for instance|sample)\b", re.IGNORECASE)
_IMPERATIVE = re.compile(
    r"^(?:Create|Read|Write|Set|Use|Load|Generate|Print|Connect|Encrypt|Decrypt|Sign|"
    r"Verify|Obtain|Get|Retrieve|Add|Make|Convert|Compute|Calculate|Send|Free|Allocate|"
    r"Initiali[sz]e|Open|Call|Check|Parse|Extract|Output|Decode|Encode|Display|Fetch|"
    r"Here is|This is|The following|An? (?:simple|example)|Example|To )\b"
)
_CONFORMING = re.compile(
    r"\b(?:RFC\s*\d+|conform\w*|ANSI\s+X9|ISO(?:/IEC)?\s*\d|FIPS\s*(?:PUB\s*)?\d+|"
    r"PKCS\s*#\s*\d|NIST\s+SP|standards?)\b",
    re.IGNORECASE,
)
_ENV = re.compile(r"\benvironment(?:al)? variables?\b|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+=", re.I)
_ADVICE = re.compile(
    r"\b(?:should|recommended|recommends?|it is (?:possible|not|also|important|"
    r"advisable|strongly)|note that|in order to|applications?|usually|normally|"
    r"typically|however|in general|generally|preferred|not needed|care must|"
    r"is (?:only|not) (?:useful|necessary|needed)|there is no|if an? \w+ is)\b",
    re.IGNORECASE,
)
_TERM_ATOM = (
    r"(?:<[\w/.]+>|[A-Z][A-Z0-9_]{2,}|[<>]=?\s?-?\d+|-?\d+|\"[^\"]{1,40}\"(?:/\"[^\"]{1,40}\")*)"
)
# An item's tag, then its body starting with a capital: "SSL_SESS_CACHE_OFF No session...",
# "0 The operation failed.", "SSL_CTX (SSL Context) This is...".
_ITEM_TERM = re.compile(
    rf"^({_TERM_ATOM}(?:,\s*{_TERM_ATOM})*(?:\s+\([A-Z][^)]*\))?)\s+(?=[A-Z\"(<])"
)


def _starts_with_function(text: str, functions: AbstractSet[str]) -> bool:
    head = text.split(None, 1)[0] if text.split() else ""
    head = head.rstrip(",:;")
    if head.endswith("()"):
        return True
    return head in functions or head.rstrip("()") in functions


_PREPROCESSOR = re.compile(r"^#\s*(?:include|define|undef|if|ifdef|ifndef|elif|else|endif)\b")
_SENTENCE_END = re.compile(r"[.!?:]['\")]*$")
_LABEL = re.compile(r"^[a-z_]\w*:$")
_C_PUNCTUATION = re.compile(r"[;{}=*]")
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z'-]*[,.;:]?")
_C_LIKE = re.compile(r"[;{}=*]|[,(]$")
_C_SYMBOL = re.compile(r"[(),*=&|<>\[\]]")


def _is_code(text: str) -> bool:
    """True when a one-line block reads as C rather than prose.

    Prose paragraphs of the manual end with a full stop or a colon (items too:
    "NULL There is no session."); declarations and code lines end with ``;``, ``,``,
    ``{``, ``}`` or ``)`` and are full of C punctuation.
    """
    stripped = text.strip()
    if _REF_LIST.match(stripped) or stripped.startswith(("•", "o ")):
        return False  # a list of references, or a bulleted list item
    if _is_standard_name(stripped):
        return False  # a standard's name, as CONFORMING TO lists them
    if _PREPROCESSOR.match(stripped):
        return True
    if stripped.startswith(("typedef ", "/*", "*/", "* ", "//")):
        return True
    if stripped in {"*", "...", "{", "}"}:
        return True
    if _ends_like_c(stripped):
        return True
    if _SENTENCE_END.search(stripped):
        # prose, unless it is a C line with a trailing comment or a label ("err:")
        return bool(_LABEL.match(stripped))
    words = stripped.split()
    if _count_references(stripped) * 3 >= len(words):
        return False  # mostly references to other pages: a SEE ALSO line
    if _CONFORMING.search(stripped) and not _C_PUNCTUATION.search(stripped):
        return False  # names of standards
    plain_words = sum(1 for w in words if _PLAIN_WORD.fullmatch(w))
    c_like = _C_LIKE.search(stripped)
    if len(words) >= 8 and plain_words >= 0.6 * len(words) and not c_like:
        return False  # a sentence that merely lacks its full stop ("... added in OpenSSL 3.0")
    if _C_SYMBOL.search(stripped):
        return True
    return len(stripped.split()) <= 2


_STANDARD = re.compile(r"(?:RFC|FIPS|ISO|ANSI|PKCS|NIST|X9)([\s#\d./-]*)")
_STANDARD_TAIL = re.compile(r"[\w ,.()-]*")
_DIGIT = re.compile(r"\d")


def _is_standard_name(text: str) -> bool:
    """What ``re.fullmatch(r"(?:RFC|...)[\\s#\\d./-]*\\d[\\w ,.()-]*", text)`` finds, in one pass.

    The pattern tried every digit of the run after "RFC" as the one that ends it, each
    time reading the rest of the text: "RFC" and 8,000 digits took 1.5 s. Here: the run
    after the name ([\\s#\\d./-]), the tail that may end the text ([\\w ,.()-], found on the
    reversed text), and one digit of the run where they meet.
    """
    head = _STANDARD.match(text)
    if head is None:
        return False
    reverse = _STANDARD_TAIL.match(text[::-1])
    tail = len(text) - (reverse.end() if reverse else 0)
    # the digit at j needs text[:j] in the run and text[j + 1:] in the tail
    return _DIGIT.search(text, max(head.start(1), tail - 1), head.end(1)) is not None


_C_COMMENT_AFTER_END = re.compile(r"[;{}]\s*/\*")


def _ends_like_c(text: str) -> bool:
    """What ``re.search(r"[;{}]\\s*(?:/\\*.*\\*/\\s*)?$", text)`` finds on stripped text: ";",
    "{" or "}" at the end, or before a trailing comment, in one pass."""
    if text.endswith((";", "{", "}")):
        return True
    if not text.endswith("*/"):
        return False
    opening = _C_COMMENT_AFTER_END.search(text)
    return opening is not None and opening.end() <= len(text) - 2


def _after_example_intro(texts: Sequence[str], code: Sequence[bool]) -> list[bool]:
    """For each block: does the last prose block before it introduce an example?

    One pass (a run of code lines shares the answer of the prose before it).
    """
    out: list[bool] = []
    intro = False
    for index, text in enumerate(texts):
        out.append(intro)
        if index > 0 and not code[index]:
            intro = bool(_IMPERATIVE.match(text) or _EXAMPLE_WORD.search(text))
    return out


def _subject(text: str, functions: AbstractSet[str]) -> str | None:
    """The page function a paragraph opens with ("SSL_free() frees..." -> "SSL_free")."""
    words = text.split(None, 1)
    if not words:
        return None
    head = words[0].rstrip(",:;")
    name = head[:-2] if head.endswith("()") else head
    return name if name in functions else None


def _inside_lists(texts: Sequence[str]) -> list[bool]:
    """For each block: does it sit between two items of one list (a continuation)?"""
    items = [i for i, t in enumerate(texts) if item_term(t) is not None]
    out = [False] * len(texts)
    for first, second in itertools.pairwise(items):
        if 1 < second - first <= 8:
            for i in range(first + 1, second):
                out[i] = True
    return out


def _coverage(texts: Sequence[str], functions: Sequence[str], start: int) -> list[bool]:
    """For each block: have all the page's functions been named before it?

    DESCRIPTION names the page's functions (usually one paragraph each) before
    NOTES turns to general remarks, so NOTES is unlikely before that point. Only
    C identifiers count (an overview page's NAME, "ssl", is a common word).
    """
    wanted = {f for f in functions if re.search(r"[_\d]|[a-z][A-Z]", f)}
    plain = {w for w in wanted if re.fullmatch(r"\w+", w)}
    # The others ("EVP_PKEY-RSA"): what rf"\b{name}\b" finds, for a name that begins and
    # ends with a word character, is a run of consecutive words of the text with the
    # name's separators between them. So they are looked up by their number of words,
    # as spans of the text's words: a set lookup per span, not a search per name (a
    # NAME of 20,000 such names made every block search 20,000 times). A name of more
    # than _NAME_WORDS words, or one that begins or ends with punctuation, is no C
    # identifier and is not counted.
    other: dict[int, set[str]] = {}
    for name in wanted - plain:
        count = len(re.findall(r"\w+", name))
        if count <= _NAME_WORDS and re.fullmatch(r"\w.*\w", name):
            other.setdefault(count, set()).add(name)
        else:
            wanted.discard(name)
    seen: set[str] = set()
    out: list[bool] = []
    # a page with many functions often leaves a few to NOTES or to other pages
    needed = len(wanted) if len(wanted) <= 4 else -(-3 * len(wanted) // 4)
    for index, text in enumerate(texts):
        done = bool(wanted) and len(seen) >= needed
        out.append(done)
        if index >= start and not done:
            # a plain identifier is named when it is one of the text's words (what
            # rf"\b{name}\b" finds, without a search per name: a set intersection
            # costs the smaller of the two sets, so the work is linear in the text)
            words = list(re.finditer(r"\w+", text))
            seen.update({w.group() for w in words} & plain)
            for count, names in other.items():
                for first in range(len(words) - count + 1):
                    span = text[words[first].start() : words[first + count - 1].end()]
                    if span in names:
                        seen.add(span)
    return out


#: The most words (runs of letters, digits and "_") of a name with punctuation in it,
#: such as "EVP_PKEY-RSA" (2) or "OSSL_STORE-file" (2), that counts as a function.
_NAME_WORDS = 8


def _synopsis_end(texts: Sequence[str], code: Sequence[bool]) -> int:
    """The index of the first block after the SYNOPSIS (which follows NAME).

    The SYNOPSIS is C declarations, possibly with short prose between them that
    introduces the next declarations ("The following functions have been deprecated
    since OpenSSL 3.0, and can be hidden entirely by defining OPENSSL_API_COMPAT...:").
    A page without declarations may have a one-sentence SYNOPSIS pointing elsewhere
    ("See the individual manual pages for details.").
    """
    index = 1
    if len(texts) > 1 and not code[1] and len(texts[1].split()) <= 16 and re.search(
        r"manual pages?|#include|\bsee\b", texts[1], re.IGNORECASE
    ):
        return 2
    while index < len(texts):
        if code[index]:
            index += 1
            continue
        # a short line that introduces declarations (not a long paragraph of DESCRIPTION)
        short = len(texts[index].split()) <= 30
        intro = (short and texts[index].rstrip().endswith(":")) or re.search(
            r"OPENSSL_API_COMPAT|OPENSSL_NO_DEPRECATED|can be hidden entirely", texts[index]
        )
        if intro and index > 1 and index + 1 < len(texts) and code[index + 1]:
            index += 1
            continue
        break
    return index


_VALUE_TERM = re.compile(r"^(?:[<>]=?\s*)?-?\d+$|^NULL$|^[A-Z]+_(?:ERROR|R)_\w+")
_MUST = re.compile(r"\bmust (?:only|not|never)\b|\bis (?:only )?safe\b")
_HEADER_FILES = re.compile(r"\bheader files?\b", re.IGNORECASE)
_DATA_STRUCTURES = re.compile(r"\bdata structures?\b", re.IGNORECASE)
_STRUCTURE_ITEM = re.compile(r"^[A-Z][A-Z0-9_]+\s+\([^)]*\)\s")
_HEADER_ITEM = re.compile(r"^<[\w/.]+\.h>\s")
_RETURNED_VALUES = re.compile(
    r"\bfollowing (?:return )?values\b|\bvalues? (?:are|is) returned\b", re.IGNORECASE
)
_FOLLOWING = re.compile(r"\bfollowing ", re.IGNORECASE)
_WORDS_AND_SPACES = re.compile(r"[\w ]*")
_CAN_OCCUR = re.compile(r" can (?:currently )?occur\b", re.IGNORECASE)
_CALLBACK = re.compile(r"\b(?:callbacks?|cb)\b", re.IGNORECASE)
_SHOULD_RETURN = re.compile(r"\b(?:should return|return value)", re.IGNORECASE)
_CALLBACK_RETURNS = re.compile(r"\breturn value of the (?:callback|cb)\b", re.IGNORECASE)


def _errors_can_occur(text: str) -> bool:
    """What ``\\bfollowing [\\w ]+ can (?:currently )?occur\\b`` finds ("the following errors
    can occur"), reading each run of words and spaces once."""
    pos = 0
    while (found := _FOLLOWING.search(text, pos)) is not None:
        end = _WORDS_AND_SPACES.match(text, found.end())
        run_end = end.end() if end else found.end()
        if _CAN_OCCUR.search(text, found.end() + 1, run_end) is not None:
            return True
        pos = max(run_end, found.end())
    return False


def _emissions(
    texts: Sequence[str],
    functions: Sequence[str],
    code_flags: Sequence[bool],
    own: Sequence[_OwnSection] = (),
) -> Iterator[dict[str, float]]:
    """Each block's score per section, made as the search reads them (not kept).

    *code_flags* is ``_is_code`` of each block; *own* the page's own sections
    (``_own_sections``), scored under ``_own_key(i)``.
    """
    entries: dict[str, float] = {}
    for index, row in enumerate(_standard_emissions(texts, functions, code_flags)):
        for number, section in enumerate(own):
            if index <= section.after or index == 0:
                score = -100.0
            elif code_flags[index]:
                score = row["NOTES"]
            else:
                share = _own_share(texts[index], section)
                score = row["NOTES"] - _OWN_BASE + _OWN_WORDS * share
                if share:
                    # a section's first block names its subject: entering is cheaper
                    entries[_own_key(number)] = _OWN_ENTRY * share
            row[_own_key(number)] = score
        if entries:
            row[ENTRY] = 1.0
            for key, bonus in entries.items():
                row[ENTRY + key] = bonus
            entries = {}
        yield row


_OWN_BASE = 0.0
_OWN_ENTRY = 2.5  # at most _OWN_SWITCH: no move may raise a score (``decode``)
#: A row's key that says it holds entry bonuses: the bonus of entering section S on its
#: block (from another section) is under ENTRY + S.
ENTRY = "\x00entry"


def _standard_emissions(
    texts: Sequence[str], functions: Sequence[str], code_flags: Sequence[bool]
) -> Iterator[dict[str, float]]:
    """``_emissions`` for the sections of the manual."""
    synopsis_end = _synopsis_end(texts, code_flags)
    covered = _coverage(texts, functions, synopsis_end)
    # a set: a NAME may list thousands of names, and each block looks its first word up
    names = frozenset(functions)
    in_list = _inside_lists(texts)
    example_intro = _after_example_intro(texts, code_flags)
    subjects_seen: set[str] = set()
    mentioned: set[str] = set()
    for index, text in enumerate(texts):
        row = dict.fromkeys(_RANK, -3.0)
        row["DESCRIPTION"] = 0.0
        row["NOTES"] = -0.4
        row["NAME"] = 50.0 if index == 0 else -100.0
        if index == 0:
            yield row
            continue
        code = code_flags[index]
        words = len(text.split())
        row["SYNOPSIS"] = -100.0  # only reachable through the rules below
        if code:
            if index < synopsis_end:
                row["SYNOPSIS"] = 6.0
            row["EXAMPLES"] = 0.3
            if index >= synopsis_end and example_intro[index]:
                row["EXAMPLES"] = 1.0
            for s in ("RETURN VALUES", "BUGS", "WARNINGS", "NOTES"):
                row[s] = max(row[s], -0.4)
            row["SEE ALSO"] = row["HISTORY"] = -20.0
            row["COPYRIGHT"] = -50.0
            yield row
            continue
        if index < synopsis_end:
            row["SYNOPSIS"] = 6.0
        copyright_ = text.startswith(("Copyright", "Licensed under", "(C) Copyright"))
        row["COPYRIGHT"] = 60.0 if copyright_ else -50.0
        if copyright_:
            yield row
            continue
        if _REF_LIST.match(text):
            row["SEE ALSO"] = 12.0
        else:
            refs = _count_references(text)
            row["SEE ALSO"] = 3.0 if refs and refs * 3 >= words else -6.0
            if text.endswith(":") and index + 1 < len(texts) and _REF_LIST.match(texts[index + 1]):
                row["SEE ALSO"] = 2.0  # "Supported ciphers are listed in:" and a list of pages
        if _history_strong(text):
            row["HISTORY"] = 4.0
        elif _history(text):
            row["HISTORY"] = 1.5
        else:
            row["HISTORY"] = -4.0
        # "The f() and g() functions return ..." is about the functions too
        starts_fn = _starts_with_function(text, names) or bool(_FUNCTION_RETURNS.match(text))
        term = item_term(text)
        value_item = term is not None and bool(
            _VALUE_TERM.match(term.split(",")[0])
        )
        if _RETURN_STRONG.search(text) or _RETURNED_VALUES.search(text) or _errors_can_occur(
            text
        ):
            # a callback's return values are part of its DESCRIPTION
            callback = _CALLBACK_RETURNS.search(text) is not None or _then_in_sentence(
                _CALLBACK, _SHOULD_RETURN, text
            )
            row["RETURN VALUES"] = 0.5 if callback else 2.0
        elif value_item or _FUNCTION_RETURNS.match(text):
            row["RETURN VALUES"] = 1.0
        elif _RETURN.search(text):
            row["RETURN VALUES"] = 0.5 if starts_fn else 0.0
        else:
            row["RETURN VALUES"] = -0.5
        subject = _subject(text, names)
        if subject is not None and subject not in subjects_seen and index >= synopsis_end:
            # a paragraph that introduces one more of the page's functions describes it
            subjects_seen.add(subject)
            row["DESCRIPTION"] += _NEW_SUBJECT
        if index >= synopsis_end:
            # the first mention of one of the page's functions, anywhere in the block
            named = {w.group() for w in _WORD.finditer(text)} & names
            new_mention = bool(named - mentioned)
            if new_mention and subject is None:
                row["DESCRIPTION"] += _NEW_MENTION
            mentioned |= named
        else:
            new_mention = False
        if not covered[index]:
            # DESCRIPTION has not yet described every function of the page
            row["NOTES"] -= _UNCOVERED
        elif term is not None or in_list[index]:
            # a list item (or a paragraph between items) continues its list's section
            row["RETURN VALUES"] = max(row["RETURN VALUES"], 0.0)
            row["NOTES"] = max(row["NOTES"], 0.0)
        elif not starts_fn and not new_mention:
            row["NOTES"] += _NOTES_PROSE
        else:
            row["NOTES"] += 0.2
        if new_mention:
            # NOTES and RETURN VALUES seldom name a function DESCRIPTION has not named
            row["NOTES"] -= _MENTION_NOT_NOTES
            if subject is None:
                row["RETURN VALUES"] -= _MENTION_NOT_RETURN
        if _ADVICE.search(text):
            row["NOTES"] += 0.4
        if _MUST.search(text):
            row["NOTES"] += 0.8
        if _BUGS_STRONG.search(text):
            row["BUGS"] = 2.0
        elif _BUGS.search(text):
            row["BUGS"] = 1.0
        if _WARNINGS.search(text):
            row["WARNINGS"] = -0.5
        introduces_code = text.rstrip().endswith(":") and index + 1 < len(texts) and code_flags[
            index + 1
        ]
        if _IMPERATIVE.match(text) and introduces_code:
            # "Create a memory BIO:" followed by code: the shape of EXAMPLES
            row["EXAMPLES"] = 3.0
            row["NOTES"] = min(row["NOTES"], 0.0)
        elif (
            _EXAMPLE_WORD.search(text)
            or (_IMPERATIVE.match(text) and text.endswith(":"))
            or (introduces_code and words <= 8)
        ):
            row["EXAMPLES"] = 1.0
        else:
            row["EXAMPLES"] = -1.0
        if _CONFORMING.search(text) and words < 30:
            row["CONFORMING TO"] = 3.0  # a short list of standards
        elif _CONFORMING.search(text) and words < 60:
            row["CONFORMING TO"] = 1.5
        if _ENV.search(text):
            row["ENVIRONMENT"] = 1.5
        header_files = _HEADER_FILES.search(text) is not None
        if header_files:
            pass
        elif _DATA_STRUCTURES.search(text):
            row["DATA STRUCTURES"] = 3.0
        elif _STRUCTURE_ITEM.match(text):
            row["DATA STRUCTURES"] = 0.5
        if header_files:
            row["HEADER FILES"] = 3.0
        elif _HEADER_ITEM.match(text):
            row["HEADER FILES"] = 1.0
        yield row


# The most common section changes cost less than the others.
_COMMON = frozenset({
    ("DESCRIPTION", "NOTES"),
    ("DESCRIPTION", "RETURN VALUES"),
    ("NOTES", "RETURN VALUES"),
    ("RETURN VALUES", "SEE ALSO"),
    ("SEE ALSO", "HISTORY"),
    ("HISTORY", "COPYRIGHT"),
    ("SEE ALSO", "COPYRIGHT"),
    ("NOTES", "SEE ALSO"),
    ("EXAMPLES", "SEE ALSO"),
    ("BUGS", "SEE ALSO"),
    ("CONFORMING TO", "SEE ALSO"),
})


def _transition(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if a in ("NAME", "SYNOPSIS") and b not in ("SYNOPSIS", "DESCRIPTION"):
        return 1000.0  # every page of the manual has a DESCRIPTION after its SYNOPSIS
    if (a, b) in _COMMON:
        return _COMMON_SWITCH
    cost = _SWITCH
    if _RANK[b] < _RANK[a]:
        cost += _BACK
    return cost


def recover_sections(texts: Sequence[str], *, functions: Sequence[str] = ()) -> list[str]:
    """Label each block of a heading-less page with its section.

    Args:
        texts: The blocks in order, the first being the NAME paragraph.
        functions: The function names of the NAME paragraph (a cue for DESCRIPTION).

    Returns:
        The canonical section heading of every block.
    """
    return label_blocks(texts, functions=functions)[0]


def label_blocks(
    texts: Sequence[str], *, functions: Sequence[str] = ()
) -> tuple[list[str], list[bool]]:
    """:func:`recover_sections`, and for each block :func:`looks_like_code` (worked out
    once for both)."""
    cues = [_cue(t) for t in texts]
    code = [_is_code(c) for c in cues]
    own = _own_sections(cues, code)
    labels = decode(_emissions(cues, functions, code, own), len(own))
    names = {_own_key(i): o.title for i, o in enumerate(own)}
    return [names.get(label, label) for label in labels], code


# -- a page's own sections ------------------------------------------------------------
#
# A heading that no rule can name ("REPLAY PROTECTION", "FLAGS") is often named by the
# page itself: Pod's L</"REPLAY PROTECTION"> renders as 'see "REPLAY PROTECTION" below'.
# A quoted run of capitals that such a reference introduces ("see", "in", "described
# in", then the quote; or "below", "above", "section" after it), and that is not
# followed by "in page(3)" (a section of another page), names a section of the page.
# It becomes one more state of the search, in the group of the sections that follow
# DESCRIPTION in any order (NOTES, RETURN VALUES), after the first reference to it
# when that says "below"; a block that uses the heading's words scores for it.

_QUOTED_HEADING = re.compile(r'"([A-Z][A-Z0-9]*(?: [A-Z][A-Z0-9]*){0,5})"')
_REFERENCE_BEFORE = re.compile(
    r"(?:\b(?:see|in|to|on)(?: the)?|described in|about [\w ]{0,40} in)\s*\(?\Z", re.IGNORECASE
)
_REFERENCE_AFTER = re.compile(
    r"\A\)?\s*(?:section\b\s*)?(below|above)\b|\A\)?\s*section\b", re.IGNORECASE
)
_OTHER_PAGE = re.compile(r"\A\s*(?:section\s+)?(?:in|of)\s+(?:the\s+)?[\w.:+-]+\(\d")
#: The most own sections a page gets as states (each doubles the states of its group).
_MAX_OWN = 2
_HEADING_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")


class _OwnSection:
    """A section the page names in a reference to itself ('see "FLAGS" below')."""

    __slots__ = ("after", "stems", "title")

    def __init__(self, title: str, after: int, stems: tuple[str, ...]) -> None:
        self.title = title
        self.after = after  # its blocks come after this one (-1: anywhere)
        self.stems = stems  # the heading's words, lower case, without a plural "s"


def _own_key(index: int) -> str:
    return f"\x00own{index}"


def _stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _own_sections(texts: Sequence[str], code: Sequence[bool]) -> list[_OwnSection]:
    """The sections *texts* refer to as their own, in order of first reference."""
    found: dict[str, _OwnSection] = {}
    for index, text in enumerate(texts):
        if code[index] or '"' not in text:
            continue
        for quoted in _QUOTED_HEADING.finditer(text):
            title = quoted.group(1)
            if title in _RANK or len(title) < 4:
                continue
            before = text[max(0, quoted.start() - 60) : quoted.start()]
            after = text[quoted.end() : quoted.end() + 60]
            if _OTHER_PAGE.match(after):
                continue
            direction = _REFERENCE_AFTER.match(after)
            if direction is None and _REFERENCE_BEFORE.search(before) is None:
                continue
            below = direction is not None and (direction.group(1) or "").lower() == "below"
            if title not in found:
                if len(found) >= _MAX_OWN:
                    continue
                stems = tuple(_stem(w) for w in _HEADING_WORD.findall(title))
                found[title] = _OwnSection(title, index if below else -1, stems)
    return list(found.values())


def _own_share(text: str, own: _OwnSection) -> float:
    """How much a block reads like the section *own* names: the share of its heading's
    words that the block uses."""
    if not own.stems or f'"{own.title}"' in text:
        return 0.0  # no block without stems; a block that refers to it is not in it
    words = {_stem(w) for w in _HEADING_WORD.findall(text)}
    return sum(1 for s in own.stems if s in words) / len(own.stems)


_OWN_WORDS = 0.5


# The sections that follow DESCRIPTION in either order, each once: a path that has
# left one of them may not come back to it (no page of the surveyed manual repeats a
# section). The search tells them apart by the set of the group already visited.
_GROUP = ("NOTES", "RETURN VALUES")


class _Model:
    """The states of the search for a page with *own* sections of its own, and the
    score of every move between them."""

    def __init__(self, own: int) -> None:
        group = _GROUP + tuple(_own_key(i) for i in range(own))
        rank = dict(_RANK)
        for key in group[len(_GROUP) :]:
            rank[key] = _RANK["NOTES"]
        full = (1 << len(group)) - 1
        states: list[tuple[str, int]] = []
        for section in _RANK:
            if section == "NOTES":
                # the group's states, where NOTES is in the order
                for member_index, member in enumerate(group):
                    bit = 1 << member_index
                    states.extend((member, mask) for mask in range(1, full + 1) if mask & bit)
            elif section not in group:
                states.append((section, 0))
        self.sections = tuple(section for section, _ in states)
        self.scores = operator.itemgetter(*self.sections)
        bits = {member: 1 << i for i, member in enumerate(group)}
        count = len(states)
        moves = [[-math.inf] * count for _ in range(count)]
        for p, (a, mask_a) in enumerate(states):
            for s, (b, mask_b) in enumerate(states):
                if (a, mask_a) == (b, mask_b):
                    moves[p][s] = 0.0
                    continue
                if a == b:
                    continue
                if b in bits:
                    if a in bits:
                        allowed = not mask_a & bits[b] and mask_b == mask_a | bits[b]
                    elif rank[a] < rank[b]:
                        allowed = mask_b == bits[b]  # the first of the group
                    else:
                        # back from a later section: the group counts as visited
                        allowed = mask_b == full
                    if not allowed:
                        continue
                moves[p][s] = -self._cost(a, b, rank)
        # into[s][p]: the score of the move from p into s
        self.into = tuple(tuple(moves[p][s] for p in range(count)) for s in range(count))
        self._states = states

    def entry_bonus(self, entries: Mapping[str, float]) -> list[tuple[float, ...]]:
        """``into``, with the moves into the sections of *entries* (from another
        section) raised by their bonus."""
        out = list(self.into)
        for s, (section, _) in enumerate(self._states):
            extra = entries.get(section)
            if extra:
                out[s] = tuple(
                    score if self._states[p][0] == section else score + extra
                    for p, score in enumerate(self.into[s])
                )
        return out

    @staticmethod
    def _cost(a: str, b: str, rank: Mapping[str, int]) -> float:
        if a in _RANK and b in _RANK:
            return _transition(a, b)
        if a in ("NAME", "SYNOPSIS"):
            return 1000.0
        if b in _RANK:
            return _transition("NOTES", b)  # leaving one: as leaving NOTES
        cost = _OWN_SWITCH
        if rank[b] < rank[a]:
            cost += _BACK
        return cost


_OWN_SWITCH = 3.0  # entering one of the page's own sections


@functools.cache
def _model(own: int) -> _Model:
    return _Model(own)


def decode(rows: Iterable[Mapping[str, float]], own: int = 0) -> list[str]:
    """The best labelling of the blocks (Viterbi over the sections as states).

    Maximises the summed scores of the blocks' sections minus the cost of each change
    of section (``_transition``). Linear in the number of blocks, and the rows are read
    one at a time (``_emissions`` makes them as they are read): what is kept per block
    is one byte per state, the state it is best reached from.

    A state is a section, and for NOTES, RETURN VALUES and the page's *own* sections
    (``_own_sections``, keyed ``_own_key(i)``) also the set of those visited so far, so
    that none of them is entered twice (``_Model``).

    The best way into state s is found by trying the states in order of their
    score so far, best first, and stopping at the first whose score (which no move
    can raise) is below the best found: usually after two or three of them. Ties go
    to the state that comes first, as a plain loop over them would.

    Args:
        rows: Each block's score per section (``_emissions``).
        own: How many sections of its own the page has (rows score them).

    Returns:
        The section of every block.
    """
    model = _model(own)
    blocks = iter(rows)
    first = next(blocks, None)
    if first is None:
        return []
    count = len(model.sections)
    order = range(count)
    best = list(model.scores(first))
    back: list[bytes] = []
    into_all = model.into
    scores_of = model.scores
    for row in blocks:
        scores = scores_of(row)
        bonus = None
        if row.get(ENTRY):
            skip = len(ENTRY)
            entries = {k[skip:]: v for k, v in row.items() if k.startswith(ENTRY) and k != ENTRY}
            bonus = model.entry_bonus(entries)
        ranked = sorted(order, key=best.__getitem__, reverse=True)  # stable: ties in order
        new: list[float] = []
        pointers = bytearray(count)
        for s in order:
            into = into_all[s] if bonus is None else bonus[s]
            prev, score = -1, -math.inf
            for p in ranked:
                so_far = best[p]
                if so_far < score:
                    break  # moves cost >= 0: no later p can reach the best
                candidate = so_far + into[p]
                if candidate > score or (candidate == score and p < prev):
                    prev, score = p, candidate
            pointers[s] = prev if prev > 0 else 0
            new.append(score + scores[s])
        back.append(bytes(pointers))
        best = new
    index = max(order, key=lambda s: best[s])
    labels = [index]
    for step in reversed(back):
        index = step[index]
        labels.append(index)
    labels.reverse()
    return [model.sections[i] for i in labels]


def looks_like_code(text: str) -> bool:
    """True when a heading-less block is a line of C (a SYNOPSIS or example line)."""
    return _is_code(_cue(text))


def item_term(text: str) -> str | None:
    """The tag of a tagged-list item written on one line, or None.

    ``"SSL_SESS_CACHE_OFF No session caching..."`` -> ``"SSL_SESS_CACHE_OFF"``;
    ``"SSL_CTX (SSL Context) This is..."`` -> ``"SSL_CTX (SSL Context)"``.
    """
    match = _ITEM_TERM.match(text[:_CUE_HEAD])  # a tag is short: the head has it
    if match is None:
        return None
    return match.group(1)
