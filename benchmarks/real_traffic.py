"""Real traffic: how a scorer treats the third-party texts in ``../shared/real/`` (all presumed ``normal``).

For each CSV there: the share labelled risky, reviewed and blocked, and the highest-risk rows for reading.
The folder is optional: when it is absent the benchmark says so and skips this part. Nothing here copies
rows into the project; the report quotes at most a short prefix of the top rows, in the results folder only.

    python -m benchmarks.real_traffic --model models/duanka [--real ../shared/real] [--top 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
TOP = 20


@dataclass
class FileShares:
    """One real file under one scorer: shares of rows labelled risky, reviewed and blocked."""

    file: str
    rows: int
    risky: float
    review: float
    block: float
    top: list[dict[str, Any]] = field(default_factory=list)


def real_files(folder: Path) -> list[Path]:
    """The CSV files of the real-traffic folder, or an empty list when it is absent."""
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []


def read_texts(path: Path) -> list[str]:
    """The ``text`` column of one real file (non-empty rows)."""
    csv.field_size_limit(1 << 24)
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle) if (row.get("text") or "").strip()]


def measure(scorer: Any, texts: list[str], name: str, top: int = TOP, batch: int = 512) -> FileShares:
    """Score ``texts`` with a duanka Scorer and count labels and decisions."""
    risky = review = block = 0
    ranked: list[tuple[float, int, Any]] = []
    for start in range(0, len(texts), batch):
        for offset, result in enumerate(scorer.score_batch(texts[start : start + batch])):
            risky += result.label != "normal"
            review += result.decision == "review"
            block += result.decision == "block"
            if result.decision != "pass" or result.label != "normal":
                ranked.append((result.risk, start + offset, result))
    ranked.sort(key=lambda item: -item[0])
    rows = []
    for risk, index, result in ranked[:top]:
        rows.append(
            {
                "row": index,
                "risk": round(risk, 4),
                "label": result.label,
                "decision": result.decision,
                "rules": [hit["id"] for hit in result.evidence["rules"]],
                "text": texts[index][:80],
            }
        )
    n = max(len(texts), 1)
    return FileShares(name, len(texts), risky / n, review / n, block / n, rows)


def real_shares(predictor: Any, texts: list[str], name: str, top: int = TOP) -> dict[str, Any]:
    """Shares of one real file for any contender: decisions for Scorer-like ones, labels for the others."""
    if hasattr(predictor, "score_batch"):
        shares = asdict(measure(predictor, texts, name, top))
        del shares["file"]
        return shares
    import numpy as np

    from duanka.labels import LABELS, NORMAL

    risky = 0
    for start in range(0, len(texts), 2048):
        proba = predictor.predict_proba(texts[start : start + 2048])
        risky += int((np.asarray(proba).argmax(axis=1) != LABELS.index(NORMAL)).sum())
    return {"rows": len(texts), "risky": risky / max(len(texts), 1), "review": None, "block": None, "top": []}


def measure_folder(scorer: Any, folder: Path, top: int = TOP) -> list[FileShares]:
    """:func:`measure` for every CSV in ``folder``."""
    return [measure(scorer, read_texts(path), path.name, top) for path in real_files(folder)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/duanka")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--top", type=int, default=TOP)
    parser.add_argument("--json", type=Path, help="write the figures (and top rows) here")
    args = parser.parse_args(argv)
    if not real_files(args.real):
        print(f"{args.real}: no real-traffic folder here; skipped")
        return 0
    from duanka import Scorer

    scorer = Scorer.load(args.model, strict=True)
    shares = measure_folder(scorer, args.real, args.top)
    for item in shares:
        print(
            f"{item.file:24} rows {item.rows:6}  risky {item.risky:7.3%}  review {item.review:7.3%}  "
            f"block {item.block:7.3%}"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in shares], ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
