"""Label Studio, both ways: the labeling config, queue rows as import tasks with the model's prediction, and the
tasks of an export read back, one row per task, from Label Studio's JSON, JSON_MIN and CSV exports.

Label Studio writes three shapes (its converter, ``label_studio_sdk.converter``):

* ``JSON``: one task per element, ``data`` as imported, ``annotations`` (each with its ``result``).
* ``JSON_MIN``: one record per annotation that was not cancelled (one record with no label for a task without
  annotations), the data fields at the top, the task's Label Studio id written over ``data.id``, the choice
  under the control's name (``label``), ``annotator``, ``annotation_id``, ``created_at``, ``updated_at``.
* ``CSV``: the JSON_MIN records as rows (a data field named like a control is renamed ``_data_<name>``), except
  that the data's own ``id``, when it has one, is written over the task id.

The records of one task are grouped back into one row; annotators who disagree leave the row unlabeled with a
note naming them. Since JSON_MIN loses the post's own ``id``, export writes it again as ``post_id``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duanka.adapters.review.schema import REVIEWER_COLUMNS
from duanka.labels import LABELS

__all__ = [
    "FROM_NAME",
    "LABEL_CONFIG",
    "MIN_COLUMNS",
    "TO_NAME",
    "MalformedTask",
    "is_label_studio_csv",
    "plain",
    "prediction",
    "record_rows",
    "task_row",
    "tasks",
    "write_tasks",
]

FROM_NAME = "label"  # the Choices control: a prediction's and an annotation's `from_name`
TO_NAME = "text"  # the Text object it labels: `to_name`, shown from the task's `data.text`
NOTE_NAME = "note"  # the TextArea for a reviewer's note

# Label Studio labeling config: the post, why it is in the queue, its evidence, and one of the three labels.
LABEL_CONFIG = f"""<View>
  <Header value="Post"/>
  <Text name="{TO_NAME}" value="${TO_NAME}"/>
  <Header value="Why it is in the queue" size="6"/>
  <Text name="context" value="$context"/>
  <Text name="evidence" value="$evidence"/>
  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single-radio" showInline="true" required="true">
"""
LABEL_CONFIG += "".join(f'    <Choice value="{label}"/>\n' for label in LABELS)
LABEL_CONFIG += f"""  </Choices>
  <TextArea name="{NOTE_NAME}" toName="{TO_NAME}" placeholder="optional note for the data card" maxSubmissions="1"/>
</View>
"""

# What Label Studio's JSON_MIN and CSV exports add to a task's data fields, one record per annotation.
MIN_COLUMNS = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement", "history")


def prediction(
    label: str, risk: float, model_version: str, *, from_name: str = FROM_NAME, to_name: str = TO_NAME
) -> dict[str, Any]:
    """The model's answer as a Label Studio prediction: a ``choices`` result, ``score`` = risk, ``model_version``."""
    result = {"id": "duanka", "from_name": from_name, "to_name": to_name, "type": "choices"}
    result["value"] = {"choices": [label]}
    return {"model_version": str(model_version), "score": round(float(risk), 6), "result": [result]}


def tasks(queue: pd.DataFrame, *, predictions: bool = True) -> list[dict[str, Any]]:
    """Queue rows as Label Studio import tasks: the row in ``data`` (``post_id`` keeps the post's id, which
    Label Studio's JSON_MIN and CSV exports overwrite) and the model's label as a prediction."""
    found = []
    for record in queue.to_dict(orient="records"):
        data = {k: plain(v) for k, v in record.items() if k not in REVIEWER_COLUMNS}
        data["post_id"] = data.get("id")
        data["context"] = (
            f"{record['reason']} · policy {record['policy']} · model: {record['decision']} "
            f"({record['model_label']}, risk {record['risk']:.3f}) · {record['group_size']} post(s) like this"
        )
        task: dict[str, Any] = {"data": data}
        if predictions and data.get("model_label") in LABELS:
            task["predictions"] = [prediction(data["model_label"], data["risk"], data.get("model_version") or "")]
        found.append(task)
    return found


