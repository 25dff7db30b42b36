"""Execute the notebooks in notebooks/ end to end on small fixtures, and check they are committed clean.

Each notebook runs in a fresh python3 kernel whose working directory is a temporary directory, with
``DUANKA_NB_DATA``/``DUANKA_NB_HOLDOUT``/``DUANKA_NB_MODEL_DIR`` pointed at the shared fixtures in tests/fixtures,
``MLFLOW_TRACKING_URI`` at a SQLite file in the same temporary directory and ``DUANKA_NB_FAST=1`` (one
``C``, three folds). After the notebook's own cells, a probe cell prints its key variables as JSON, so
the assertions do not depend on how pandas renders a table.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from duanka.labels import LABELS
from duanka.scoring.rules import RuleSet
from duanka.training.augment import detect_evasion

pytestmark = pytest.mark.slow

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = (
    "01_explore_data.ipynb",
    "02_train_and_compare.ipynb",
    "03_error_analysis.ipynb",
    "04_review_loop.ipynb",
    "05_monitor.ipynb",
    "06_thresholds_and_calibration.ipynb",
)
CELL_TIMEOUT = 300


def write_fixtures(directory: Path, posts: Path) -> dict[str, Path]:
    """The shared small corpus, plus a copy of its training file with a ``genre`` column."""
    genre_copy = directory / "posts_genre.csv"
    frame = pd.read_csv(posts, dtype=str, keep_default_na=False)
    frame["genre"] = [("chat", "board", "notice")[k % 3] for k in range(len(frame))]
    frame.to_csv(genre_copy, index=False)
    return {"posts": posts, "posts_genre": genre_copy}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, small_posts: Path, small_holdout: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("notebooks")
    paths = {**write_fixtures(root, small_posts), "holdout": small_holdout}
    cwd = root / "cwd"
    cwd.mkdir()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DUANKA_NB_DATA": str(paths["posts"]),
        "DUANKA_NB_HOLDOUT": str(paths["holdout"]),
        "DUANKA_NB_MODEL_DIR": str(root / "no-model-here"),
        "DUANKA_NB_FAST": "1",
    }
    return {"root": root, "cwd": cwd, "env": env, **paths}


def execute(name: str, workspace: dict[str, Any], probe: str, **env: str) -> tuple[Any, dict[str, Any]]:
    """Run notebook ``name`` with a probe cell appended; return the executed notebook and the probe's JSON."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import json as _json\nprint(_json.dumps(" + probe + ", default=str))"))
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(workspace["cwd"])}}
    )
    client.execute(env={**workspace["env"], **env})  # raises CellExecutionError with the traceback
    stdout = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    return nb, json.loads(stdout.strip().splitlines()[-1])


def images(nb: Any) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def read_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for _, c in code), f"{name}: clear outputs"
    assert not any("execution" in c.metadata for c in nb.cells), f"{name}: clear execution timings"
    assert "parameters" in code[0][1].metadata.get("tags", []), f"{name}: first code cell must be tagged parameters"
    assert all(nb.cells[i - 1].cell_type == "markdown" for i, _ in code), f"{name}: a markdown cell before each step"


@pytest.mark.parametrize("with_genre", [False, True], ids=["no-genre", "genre"])
def test_explore_data(workspace: dict[str, Any], with_genre: bool) -> None:
    data = workspace["posts_genre" if with_genre else "posts"]
    nb, probe = execute(
        "01_explore_data.ipynb",
        workspace,
        '{"rows": len(posts), "labels": sorted(posts["label"].unique()), "has_genre": genre_table is not None,'
        ' "term_labels": sorted(terms["label"].unique()), "hard_negatives": len(hard_negatives),'
        ' "obfuscated": int(posts["obfuscated"].sum())}',
        DUANKA_NB_DATA=str(data),
    )
    assert probe["rows"] == read_rows(data)
    assert probe["labels"] == probe["term_labels"] == sorted(LABELS)
    assert probe["has_genre"] is with_genre
    frame = pd.read_csv(data)
    rules = RuleSet.load()
    normal = frame.loc[frame["label"] == "normal", "text"]
    assert probe["hard_negatives"] == sum(bool(rules.match_text(t)) for t in normal) > 0
    assert probe["obfuscated"] == sum(bool(detect_evasion(t)) for t in frame["text"]) > 0
    assert images(nb) >= 2 + with_genre  # labels, lengths (+ genres)


