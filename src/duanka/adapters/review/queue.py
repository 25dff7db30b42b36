"""The review queue: pick the posts worth a reviewer's time from scored traffic, and write them for people.

Every ``review`` decision first, then the most uncertain ``pass``/``block`` posts (risk nearest a threshold, or
model and rules disagreeing), and a random sample of ``pass`` and ``block`` posts per policy, drawn with a
recorded seed and weights. Near-duplicates are collapsed to one row per group with the group's size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duanka.adapters.file_scoring import score_records
from duanka.adapters.review.labelstudio import write_tasks
from duanka.adapters.review.schema import QUEUE_COLUMNS, REVIEWER_COLUMNS
from duanka.errors import DataError
from duanka.files.readers import iter_records
from duanka.files.spreadsheet import write_csv_for_people
from duanka.labels import RISKY_LABELS
from duanka.scoring.policy import DEFAULT_POLICY
from duanka.scoring.scorer import Scorer
from duanka.training.dataset import duplicate_groups

__all__ = ["export_queue", "load_scored", "write_queue"]

RANDOM_SHARE = 0.2  # of the budget, by default, for the random sample
MAX_NEAR_DUPLICATE_TEXTS = 20_000  # above this many distinct texts only exact (normalized) duplicates are collapsed


def load_scored(
    path: str | Path,
    *,
    scorer: Scorer | None = None,
    policy: str | None = None,
    posts: str | Path | None = None,
    text_column: str = "text",
    id_column: str = "id",
) -> pd.DataFrame:
    """Scored posts as a frame: ``row, id, text, policy, decision, model_label, risk, evidence, disagreement, …``.

    Args:
        path: ``duanka score --input`` output (JSONL lines with ``decision``), or a posts file to score now.
        scorer: scores a posts file (required for one).
        policy: the policy a posts file is scored under.
        posts: the file that was scored, when the scored lines carry no ``text`` (joined on ``row``).

    Raises:
        DataError: no text to show a reviewer, or a posts file without a scorer.
    """
    path = Path(path)
    records = list(iter_records(path))
    scored = any("decision" in r.values for r in records)
    if scored:
        lines = [r.values for r in records if not r.error and "error" not in r.values and "decision" in r.values]
        texts = _texts_from(posts, text_column) if posts else {}
        for line in lines:
            if "text" not in line or not isinstance(line["text"], str):
                if line.get("row") not in texts:
                    raise DataError(
                        f"{path}: row {line.get('row')}: scored lines carry no text; pass the file that was scored "
                        "(--posts FILE)"
                    )
                line["text"] = texts[line["row"]]
    else:
        if scorer is None:
            raise DataError(f"{path}: not scored (no `decision` field); give a model to score it with")
        texts = {r.row: r.values.get(text_column) for r in records if not r.error}
        options = {"text_column": text_column, "id_column": id_column, "policy": policy}
        lines = [line for line in score_records(scorer, path, **options) if "error" not in line]
        for line in lines:
            line["text"] = texts[line["row"]]
    if not lines:
        raise DataError(f"{path}: no scored rows")
    return _scored_frame(lines)


def _scored_frame(lines: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per scored line, with the columns a queue is chosen on."""
    return pd.DataFrame(
        {
            "row": [line.get("row") for line in lines],
            "id": [line.get("id") for line in lines],
            "text": [line["text"] for line in lines],
            "policy": [line.get("policy") or DEFAULT_POLICY for line in lines],
            "decision": [line["decision"] for line in lines],
            "model_label": [line.get("label") for line in lines],
            "risk": [float(line.get("risk") or 0.0) for line in lines],
            "model_version": [line.get("model_version") for line in lines],
            "evidence": [_evidence_text(line.get("evidence") or {}) for line in lines],
            "disagreement": [_disagrees(line) for line in lines],
        }
    )


def _texts_from(path: str | Path, text_column: str) -> dict[int, Any]:
    return {r.row: r.values.get(text_column) for r in iter_records(path) if not r.error}


def _evidence_text(evidence: Any) -> str:
    """Evidence as one line a reviewer reads: rules with their matched terms, term-list hits, model n-grams."""
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except json.JSONDecodeError:
            return evidence
    parts = []
    for hit in evidence.get("rules", []):
        terms = ", ".join(dict.fromkeys(m.get("text", m.get("term", "")) for m in hit.get("matches", [])))
        parts.append(f"rule {hit.get('id')} ({hit.get('label')}): {terms}")
    for hit in evidence.get("terms", []):
        parts.append(f"{hit.get('list')}: {hit.get('text', hit.get('term'))}")
    features = [f.get("feature", "").split(":", 1)[-1] for f in evidence.get("model", [])]
    if features:
        parts.append("model: " + ", ".join(features))
    return " | ".join(parts)


