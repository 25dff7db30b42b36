"""The review loop on real traffic: rounds of ``duanka review export`` → blind labels → ``duanka review import``
→ retrain, on ``../shared/real/tg_stream.csv``, replayed from the committed labels.

The labels (``data/real_labels/tg_stream.csv``: ``id, label, round, sure``, no text) were made blind: annotators saw
a row's text and the data card, never a model's label or risk. This script replays the moderation team's rounds
exactly as they ran: round 1 scores the stream with the default model (trained on ``data/`` alone), exports a
queue with the CLI, fills the queue's ``review_label`` from the labels, imports it with the CLI into a feedback
file, and trains a contender on ``data/posts.csv`` plus that feedback; round 2 exports from the rows not yet
reviewed with that contender, and so on. For each round it reports the rows reviewed, the ads found, the yield
against a random queue of the same size (the stream's risky share, estimated from the random audit), and the
recall of the model that exported the round on the ads it found there (the contender of the round before).

    python -m benchmarks.stream_loop [--rounds 3] [--budget 400] [--write-rounds]

``--write-rounds`` writes each queued row's round number into the labels file; the other rows are ``complete``
(labelled afterwards, so that recall can be measured) or ``audit`` (the random sample of the rows that no model
flagged and no trade term or near-form hit, which estimates what is still missed). Nothing here
copies stream text into the project: queues, feedback and models live in a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STREAM = ROOT.parent / "shared" / "real" / "tg_stream.csv"
LABELS = ROOT / "data" / "real_labels" / "tg_stream.csv"
RESULTS = ROOT / "benchmarks" / "results"
RISKY = ("card_trading", "recruitment_lure")


def read_stream(path: Path) -> dict[str, str]:
    """``{id: text}`` of the stream."""
    csv.field_size_limit(1 << 24)
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["id"]: row["text"] for row in csv.DictReader(handle)}


def read_labels(path: Path = LABELS) -> dict[str, dict[str, str]]:
    """``{id: {"label", "round", "sure"}}`` of the committed stream labels."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def write_labels(labels: dict[str, dict[str, str]], path: Path = LABELS) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "label", "round", "sure"])
        for key in sorted(labels):
            writer.writerow([key, labels[key]["label"], labels[key]["round"], labels[key]["sure"]])


def risky_share_estimate(labels: dict[str, dict[str, str]], stream_rows: int) -> dict[str, float]:
    """The stream's share of risky rows: every row outside the audit's stratum that is risky was labelled; the
    stratum (rows no model flagged and no trade term hit) is estimated from its random audit."""
    labelled_risky = sum(1 for v in labels.values() if v["label"] in RISKY and v["round"] != "audit")
    audit = [v for v in labels.values() if v["round"] == "audit"]
    audit_risky = sum(1 for v in audit if v["label"] in RISKY)
    stratum = stream_rows - sum(1 for v in labels.values() if v["round"] != "audit")
    missed = stratum * audit_risky / max(len(audit), 1)
    from duanka.adapters.review.estimates import wilson_interval

    low, high = wilson_interval(audit_risky, len(audit)) if audit else (0.0, 0.0)
    return {
        "labelled_risky": labelled_risky,
        "audit_rows": len(audit),
        "audit_risky": audit_risky,
        "unflagged_stratum_rows": stratum,
        "estimated_missed": missed,
        "estimated_missed_95": [round(stratum * low, 1), round(stratum * high, 1)],
        "risky_share": (labelled_risky + missed) / stream_rows,
    }


def _cli(*args: str) -> None:
    from duanka.cli import main

    code = main(list(args))
    if code:
        raise SystemExit(f"duanka {' '.join(args[:2])} failed with exit code {code}")


def _train(data: list[Path], output: Path, seed: int) -> Path:
    from duanka.training.config import TrainConfig
    from duanka.training.workflow import train_artifact

    train_artifact([str(p) for p in data], None, output, TrainConfig(seed=seed))
    return output


