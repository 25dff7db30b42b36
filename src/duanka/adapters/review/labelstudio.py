"""Label Studio, both ways: the labeling config, queue rows as import tasks, and tasks of an export read back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duanka.adapters.review.schema import REVIEWER_COLUMNS
from duanka.labels import LABELS

__all__ = ["LABEL_CONFIG", "MalformedTask", "plain", "task_row", "write_tasks"]

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


def write_tasks(queue: pd.DataFrame, path: Path) -> list[Path]:
    """Write queue rows as Label Studio import tasks (``path``) beside ``<name>.label_config.xml``."""
    tasks = []
    for record in queue.to_dict(orient="records"):
        data = {k: plain(v) for k, v in record.items() if k not in REVIEWER_COLUMNS}
        data["context"] = (
            f"{record['reason']} · policy {record['policy']} · model: {record['decision']} "
            f"({record['model_label']}, risk {record['risk']:.3f}) · {record['group_size']} post(s) like this"
        )
        tasks.append({"data": data})
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    config = path.with_name(path.stem + ".label_config.xml")
    config.write_text(LABEL_CONFIG, encoding="utf-8")
    return [path, config]


def plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class MalformedTask(ValueError):
    """A Label Studio task or record that is not in the shape Label Studio writes."""


def task_row(task: Any, number: int) -> dict[str, Any]:
    """One queue row from a task of Label Studio's JSON export, or a record of its JSON_MIN export.

    A task that is not in the shape Label Studio writes gives a row with ``_problem`` (the cause) and no text.
    """
    where = f"task {task.get('id', number) if isinstance(task, dict) else number}"
    try:
        row = _full_task_row(task) if isinstance(task, dict) and "data" in task else _min_record_row(task)
    except MalformedTask as exc:
        return {"_where": where, "text": None, "_problem": str(exc)}
    row["_where"] = where
    return row


def _expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise MalformedTask(f"{what} must be {names}, not {type(value).__name__}")
    return value


def _full_task_row(task: dict[str, Any]) -> dict[str, Any]:
    row = dict(_expect(task["data"], dict, "`data`"))
    labels, reviewers, dates, notes = [], [], [], []
    for annotation in _expect(task.get("annotations") or [], list, "`annotations`"):
        _expect(annotation, dict, "an annotation")
        if annotation.get("was_cancelled"):
            continue
        for item in _expect(annotation.get("result") or [], list, "an annotation's `result`"):
            value = _expect(_expect(item, dict, "a result item").get("value") or {}, dict, "a result's `value`")
            if item.get("type") == "choices" and value.get("choices"):
                choices = _expect(value["choices"], list, "`choices`")
                labels.append(_expect(choices[0], str, "a choice"))
            elif item.get("type") == "textarea" and value.get("text"):
                notes.append(" ".join(map(str, _expect(value["text"], list, "a textarea's `text`"))))
        reviewers.append(_reviewer(annotation.get("completed_by")))
        dates.append(str(annotation.get("updated_at") or annotation.get("created_at") or "")[:10])
    return _with_review(row, labels, reviewers, dates, notes)


def _min_record_row(record: Any) -> dict[str, Any]:
    """JSON_MIN: data fields at the top, the choice under the control's name."""
    _expect(record, dict, "a task")
    row = {k: v for k, v in record.items() if k not in ("label", "note", "annotator", "annotation_id", "lead_time")}
    label = record.get("label")
    if isinstance(label, dict):
        label = (_expect(label.get("choices") or [""], list, "`label.choices`") or [""])[0]
    labels = [_expect(label, str, "`label`")] if label else []
    notes = [str(record["note"])] if record.get("note") else []
    dates = [str(record.get("updated_at") or record.get("created_at") or "")[:10]]
    return _with_review(row, labels, [_reviewer(record.get("annotator"))], dates, notes)


def _with_review(
    row: dict[str, Any], labels: list[str], reviewers: list[str], dates: list[str], notes: list[str]
) -> dict[str, Any]:
    distinct = sorted(set(labels))
    row["review_label"] = distinct[0] if len(distinct) == 1 else ""
    row["reviewer"] = ";".join(r for r in dict.fromkeys(reviewers) if r)
    row["review_date"] = max((d for d in dates if d), default="")
    row["review_note"] = " / ".join(notes) if len(distinct) <= 1 else f"annotators disagree: {', '.join(distinct)}"
    return row


def _reviewer(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id") or "")
    return "" if value is None else str(value)
