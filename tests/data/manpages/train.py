"""Learn the section-recovery weights from Debian's libssl-doc (not run by the tests).

Usage: ``python tests/data/manpages/train.py [--write]`` (``--cv 4`` cross-validates) on a
machine with libssl-doc (``/usr/share/man/man3/*.3ssl.gz``, ``man7/*.7ssl.gz``).

Every distinct page (611 in section 3, 126 in section 7 for OpenSSL 3.0) is rendered
with ``man`` and flattened to the heading-less format by ``regenerate.flatten``, which
reads the true section of every block off the headings. The pages split three ways:

- ``BLIND`` (40 pages of section 3, drawn once with ``random.Random(SEED)``): measured
  at the very end only; never trained on, never looked into while tuning;
- ``TUNE`` (the next 40 of the same draw): the learning rate, epochs and features were
  chosen on these;
- everything else, minus the pages of ``corpus.json`` (kept out so that its groups
  still measure pages the weights never saw), plus the six shipped pages: training.

The model is a linear-chain averaged perceptron (Collins 2002). The score of a section
for a block is the hand-written rule score of ``resume.manpage._sections`` plus the
learned weight of each of the block's features for that section; moving from one
section to the next costs the rule cost plus a learned correction. Blocks under a
page-specific heading ("SECURE RENEGOTIATION") cannot be named from heading-less text:
training treats their section as unknown (any section may explain them). The averaged
weights, rounded and pruned, are written to ``resume/manpage/_section_weights.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from regenerate import flatten, render  # noqa: E402

from resume.manpage._parser import _canonical, _split_name  # noqa: E402
from resume.manpage._sections import (  # noqa: E402
    _RANK,
    _SHORT,
    WEIGHTS_FILE,
    Weights,
    _emissions,
    _is_code,
    _synopsis_end,
    block_features,
    decode,
    entry_scores,
    section_scores,
)


def recover(texts: list[str], functions: list[str], weights: Weights) -> list[str]:
    """``recover_sections`` with the given weights (and its gate)."""
    if len(texts) < _SHORT and _synopsis_end(texts, [_is_code(t) for t in texts]) <= 1:
        weights = Weights({}, {}, {})
    features = block_features(texts, functions)
    rows = section_scores(texts, functions, weights, features)
    return decode(rows, weights.transition, entry_scores(features, weights))

SEED = 3151126
CACHE = Path("/tmp/resume-manpage-train")
MAN = Path("/usr/share/man")
SHARED = ROOT / "docs" / "manpages" / "source"
STATES = list(_RANK)
DROP: tuple[str, ...] = ()  # feature prefixes left out (an experiment)
ENTRY = True  # learn the entry weights

Page = tuple[str, list[str], list[str], list[str | None]]  # name, texts, functions, gold


def distinct_pages() -> list[tuple[str, str]]:
    """(name, section) of every page file that is not an alias (a symlink)."""
    out = []
    for folder, suffix in (("man3", ".3ssl.gz"), ("man7", ".7ssl.gz")):
        for path in sorted((MAN / folder).glob(f"*{suffix}")):
            if not path.is_symlink():
                out.append((path.name[: -len(suffix)], suffix[1:5]))
    return out


def splits() -> tuple[list[str], list[str]]:
    """The BLIND and TUNE page names (section 3 pages outside the corpus)."""
    corpus = json.loads((HERE / "corpus.json").read_text())
    used = {n for group in corpus.values() for n in group} | {p.stem for p in SHARED.glob("*.txt")}
    for group in ("blind", "tune"):
        used -= set(corpus.get(group, []))
    candidates = sorted(n for n, s in distinct_pages() if s == "3ssl" and n not in used)
    draw = random.Random(SEED).sample(candidates, 80)
    return draw[:40], draw[40:]


def flattened(name: str, section: str) -> tuple[str, list[str]]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{name}.{section}.txt"
    if not path.exists():
        path.write_text(render(name, section))
    return flatten(path.read_text())


def load(text: str, labels: list[str], name: str) -> Page:
    lines = text.rstrip("\n").split("\n")
    texts = [" ".join(line.split()) for line in lines[1:-1] if line.strip()]
    functions, _ = _split_name(texts[0])
    gold: list[str | None] = []
    for label in labels:
        canonical = _canonical(label)
        gold.append(canonical if canonical in _RANK else None)
    assert len(texts) == len(gold), name
    return name, texts, list(functions), gold


def prepare(page: Page) -> tuple[list[dict[str, float]], list[list[str]]]:
    _, texts, functions, _ = page
    return _emissions(texts, functions), block_features(texts, functions)


def score_rows(
    hand: list[dict[str, float]], feats: list[list[str]], w: Mapping[str, Mapping[str, float]],
    zero: bool = False,
) -> list[dict[str, float]]:
    rows = []
    for base, features in zip(hand, feats, strict=True):
        row = dict(base) if not zero else dict.fromkeys(STATES, 0.0)
        for feature in features:
            learned = w.get(feature)
            if learned:
                for s, v in learned.items():
                    row[s] += v
        rows.append(row)
    return rows


def train(pages: list[Page], epochs: int, lr: float, min_pages: int, bags: int = 1) -> Weights:
    """Average ``bags`` perceptrons, each trained on its own shuffles of the pages."""
    models = [_train(pages, epochs, lr, min_pages, SEED + k) for k in range(bags)]
    if bags == 1:
        return models[0]

    def mean(tables: list[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for key in sorted({k for t in tables for k in t}):
            inner = {
                s: round(sum(t.get(key, {}).get(s, 0.0) for t in tables) / bags, 3)
                for s in STATES
            }
            inner = {s: v for s, v in inner.items() if v}
            if inner:
                out[key] = inner
        return out

    return Weights(
        mean([m.emission for m in models]),
        mean([m.transition for m in models]),
        mean([m.entry for m in models]),
    )


def _train(pages: list[Page], epochs: int, lr: float, min_pages: int, seed: int) -> Weights:
    counts: Counter[str] = Counter()
    prepared = []
    for page in pages:
        hand, feats = prepare(page)
        counts.update({f for fs in feats for f in fs})
        prepared.append((page, hand, feats))
    keep = {f for f, c in counts.items() if c >= min_pages and not f.startswith(DROP)}
    prepared = [(p, h, [[f for f in fs if f in keep] for fs in feats]) for p, h, feats in prepared]
    w: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    u: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    t: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    tu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    e: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    eu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def bump(
        table: dict[str, dict[str, float]], sums: dict[str, dict[str, float]], key: str,
        section: str, delta: float,
    ) -> None:
        table[key][section] += delta
        sums[key][section] += step * delta

    step = 1
    rng = random.Random(seed)
    for epoch in range(epochs):
        rng.shuffle(prepared)
        mistakes = 0
        for (_, _, _, gold), hand, feats in prepared:
            rows = score_rows(hand, feats, w)
            enter = score_rows([{} for _ in feats], feats, e, zero=True)
            pred = decode(rows, t, enter)
            constrained = []
            for row, g, base in zip(rows, gold, hand, strict=True):
                if g is None or base[g] <= -50:
                    constrained.append(row)
                else:
                    constrained.append({s: (v if s == g else -1e9) for s, v in row.items()})
            target = decode(constrained, t, enter)
            if target != pred:
                mistakes += sum(a != b for a, b in zip(target, pred, strict=True))
                for i, (a, b) in enumerate(zip(target, pred, strict=True)):
                    if a != b:
                        for f in feats[i]:
                            bump(w, u, f, a, lr)
                            bump(w, u, f, b, -lr)
                    if i > 0 and (target[i - 1], a) != (pred[i - 1], b):
                        bump(t, tu, target[i - 1], a, lr)
                        bump(t, tu, pred[i - 1], b, -lr)
                        if target[i - 1] != a and ENTRY:
                            for f in feats[i]:
                                bump(e, eu, f, a, lr)
                        if pred[i - 1] != b and ENTRY:
                            for f in feats[i]:
                                bump(e, eu, f, b, -lr)
            step += 1
        print(f"epoch {epoch + 1}: {mistakes} block mistakes", file=sys.stderr)

    def average(
        a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], floor: float
    ) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for key in sorted(a):
            inner = {s: round(a[key][s] - b[key][s] / step, 3) for s in STATES if s in a[key]}
            inner = {s: v for s, v in inner.items() if abs(v) >= floor}
            if inner:
                out[key] = inner
        return out

    return Weights(average(w, u, 0.01), average(t, tu, 0.0), average(e, eu, 0.01))


CONFUSION: Counter[tuple[str | None, str]] = Counter()


def evaluate(
    pages: list[Page], weights: Weights, show: bool = False
) -> tuple[int, int, int, int]:
    right = total = s_right = s_total = 0
    for name, texts, functions, gold in pages:
        pred = recover(texts, functions, weights)
        for p, g, text in zip(pred, gold, texts, strict=True):
            if p != g and weights.emission:
                CONFUSION[g, p] += 1
            if show and p != g:
                print(f"  {name}: {g} -> {p}: {text[:100]}")
            total += 1
            right += p == g
            if g is not None:
                s_total += 1
                s_right += p == g
    return right, total, s_right, s_total


def _fold(job: tuple[list[Page], list[Page]], args: argparse.Namespace) -> tuple[int, ...]:
    global DROP, ENTRY
    DROP = tuple(p for p in args.drop.split(",") if p)
    ENTRY = not args.no_entry
    train_pages, test_pages = job
    weights = train(train_pages, args.epochs, args.lr, args.min_pages, args.bags)
    result = evaluate(test_pages, weights) + evaluate(test_pages, Weights({}, {}, {}))
    print(CONFUSION.most_common(14), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--min-pages", type=int, default=6)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--show", action="store_true", help="list the TUNE errors")
    parser.add_argument("--cv", type=int, default=0, help="cross-validate over K folds")
    parser.add_argument("--splits", action="store_true", help="print BLIND and TUNE")
    parser.add_argument("--drop", default="", help="feature prefixes to leave out, a,b")
    parser.add_argument("--no-entry", action="store_true")
    parser.add_argument("--bags", type=int, default=3)
    args = parser.parse_args()
    global DROP, ENTRY
    DROP = tuple(p for p in args.drop.split(",") if p)
    ENTRY = not args.no_entry
    blind, tune = splits()
    if args.splits:
        print(json.dumps({"blind": blind, "tune": tune}, indent=1))
        return
    corpus = json.loads((HERE / "corpus.json").read_text())
    seven = {"bio", "crypto", "ssl"}  # the corpus's section 7 pages
    excluded = {(n, "7ssl" if n in seven else "3ssl") for group in corpus.values() for n in group}
    excluded |= {(n, "3ssl") for n in blind + tune}
    todo = [page for page in distinct_pages() if page not in excluded]
    with ThreadPoolExecutor(8) as pool:
        flat = list(pool.map(lambda ns: (ns[0], flattened(*ns)), todo))
        tune_flat = list(pool.map(lambda n: (n, flattened(n, "3ssl")), tune))
    pages = [load(text, labels, name) for name, (text, labels) in flat]
    for path in sorted(SHARED.glob("*.txt")):
        labels = json.loads(path.with_suffix(".sections.json").read_text())
        # the shipped pages must come out exact: they count three times
        pages.extend([load(path.read_text(), labels, path.stem)] * 3)
    tune_pages = [load(text, labels, name) for name, (text, labels) in tune_flat]
    others = []  # the corpus groups but BLIND: never trained on either
    for group, names in corpus.items():
        if group in ("blind", "tune"):
            continue
        for name in names:
            labels = json.loads((HERE / "plain" / f"{name}.sections.json").read_text())
            others.append(load((HERE / "plain" / f"{name}.txt").read_text(), labels, name))
    headings = Counter(
        h for _, (_, labels) in flat for h in set(labels) if _canonical(h) not in _RANK
    )
    print(f"training on {len(pages)} pages; page-specific headings: "
          f"{headings.most_common(12)}", file=sys.stderr)
    if args.cv:
        folds = [pages[k :: args.cv] for k in range(args.cv)]
        jobs = [
            ([p for j, fold in enumerate(folds) if j != k for p in fold], folds[k])
            for k in range(args.cv)
        ]
        with ProcessPoolExecutor(2) as procs:
            results = list(procs.map(_fold, jobs, [args] * len(jobs)))
        r, n, sr, sn = (sum(x[i] for x in results) for i in range(4))
        rr, _, rsr, _ = (sum(x[i] for x in results) for i in range(4, 8))
        print(f"cv{args.cv}: learned standard {sr}/{sn} ({100 * sr / sn:.2f}%), all "
              f"{100 * r / n:.2f}%; rules only standard {100 * rsr / sn:.2f}%, "
              f"all {100 * rr / n:.2f}%")
        return
    baseline = evaluate(tune_pages, Weights({}, {}, {}))
    weights = train(pages, args.epochs, args.lr, args.min_pages, args.bags)
    for label, result in (
        ("rules only", baseline),
        ("learned", evaluate(tune_pages, weights, args.show)),
        ("corpus, rules only", evaluate(others, Weights({}, {}, {}))),
        ("corpus, learned", evaluate(others, weights, args.show)),
    ):
        r, n, sr, sn = result
        print(f"tune, {label}: {r}/{n} ({100 * r / n:.1f}%), standard {sr}/{sn} "
              f"({100 * sr / sn:.1f}%)")
    r, n, sr, sn = evaluate(pages, weights)
    print(f"train: {r}/{n} ({100 * r / n:.1f}%), standard {sr}/{sn} ({100 * sr / sn:.1f}%)")
    if args.write:
        data = {"emission": weights.emission, "transition": weights.transition,
                "entry": weights.entry}
        WEIGHTS_FILE.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n")
        print(f"wrote {WEIGHTS_FILE} ({WEIGHTS_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