def _disagrees(line: dict[str, Any]) -> bool:
    """Rules fired on a post the model passes, or they name a different risky label than the model."""
    evidence = line.get("evidence") or {}
    rule_labels = {hit.get("label") for hit in evidence.get("rules", [])} & set(RISKY_LABELS)
    if not rule_labels:
        return False
    return line.get("decision") == "pass" or line.get("label") not in rule_labels


def _uncertainty(frame: pd.DataFrame, thresholds: dict[str, dict[str, float]] | None) -> np.ndarray:
    """Distance of each post's risk to the nearest threshold of its policy (0.5 when the thresholds are unknown)."""
    distance = np.empty(len(frame))
    for k, (policy, risk) in enumerate(zip(frame["policy"], frame["risk"])):
        bounds = (thresholds or {}).get(policy)
        points = (bounds["review"], bounds["block"]) if bounds else (0.5,)
        distance[k] = min(abs(risk - p) for p in points)
    return distance


class _Entries:
    """The queue being built: one entry per queue key (a near-duplicate group, or (group, stratum) for a draw)."""

    def __init__(self) -> None:
        self.entries: dict[Any, dict[str, Any]] = {}  # key -> {"index", "reason", "stratum", "sample_count"}
        self.order: list[Any] = []

    def add(self, key: Any, index: int, reason: str) -> dict[str, Any]:
        self.entries[key] = {"index": index, "reason": reason, "stratum": "", "sample_count": 0}
        self.order.append(key)
        return self.entries[key]

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: Any) -> bool:
        return key in self.entries


def export_queue(
    scored: pd.DataFrame,
    budget: int,
    *,
    random_size: int | None = None,
    seed: int = 0,
    thresholds: dict[str, dict[str, float]] | None = None,
    similarity: float = 0.9,
) -> pd.DataFrame:
    """Choose the rows worth a reviewer's time, at most ``budget`` of them.

    The random sample is reserved first: ``random_size`` draws (default 20% of the budget), spread evenly over the
    ``(policy, pass|block)`` strata, each post equally likely within its stratum, so that rates can be estimated
    however many posts the model sends to review. The rest of the budget goes to the ``review`` groups (largest
    groups, then highest risk, first), then to the most uncertain ``pass``/``block`` groups (model and rules
    disagreeing first, then risk nearest a threshold); a draw that lands in a group already queued is recorded on
    that row (``sample_count``) and its slot goes to the uncertain rows. Rows are listed review, uncertain, random.

    Args:
        scored: from :func:`load_scored`.
        budget: the most rows the queue may have.
        random_size: posts drawn at random (``0``: none, so no rates can be estimated).
        seed: seeds the random draw; written into every row (``sample_seed``).
        thresholds: ``{policy: {"review", "block"}}`` to measure uncertainty (e.g. ``Scorer.policies``).
        similarity: near-duplicate cosine threshold.

    Returns:
        The queue, with :data:`QUEUE_COLUMNS` (reviewer columns empty).
    """
    if budget < 1:
        raise ValueError(f"budget must be at least 1, not {budget}")
    frame = _grouped(scored, similarity, thresholds)
    wanted = round(budget * RANDOM_SHARE) if random_size is None else random_size
    draws = _draw(frame, min(max(wanted, 0), budget), seed)
    queue = _Entries()
    review = frame[frame["decision"] == "review"].sort_values(["group_size", "risk"], ascending=False, kind="stable")
    for index, group in zip(review.index, review["_group"]):
        if group not in queue and len(queue) < budget - len(draws):
            queue.add(group, int(index), "review")
    random_rows = _random_rows(frame, draws, queue)
    candidates = frame[frame["decision"].isin(("pass", "block")) & ~frame["_group"].isin(queue.entries)]
    candidates = candidates.assign(_agree=~candidates["disagreement"].astype(bool))
    candidates = candidates.sort_values(["_agree", "_distance", "group_size"], ascending=[True, True, False])
    uncertain_slots = budget - len(queue) - len(random_rows)
    for index, group in zip(candidates.index, candidates["_group"]):
        if uncertain_slots <= 0:
            break
        if group not in queue:
            queue.add(group, int(index), "uncertain")
            uncertain_slots -= 1
    strata_info = _place_draws(frame, draws, queue)
    return _queue_frame(frame, queue, strata_info, seed)


def _grouped(scored: pd.DataFrame, similarity: float, thresholds: dict[str, dict[str, float]] | None) -> pd.DataFrame:
    """Scored posts with their near-duplicate group, its size and each post's distance to a threshold."""
    frame = scored.reset_index(drop=True).copy()
    frame["_group"] = duplicate_groups(frame["text"].tolist(), similarity, MAX_NEAR_DUPLICATE_TEXTS)
    sizes = frame["_group"].value_counts()
    frame["group_size"] = frame["_group"].map(sizes).astype(int)
    frame["_distance"] = _uncertainty(frame, thresholds)
    return frame


