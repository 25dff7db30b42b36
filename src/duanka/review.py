"""The review loop: pick a labeling queue from scored posts, read reviewers' labels back as training data, estimate
live error rates from the queue's random sample.

* :func:`export_queue` spends a budget of queue rows: every ``review`` decision first, then the most uncertain
  ``pass``/``block`` posts (risk nearest a threshold, or model and rules disagreeing), and a random sample of
  ``pass`` and ``block`` posts per policy, drawn with a recorded seed and weights. Near-duplicates are collapsed
  to one row per group with the group's size.
* :func:`write_queue` writes CSV, or Label Studio import JSON beside a labeling config for the three labels.
* :func:`import_feedback` reads the labeled CSV or a Label Studio export, validates it like ``duanka data check``
  and appends it to a feedback file with provenance, never twice.
* :func:`estimate_rates` says what the random sample implies about live traffic, with Wilson intervals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duanka.batch import score_records
from duanka.data import near_duplicates, validate_posts
from duanka.errors import DataError
from duanka.labels import LABELS, RISKY_LABELS
from duanka.normalize import normalize
from duanka.policy import DEFAULT_POLICY
from duanka.scorer import Scorer
from duanka.tables import iter_records

__all__ = [
    "LABEL_CONFIG",
    "QUEUE_COLUMNS",
    "ImportSummary",
    "RateEstimate",
    "estimate_rates",
    "export_queue",
    "import_feedback",
    "load_scored",
    "read_reviews",
    "wilson_interval",
    "write_queue",
]

# What a queue row holds; the reviewer fills the last four.
QUEUE_COLUMNS = (
    "queue_id",
    "text",
    "reason",
    "policy",
    "decision",
    "model_label",
    "risk",
    "group_size",
    "evidence",
    "disagreement",
    "id",
    "row",
    "model_version",
    "stratum",
    "stratum_size",
    "stratum_sampled",
    "sample_count",
    "sample_weight",
    "sample_seed",
    "review_label",
    "reviewer",
    "review_date",
    "review_note",
)
REVIEWER_COLUMNS = ("review_label", "reviewer", "review_date", "review_note")
FEEDBACK_COLUMNS = (
    "id",
    "text",
    "label",
    "group",
    "source",
    "review_date",
    "reviewer",
    "model_version",
    "policy",
    "model_decision",
    "model_label",
    "risk",
    "queue_id",
    "reviewed_file",
)
RANDOM_SHARE = 0.2  # of the budget, by default, for the random sample
MAX_NEAR_DUPLICATE_TEXTS = 20_000  # above this many distinct texts only exact (normalized) duplicates are collapsed

# Label Studio labeling config: the post, why it is in the queue, its evidence, and one of the three labels.
LABEL_CONFIG = """<View>
  <Header value="Post"/>
  <Text name="text" value="$text"/>
  <Header value="Why it is in the queue" size="6"/>
  <Text name="context" value="$context"/>
  <Text name="evidence" value="$evidence"/>
  <Choices name="label" toName="text" choice="single-radio" showInline="true" required="true">
"""
LABEL_CONFIG += "".join(f'    <Choice value="{label}"/>\n' for label in LABELS)
LABEL_CONFIG += """  </Choices>
  <TextArea name="note" toName="text" placeholder="optional note for the data card" maxSubmissions="1"/>
