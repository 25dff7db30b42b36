"""`mlflow models serve` answers /invocations with the same results as the Python API, also from an environment
built only from the logged model's own requirements, and refuses bad requests with clean 400s."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from duanka import Scorer
from duanka.labels import LABELS

pytestmark = pytest.mark.slow

TEXTS = ["收*咔 加薇，长期收", "今天天气很好，出去走走", "兼职办卡一张三百，日结"]


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


@contextmanager
def _serving(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Run ``mlflow models serve`` (``command`` without host and port) and yield its base URL once /ping answers."""
    port = _free_port()
    log_path = cwd / f"serve-{port}.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("server did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _check_answers(url: str, artifact_dir: Path) -> None:
    """The served predictions equal the Python API's on the same artifact."""
    answer = _post(
        f"{url}/invocations", {"dataframe_records": [{"text": t, "data_id": f"id-{i}"} for i, t in enumerate(TEXTS)]}
    )
    served = answer["predictions"]
    expected = Scorer.load(artifact_dir).score_batch(TEXTS, [f"id-{i}" for i in range(len(TEXTS))])
    assert [row["data_id"] for row in served] == ["id-0", "id-1", "id-2"]
    for row, result in zip(served, expected):
        assert row["label"] == result.label and row["decision"] == result.decision
        assert row["source"] == result.source and row["degraded"] is False
        assert row["risk"] == pytest.approx(result.risk, abs=1e-6)
        for label, probability in result.probabilities.items():
            assert row[f"p_{label}"] == pytest.approx(probability, abs=1e-6)
        assert json.loads(row["evidence"]) == result.evidence


def _records(*rows: dict) -> bytes:
    return json.dumps({"dataframe_records": list(rows)}, ensure_ascii=False).encode("utf-8")


# (body, what the 400's message must say): the record and the cause, or the shape MLflow expected.
BAD_REQUESTS = [
    (_records({"text": "好"}, {"text": None}), "record 1: text is null"),
    (
        _records({"text": "收卡", "policy": "nope"}),
        "record 0: unknown policy 'nope' (this model knows: comment, default",
    ),
    (_records({"text": "收卡"}, {"text": "好", "policy": 5}), "record 1: policy is float, not a string"),  # pandas: 5.0
    (_records({"text": "好"}, {"text": 3}), "record 1: text is int, not a string"),
    (_records({"txt": "收卡"}), "Model is missing inputs ['text']"),
    (json.dumps({"inputs": "收卡"}).encode(), "Model is missing inputs ['text']"),
    (json.dumps({"dataframe_records": {"text": "收卡"}}).encode(), "must be a list of records"),
    (b"text=1", "valid JSON"),
    (_records(*[{"text": "好"}] * 1001), "1001 records in one request; at most 1000"),
    (_records(*[{"text": "收" * 12_000}] * 100), "1200000 characters of text in one request; at most 1000000"),
]


def _check_refusals(url: str) -> None:
    """Every bad request is a 400 whose JSON message names the cause, with no stack trace."""
    for body, expected in BAD_REQUESTS:
        request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        text = refused.value.read().decode("utf-8")
        assert refused.value.code == 400, (expected, text[:500])
        answer = json.loads(text)
        assert expected in answer["message"], (expected, answer["message"][:500])
        assert "stack_trace" not in answer and "Traceback" not in text, text[:2000]


def test_served_model_matches_python_api(tracked_run, tmp_path) -> None:
    # mlflow starts uvicorn from PATH: put this interpreter's bin directory first, as an activated venv does.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracked_run.tracking_uri, "PATH": path}
    uri = f"models:/duanka-test/{tracked_run.registered_version}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    with _serving(command, env, tmp_path) as url:
        _check_answers(url, tracked_run.artifact_dir)
        _check_refusals(url)


def _wheelhouse() -> Path:
    """Where scripts/model_wheelhouse.py puts the model's wheels: $DUANKA_WHEELHOUSE or ~/.cache/duanka/wheelhouse."""
    return Path(os.environ.get("DUANKA_WHEELHOUSE") or Path.home() / ".cache" / "duanka" / "wheelhouse")


def _logged_model(tracked_run, destination: Path) -> Path:
    import mlflow

    uri = tracked_run.tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    source = client.get_model_version_download_uri("duanka-test", tracked_run.registered_version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(destination), tracking_uri=uri))


def test_served_model_installs_from_its_own_requirements(tracked_run, tmp_path) -> None:
    """What MLflow's virtualenv environment manager does, offline: a fresh venv, the model's python_env.yaml build
    dependencies, then its requirements.txt, nothing else (duanka ships inside the model as code); then serve it
    from that venv alone. Takes about 1-1.5 minutes (most of it pip installing about 90 wheels)."""
    import yaml

    wheels = _wheelhouse()
    model = _logged_model(tracked_run, tmp_path / "model")
    python_env = yaml.safe_load((model / "python_env.yaml").read_text())
    assert python_env["dependencies"] == ["-r requirements.txt"]
    requirements = (model / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {"numpy", "rjieba", "pyahocorasick", "pyyaml", "google-re2"}
    venv = tmp_path / "env"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MLFLOW_"))}
    env = {**clean, "PATH": os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])}
    offline = ["--no-index", "--find-links", str(wheels)]

    def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert not check or done.returncode == 0, f"{command[:4]}: {done.stderr[-3000:]}"
        return done

    try:
        run(sys.executable, "-m", "venv", str(venv))
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *offline]
        resolvable = run(*pip, "--dry-run", *python_env["build_dependencies"], *requirements, check=False)
        if resolvable.returncode:
            pytest.skip(
                f"the model's wheels are not all in {wheels} (run `python scripts/model_wheelhouse.py`, or set "
                f"DUANKA_WHEELHOUSE): {resolvable.stderr.strip().splitlines()[-1:]}"
            )
        run(*pip, *python_env["build_dependencies"])
        run(*pip, "-r", str(model / "requirements.txt"))
        assert run(str(venv / "bin" / "python"), "-c", "import duanka", check=False).returncode != 0
        with _serving([str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local"],
                      env, tmp_path) as url:  # fmt: skip
            _check_answers(url, tracked_run.artifact_dir)
            _check_refusals(url)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 860 MB


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
