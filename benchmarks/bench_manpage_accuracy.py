"""Section recovery accuracy of ``resume.manpage.parse``.

Prints, per page set, the share of blocks whose recovered section matches the truth:

- shared: the six shipped pages (``docs/manpages/source``), heading-less, against
  their ``NAME.sections.json``;
- dev / held-out: pages of Debian's libssl-doc flattened to the heading-less format by
  ``tests/data/manpages/regenerate.py`` (labels from their headings). ``dev`` pages
  were looked at while tuning, ``held-out`` pages were not;
- headed: the same renderings with their headings, where sections are read, not guessed.

Run: ``python -m benchmarks bench_manpage_accuracy`` (``-v`` lists every wrong block).
"""

from __future__ import annotations

import json
from pathlib import Path

from resume.manpage import parse

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "docs" / "manpages" / "source"
CORPUS = ROOT / "tests" / "data" / "manpages"


def _score(text: str, truth: list[str], verbose: bool, label: str) -> tuple[int, int]:
    page = parse(text)
    got = [b.section for b in page.blocks]
    if len(got) != len(truth):
        if verbose:
            print(f"  {label}: {len(got)} blocks, expected {len(truth)}")
        return 0, len(truth)
    right = 0
    for block, want in zip(page.blocks, truth, strict=True):
        if block.section == want:
            right += 1
        elif verbose:
            print(f"  {label}: {want} -> {block.section}: {block.text[:90]}")
    return right, len(truth)


def _report(name: str, results: list[tuple[int, int]], pages_ok: int) -> None:
    right = sum(r for r, _ in results)
    total = sum(t for _, t in results)
    share = 100.0 * right / total if total else 0.0
    print(f"{name:>9}: {right}/{total} blocks right ({share:.1f}%), "
          f"{pages_ok}/{len(results)} pages exact")


def main(argv: list[str]) -> None:
    verbose = "-v" in argv
    results: list[tuple[int, int]] = []
    for path in sorted(SHARED.glob("*.txt")):
        truth = json.loads(path.with_suffix(".sections.json").read_text())
        results.append(_score(path.read_text(), truth, verbose, path.stem))
    _report("shared", results, sum(r == t for r, t in results))
    corpus = json.loads((CORPUS / "corpus.json").read_text())
    headed: list[tuple[int, int]] = []
    for group in ("dev", "held_out"):
        results = []
        for name in corpus[group]:
            plain = CORPUS / "plain" / f"{name}.txt"
            truth = json.loads((CORPUS / "plain" / f"{name}.sections.json").read_text())
            results.append(_score(plain.read_text(), truth, verbose, name))
            headed_text = (CORPUS / "headed" / f"{name}.txt").read_text()
            headed.append(_score(headed_text, truth, verbose, f"{name} (headed)"))
        _report(group.replace("_", "-"), results, sum(r == t for r, t in results))
    _report("headed", headed, sum(r == t for r, t in headed))
