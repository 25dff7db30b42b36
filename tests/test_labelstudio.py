"""Label Studio both ways: predictions and the label config in the export, checked by Label Studio's SDK; JSON,
JSON_MIN and CSV exports (as Label Studio's own converter writes them) read back one row per task with
disagreements listed; the ML backend over HTTP.

``fixtures/labelstudio/export.json`` is a Label Studio JSON export of six tasks made by ``duanka review export``
(one annotator; two who agree; two who disagree; a cancelled annotation beside a kept one; none; a note and a
post with quotes, a comma and a newline). ``export_min.json`` and ``export.csv`` were written from it by
``label_studio_sdk.converter.Converter`` 2.1.2 (``scripts/label_studio_sdk_check.py convert``); the SDK test
below writes them again and compares, when an interpreter with the SDK is at hand.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from duanka.adapters.review.feedback import import_feedback, read_reviews
from duanka.adapters.review.labelstudio import FROM_NAME, LABEL_CONFIG, TO_NAME
from duanka.cli import main
from duanka.errors import DataError
from duanka.labels import LABELS
from duanka.training.dataset import validate_posts

FIXTURES = Path(__file__).parent / "fixtures" / "labelstudio"
SDK_CHECK = Path(__file__).parents[1] / "scripts" / "label_studio_sdk_check.py"
EXPORTS = ["export.json", "export_min.json", "export.csv"]


def _sdk_python() -> str | None:
    """An interpreter with label-studio-sdk: this one, or ``$DUANKA_LABEL_STUDIO_PYTHON``."""
    if importlib.util.find_spec("label_studio_sdk") is not None:
        return sys.executable
    return os.environ.get("DUANKA_LABEL_STUDIO_PYTHON")


def _config_names(config: str) -> tuple[dict[str, tuple[str, list[str]]], dict[str, str]]:
    """(controls ``{name: (tag, toName list)}``, objects ``{name: data key}``) of a label config."""
    root = ET.fromstring(config)
    controls = {e.get("name"): (e.tag, e.get("toName", "").split(",")) for e in root.iter() if e.get("toName")}
    objects = {e.get("name"): e.get("value", "")[1:] for e in root.iter() if e.get("value", "").startswith("$")}
    return controls, objects


@pytest.fixture()
def exported(small_artifact, small_holdout, tmp_path) -> Path:
    queue = tmp_path / "queue.json"
    argv = ["review", "export", "--input", str(small_holdout), "--output", str(queue), "--budget", "30"]
    assert main([*argv, "--model", str(small_artifact), "--seed", "4"]) == 0
    return queue


def test_exported_tasks_carry_the_model_prediction_in_the_label_configs_names(exported) -> None:
    config = exported.with_name("queue.label_config.xml").read_text(encoding="utf-8")
    assert config == LABEL_CONFIG
    controls, objects = _config_names(config)
    tag, to_names = controls[FROM_NAME]
    assert tag == "Choices" and to_names == [TO_NAME] and objects[TO_NAME] == "text"
    choices = {e.get("value") for e in ET.fromstring(config).iter("Choice")}
    assert choices == set(LABELS)
    tasks = json.loads(exported.read_text(encoding="utf-8"))
    assert tasks
    for task in tasks:
        assert all(task["data"].get(key) is not None for key in objects.values())  # each object has its data
        assert task["data"]["post_id"] == task["data"]["id"]
        (predicted,) = task["predictions"]
        (result,) = predicted["result"]
        assert (result["from_name"], result["to_name"], result["type"]) == (FROM_NAME, TO_NAME, "choices")
        assert result["value"]["choices"] == [task["data"]["model_label"]]
        assert predicted["score"] == pytest.approx(task["data"]["risk"]) and 0.0 <= predicted["score"] <= 1.0
        assert predicted["model_version"] == task["data"]["model_version"]


def test_exported_tasks_and_label_config_pass_label_studio_sdk_validation(exported, tmp_path) -> None:
    python = _sdk_python()
    if python is None:
        pytest.skip("label-studio-sdk not installed here and $DUANKA_LABEL_STUDIO_PYTHON unset")
    config = exported.with_name("queue.label_config.xml")
    run = [python, str(SDK_CHECK), "validate", str(exported), str(config)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["tasks"] == summary["predictions"] > 0 and summary["problems"] == []
    # the SDK does catch a prediction that the label config cannot show
    tasks = json.loads(exported.read_text(encoding="utf-8"))
    tasks[0]["predictions"][0]["result"][0]["value"]["choices"] = ["spam"]
    tasks[0]["predictions"][0]["score"] = 1.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([*run[:3], str(bad), str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and len(json.loads(done.stdout)["problems"]) == 2


def test_the_json_min_and_csv_fixtures_are_what_label_studios_converter_writes(tmp_path) -> None:
    python = _sdk_python()
    if python is None:
        pytest.skip("label-studio-sdk not installed here and $DUANKA_LABEL_STUDIO_PYTHON unset")
    run = [python, str(SDK_CHECK), "convert", str(FIXTURES / "export.json"), str(FIXTURES / "label_config.xml")]
    done = subprocess.run([*run, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("export_min.json", "export.csv"):
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name
    assert (FIXTURES / "label_config.xml").read_text(encoding="utf-8") == LABEL_CONFIG


@pytest.mark.parametrize("name", EXPORTS)
def test_each_export_format_reads_one_row_per_task_with_disagreements_listed(name: str) -> None:
    reviews = read_reviews(FIXTURES / name).set_index("queue_id")
    assert len(reviews) == 6  # six tasks; JSON_MIN and CSV hold eight annotation records
    assert reviews["review_label"].to_dict() == {
        "q00001": "card_trading",
        "q00002": "normal",
        "q00003": "",  # two annotators disagree
        "q00004": "card_trading",  # the cancelled annotation is ignored
        "q00005": "",  # never annotated
        "q00006": "recruitment_lure",
    }
    assert reviews.loc["q00003", "review_note"] == (
        "annotators disagree: recruitment_lure (alice@example.org), card_trading (bob@example.org)"
    )
    assert reviews.loc["q00002", "reviewer"] == "alice@example.org;bob@example.org"
    assert reviews.loc["q00002", "review_date"] == "2026-12-02"
    assert reviews.loc["q00006", "review_note"] == "刷单招募, 典型"
    assert reviews.loc["q00006", "text"] == '=1+1 招聘"刷单"兼职,\n日结'  # exactly as posted
    assert reviews["id"].astype(str).tolist() == ["p1", "p2", "p3", "00123", "p5", "p6"]  # the posts' own ids


@pytest.mark.parametrize("name", EXPORTS)
def test_each_export_format_imports_the_same_feedback_and_skips_the_disagreement(name, tmp_path, capsys) -> None:
    feedback = tmp_path / "feedback.csv"
    assert main(["review", "import", str(FIXTURES / name), "--output", str(feedback)]) == 0
    out = capsys.readouterr().out
    assert "read 6 queue rows, 4 labeled: 4 added" in out and "1 with disagreeing annotators" in out
    assert "skipped:" in out and "q00003" in out and "annotators disagree" in out
    rows = pd.read_csv(feedback, dtype=str, keep_default_na=False).set_index("queue_id")
    assert rows["label"].to_dict() == {
        "q00001": "card_trading",
        "q00002": "normal",
        "q00004": "card_trading",
        "q00006": "recruitment_lure",
    }
    assert rows["post_id"].to_dict() == {"q00001": "p1", "q00002": "p2", "q00004": "00123", "q00006": "p6"}
    assert rows.loc["q00004", "reviewer"] == "5" and rows.loc["q00004", "review_date"] == "2026-12-03"
    assert set(rows["provenance"]) == {"queue"} and set(rows["model_version"]) == {"test-1"}
    assert validate_posts(feedback).ok
    # the three formats hold the same reviews: importing another one afterwards adds nothing
    for other in EXPORTS:
        again = import_feedback(FIXTURES / other, feedback)
        assert again.added == 0 and again.duplicates == 4 and not again.conflicts, other


@pytest.mark.parametrize("name", EXPORTS)
def test_review_report_counts_tasks_not_annotation_records(name, capsys) -> None:
    assert main(["review", "report", str(FIXTURES / name), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["policies"]["default"]["rows"] == 6 and payload["policies"]["default"]["labeled"] == 4
    miss = payload["policies"]["default"]["rates"][0]
    # random rows q00004-6: q00005 unlabeled, q00004 (card_trading) and q00006 (lure) passed but risky
    assert (miss["rate"], miss["labeled"], miss["errors"]) == ("miss", 2, 2)


def test_an_annotation_choosing_two_labels_is_refused(tmp_path) -> None:
    tasks = json.loads((FIXTURES / "export.json").read_text(encoding="utf-8"))
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["card_trading", "normal"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=r"task 201: annotation 11 chose 2 labels \(card_trading, normal\)"):
        read_reviews(path)
    records = json.loads((FIXTURES / "export_min.json").read_text(encoding="utf-8"))
    records[0]["label"] = {"choices": ["card_trading", "normal"]}
    path = tmp_path / "export_min.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=r"task 201 \(record 1\): the annotation chose 2 labels"):
        import_feedback(path, tmp_path / "feedback.csv")
    assert not (tmp_path / "feedback.csv").exists()


def test_a_file_mixing_json_tasks_and_json_min_records_is_refused(tmp_path) -> None:
    tasks = json.loads((FIXTURES / "export.json").read_text(encoding="utf-8"))
    records = json.loads((FIXTURES / "export_min.json").read_text(encoding="utf-8"))
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(tasks[:2] + records[:1], ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=r"task 3: .*mixes them"):
        read_reviews(path)


def test_a_queue_csv_is_still_read_as_a_queue(tmp_path) -> None:
    # a hand-filled queue CSV has none of Label Studio's record columns: one row per row, `id` the post's
    shutil.copy(FIXTURES / "export.csv", tmp_path / "ls.csv")
    frame = pd.read_csv(tmp_path / "ls.csv", dtype=str, keep_default_na=False)
    queue = frame.drop(columns=["annotator", "annotation_id", "lead_time", "created_at", "updated_at"])
    queue = queue.rename(columns={"label": "review_label"})
    queue.to_csv(tmp_path / "queue.csv", index=False)
    reviews = read_reviews(tmp_path / "queue.csv")
    assert len(reviews) == 8 and reviews["_where"].iloc[0] == "row 1 (line 2)"


# ---------------------------------------------------------------------------------------------- ML backend
RENAMED_CONFIG = """<View>
  <Text name="post" value="$content"/>
  <Choices name="verdict" toName="post">
    <Choice value="card_trading"/><Choice value="recruitment_lure"/><Choice value="normal"/><Choice value="spam"/>
  </Choices>
