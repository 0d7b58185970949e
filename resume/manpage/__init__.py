"""Parse OpenSSL man pages and turn them into reStructuredText.

``parse`` reads a ``man`` rendering, with or without its headings, into a
``ManPage``; ``to_rst`` writes it as reST for Sphinx. The Sphinx extension lives in
``resume.manpage.sphinxext`` (the only module here that imports Sphinx).
Normative sentences carry stable IDs (``sentence_id``) that tests name in
``@pytest.mark.manpage`` and the conformance matrix renders.
"""

from __future__ import annotations

from ._model import Block as Block
from ._model import BlockKind as BlockKind
from ._model import ManPage as ManPage
from ._model import ManPageError as ManPageError
from ._model import Parameter as Parameter
from ._model import Prototype as Prototype
from ._model import Reference as Reference
from ._model import Section as Section
from ._model import Sentence as Sentence
from ._model import Synopsis as Synopsis
from ._parser import parse as parse
from ._parser import parse_prototype as parse_prototype
from ._rst import to_rst as to_rst
from ._sentences import NORMATIVE_SECTIONS as NORMATIVE_SECTIONS
from ._sentences import section_abbreviation as section_abbreviation
from ._sentences import sentence_id as sentence_id
from ._sentences import split_sentences as split_sentences

__all__ = [
    "NORMATIVE_SECTIONS",
    "Block",
    "ManPage",
    "ManPageError",
    "Parameter",
    "Prototype",
    "Reference",
    "Section",
    "Sentence",
    "Synopsis",
    "parse",
    "parse_prototype",
    "section_abbreviation",
    "sentence_id",
    "split_sentences",
    "to_rst",
]

# Objects report their public home, as trio's do.
for _obj in (
    Block, ManPage, ManPageError, Parameter, Prototype, Reference, Section, Sentence,
    Synopsis, parse, parse_prototype, to_rst, section_abbreviation, sentence_id,
    split_sentences,
):
    _obj.__module__ = __name__
del _obj
