"""Every resumption reason of resume._core.why has its entry in the why-no-resumption how-to."""

from __future__ import annotations

import re
from pathlib import Path

from resume._core import why

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "why-no-resumption.rst"


def test_every_reason_has_an_entry() -> None:
    """The how-to's "The reasons, and what to do" entries are exactly why.REASONS."""
    text = HOWTO.read_text(encoding="utf-8")
    section = text.split("The reasons, and what to do\n", 1)[1]
    entries = re.findall(r"^``([^`]+)``$", section, flags=re.MULTILINE)
    assert sorted(entries) == sorted(why.REASONS)
    assert len(set(why.REASONS)) == len(why.REASONS)