</View>
"""


# ------------------------------------------------------------------------------------------------ scored input
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
        lines = [
            line for line in score_records(scorer, path, text_column=text_column, id_column=id_column, policy=policy)
        ]
        lines = [line for line in lines if "error" not in line]
        for line in lines:
            line["text"] = texts[line["row"]]
    if not lines:
        raise DataError(f"{path}: no scored rows")
    frame = pd.DataFrame(
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
    return frame


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


# ------------------------------------------------------------------------------------------------ export
def _duplicate_groups(texts: Sequence[str], similarity: float) -> np.ndarray:
    """A group number per text: equal after normalization, or near-duplicates (char 3-gram cosine)."""
    keys = [normalize(t) for t in texts]
    first: dict[str, int] = {}
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, key in enumerate(keys):
        if key in first:
            parent[find(i)] = find(first[key])
        else:
            first[key] = i
    unique = list(first.values())
    if 1 < len(unique) <= MAX_NEAR_DUPLICATE_TEXTS:
        distinct = [texts[i] for i in unique]
        for a, b, _ in near_duplicates(distinct, distinct, similarity):
            if a < b:
                parent[find(unique[b])] = find(unique[a])
    return np.array([find(i) for i in range(len(texts))])


def _uncertainty(frame: pd.DataFrame, thresholds: dict[str, dict[str, float]] | None) -> np.ndarray:
    """Distance of each post's risk to the nearest threshold of its policy (0.5 when the thresholds are unknown)."""
    distance = np.empty(len(frame))
    for k, (policy, risk) in enumerate(zip(frame["policy"], frame["risk"])):
        bounds = (thresholds or {}).get(policy)
        points = (bounds["review"], bounds["block"]) if bounds else (0.5,)
        distance[k] = min(abs(risk - p) for p in points)
    return distance


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

    Order of claim on the budget: every ``review`` group (largest groups, then highest risk, first); then
    ``random_size`` draws (default 20% of the budget) spread evenly over the ``(policy, pass|block)`` strata,
    each post equally likely within its stratum; the rest goes to the most uncertain ``pass``/``block`` groups
    (model and rules disagreeing first, then risk nearest a threshold). Rows are listed review, uncertain,
    random. A random draw that lands in a group already queued is recorded on that row (``sample_count``).

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
    frame = scored.reset_index(drop=True).copy()
    frame["_group"] = _duplicate_groups(frame["text"].tolist(), similarity)
    sizes = frame["_group"].value_counts()
    frame["group_size"] = frame["_group"].map(sizes).astype(int)
    frame["_distance"] = _uncertainty(frame, thresholds)
    entries: dict[Any, dict[str, Any]] = {}  # queue key -> {"index", "reason", sample fields}
    order: list[Any] = []

    def add(key: Any, index: int, reason: str) -> dict[str, Any]:
        entries[key] = {"index": index, "reason": reason, "stratum": "", "sample_count": 0}
        order.append(key)
        return entries[key]

    review = frame[frame["decision"] == "review"].sort_values(["group_size", "risk"], ascending=False, kind="stable")
    for index, group in zip(review.index, review["_group"]):
        if group not in entries and len(entries) < budget:
            add(group, int(index), "review")

    remaining = budget - len(entries)
    wanted = round(budget * RANDOM_SHARE) if random_size is None else random_size
    draws = _draw(frame, min(max(wanted, 0), remaining), seed)

    candidates = frame[frame["decision"].isin(("pass", "block")) & ~frame["_group"].isin(entries)]
    candidates = candidates.assign(_agree=~candidates["disagreement"].astype(bool))
    candidates = candidates.sort_values(["_agree", "_distance", "group_size"], ascending=[True, True, False])
    # Rows the draws can add: one per (group, stratum), except the first stratum landing on a queued review group.
    random_rows: set[tuple[Any, str]] = set()
    merged: dict[Any, str] = {}
    for index, stratum, _, _ in draws:
        group = frame.at[index, "_group"]
        if group in entries and merged.setdefault(group, stratum) == stratum:
            continue
        random_rows.add((group, stratum))
    uncertain_slots = remaining - len(random_rows)
    for index, group in zip(candidates.index, candidates["_group"]):
        if uncertain_slots <= 0:
            break
        if group not in entries:
            add(group, int(index), "uncertain")
            uncertain_slots -= 1

    strata_info: dict[str, tuple[int, int]] = {}
    for index, stratum, size, sampled in draws:
        strata_info[stratum] = (size, sampled)
        group = frame.at[index, "_group"]
        entry = entries.get(group)
        if entry is not None and entry["stratum"] in ("", stratum):
            entry["stratum"] = stratum
            entry["reason"] = entry["reason"] if entry["reason"] == "random" else f"{entry['reason']}+random"
        else:
            key = (group, stratum)
            entry = entries.get(key) or add(key, index, "random")
            entry["stratum"] = stratum
        entry["sample_count"] += 1

    rows = []
    rank = {"review": 0, "uncertain": 1}
    for number, key in enumerate(sorted(order, key=lambda k: rank.get(entries[k]["reason"].split("+")[0], 2)), 1):
        entry = entries[key]
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
        queue.to_csv(path, index=False)
        return [path]
    if suffix != ".json":
        raise DataError(f"{path}: write the queue as .csv or as .json (Label Studio)")
    tasks = []
    for record in queue.to_dict(orient="records"):
        data = {k: _plain(v) for k, v in record.items() if k not in REVIEWER_COLUMNS}
        data["context"] = (
            f"{record['reason']} · policy {record['policy']} · model: {record['decision']} "
            f"({record['model_label']}, risk {record['risk']:.3f}) · {record['group_size']} post(s) like this"
        )
        tasks.append({"data": data})
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    config = path.with_name(path.stem + ".label_config.xml")
    config.write_text(LABEL_CONFIG, encoding="utf-8")
    return [path, config]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# ------------------------------------------------------------------------------------------------ import