</View>"""


def _webhook(action: str, task: dict, annotation: dict | None = None) -> dict:
    payload = {"action": action, "project": {"id": 4, "label_config": LABEL_CONFIG}, "task": task}
    if annotation is not None:
        payload["annotation"] = annotation
    return payload


@pytest.fixture()
def backend(small_artifact, tmp_path):
    from starlette.testclient import TestClient

    from duanka import Scorer
    from duanka.adapters.review.backend import LabelStudioBackend, create_app

    scorer = Scorer.load(small_artifact, strict=True)
    made = LabelStudioBackend(scorer, tmp_path / "data" / "feedback.csv")
    with TestClient(create_app(made)) as client:
        yield client, made


def test_backend_predicts_what_the_export_writes(backend, exported) -> None:
    client, made = backend
    assert client.get("/health").json() == {
        "status": "UP",
        "model_class": "duanka",
        "model_version": made.scorer.model_version,
    }
    assert client.get("/").status_code == 200 and client.get("/metrics").json() == {}
    setup = client.post("/setup", json={"project": "4.1765000000", "schema": LABEL_CONFIG})
    assert setup.status_code == 200 and setup.json() == {"model_version": made.scorer.model_version}
    tasks = json.loads(exported.read_text(encoding="utf-8"))
    for task in tasks:
        task.update(id=7, annotations=[], predictions=task.pop("predictions"))  # as Label Studio sends them
    answer = client.post("/predict", json={"tasks": tasks, "label_config": LABEL_CONFIG, "project": "4.1765000000"})
    assert answer.status_code == 200
    assert answer.json()["results"] == [task["predictions"][0] for task in tasks]
    # another label config: its names, and the text from the field its object shows
    renamed = [{"id": 1, "data": {"content": tasks[0]["data"]["text"]}}, {"id": 2, "data": {"text": "no content"}}]
    results = client.post("/predict", json={"tasks": renamed, "label_config": RENAMED_CONFIG}).json()["results"]
    (result,) = results[0]["result"]
    assert (result["from_name"], result["to_name"]) == ("verdict", "post")
    assert result["value"] == tasks[0]["predictions"][0]["result"][0]["value"]
    assert results[1]["result"] == []  # no $content: no prediction, the other tasks still get theirs


def test_backend_refuses_what_it_cannot_answer_with_json_errors(backend) -> None:
    client, _ = backend
    no_labels = '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>'
    refused = client.post("/setup", json={"project": "4.1", "schema": no_labels})
    assert refused.status_code == 400 and "no <Choices> offering card_trading" in refused.json()["message"]
    assert client.post("/setup", json={"schema": "<View"}).json()["error"] == "label_config"
    assert client.post("/predict", json={"tasks": "x"}).status_code == 422
    bad = client.post("/predict", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "malformed_json"
    assert client.get("/nowhere").json()["error"] == "not_found"
    assert client.get("/predict").status_code == 405


def test_backend_fit_records_annotations_in_the_feedback_file(backend, tmp_path) -> None:
    client, made = backend
    export = json.loads((FIXTURES / "export.json").read_text(encoding="utf-8"))
    task = {k: v for k, v in export[0].items() if k not in ("annotations", "predictions")}
    annotation = export[0]["annotations"][0]
    created = client.post("/webhook", json=_webhook("ANNOTATION_CREATED", task, annotation))
    assert created.status_code == 201 and created.json()["status"] == "ok"
    assert created.json()["result"] == {
        "recorded": True,
        "added": 1,
        "duplicates": 0,
        "conflicts": [],
        "feedback_rows": 1,
    }
    rows = pd.read_csv(made.feedback, dtype=str, keep_default_na=False)
    assert rows.loc[0, "label"] == "card_trading" and rows.loc[0, "queue_id"] == "q00001"
    assert rows.loc[0, "reviewer"] == "alice@example.org" and rows.loc[0, "provenance"] == "queue"
    assert rows.loc[0, "reviewed_file"] == "labelstudio-project4-task201-annotation11.json"
    assert rows.loc[0, "post_id"] == "p1" and rows.loc[0, "model_version"] == "test-1"
    # the reviewer changes the label: the feedback file is append-only, the conflict is answered
    changed = json.loads(json.dumps(annotation))
    changed["result"][0]["value"]["choices"] = ["normal"]
    updated = client.post("/webhook", json=_webhook("ANNOTATION_UPDATED", task, changed)).json()["result"]
    assert updated["added"] == 0 and "labeled normal, the feedback file says card_trading" in updated["conflicts"][0]
    training = client.post("/webhook", json=_webhook("START_TRAINING", task)).json()["result"]
    assert training["feedback_rows"] == 1 and "--data" in training["next"]
    deleted = client.post("/webhook", json=_webhook("ANNOTATION_DELETED", task, annotation)).json()["result"]
    assert deleted["recorded"] is False and len(pd.read_csv(made.feedback)) == 1
    unknown = client.post("/webhook", json=_webhook("PROJECT_UPDATED", task))
    assert unknown.status_code == 200 and unknown.json() == {"status": "Unknown event"}
    # a task duanka review export never wrote is refused (422, the cause named) unless the backend accepts them
    stranger = {"id": 999, "data": {"text": "出租微信号，一天五十"}}
    refused = client.post("/webhook", json=_webhook("ANNOTATION_CREATED", stranger, annotation))
    assert refused.status_code == 422 and "never exported" in refused.json()["message"]
    made.accept_unexported = True
    accepted = client.post("/webhook", json=_webhook("ANNOTATION_CREATED", stranger, annotation)).json()
    assert accepted["result"]["added"] == 1
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 422
    journal = [json.loads(line) for line in made.journal.read_text(encoding="utf-8").splitlines()]
    assert [line["action"] for line in journal] == [
        "ANNOTATION_CREATED",
        "ANNOTATION_UPDATED",
        "START_TRAINING",
        "ANNOTATION_DELETED",
        "ANNOTATION_CREATED",
        "ANNOTATION_CREATED",
        "ANNOTATION_CREATED",
    ]
    assert (journal[0]["project"], journal[0]["task"], journal[0]["annotation"]) == (4, 201, 11)
    assert "never exported" in journal[4]["error"]


def test_backend_basic_auth(small_artifact, tmp_path) -> None:
    from starlette.testclient import TestClient

    from duanka import Scorer
    from duanka.adapters.review.backend import LabelStudioBackend, create_app

    made = LabelStudioBackend(Scorer.load(small_artifact), tmp_path / "feedback.csv")
    with TestClient(create_app(made, auth=("ls", "s3cret"))) as client:
        assert client.get("/health").status_code == 401
        assert client.post("/predict", json={"tasks": []}, auth=("ls", "wrong")).status_code == 401
        assert client.get("/health", auth=("ls", "s3cret")).json()["status"] == "UP"
        assert client.post("/predict", json={"tasks": []}, auth=("ls", "s3cret")).json() == {"results": []}


@pytest.mark.slow
def test_duanka_review_backend_answers_on_loopback(small_artifact, tmp_path) -> None:
    import http.client
    import signal
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    feedback = tmp_path / "feedback.csv"
    command = [sys.executable, "-c", "import sys; from duanka.cli import main; sys.exit(main())", "review",
               "backend", "--model", str(small_artifact), "--port", str(port), "--feedback", str(feedback),
               "--strict"]  # fmt: skip
    log = (tmp_path / "backend.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def send(method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
            conn.request(method, path, body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    try:
        deadline, health = time.monotonic() + 60, None
        while health is None and time.monotonic() < deadline and server.poll() is None:
            try:
                health = send("GET", "/health")
            except OSError:
                time.sleep(0.2)
        assert health is not None and health[1]["status"] == "UP", (tmp_path / "backend.log").read_text()[-2000:]
        export = json.loads((FIXTURES / "export.json").read_text(encoding="utf-8"))
        tasks = [{"id": t["id"], "data": t["data"]} for t in export]
        status, answer = send("POST", "/predict", {"tasks": tasks, "label_config": LABEL_CONFIG})
        assert status == 200 and len(answer["results"]) == len(tasks)
        assert all(r["result"][0]["value"]["choices"][0] in LABELS for r in answer["results"])
        status, answer = send("POST", "/webhook", _webhook("ANNOTATION_CREATED", tasks[0], export[0]["annotations"][0]))
        assert status == 201 and answer["result"]["added"] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "backend.log").read_text()[-2000:]
    assert pd.read_csv(feedback)["queue_id"].tolist() == ["q00001"]