def _random_rows(frame: pd.DataFrame, draws: list[tuple[int, str, int, int]], queue: _Entries) -> set[tuple]:
    """The rows the draws will add: one per (group, stratum), except the first stratum landing on a queued group."""
    random_rows: set[tuple[Any, str]] = set()
    merged: dict[Any, str] = {}
    for index, stratum, _, _ in draws:
        group = frame.at[index, "_group"]
        if group in queue and merged.setdefault(group, stratum) == stratum:
            continue
        random_rows.add((group, stratum))
    return random_rows


def _place_draws(frame: pd.DataFrame, draws: list[tuple[int, str, int, int]], queue: _Entries) -> dict[str, tuple]:
    """Record every draw on the queue (on a queued group's row, or as a row of its own); ``{stratum: (size, n)}``."""
    strata_info: dict[str, tuple[int, int]] = {}
    for index, stratum, size, sampled in draws:
        strata_info[stratum] = (size, sampled)
        group = frame.at[index, "_group"]
        entry = queue.entries.get(group)
        if entry is not None and entry["stratum"] in ("", stratum):
            entry["stratum"] = stratum
            if "random" not in entry["reason"].split("+"):  # several draws on one row: sample_count counts them
                entry["reason"] = f"{entry['reason']}+random"
        else:
            key = (group, stratum)
            entry = queue.entries.get(key) or queue.add(key, index, "random")
            entry["stratum"] = stratum
        entry["sample_count"] += 1
    return strata_info


def _queue_frame(frame: pd.DataFrame, queue: _Entries, strata_info: dict[str, tuple], seed: int) -> pd.DataFrame:
    """The queue's rows in :data:`QUEUE_COLUMNS`, listed review, uncertain, random."""
    rows = []
    rank = {"review": 0, "uncertain": 1}
    ordered = sorted(queue.order, key=lambda k: rank.get(queue.entries[k]["reason"].split("+")[0], 2))
    for number, key in enumerate(ordered, 1):
        entry = queue.entries[key]
        post = frame.loc[entry["index"]]
        size, sampled = strata_info.get(entry["stratum"], (0, 0))
        rows.append(
            {
                "queue_id": f"q{number:05d}",
                "text": post["text"],
                "reason": entry["reason"],
                "policy": post["policy"],
                "decision": post["decision"],
                "model_label": post["model_label"],
                "risk": round(float(post["risk"]), 6),
                "group_size": int(post["group_size"]),
                "evidence": post["evidence"],
                "disagreement": bool(post["disagreement"]),
                "id": post["id"],
                "row": post["row"],
                "model_version": post["model_version"],
                "stratum": entry["stratum"],
                "stratum_size": size,
                "stratum_sampled": sampled,
                "sample_count": entry["sample_count"],
                "sample_weight": round(size / sampled, 6) if sampled else 0.0,
                "sample_seed": seed,
                **dict.fromkeys(REVIEWER_COLUMNS, ""),
            }
        )
    return pd.DataFrame(rows, columns=list(QUEUE_COLUMNS))


def _draw(frame: pd.DataFrame, size: int, seed: int) -> list[tuple[int, str, int, int]]:
    """``size`` posts drawn without replacement, split evenly over the (policy, pass|block) strata.

    Returns:
        ``(row index, stratum, stratum size, posts drawn from the stratum)`` per drawn post.
    """
    rng = np.random.default_rng(seed)
    strata = {
        f"{policy}/{decision}": rows.index.to_numpy()
        for (policy, decision), rows in frame[frame["decision"].isin(("pass", "block"))].groupby(
            ["policy", "decision"], sort=True
        )
    }
    quota = dict.fromkeys(strata, 0)
    left = size
    while left > 0 and any(quota[s] < len(strata[s]) for s in strata):
        for name in strata:
            if left > 0 and quota[name] < len(strata[name]):
                quota[name] += 1
                left -= 1
    draws = []
    for name, rows in strata.items():
        if quota[name]:
            chosen = rng.choice(rows, size=quota[name], replace=False)
            draws += [(int(i), name, len(rows), quota[name]) for i in sorted(chosen)]
    return draws


def write_queue(queue: pd.DataFrame, path: str | Path) -> list[Path]:
    """Write the queue as ``.csv``, or as Label Studio import JSON (``.json``) plus ``<name>.label_config.xml``.

    Returns:
        The files written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write_csv_for_people(queue, path)  # posts are written by the people being moderated
        return [path]
    if suffix != ".json":
        raise DataError(f"{path}: write the queue as .csv or as .json (Label Studio)")
    return write_tasks(queue, path)
