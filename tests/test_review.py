"""The review loop: queue export within budget, Label Studio round trip, idempotent import, rate estimates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duanka.adapters.review.estimates import estimate_rates, wilson_interval
from duanka.adapters.review.feedback import import_feedback, read_reviews
from duanka.adapters.review.labelstudio import LABEL_CONFIG
from duanka.adapters.review.queue import export_queue, load_scored, write_queue
from duanka.cli import main
from duanka.errors import DataError
from duanka.training.dataset import validate_posts

POOL = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可天自之年过发后作里用"


def synthetic_scored(reviews: int = 12, passes: int = 60, blocks: int = 30, seed: int = 1) -> pd.DataFrame:
    """Scored posts with unrelated random texts, so no two are near-duplicates."""
    rng = np.random.default_rng(seed)
    decisions = ["review"] * reviews + ["pass"] * passes + ["block"] * blocks
    risk = {"review": (0.5, 0.8), "pass": (0.0, 0.5), "block": (0.8, 1.0)}
    rows = []
    for k, decision in enumerate(decisions):
        text = f"{k:04d}" + "".join(rng.choice(list(POOL), 24))
        rows.append(
            {
                "row": k + 1,
                "id": f"s{k}",
                "text": text,
                "policy": "sms" if k % 2 else "default",
                "decision": decision,
                "model_label": "normal" if decision == "pass" else "card_trading",
                "risk": float(rng.uniform(*risk[decision])),
                "model_version": "test-1",
                "evidence": "",
                "disagreement": False,
            }
        )
    return pd.DataFrame(rows)


def test_export_takes_every_review_row_first_and_stays_within_budget() -> None:
    scored = synthetic_scored()
    queue = export_queue(scored, 30, random_size=8, seed=5)
    assert len(queue) <= 30
    review_ids = set(scored.loc[scored["decision"] == "review", "id"])
    assert set(queue.loc[queue["reason"].str.startswith("review"), "id"]) == review_ids
    assert list(queue["reason"].str.startswith("review")[: len(review_ids)]) == [True] * len(review_ids)
    random_rows = queue[queue["stratum"] != ""]
    assert random_rows["sample_count"].sum() == 8
    assert set(random_rows["stratum"]) == {"default/pass", "default/block", "sms/pass", "sms/block"}
    for _, row in random_rows.iterrows():
        size = int(((scored["policy"] + "/" + scored["decision"]) == row["stratum"]).sum())
        assert row["stratum_size"] == size and row["sample_weight"] == pytest.approx(size / row["stratum_sampled"])
    assert set(queue["sample_seed"]) == {5}
    # the same seed draws the same sample; another seed another one
    assert export_queue(scored, 30, random_size=8, seed=5)["id"].tolist() == queue["id"].tolist()
    assert export_queue(scored, 30, random_size=8, seed=6)["id"].tolist() != queue["id"].tolist()


def test_the_random_sample_keeps_its_share_when_review_rows_exceed_the_budget() -> None:
    # On real traffic the model may send more posts to review than a round's budget; the random sample (20%)
    # must still be drawn, or no rate can be estimated from the round.
    scored = synthetic_scored(reviews=12)
    queue = export_queue(scored, 5, seed=0)
    assert len(queue) == 5 and queue["reason"].tolist() == ["review"] * 4 + ["random"]
    reviews = queue[queue["reason"] == "review"]
    assert reviews["risk"].tolist() == sorted(reviews["risk"], reverse=True)
    only_review = export_queue(scored, 5, seed=0, random_size=0)
    assert set(only_review["reason"]) == {"review"} and len(only_review) == 5


def test_uncertain_posts_are_the_ones_nearest_a_threshold() -> None:
    scored = synthetic_scored(reviews=0, passes=40, blocks=0)
    thresholds = {"default": {"review": 0.45, "block": 0.9}, "sms": {"review": 0.45, "block": 0.9}}
    queue = export_queue(scored, 5, random_size=0, thresholds=thresholds)
    nearest = scored.assign(d=(scored["risk"] - 0.45).abs()).nsmallest(5, "d")["id"]
    assert set(queue["id"]) == set(nearest) and set(queue["reason"]) == {"uncertain"}


def test_near_duplicates_collapse_to_one_row_with_the_group_size() -> None:
    scored = synthetic_scored(reviews=2, passes=4, blocks=0)
    base = "长期高价收各类手机卡，实名的也要，微信联系，当天结算，量大从优，欢迎老板合作"
    copies = pd.DataFrame(
        [
            {**scored.iloc[0].to_dict(), "row": 100 + k, "id": f"dup{k}", "text": base + suffix}
            for k, suffix in enumerate(["", "！", "！！"])
        ]
    )
    queue = export_queue(pd.concat([scored, copies], ignore_index=True), 20, random_size=0)
    matching = queue[queue["text"].str.startswith(base)]
    assert len(matching) == 1 and matching["group_size"].iloc[0] == 3


def label_studio_export(tasks: list[dict], labels: dict[str, str]) -> list[dict]:
    """What Label Studio's JSON export gives back for imported tasks, each annotated once."""
    exported = []
    for number, task in enumerate(tasks, 1):
        label = labels[str(task["data"]["id"])]
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        annotation = {
            "id": number,
            "completed_by": {"id": 3, "email": "reviewer@example.org"},
            "result": result,
            "was_cancelled": False,
            "created_at": "2026-12-01T09:00:00.000000Z",
            "updated_at": "2026-12-01T09:05:00.000000Z",
        }
        exported.append({"id": 100 + number, "data": task["data"], "annotations": [annotation], "predictions": []})
    return exported