def test_train_and_compare(workspace: dict[str, Any]) -> None:
    nb, probe = execute(
        "02_train_and_compare.ipynb",
        workspace,
        '{"columns": list(comparison.columns), "index": list(comparison.index),'
        ' "macro_f1": comparison.loc["holdout_macro_f1", ["champion", "experiment"]].tolist(),'
        ' "experiment_run": experiment_run.info.run_id, "tracked_run": tracked.run_id,'
        ' "champion_run": champion_run.info.run_id, "promoted": tracked.promoted,'
        ' "experiment_version": tracked.registered_version,'
        ' "champion_version": champion(MODEL_NAME).version,'
        ' "char_ngrams": experiment_run.data.params["model.char_ngram_range"], "tracking": TRACKING_URI}',
    )
    assert probe["tracking"] == workspace["env"]["MLFLOW_TRACKING_URI"]
    assert (workspace["root"] / "mlflow.db").is_file()
    assert {"champion", "experiment", "delta"} <= set(probe["columns"])
    assert {"holdout_macro_f1", "holdout_normal_fpr", *(f"holdout_{label}_f1" for label in LABELS)} <= set(
        probe["index"]
    )
    assert all(isinstance(v, float) and not math.isnan(v) and 0.0 <= v <= 1.0 for v in probe["macro_f1"])
    assert probe["experiment_run"] == probe["tracked_run"] != probe["champion_run"]
    assert probe["char_ngrams"] == "(2, 5)"
    assert probe["promoted"] is False and probe["champion_version"] != probe["experiment_version"]
    assert images(nb) >= 1  # the comparison plot survives train_tracked's switch to the Agg backend


def test_error_analysis(workspace: dict[str, Any]) -> None:
    _, probe = execute(
        "03_error_analysis.ipynb",
        workspace,
        '{"rows": len(scored), "errors": len(errors), "disagreements": len(disagreements),'
        ' "degraded": scorer.degraded, "trained": "trained" in globals(), "leaked": len(leaked),'
        ' "columns": list(scored.columns)}',
    )
    assert probe["trained"] is True  # DUANKA_NB_MODEL_DIR points nowhere: the notebook trains a model
    assert probe["degraded"] is False
    assert probe["rows"] == read_rows(workspace["holdout"])
    for count in ("errors", "disagreements", "leaked"):
        assert 0 <= probe[count] <= probe["rows"]
    assert {"predicted", "risk", "decision", "rules", "model_terms", "rules_label"} <= set(probe["columns"])


def test_review_loop(workspace: dict[str, Any]) -> None:
    _, probe = execute(
        "04_review_loop.ipynb",
        workspace,
        '{"traffic": len(traffic), "evaluation": len(evaluation), "queue": len(queue), "budget": BUDGET,'
        ' "review_scored": int((scored["decision"] == "review").sum()),'
        ' "review_queued": int(queue["reason"].str.startswith("review").sum()),'
        ' "tasks": len(tasks), "added": summary.added, "added_again": again.added, "feedback": len(feedback),'
        ' "sources": sorted(feedback["source"].unique()), "datasets": datasets, "leaked": len(leaked),'
        ' "macro_f1": comparison.loc["holdout_macro_f1", ["before", "after"]].tolist(),'
        ' "runs": [before.run_id, after.run_id], "after_rows": len(after.result.train_frame),'
        ' "before_rows": len(before.result.train_frame)}',
    )
    assert probe["traffic"] + probe["evaluation"] == read_rows(workspace["holdout"])
    assert 0 < probe["queue"] <= probe["budget"] == 30
    assert (probe["review_queued"] > 0) == (probe["review_scored"] > 0)
    assert probe["tasks"] == probe["queue"] == probe["added"] == probe["feedback"]
    assert probe["added_again"] == 0 and probe["sources"] == ["feedback"]
    posts, holdout = Path(workspace["env"]["DUANKA_NB_DATA"]).name, "evaluation.csv"
    assert probe["datasets"] == {"before": sorted([posts, holdout]), "after": sorted([posts, holdout, "feedback.csv"])}
    assert probe["after_rows"] == probe["before_rows"] + probe["added"]
    assert probe["leaked"] == 0 and probe["runs"][0] != probe["runs"][1]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in probe["macro_f1"])


def test_monitor(workspace: dict[str, Any]) -> None:
    nb, probe = execute(
        "05_monitor.ipynb",
        workspace,
        '{"windows": [w["name"] for w in report["windows"]], "verdicts": [w["verdict"] for w in report["windows"]],'
        ' "rows": [w["rows"] for w in report["windows"]], "html": str(html_path), "source": str(source),'
        ' "reference": report["reference"]}',
        DUANKA_NB_REAL=str(workspace["root"] / "no-real-text-here.csv"),
    )
    assert probe["source"] == str(workspace["holdout"])  # no real text: the holdout is the traffic
    assert probe["windows"][-1] == "window4-evasion-wave.jsonl" and len(probe["windows"]) == 5
    size = read_rows(workspace["holdout"]) // 4
    assert probe["rows"] == [size] * 5
    assert set(probe["verdicts"]) <= {"ok", "watch", "alert"}
    assert probe["reference"] is not None  # the throwaway model carries its reference profile
    assert Path(probe["html"]).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert images(nb) >= 1