def write_tasks(queue: pd.DataFrame, path: Path, *, predictions: bool = True) -> list[Path]:
    """Write queue rows as Label Studio import tasks (``path``) beside ``<name>.label_config.xml``."""
    path.write_text(json.dumps(tasks(queue, predictions=predictions), ensure_ascii=False, indent=1), "utf-8")
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


def is_label_studio_csv(columns: list[str]) -> bool:
    """A CSV with the columns Label Studio's CSV export always writes (a duanka queue CSV has none of them)."""
    return {"annotator", "annotation_id", "lead_time"} <= set(columns)


def task_row(task: Any, number: int) -> dict[str, Any]:
    """One queue row from a task of Label Studio's JSON export (or a task as duanka exported it).

    A task that is not in the shape Label Studio writes gives a row with ``_problem`` (the cause) and no text.
    """
    where = f"task {task.get('id', number) if isinstance(task, dict) else number}"
    try:
        _expect(task, dict, "a task")
        if "data" not in task:
            raise MalformedTask("a task of the JSON export must have `data` (a JSON_MIN export has no `data`)")
        row = _full_task_row(task)
    except MalformedTask as exc:
        return {"_where": where, "text": None, "_problem": str(exc)}
    row["_where"] = where
    return row


def record_rows(records: list[Any], kind: str) -> list[dict[str, Any]]:
    """One queue row per task from the records of a JSON_MIN export (``kind`` ``record``) or of a CSV export
    (``kind`` ``row``, each a dict of the row's cells).

    The records of one task are those with the same data fields: every field but the annotation's own
    (:data:`MIN_COLUMNS`, the controls' names). In JSON_MIN that includes ``id``, the task's id written over
    ``data.id``; in CSV the data's ``id`` is written over the task id, so a task is told from another by its
    data alone (two tasks with identical data are one post of one queue, and are grouped). A record or task
    that is not in the shape Label Studio writes gives a row with ``_problem`` and no text.
    """
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    bad = []
    own = {*MIN_COLUMNS, FROM_NAME, NOTE_NAME}
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or record.get("id") in (None, ""):
            what = (
                f"a {kind} must be dict, not {type(record).__name__}"
                if not isinstance(record, dict)
                else "no `id` (Label Studio writes one in every record)"
            )
            bad.append({"_where": f"{kind} {number}", "text": None, "_problem": what})
            continue
        key = json.dumps({k: v for k, v in record.items() if k not in own}, sort_keys=True, default=str)
        groups.setdefault(key, []).append((number, record))
    rows = []
    for members in groups.values():
        numbers = ", ".join(str(n) for n, _ in members)
        task_id = members[0][1]["id"]
        where = f"{'task' if kind == 'record' else 'id'} {task_id} ({kind}{'s' if len(members) > 1 else ''} {numbers})"
        try:
            row = _grouped_row([record for _, record in members], kind == "row")
        except MalformedTask as exc:
            row = {"text": None, "_problem": str(exc)}
        row["_where"], row["_task"] = where, task_id if kind == "record" else ""
        rows.append(row)
    return bad + rows


def _expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise MalformedTask(f"{what} must be {names}, not {type(value).__name__}")
    return value


def _one_label(choices: list[Any], where: str) -> str:
    labels = list(dict.fromkeys(_expect(choice, str, "a choice") for choice in choices))
    if len(labels) > 1:
        raise MalformedTask(f"{where} chose {len(labels)} labels ({', '.join(labels)}); the label config allows one")
    return labels[0]