@pytest.fixture()
def exported_queue(small_artifact, small_holdout, tmp_path) -> Path:
    queue = tmp_path / "queue.json"
    argv = ["review", "export", "--input", str(small_holdout), "--output", str(queue), "--budget", "40"]
    assert main([*argv, "--model", str(small_artifact), "--policy", "sms", "--seed", "3"]) == 0
    return queue


def test_label_studio_export_round_trips_through_import(exported_queue, small_holdout, tmp_path, capsys) -> None:
    tasks = json.loads(exported_queue.read_text(encoding="utf-8"))
    assert 0 < len(tasks) <= 40 and all(t["data"]["policy"] == "sms" and t["data"]["text"] for t in tasks)
    assert exported_queue.with_name("queue.label_config.xml").read_text(encoding="utf-8") == LABEL_CONFIG
    truth = pd.read_csv(small_holdout, dtype=str, keep_default_na=False)
    labels = dict(zip(truth["id"], truth["label"]))
    reviewed = tmp_path / "export.json"
    reviewed.write_text(json.dumps(label_studio_export(tasks, labels), ensure_ascii=False), encoding="utf-8")

    feedback = tmp_path / "feedback.csv"
    assert main(["review", "import", str(reviewed), "--output", str(feedback)]) == 0
    assert f"{len(tasks)} added" in capsys.readouterr().out
    report = validate_posts(feedback)
    assert report.ok and len(report.frame) == len(tasks)
    rows = report.frame.set_index("text")
    for task in tasks:
        row = rows.loc[task["data"]["text"]]
        assert row["label"] == labels[str(task["data"]["id"])] and row["source"] == "feedback"
        assert row["reviewer"] == "reviewer@example.org" and row["review_date"] == "2026-12-01"
        assert row["model_version"] == task["data"]["model_version"] and row["policy"] == "sms"

    before = feedback.read_bytes()
    assert main(["review", "import", str(reviewed), "--output", str(feedback)]) == 0
    assert "0 added" in capsys.readouterr().out and feedback.read_bytes() == before


def test_reviewed_csv_imports_and_conflicts_keep_the_earlier_label(small_artifact, small_holdout, tmp_path) -> None:
    from duanka import Scorer

    scored = load_scored(small_holdout, scorer=Scorer.load(small_artifact, strict=True))
    queue = export_queue(scored, 10, seed=1)
    path = tmp_path / "queue.csv"
    write_queue(queue, path)
    filled = pd.read_csv(path, dtype=str, keep_default_na=False)
    filled.loc[:5, "review_label"] = "normal"  # rows 0-5 labeled, the rest left for next week
    filled.loc[:5, "reviewer"] = "r7"
    filled.to_csv(path, index=False)
    feedback = tmp_path / "feedback.csv"
    summary = import_feedback(path, feedback, today="2026-12-02")
    assert (summary.read, summary.labeled, summary.added) == (len(queue), 6, 6)
    assert set(pd.read_csv(feedback)["review_date"]) == {"2026-12-02"}

    filled.loc[0, "review_label"] = "card_trading"
    filled.to_csv(path, index=False)
    again = import_feedback(path, feedback)
    assert again.added == 0 and again.duplicates == 5 and len(again.conflicts) == 1
    assert pd.read_csv(feedback).loc[0, "label"] == "normal"

    filled.loc[6, "review_label"] = "spam"
    filled.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"queue\.csv: row 7 \(line 8\) \(q00007\): unknown label 'spam'"):
        import_feedback(path, feedback)


