"""Parse OpenSSL man pages and turn them into reStructuredText.

``parse`` reads a ``man`` rendering (with or without its headings) into a
``ManPage``; ``to_rst`` writes it as reST for Sphinx. The Sphinx extension lives in
``resume.manpage.sphinxext`` (the only module here that imports Sphinx).
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
from ._sentences import NORMATIVE_SECTIONS as NORMATIVE_SECTIONS
from ._sentences import sentence_id as sentence_id
from ._sentences import split_sentences as split_sentences