def _full_task_row(task: dict[str, Any]) -> dict[str, Any]:
    row = dict(_expect(task["data"], dict, "`data`"))
    votes = []
    for annotation in _expect(task.get("annotations") or [], list, "`annotations`"):
        _expect(annotation, dict, "an annotation")
        if annotation.get("was_cancelled") or annotation.get("skipped"):
            continue
        labels, notes = [], []
        for item in _expect(annotation.get("result") or [], list, "an annotation's `result`"):
            value = _expect(_expect(item, dict, "a result item").get("value") or {}, dict, "a result's `value`")
            if item.get("type") == "choices" and value.get("choices"):
                labels += _expect(value["choices"], list, "`choices`")
            elif item.get("type") == "textarea" and value.get("text"):
                notes.append(" ".join(map(str, _expect(value["text"], list, "a textarea's `text`"))))
        label = _one_label(labels, f"annotation {annotation.get('id', '')}".strip()) if labels else ""
        date = str(annotation.get("updated_at") or annotation.get("created_at") or "")[:10]
        votes.append((label, _reviewer(annotation.get("completed_by")), date, " / ".join(notes)))
    row.pop("post_id", None)  # the JSON export keeps the post's own id in `data.id`
    row["_task"] = task.get("id", "")
    return _with_review(row, votes)


def _cell(value: Any, as_csv: bool) -> Any:
    """A CSV cell holding what JSON_MIN holds as a list or object is the JSON of it."""
    if as_csv and isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return None if as_csv and value == "" else value


def _label_of(value: Any) -> str:
    """The one label of a JSON_MIN/CSV record: a string, ``{"choices": [...]}``, or a list of those."""
    if value in (None, ""):
        return ""
    items = value if isinstance(value, list) else [value]
    labels = []
    for item in items:
        if isinstance(item, dict):
            labels += _expect(item.get("choices") or [], list, f"`{FROM_NAME}.choices`")
        else:
            labels.append(_expect(item, str, f"`{FROM_NAME}`"))
    return _one_label(labels, "the annotation") if labels else ""


def _grouped_row(records: list[dict[str, Any]], as_csv: bool) -> dict[str, Any]:
    """One row from the JSON_MIN/CSV records of one task; the data fields must agree between its records."""
    skip = {*MIN_COLUMNS, FROM_NAME, NOTE_NAME, "id"}
    row = {k: _cell(v, as_csv) for k, v in records[0].items() if k not in skip}
    if as_csv:  # Label Studio renames a data field that collides with a control's name
        row.update({k[len("_data_") :]: v for k, v in list(row.items()) if k.startswith("_data_")})
    votes = []
    for record in records:
        label = _label_of(_cell(record.get(FROM_NAME), as_csv))
        note = _cell(record.get(NOTE_NAME), as_csv)
        note = " / ".join(map(str, note)) if isinstance(note, list) else str(note or "")
        date = str(record.get("updated_at") or record.get("created_at") or "")[:10]
        if label or note or record.get("annotation_id") not in (None, ""):
            votes.append((label, _reviewer(_cell(record.get("annotator"), as_csv)), date, note))
    row["id"] = row.pop("post_id", None) or ""  # the task id overwrote the post's id; export kept it as post_id
    return _with_review(row, votes)


def _with_review(row: dict[str, Any], votes: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """Fill the reviewer columns from ``(label, reviewer, date, note)`` per annotation; disagreement: no label."""
    votes = sorted(votes, key=lambda vote: (vote[2], vote[1]))  # the same order whichever export listed them
    distinct = sorted({label for label, *_ in votes if label})
    row["review_label"] = distinct[0] if len(distinct) == 1 else ""
    row["reviewer"] = ";".join(r for r in dict.fromkeys(reviewer for _, reviewer, _, _ in votes) if r)
    row["review_date"] = max((date for _, _, date, _ in votes if date), default="")
    if len(distinct) > 1:
        who = ", ".join(f"{label} ({reviewer or 'unknown'})" for label, reviewer, _, _ in votes if label)
        row["review_note"] = f"annotators disagree: {who}"
    else:
        row["review_note"] = " / ".join(note for *_, note in votes if note)
    return row


def _reviewer(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id") or "")
    return "" if value is None else str(value)
