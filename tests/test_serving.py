"""`mlflow models serve` answers /invocations with the same results as the Python API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from duanka import Scorer
from duanka.labels import LABELS

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_served_model_matches_python_api(tracked_run, tmp_path) -> None:
    port = _free_port()
    # mlflow starts uvicorn from PATH: put this interpreter's bin directory first, as an activated venv does.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracked_run.tracking_uri, "PATH": path}
    uri = f"models:/duanka-test/{tracked_run.registered_version}"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("server did not start:\n" + (tmp_path / "serve.log").read_text()[-3000:])
                time.sleep(0.5)
        texts = ["收*咔 加薇，长期收", "今天天气很好，出去走走", "兼职办卡一张三百，日结"]
        answer = _post(
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_records": [{"text": t, "data_id": f"id-{i}"} for i, t in enumerate(texts)]},
        )
        served = answer["predictions"]
        expected = Scorer.load(tracked_run.artifact_dir).score_batch(texts, [f"id-{i}" for i in range(3)])
        assert [row["data_id"] for row in served] == ["id-0", "id-1", "id-2"]
        for row, result in zip(served, expected):
            assert row["label"] == result.label and row["decision"] == result.decision
            assert row["source"] == result.source and row["degraded"] is False
            assert row["risk"] == pytest.approx(result.risk, abs=1e-6)
            for label, probability in result.probabilities.items():
                assert row[f"p_{label}"] == pytest.approx(probability, abs=1e-6)
            assert json.loads(row["evidence"]) == result.evidence
        # the served model rejects null text (it used to score it as empty text: pass)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_records": [{"text": "好"}, {"text": None}]}).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400 and "record 1: text is null" in refused.value.read().decode("utf-8")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_pyfunc_refuses_null_non_string_and_oversized_requests(small_artifact) -> None:
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from duanka.adapters.serving import MAX_RECORDS, MAX_REQUEST_CHARS, DuankaModel

    model = DuankaModel()
    model.scorer = Scorer.load(small_artifact)
    ok = model.predict(None, pd.DataFrame([{"text": "收*咔 加薇，长期收", "data_id": "a"}]))
    assert ok["decision"].tolist()[0] != "pass"
    for frame, message in [
        (pd.DataFrame([{"text": "好"}, {"text": None}]), "record 1: text is null"),
        (pd.DataFrame({"text": ["好", 3, ["收卡"]]}), "record 1: text is int, not a string; record 2: text is list"),
        (pd.DataFrame({"text": ["好"] * (MAX_RECORDS + 1)}), f"at most {MAX_RECORDS} are accepted"),
        (pd.DataFrame({"text": ["收" * 12_000] * 100}), f"at most {MAX_REQUEST_CHARS} are accepted"),
    ]:
        with pytest.raises(MlflowException, match=message) as caught:
            model.predict(None, frame)
        assert caught.value.get_http_status_code() == 400


def test_pyfunc_refuses_unknown_policies_and_wrong_shapes_naming_the_records(small_artifact) -> None:
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from duanka.adapters.serving import DuankaModel

    model = DuankaModel()
    model.scorer = Scorer.load(small_artifact)
    known = ", ".join(sorted(model.scorer.policies))
    mixed = pd.DataFrame({"text": ["收卡", "好", "兼职", "走走"], "policy": ["sms", None, "nope", float("nan")]})
    for frame, message in [
        (mixed, rf"record 2: unknown policy 'nope' \(this model knows: {known}\)"),
        (pd.DataFrame({"text": ["收卡", "好"], "policy": ["sms", 5]}), "record 1: policy is int, not a string"),
        (pd.DataFrame({"txt": ["收卡"], "data_id": ["a"]}), r"no 'text' column \(columns: txt, data_id\)"),
        (pd.DataFrame(), r"no 'text' column \(columns: none\)"),
    ]:
        with pytest.raises(MlflowException, match=message) as caught:
            model.predict(None, frame)
        assert caught.value.get_http_status_code() == 400 and "nothing was scored" in caught.value.message
    scored = model.predict(None, mixed.iloc[[0, 1, 3]])
    assert scored["policy"].tolist() == ["sms", "default", "default"]  # null and NaN: the default policy
    assert model.predict(None, pd.DataFrame({"anything": ["收卡"]}))["label"].tolist()[0] in LABELS  # one column