def _write_posts(path: Path, stream: dict[str, str], ids: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for key in ids:
            writer.writerow([key, stream[key]])


def _label_queue(queue: Path, labelled: Path, labels: dict[str, dict[str, str]]) -> tuple[list[dict], list[str]]:
    """Fill the queue's review columns from the labels; returns (queue rows, ids that have no label)."""
    with queue.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [row["id"] for row in rows if row["id"] not in labels]
    for row in rows:
        row["review_label"] = labels.get(row["id"], {}).get("label", "")
        row["reviewer"] = "stream-annotators"
        row["review_date"] = "2026-12-06"
    with labelled.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows, missing


def run_round(
    number: int, model: Path, stream: dict[str, str], remaining: list[str], labels: dict, work: Path, args: Any
) -> dict[str, Any]:
    posts, queue = work / f"stream_{number}.csv", work / f"queue_{number}.csv"
    labelled = work / f"labelled_{number}.csv"
    _write_posts(posts, stream, remaining)
    started = time.perf_counter()
    _cli("review", "export", "--input", str(posts), "--output", str(queue), "--budget", str(args.budget),
         "--seed", str(number), "--model", str(model))  # fmt: skip
    export_s = time.perf_counter() - started
    rows, missing = _label_queue(queue, labelled, labels)
    _cli("review", "import", str(labelled), "--output", str(work / "feedback.csv"), "--date", "2026-12-06")
    found = [row for row in rows if row["review_label"] in RISKY]
    return {
        "round": number,
        "exported_by": model.name,
        "queue_rows": len(rows),
        "rows_covered": sum(int(row["group_size"] or 1) for row in rows),
        "unlabelled_rows": missing,
        "ads_found": len(found),
        "ads_covered": sum(int(row["group_size"] or 1) for row in found),
        "by_reason": _by_reason(rows),
        "exporting_model_recall": {
            "labelled_risky": _share(found, lambda row: row["model_label"] in RISKY),
            "flagged": _share(found, lambda row: row["decision"] in ("review", "block")),
            "blocked": _share(found, lambda row: row["decision"] == "block"),
        },
        "export_s": round(export_s, 1),
        "ids": [row["id"] for row in rows],
    }


def _share(rows: list[dict], test: Any) -> float | None:
    return round(sum(1 for row in rows if test(row)) / len(rows), 4) if rows else None


def _by_reason(rows: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        kind = row["reason"].split(":")[0].split(" ")[0]
        entry = out.setdefault(kind, {"rows": 0, "ads": 0})
        entry["rows"] += 1
        entry["ads"] += row["review_label"] in RISKY
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", type=Path, default=STREAM)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0, help="training seed of every model")
    parser.add_argument("--write-rounds", action="store_true", help="write each queued row's round into the labels")
    parser.add_argument("--output", type=Path, default=RESULTS / "stream_loop.json")
    args = parser.parse_args(argv)
    if not args.stream.is_file():
        print(f"stream_loop: {args.stream} not found; nothing to replay (the stream is optional)")
        return 0
    stream, labels = read_stream(args.stream), read_labels(args.labels)
    estimate = risky_share_estimate(labels, len(stream))
    reviewed: set[str] = set()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="duanka-stream-") as tmp:
        work = Path(tmp)
        model = _train([ROOT / "data" / "posts.csv"], work / "model_0", args.seed)
        for number in range(1, args.rounds + 1):
            remaining = [key for key in stream if key not in reviewed]
            result = run_round(number, model, stream, remaining, labels, work, args)
            result["random_queue_expected_ads"] = round(result["queue_rows"] * estimate["risky_share"], 1)
            reviewed.update(result["ids"])
            print(json.dumps({k: v for k, v in result.items() if k != "ids"}, ensure_ascii=False), flush=True)
            rounds.append(result)
            if number < args.rounds:  # the contender that exports the next round
                data = [ROOT / "data" / "posts.csv", work / "feedback.csv"]
                model = _train(data, work / f"model_{number}", args.seed)
    if args.write_rounds:
        queued = {key: str(r["round"]) for r in reversed(rounds) for key in r["ids"]}  # the first round wins
        for key, entry in labels.items():
            if entry["round"] != "audit":  # the random audit stays marked as such, queued or not
                entry["round"] = queued.get(key, "complete")
        write_labels(labels, args.labels)
    report = {"stream_rows": len(stream), "labels": len(labels), "estimate": estimate, "budget": args.budget,
              "rounds": [{k: v for k, v in r.items() if k != "ids"} for r in rounds]}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