THRESHOLDS_PROBE = (
    '{"mode": "trained" if run is not None else "artifact", "rows": len(holdout_frame),'
    ' "validation_rows": None if run is None else len(validation_labels),'
    ' "curves": curves.to_dict("records"), "thresholds": thresholds, "manifest": manifest["thresholds"],'
    ' "recorded": manifest["metrics"], "rates": default_rates.to_dict("records"),'
    ' "choices": None if choices is None else choices.to_dict("records"),'
    ' "calibration": calibration_table.to_dict("index"), "errors": len(errors),'
    ' "error_ids": sorted(errors["id"]), "mislabelled": int((errors["label"] == errors["predicted"]).sum())}'
)


def check_thresholds_notebook(probe: dict[str, Any], sets: list[str]) -> None:
    """What both modes share: curves, rates and errors consistent with the manifest's recorded metrics."""
    assert probe["thresholds"] == probe["manifest"]
    rows = {"validation": probe["validation_rows"], "holdout": probe["rows"]}
    assert sorted({c["set"] for c in probe["curves"]}) == sorted(sets)
    for name in sets:
        curves = {c["curve"]: c for c in probe["curves"] if c["set"] == name}
        assert sorted(curves) == sorted([*LABELS, "risk"])
        recorded = probe["recorded"][name]
        for label in LABELS:  # the plotted curves are the ones the manifest's average precision was measured on
            assert 2 <= curves[label]["points"] <= rows[name] + 1
            assert curves[label]["AP"] == pytest.approx(recorded[f"{label}_pr_auc"], abs=6e-4)
        assert curves["risk"]["AP"] == pytest.approx(recorded["risk_pr_auc"], abs=6e-4)
        rates = next(r for r in probe["rates"] if r["set"] == name)
        for level in ("review", "block"):
            for key in ("precision", "recall"):
                assert rates[f"{level}_{key}"] == pytest.approx(recorded[f"{level}_{key}"], abs=1e-6)
        assert rates["block_rate"] == pytest.approx(recorded["block_share"], abs=1e-6)
        assert rates["review_rate"] == pytest.approx(recorded["review_share"] - recorded["block_share"], abs=2e-6)
        calibration = probe["calibration"][name]
        assert 0.0 <= calibration["ECE"] <= 1.0 and 0.0 <= calibration["Brier"] <= 1.0
        assert calibration["posts"] == rows[name]
    matrix = probe["recorded"]["holdout"]["confusion_matrix"]
    assert probe["errors"] == probe["rows"] - sum(matrix[k][k] for k in range(len(LABELS))) > 0
    assert probe["mislabelled"] == 0 and len(set(probe["error_ids"])) == probe["errors"]


def test_thresholds_and_calibration_trained(workspace: dict[str, Any]) -> None:
    nb, probe = execute("06_thresholds_and_calibration.ipynb", workspace, THRESHOLDS_PROBE)
    assert probe["mode"] == "trained"  # DUANKA_NB_MODEL_DIR points nowhere: the notebook trains a model
    assert probe["validation_rows"] == read_rows(workspace["posts"])
    check_thresholds_notebook(probe, ["validation", "holdout"])
    targets = sorted({c["block_precision_target"] for c in probe["choices"]})
    assert {0.99, 0.995, 0.998} <= set(targets)
    for choice in probe["choices"]:
        assert 0.0 <= choice["review"] <= choice["block"]
        if choice["default"]:  # the run's own target, chosen again, gives the manifest's thresholds
            assert {"review": choice["review"], "block": choice["block"]} == probe["manifest"]
    assert sum(c["default"] for c in probe["choices"]) == 2  # validation and holdout rows
    blocks = [next(c["block"] for c in probe["choices"] if c["block_precision_target"] == t) for t in targets]
    assert blocks == sorted(blocks)  # a stricter target never blocks from a lower risk
    assert images(nb) >= 4  # two PR figures, the risk distribution, the reliability diagram


def test_thresholds_and_calibration_artifact(workspace: dict[str, Any], small_artifact: Path) -> None:
    nb, probe = execute(
        "06_thresholds_and_calibration.ipynb", workspace, THRESHOLDS_PROBE, DUANKA_NB_MODEL_DIR=str(small_artifact)
    )
    assert probe["mode"] == "artifact" and probe["choices"] is None
    manifest = json.loads((small_artifact / "manifest.json").read_text(encoding="utf-8"))
    assert probe["manifest"] == manifest["thresholds"]
    check_thresholds_notebook(probe, ["holdout"])  # the holdout re-scored matches what training recorded
    assert images(nb) >= 3