def test_feedback_trains_beside_the_posts(exported_queue, small_posts, small_holdout, fast_config, tmp_path) -> None:
    from duanka.training.workflow import train_model

    tasks = json.loads(exported_queue.read_text(encoding="utf-8"))
    truth = pd.read_csv(small_holdout, dtype=str, keep_default_na=False)
    reviewed = tmp_path / "export.json"
    reviewed.write_text(json.dumps(label_studio_export(tasks, dict(zip(truth["id"], truth["label"])))), "utf-8")
    feedback = tmp_path / "feedback.csv"
    import_feedback(reviewed, feedback)
    run = train_model([small_posts, feedback], None, fast_config)
    assert len(run.result.train_frame) == len(pd.read_csv(small_posts)) + len(tasks)
    assert run.data_frame["_file"].value_counts()[str(feedback)] == len(tasks)


def test_wilson_interval() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)


def test_report_estimates_rates_from_the_random_rows_only(tmp_path, capsys) -> None:
    scored = synthetic_scored(reviews=4, passes=60, blocks=30)
    queue = export_queue(scored, 30, random_size=20, seed=2)

    # reviewers: every blocked sample is normal for policy default, every passed sample is risky for sms
    def label(row: pd.Series) -> str:
        if row["decision"] == "block":
            return "normal" if row["policy"] == "default" else "card_trading"
        if row["decision"] == "pass":
            return "card_trading" if row["policy"] == "sms" else "normal"
        return "recruitment_lure"

    queue["review_label"] = queue.apply(label, axis=1)
    path = tmp_path / "labeled.csv"
    write_queue(queue, path)
    estimates = estimate_rates(read_reviews(path))
    by_key = {(e.policy, e.rate): e for found in estimates.values() for e in found}
    assert by_key[("default", "false_block")].estimate == 1.0 and by_key[("sms", "false_block")].estimate == 0.0
    assert by_key[("sms", "miss")].estimate == 1.0 and by_key[("default", "miss")].estimate == 0.0
    drawn = queue[queue["stratum"] == "sms/pass"]["sample_count"].sum()
    assert by_key[("sms", "miss")].labeled == drawn
    assert (by_key[("sms", "miss")].low, by_key[("sms", "miss")].high) == wilson_interval(drawn, drawn)
    assert main(["review", "report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "policy sms:" in out and "miss rate (passed posts that are risky)" in out and "95% Wilson" in out


HOSTILE_CELLS = [
    "=1+1 收卡加微信",
    "+86 出卡",
    "-2 收号",
    "@SUM(A1) 接码",
    "\t=cmd 出租微信",
    '=HYPERLINK("http://x","点我") 收卡',
]


def test_the_queue_csv_is_safe_to_open_and_imports_the_posts_exactly(tmp_path: Path) -> None:
    # Posts are written by the people being moderated; reviewers open queue.csv in a spreadsheet (OWASP CSV
    # injection): every cell a spreadsheet would evaluate gets a leading quote, and import takes exactly that back.
    scored = synthetic_scored(reviews=len(HOSTILE_CELLS), passes=0, blocks=0)
    scored["text"] = HOSTILE_CELLS
    scored["id"] = ["=id1", "+id2", "-id3", "@id4", "id5", "id6"]
    queue = export_queue(scored, 10, random_size=0)
    path = tmp_path / "queue.csv"
    write_queue(queue, path)
    with path.open(encoding="utf-8", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert sum(cell.startswith("'") for cell in cells) == len(HOSTILE_CELLS) + 4  # the texts and four ids
    # Label Studio's JSON keeps the exact text
    write_queue(queue, tmp_path / "queue.json")
    tasks = json.loads((tmp_path / "queue.json").read_text(encoding="utf-8"))
    assert sorted(task["data"]["text"] for task in tasks) == sorted(HOSTILE_CELLS)
    # a reviewer fills the labels in the spreadsheet's CSV; the feedback file holds the posts as written
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    for row in rows:
        row["review_label"] = "card_trading"
    with (tmp_path / "labelled.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_feedback(tmp_path / "labelled.csv", tmp_path / "feedback.csv", today="2026-12-06")
    feedback = pd.read_csv(tmp_path / "feedback.csv", dtype=str, keep_default_na=False)
    assert sorted(feedback["text"]) == sorted(HOSTILE_CELLS)


GOOD_DATA = {"text": "收卡加微信", "queue_id": "q00001", "id": "p1"}
MALFORMED = [
    [1, 2, 3],
    [{"data": "收卡"}],
    [{"data": GOOD_DATA, "annotations": "card_trading"}],
    [{"data": GOOD_DATA, "annotations": [1]}],
    [{"data": GOOD_DATA, "annotations": [{"result": "x"}]}],
    [{"data": GOOD_DATA, "annotations": [{"result": [1]}]}],
    [{"data": GOOD_DATA, "annotations": [{"result": [{"type": "choices", "value": "card_trading"}]}]}],
    [{"data": GOOD_DATA, "annotations": [{"result": [{"type": "choices", "value": {"choices": "card_trading"}}]}]}],
    [{"data": GOOD_DATA, "annotations": [{"result": [{"type": "choices", "value": {"choices": [1]}}]}]}],
    [{**GOOD_DATA, "label": 5}],
    [{**GOOD_DATA, "label": {"choices": "card_trading"}}],
]


@pytest.mark.parametrize("export", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_label_studio_exports_are_refused_naming_the_task(tmp_path: Path, export, capsys) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=r"(task|record) \S+( \(record \d+\))?: \S.* must be ") as refused:
        import_feedback(path, tmp_path / "feedback.csv")
    assert "nothing was imported" in str(refused.value) and not (tmp_path / "feedback.csv").exists()
    assert main(["review", "import", str(path), "--output", str(tmp_path / "feedback.csv")]) == 2
    err = capsys.readouterr().err
    assert "duanka: error:" in err and "Traceback" not in err


def _ls_task(task_id: int, text: str, label: str, **data: str) -> dict:
    result = [{"type": "choices", "from_name": "label", "to_name": "text", "value": {"choices": [label]}}]
    return {"id": task_id, "data": {"text": text, **data}, "annotations": [{"result": result, "completed_by": 1}]}


def test_a_task_imported_again_with_another_text_is_a_conflict(tmp_path: Path) -> None:
    feedback = tmp_path / "feedback.csv"
    first = tmp_path / "first.json"
    first.write_text(json.dumps([_ls_task(7, "收卡，加微信", "card_trading", queue_id="q00007", id="p7")]), "utf-8")
    import_feedback(first, feedback, today="2026-12-06")
    # the same task and post, its text one comma apart, the opposite label
    again = tmp_path / "again.json"
    again.write_text(json.dumps([_ls_task(7, "收卡加微信", "normal", queue_id="q00007", id="p7")]), "utf-8")
    summary = import_feedback(again, feedback, today="2026-12-06")
    assert summary.added == 0 and len(summary.conflicts) == 1 and "queue id q00007" in summary.conflicts[0]
    rows = pd.read_csv(feedback, dtype=str, keep_default_na=False)
    assert len(rows) == 1 and rows.loc[0, "label"] == "card_trading" and rows.loc[0, "post_id"] == "p7"


def test_tasks_never_exported_are_refused_unless_accepted(tmp_path: Path, capsys) -> None:
    path = tmp_path / "made_up.json"
    path.write_text(json.dumps([_ls_task(1, "出租微信一天五十", "recruitment_lure")]), "utf-8")
    feedback = tmp_path / "feedback.csv"
    with pytest.raises(DataError, match=r"never exported .* --accept-unexported"):
        import_feedback(path, feedback)
    assert not feedback.exists()
    assert main(["review", "import", str(path), "--output", str(feedback)]) == 2
    assert "never exported" in capsys.readouterr().err
    assert main(["review", "import", str(path), "--output", str(feedback), "--accept-unexported"]) == 0
    rows = pd.read_csv(feedback, dtype=str, keep_default_na=False)
    assert rows["provenance"].tolist() == ["unexported"] and rows["queue_id"].tolist() == [""]
