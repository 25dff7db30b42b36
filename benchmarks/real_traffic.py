"""Real traffic: how a scorer treats the third-party texts in ``../shared/real/``.

Presumed-normal files (every CSV but the stream): the share labelled risky, reviewed and blocked, and the
highest-risk rows for reading. The stream (``tg_stream.csv``, real chat that contains the trade) is read with the
project's labels (``data/real_labels/tg_stream.csv``, ids only): its labelled ads measure recall, its other rows
(labelled normal, or unlabelled: the random audit found 2 ads in 1,000 of them) join the ordinary text. The
recall curve puts a threshold where a contender flags 0.05%, 0.1%, 0.5% and 1% of all real ordinary text and
reads the share of real ads above it. The stream is split in two halves by near-duplicate group (an ad template and
its re-posts fall in one half), so a contender can be trained on one half's labels and measured on the other.
The folder is optional: when it is absent the benchmark says so and skips this part. Nothing here copies rows
into the project; the report quotes at most a short prefix of the top rows, in the results folder only.

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
STREAM_FILE = "tg_stream.csv"
STREAM_LABELS = Path(__file__).resolve().parents[1] / "data" / "real_labels" / "tg_stream.csv"
FLAG_RATES = (0.0005, 0.001, 0.005, 0.01)  # shares of real ordinary text a threshold may flag
TOP = 20
RISKY = ("card_trading", "recruitment_lure")


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
    """The presumed-normal CSV files of the real-traffic folder (not the stream), or [] when it is absent."""
    return sorted(p for p in folder.glob("*.csv") if p.name != STREAM_FILE) if folder.is_dir() else []


@dataclass
class Stream:
    """The real stream with the project's labels: ``labels[i]`` is ``""`` for an unlabelled row."""

    ids: list[str]
    texts: list[str]
    labels: list[str]
    halves: list[str]  # "a" or "b", by near-duplicate group
    groups: list[str]  # near-duplicate group of each labelled row (an ad template and its re-posts share one)

    def rows(self, *, ads: bool, half: str | None = None, templates: bool = False) -> list[int]:
        """Indices of the labelled ads (``ads=True``) or of the ordinary rows, optionally of one half, optionally
        one row per near-duplicate group (the first: a template counted once however often it was re-posted)."""
        seen: set[str] = set()
        out = []
        for i, label in enumerate(self.labels):
            if (label in RISKY) != ads or (half is not None and self.halves[i] != half):
                continue
            if templates:
                if self.groups[i] in seen:
                    continue
                seen.add(self.groups[i])
            out.append(i)
        return out


def read_stream(folder: Path, labels_path: Path = STREAM_LABELS) -> Stream | None:
    """The stream and its labels, or None when either is absent."""
    path = folder / STREAM_FILE
    if not path.is_file() or not labels_path.is_file():
        return None
    from duanka.training.dataset import duplicate_groups

    csv.field_size_limit(1 << 24)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [(row["id"], row["text"]) for row in csv.DictReader(handle) if (row.get("text") or "").strip()]
    with labels_path.open(encoding="utf-8", newline="") as handle:
        labels = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    ids, texts = [r[0] for r in rows], [r[1] for r in rows]
    labelled = [i for i, key in enumerate(ids) if key in labels]
    groups = duplicate_groups([texts[i] for i in labelled], 0.9, max_texts=len(labelled))
    first_id: dict[int, str] = {}
    for position, group in zip(labelled, groups):
        first_id.setdefault(int(group), ids[position])
    halves = ["a"] * len(ids)
    group_of = list(ids)  # an unlabelled row is its own group
    for position, group in zip(labelled, groups):
        halves[position] = _half(first_id[int(group)])
        group_of[position] = first_id[int(group)]
    for position, key in enumerate(ids):
        if key not in labels:
            halves[position] = _half(key)
    return Stream(ids, texts, [labels.get(key, "") for key in ids], halves, group_of)


def _half(key: str) -> str:
    import hashlib

    return "a" if hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 0 else "b"


@dataclass
class Scored:
    """One contender's view of some texts: label risky or not, risk, and decisions when it makes them."""

    risky: Any  # bool array
    risk: Any  # float array
    decisions: list[str] | None

    def take(self, rows: list[int]) -> Scored:
        import numpy as np

        index = np.asarray(rows, dtype=int)
        decisions = [self.decisions[i] for i in rows] if self.decisions is not None else None
        return Scored(self.risky[index], self.risk[index], decisions)

    @staticmethod
    def join(parts: list[Scored]) -> Scored:
        import numpy as np

        decisions = None if any(p.decisions is None for p in parts) else [d for p in parts for d in p.decisions]
        return Scored(np.concatenate([p.risky for p in parts]), np.concatenate([p.risk for p in parts]), decisions)


def score_texts(predictor: Any, texts: list[str], batch: int = 2048) -> Scored:
    """Labels, risk and (for Scorer-like contenders) decisions of ``texts``."""
    import numpy as np

    from duanka.labels import LABELS, NORMAL

    risky, risk, decisions = [], [], []
    scorer = hasattr(predictor, "score_batch")
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        if scorer:
            results = predictor.score_batch(chunk)
            risky += [r.label != NORMAL for r in results]
            risk += [r.risk for r in results]
            decisions += [r.decision for r in results]
        else:
            proba = np.asarray(predictor.predict_proba(chunk))
            risky += (proba.argmax(axis=1) != LABELS.index(NORMAL)).tolist()
            risk += (1.0 - proba[:, LABELS.index(NORMAL)]).tolist()
    return Scored(np.asarray(risky, dtype=bool), np.asarray(risk, dtype=float), decisions if scorer else None)


def ad_curve(ordinary: Scored, ads: Scored) -> dict[str, Any]:
    """Recall of real ads at the thresholds that flag each of :data:`FLAG_RATES` of real ordinary text, and the
    contender's own decisions on both."""
    import numpy as np

    ranked = np.sort(ordinary.risk)[::-1]
    curve = {}
    for rate in FLAG_RATES:
        k = int(np.floor(rate * len(ranked)))  # at most k ordinary rows may reach the threshold
        threshold = np.nextafter(ranked[k], np.inf) if k < len(ranked) else 0.0
        curve[f"{100 * rate:g}%"] = {
            "threshold": float(threshold),
            "recall": float(np.mean(ads.risk >= threshold)) if len(ads.risk) else 0.0,
        }
    out: dict[str, Any] = {
        "ads": len(ads.risk),
        "ordinary": len(ordinary.risk),
        "recall_at_flag_rate": curve,
        "ads_labelled_risky": float(np.mean(ads.risky)) if len(ads.risky) else 0.0,
        "ordinary_labelled_risky": float(np.mean(ordinary.risky)) if len(ordinary.risky) else 0.0,
    }
    if ads.decisions is not None and ordinary.decisions is not None:
        out["ads_flagged"] = _share(ads.decisions, ("review", "block"))
        out["ads_blocked"] = _share(ads.decisions, ("block",))
        out["ordinary_flagged"] = _share(ordinary.decisions, ("review", "block"))
        out["ordinary_blocked"] = _share(ordinary.decisions, ("block",))
    return out


def _share(decisions: list[str], kinds: tuple[str, ...]) -> float:
    return sum(d in kinds for d in decisions) / max(len(decisions), 1)


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