def read_reviews(path: str | Path) -> pd.DataFrame:
    """A labeled queue: the queue's columns with ``review_label``, ``reviewer``, ``review_date``, ``review_note``.

    Reads the queue CSV filled in by hand, or a Label Studio export (``JSON`` with ``annotations``, or
    ``JSON_MIN``). Rows without a label have ``review_label`` empty; rows whose annotators disagree have it
    empty and ``review_note`` saying so. ``_where`` names each row (``row 3``, ``task 17``).

    Raises:
        DataError: unreadable file, unknown format, or no ``text`` column.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            tasks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a Label Studio JSON export ({exc})") from None
        if not isinstance(tasks, list):
            raise DataError(f"{path}: a Label Studio export is a JSON list of tasks")
        rows = [_task_row(task, k) for k, task in enumerate(tasks, 1)]
        frame = pd.DataFrame(rows)
    else:
        records = list(iter_records(path))
        bad = [r.where for r in records if r.error]
        if bad:
            raise DataError(f"{path}: unreadable rows: {', '.join(bad[:8])}")
        frame = pd.DataFrame([r.values for r in records])
        frame["_where"] = [r.where for r in records]
    if frame.empty or "text" not in frame.columns:
        raise DataError(f"{path}: no `text` column: not a review queue")
    for column in QUEUE_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    for column in REVIEWER_COLUMNS:
        frame[column] = frame[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
        frame[column] = frame[column].astype(str).str.strip()
    return frame


def _task_row(task: Any, number: int) -> dict[str, Any]:
    if not isinstance(task, dict):
        return {"_where": f"task {number}", "text": None}
    where = f"task {task.get('id', number)}"
    if "data" in task:  # full JSON export
        row = dict(task["data"])
        labels, reviewers, dates, notes = [], [], [], []
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            for item in annotation.get("result") or []:
                value = item.get("value") or {}
                if item.get("type") == "choices" and value.get("choices"):
                    labels.append(value["choices"][0])
                elif item.get("type") == "textarea" and value.get("text"):
                    notes.append(" ".join(value["text"]))
            reviewers.append(_reviewer(annotation.get("completed_by")))
            dates.append(str(annotation.get("updated_at") or annotation.get("created_at") or "")[:10])
    else:  # JSON_MIN: data fields at the top, the choice under the control's name
        row = {k: v for k, v in task.items() if k not in ("label", "note", "annotator", "annotation_id", "lead_time")}
        label = task.get("label")
        labels = [label.get("choices", [""])[0] if isinstance(label, dict) else label] if label else []
        reviewers = [_reviewer(task.get("annotator"))]
        dates = [str(task.get("updated_at") or task.get("created_at") or "")[:10]]
        notes = [task["note"]] if task.get("note") else []
    distinct = sorted(set(labels))
    row["review_label"] = distinct[0] if len(distinct) == 1 else ""
    row["reviewer"] = ";".join(r for r in dict.fromkeys(reviewers) if r)
    row["review_date"] = max((d for d in dates if d), default="")
    row["review_note"] = " / ".join(notes) if len(distinct) <= 1 else f"annotators disagree: {', '.join(distinct)}"
    row["_where"] = where
    return row


def _reviewer(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id") or "")
    return "" if value is None else str(value)


@dataclass
class ImportSummary:
    """What one ``duanka review import`` did."""

    read: int = 0
    labeled: int = 0
    added: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    output_rows: int = 0

    def format(self) -> str:
        lines = [
            f"read {self.read} queue rows, {self.labeled} labeled: {self.added} added, "
            f"{self.duplicates} already in the feedback file, {len(self.conflicts)} conflicting, "
            f"{len(self.disagreements)} with disagreeing annotators; feedback file now {self.output_rows} rows"
        ]
        lines += [f"  conflict: {c}" for c in self.conflicts[:20]]
        lines += [f"  skipped: {d}" for d in self.disagreements[:20]]
        return "\n".join(lines)


def _feedback_id(key: str) -> str:
    return "fb-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def import_feedback(path: str | Path, output: str | Path, *, today: str | None = None) -> ImportSummary:
    """Append the labeled rows of a reviewed queue to a feedback file (CSV), with provenance, without duplicates.

    Each labeled row becomes ``id``/``group`` ``fb-<digest of the normalized text>`` (a group of its own, so it
    never collides with a group of ``data/posts.csv``), ``source=feedback``, ``review_date`` (the annotation's,
    else ``today``), ``reviewer``, the ``model_version`` that scored it, its policy, the model's decision, label
    and risk, the ``queue_id`` and the reviewed file's name. A post already in the feedback file (same
    normalized text) is skipped; with a different label it is reported as a conflict and the earlier label kept.
    The result is validated with :func:`duanka.data.validate_posts` (what ``duanka data check`` runs) before
    anything is written, and written atomically.

    Raises:
        DataError: a label outside the three, empty text, or a result that ``duanka data check`` rejects.
    """
    path, output = Path(path), Path(output)
    today = today or dt.date.today().isoformat()
    reviews = read_reviews(path)
    summary = ImportSummary(read=len(reviews))
    existing = validate_posts(output) if output.is_file() else None
    if existing is not None and not existing.ok:
        raise DataError(f"{output}: the feedback file is invalid already:\n" + "\n".join(existing.errors))
    known: dict[str, str] = {}
    if existing is not None:
        for text, label in zip(existing.frame["text"], existing.frame["label"]):
            known[normalize(text)] = label
    problems, new_rows = [], []
    for record in reviews.to_dict(orient="records"):
        where = f"{path}: {record['_where']}" + (f" ({record['queue_id']})" if record.get("queue_id") else "")
        if record["review_note"].startswith("annotators disagree"):
            summary.disagreements.append(f"{where}: {record['review_note']}")
            continue
        label = record["review_label"]
        if not label:
            continue
        summary.labeled += 1
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: empty text")
            continue
        if label not in LABELS:
            problems.append(f"{where}: unknown label {label!r} (labels are {', '.join(LABELS)})")
            continue
        key = normalize(text)
        if key in known:
            if known[key] == label:
                summary.duplicates += 1
            else:
                summary.conflicts.append(f"{where}: labeled {label}, the feedback file says {known[key]}; kept that")
            continue
        known[key] = label
        new_rows.append(
            {
                "id": _feedback_id(key),
                "text": text,
                "label": label,
                "group": _feedback_id(key),
                "source": "feedback",
                "review_date": record["review_date"] or today,
                "reviewer": record["reviewer"],
                "model_version": _plain(record.get("model_version")) or "",
                "policy": _plain(record.get("policy")) or "",
                "model_decision": _plain(record.get("decision")) or "",
                "model_label": _plain(record.get("model_label")) or "",
                "risk": _plain(record.get("risk")),
                "queue_id": _plain(record.get("queue_id")) or "",
                "reviewed_file": path.name,
            }
        )
    if problems:
        raise DataError("\n".join(problems))
    summary.added = len(new_rows)
    before = pd.read_csv(output, dtype=str, keep_default_na=False) if existing is not None else None
    added = pd.DataFrame(new_rows, columns=list(FEEDBACK_COLUMNS))
    merged = added if before is None else pd.concat([before, added.astype(str)], ignore_index=True)
    summary.output_rows = len(merged)
    if not new_rows and before is not None:
        return summary
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{output.name}-", suffix=".csv", dir=output.parent)
    os.close(handle)
    try:
        merged.to_csv(staging, index=False)
        report = validate_posts(staging)
        if not report.ok:
            raise DataError(
                f"{output}: the import of {path} would make it invalid:\n"
                + "\n".join(e.replace(staging, str(output)) for e in report.errors)
            )
        os.replace(staging, output)
    finally:
        Path(staging).unlink(missing_ok=True)
    return summary


# ------------------------------------------------------------------------------------------------ report
def wilson_interval(successes: float, trials: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% with the default ``z``); ``(0, 1)`` for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


@dataclass
class RateEstimate:
    """One rate, estimated from one stratum of the random sample."""

    policy: str
    rate: str  # "false_block" (blocked posts that are normal) or "miss" (passed posts that are risky)
    stratum: str
    stratum_size: int
    drawn: int
    labeled: int
    errors: int
    estimate: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        what = (
            "false-block rate (blocked posts that are normal)"
            if self.rate == "false_block"
            else ("miss rate (passed posts that are risky)")
        )
        if self.estimate is None:
            return f"  {what}: no labeled random rows in {self.stratum}"
        posts = f"≈ {self.estimate * self.stratum_size:,.0f} ({self.low * self.stratum_size:,.0f}–" + (
            f"{self.high * self.stratum_size:,.0f}) of {self.stratum_size:,} posts"
        )
        unlabeled = f"; {self.drawn - self.labeled} drawn but unlabeled" if self.labeled < self.drawn else ""
        return (
            f"  {what}: {self.errors}/{self.labeled} = {self.estimate:.1%} "
            f"(95% Wilson {self.low:.1%}–{self.high:.1%}) {posts}{unlabeled}"
        )


def estimate_rates(reviews: pd.DataFrame) -> dict[str, list[RateEstimate]]:
    """False-block and miss rates per policy from the random part of a labeled queue.

    Within a stratum (one policy's ``block`` or ``pass`` posts) every post was equally likely to be drawn,
    so the share of drawn posts labeled wrong estimates the stratum's rate; a row stands for
    ``sample_count`` drawn posts (near-duplicates drawn together). Rows chosen for review or uncertainty
    are not a sample of anything and are left out.

    Returns:
        ``{policy: [false_block estimate, miss estimate]}`` for every policy with a random stratum.
    """
    random_rows = reviews[reviews["stratum"].astype(str).str.contains("/")]
    estimates: dict[str, list[RateEstimate]] = {}
    for stratum, rows in random_rows.groupby(random_rows["stratum"].astype(str), sort=True):
        policy, decision = stratum.rsplit("/", 1)
        if decision not in ("block", "pass"):
            continue
        counts = pd.to_numeric(rows["sample_count"], errors="coerce").fillna(1).astype(int)
        labeled = rows["review_label"].isin(LABELS)
        wrong = rows["review_label"] == "normal" if decision == "block" else rows["review_label"].isin(RISKY_LABELS)
        n, k = int(counts[labeled].sum()), int(counts[wrong].sum())
        low, high = wilson_interval(k, n) if n else (None, None)
        estimates.setdefault(policy, []).append(
            RateEstimate(
                policy=policy,
                rate="false_block" if decision == "block" else "miss",
                stratum=stratum,
                stratum_size=int(pd.to_numeric(rows["stratum_size"], errors="coerce").max()),
                drawn=int(pd.to_numeric(rows["stratum_sampled"], errors="coerce").max()),
                labeled=n,
                errors=k,
                estimate=k / n if n else None,
                low=low,
                high=high,
            )
        )
    return {policy: sorted(found, key=lambda e: e.rate) for policy, found in estimates.items()}


def review_summary(reviews: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per policy: queue rows, labeled rows, and how the labeled ``review`` rows turned out (a census, not a sample)."""
    summary: dict[str, dict[str, int]] = {}
    for policy, rows in reviews.groupby(reviews["policy"].astype(str).replace("", DEFAULT_POLICY), sort=True):
        labeled = rows[rows["review_label"].isin(LABELS)]
        in_review = labeled[labeled["reason"].astype(str).str.startswith("review")]
        summary[policy] = {
            "rows": len(rows),
            "labeled": len(labeled),
            "review_rows_labeled": len(in_review),
            "review_rows_risky": int(in_review["review_label"].isin(RISKY_LABELS).sum()),
        }
    return summary
