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

__all__ = ["LABEL_CONFIG", "plain", "task_row", "write_tasks"]

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


def task_row(task: Any, number: int) -> dict[str, Any]:
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
