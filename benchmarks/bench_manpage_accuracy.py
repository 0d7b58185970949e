"""Section recovery accuracy of ``resume.manpage.parse``.

Prints, per page set, the share of blocks whose recovered section matches the truth:

- shared: the shipped pages (``docs/manpages/source``), heading-less, against
  their ``NAME.sections.json``;
- tune / blind: two random samples of Debian's libssl-doc pages, flattened to the
  heading-less format by ``tests/data/manpages/regenerate.py`` (labels from their
  headings; see that script for how they were drawn). ``tune`` may be read while
  changing the rules; ``blind`` is only measured;
- headed: the same renderings with their headings, where sections are read, not guessed.

- wide: with ``--wide=DIR``, every other page of libssl-doc (571), heading-less, as
  ``tests/data/manpages/regenerate.py --wide DIR`` writes them; a tune set too.

Run: ``python -m benchmarks bench_manpage_accuracy`` (``-v`` lists every wrong block,
except on the blind pages: add ``--show-blind`` for those). ``--no-blind`` leaves the
blind pages out (measure them only when a change is done).
"""

from __future__ import annotations

import json
from pathlib import Path

from resume.manpage import parse
from resume.manpage._sections import KNOWN_SECTIONS

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "docs" / "manpages" / "source"
CORPUS = ROOT / "tests" / "data" / "manpages"


# Sections a reader of heading-less text can name: the manual's standard ones. A
# page-specific heading ("SECURE RENEGOTIATION", "AEAD INTERFACE") cannot be
# recovered once removed; the second figure leaves those blocks out.
STANDARD = frozenset(KNOWN_SECTIONS) - {"DATA STRUCTURES", "HEADER FILES"}

Score = tuple[int, int, int, int]  # right, total, right on standard, total standard


def _score(text: str, truth: list[str], verbose: bool, label: str) -> Score:
    page = parse(text)
    got = [b.section for b in page.blocks]
    standard_total = sum(1 for t in truth if t in STANDARD)
    if len(got) != len(truth):
        if verbose:
            print(f"  {label}: {len(got)} blocks, expected {len(truth)}")
        return 0, len(truth), 0, standard_total
    right = standard_right = 0
    for block, want in zip(page.blocks, truth, strict=True):
        if block.section == want:
            right += 1
            standard_right += want in STANDARD
        elif verbose:
            print(f"  {label}: {want} -> {block.section}: {block.text[:90]}")
    return right, len(truth), standard_right, standard_total


def _report(name: str, results: list[Score]) -> None:
    right = sum(r[0] for r in results)
    total = sum(r[1] for r in results)
    s_right = sum(r[2] for r in results)
    s_total = sum(r[3] for r in results)
    exact = sum(r[0] == r[1] for r in results)
    share = 100.0 * right / total if total else 0.0
    s_share = 100.0 * s_right / s_total if s_total else 0.0
    print(f"{name:>9}: {right}/{total} blocks right ({share:.1f}%), {exact}/{len(results)} "
          f"pages exact; standard sections only: {s_right}/{s_total} ({s_share:.1f}%)")


def main(argv: list[str]) -> None:
    verbose = "-v" in argv
    results: list[Score] = []
    for path in sorted(SHARED.glob("*.txt")):
        truth = json.loads(path.with_suffix(".sections.json").read_text())
        results.append(_score(path.read_text(), truth, verbose, path.stem))
    _report("shared", results)
    corpus = json.loads((CORPUS / "corpus.json").read_text())
    headed: list[Score] = []
    for group in corpus:
        if group == "blind" and "--no-blind" in argv:
            continue
        results = []
        # the blind pages measure; their errors are listed only on request
        listed = verbose and (group != "blind" or "--show-blind" in argv)
        for name in corpus[group]:
            plain = CORPUS / "plain" / f"{name}.txt"
            truth = json.loads((CORPUS / "plain" / f"{name}.sections.json").read_text())
            results.append(_score(plain.read_text(), truth, listed, name))
            headed_text = (CORPUS / "headed" / f"{name}.txt").read_text()
            headed.append(_score(headed_text, truth, verbose, f"{name} (headed)"))
        _report(group.replace("_", "-"), results)
    _report("headed", headed)
    wide = next((a.split("=", 1)[1] for a in argv if a.startswith("--wide=")), None)
    if wide is not None:
        results = []
        for plain in sorted((Path(wide) / "plain").glob("*.txt")):
            truth = json.loads(plain.with_suffix(".sections.json").read_text())
            results.append(_score(plain.read_text(), truth, verbose, plain.stem))
        _report("wide", results)
