"""Check that corpus rows are the project's own writing: no row close to any row of ``../shared/real/``.

    python data/check_against_real.py data/posts.csv [--ids p31000-p33999] [--real ../shared/real] [--limit 0.5]

For every row of the file (or of the id range), the highest Jaccard similarity of its character 4-grams (after
duanka's normalization) with any row of every CSV in the real folder, the unlabelled stream included. Exits 1 when
a row reaches ``--limit`` (default 0.5), listing the row ids and the real file, never the real text. Rows shorter
than ``--min-chars`` normalized characters (default 10: 收到, 晚安, 666, 验证码收不到咋办) are everyday expressions that
any two corpora share; they are counted and listed apart, and do not fail the check. Candidates come
from an inverted index of 4-grams; grams shared by more than 5,000 real rows are too common to nominate candidates,
but every candidate's similarity is computed on all its grams.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path

from duanka.text.normalize import normalize

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
COMMON = 5_000
N = 4


def grams(text: str) -> frozenset[str]:
    """The character 4-grams of the normalized text (the whole text when shorter)."""
    norm = normalize(text)
    return frozenset(norm[i : i + N] for i in range(max(len(norm) - N + 1, 1))) if norm else frozenset()


def _in_range(row_id: str, ranges: list[tuple[str, str]]) -> bool:
    return not ranges or any(low <= row_id <= high and len(row_id) == len(low) for low, high in ranges)


def closest(rows: list[tuple[str, str]], real: Path) -> list[tuple[str, float, str]]:
    """(row id, highest Jaccard with a real row, that row's file) for every row."""
    csv.field_size_limit(1 << 24)
    sets: list[frozenset[str]] = []
    files: list[str] = []
    index: dict[str, list[int]] = defaultdict(list)
    for path in sorted(real.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for record in csv.DictReader(handle):
                gram_set = grams(record.get("text") or "")
                if not gram_set:
                    continue
                for gram in gram_set:
                    index[gram].append(len(sets))
                sets.append(gram_set)
                files.append(path.name)
    out = []
    for row_id, text in rows:
        mine = grams(text)
        votes: Counter[int] = Counter()
        for gram in mine:
            postings = index.get(gram, ())
            if len(postings) <= COMMON:
                votes.update(postings)
        best, where = 0.0, ""
        for candidate, _ in votes.most_common(50):
            other = sets[candidate]
            score = len(mine & other) / len(mine | other)
            if score > best:
                best, where = score, files[candidate]
        out.append((row_id, best, where))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--ids", action="append", default=[], help="id range LOW-HIGH (repeatable); default: all")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--limit", type=float, default=0.5)
    parser.add_argument("--min-chars", type=int, default=10, help="shorter rows are listed apart, never failed")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"{args.real}: no real-traffic folder; nothing to check against")
        return 0
    ranges = [tuple(spec.split("-", 1)) for spec in args.ids]
    with args.file.open(encoding="utf-8", newline="") as handle:
        rows = [(r["id"], r["text"]) for r in csv.DictReader(handle) if _in_range(r["id"], ranges)]
    found = closest(rows, args.real)
    short = {row_id for row_id, text in rows if len(normalize(text)) < args.min_chars}
    over = [(row_id, score, where) for row_id, score, where in found if score >= args.limit]
    failed = [item for item in over if item[0] not in short]
    top = max((score for row_id, score, _ in found if row_id not in short), default=0.0)
    print(
        f"{args.file}: {len(rows)} rows checked against {args.real}; highest 4-gram Jaccard {top:.3f} among rows of "
        f"{args.min_chars}+ characters; {len(over) - len(failed)} shorter rows reach {args.limit} (not failed)"
    )
    for row_id, score, where in sorted(over, key=lambda item: -item[1]):
        print(f"  {row_id}: {score:.3f} with a row of {where}" + (" (short)" if row_id in short else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
