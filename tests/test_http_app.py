"""`duanka serve`: every endpoint and every refusal of the ASGI app, and a real server under good and bad traffic."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient

from duanka import Scorer
from duanka.adapters.http_app import create_app

AD = "收*咔 加薇，长期高价收，秒结"
TEXTS = [AD, "今天天气不错，一起去公园散步吧", "兼职日结，只需身份证办卡，一单300", "出租微信号，实名老号"]
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def scorer(small_artifact: Path) -> Scorer:
    return Scorer.load(small_artifact, strict=True)


@pytest.fixture(scope="module")
def client(scorer: Scorer) -> TestClient:
    return TestClient(create_app(scorer, max_body_bytes=4096, max_records=5, max_request_chars=400))


def expected(scorer: Scorer, text: str, data_id: Any = None, policy: str | None = None) -> dict[str, Any]:
    return json.loads(json.dumps(scorer.score(text, data_id=data_id, policy=policy).to_dict()))


def post(client: TestClient, path: str, body: bytes | str, **headers: str) -> Any:
    return client.post(path, content=body, headers={**JSON_HEADERS, **headers})


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert payload["error"] == code, payload
    assert "Traceback" not in response.text
    return payload


# ---------------------------------------------------------------------------------------------- answers
@pytest.mark.parametrize("data_id", ["a1", 17, 2.5, None, True])
def test_score_is_the_python_api_with_data_id_echoed(client: TestClient, scorer: Scorer, data_id: Any) -> None:
    response = client.post("/score", json={"text": AD, "data_id": data_id})
    assert response.status_code == 200
    assert response.json() == expected(scorer, AD, data_id)
    assert response.json()["data_id"] == data_id


def test_score_without_data_id_and_under_a_policy(client: TestClient, scorer: Scorer) -> None:
    assert client.post("/score", json={"text": AD}).json() == expected(scorer, AD)
    other = sorted(set(scorer.policies) - {"default"})[0]
    answer = client.post("/score", json={"text": AD, "policy": other}).json()
    assert answer == expected(scorer, AD, policy=other) and answer["policy"] == other


def test_batch_is_score_batch_in_order(client: TestClient, scorer: Scorer) -> None:
    records = [{"text": t, "data_id": f"id-{i}"} for i, t in enumerate(TEXTS)]
    response = client.post("/score/batch", json={"records": records, "policy": "default"})
    assert response.status_code == 200
    want = [r.to_dict() for r in scorer.score_batch(TEXTS, [f"id-{i}" for i in range(len(TEXTS))])]
    assert response.json() == {"results": json.loads(json.dumps(want))}
    assert client.post("/score/batch", json={"records": [{"text": AD}]}).json()["results"][0]["data_id"] is None
    assert client.post("/score/batch", json={"records": []}).json() == {"results": []}


def test_large_requests_are_scored_off_the_event_loop_with_the_same_answer(scorer: Scorer) -> None:
    threaded = TestClient(create_app(scorer, inline_chars=10))
    records = [{"text": t, "data_id": i} for i, t in enumerate(TEXTS)]
    inline = TestClient(create_app(scorer))
    assert (
        threaded.post("/score/batch", json={"records": records}).json()
        == inline.post("/score/batch", json={"records": records}).json()
    )


def test_a_lone_surrogate_in_a_data_id_comes_back_as_valid_json(client: TestClient) -> None:
    response = post(client, "/score", b'{"text": "hello", "data_id": "\\ud800x"}')
    assert response.status_code == 200
    assert json.loads(response.content)["data_id"] == "\ud800x"


def test_health_and_ready(client: TestClient, scorer: Scorer) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    payload = ready.json()
    assert payload["ready"] is True and payload["degraded"] is False and payload["signed"] is False
    assert payload["model_version"] == scorer.model_version
    assert payload["policies"] == sorted(scorer.policies)
    assert payload["limits"] == {"max_body_bytes": 4096, "max_records": 5, "max_request_chars": 400}


def test_a_degraded_scorer_says_so_in_ready_and_answers_with_rules() -> None:
    degraded = TestClient(create_app(Scorer.rules_only("no model here (test)")))
    payload = degraded.get("/ready").json()
    assert payload["degraded"] is True and payload["degraded_cause"] == "no model here (test)"
    assert payload["model_version"] == "rules-only"
    answer = degraded.post("/score", json={"text": AD, "data_id": 1}).json()
    assert answer["degraded"] is True and answer["source"] == "rules" and answer["data_id"] == 1


# ---------------------------------------------------------------------------------------------- refusals
def test_unknown_policy_is_a_400_naming_the_known_ones(client: TestClient, scorer: Scorer) -> None:
    for path, body in (("/score", {"text": AD, "policy": "nope"}), ("/score/batch", {"records": [], "policy": "nope"})):
        payload = refused(client.post(path, json=body), 400, "unknown_policy")
        assert "'nope'" in payload["message"]
        assert all(name in payload["message"] for name in scorer.policies)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"text": ', "line 1 column 10"),
        (b"", "Expecting value"),
        (b'{"text": "a", "data_id": NaN}', "NaN"),
        (b'{"text": "a", "data_id": Infinity}', "Infinity"),
        (b'{"text": "\xff\xfe"}', "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not accepted JSON"),
        (b'{"text": "a", "data_id": ' + b"9" * 5000 + b"}", "not accepted JSON"),
    ],
)
def test_malformed_json_is_a_400_naming_the_cause(scorer: Scorer, body: bytes, says: str) -> None:
    roomy = TestClient(create_app(scorer))
    payload = refused(post(roomy, "/score", body), 400, "malformed_json")
    assert says in payload["message"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_a_415(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    payload = refused(client.post("/score", content=b'{"text": "a"}', headers=headers), 415, "unsupported_media_type")
    assert "application/json" in payload["message"]
    assert post(client, "/score", b'{"text": "a"}', **{"content-type": "application/json; charset=utf-8"}).is_success


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/score", ["a"], "must be a JSON object"),
        ("/score", {}, "text is missing"),
        ("/score", {"text": 3}, "text is a number, not a string"),
        ("/score", {"text": None}, "text is null"),
        ("/score", {"text": "a", "txet": "b"}, "unknown field(s) 'txet'"),
        ("/score", {"text": "a", "data_id": {"x": 1}}, "data_id is an object"),
        ("/score", {"text": "a", "policy": 3}, "policy is a number"),
        ("/score/batch", {"text": "a"}, "unknown field(s) 'text'"),
        ("/score/batch", {}, "records is missing"),
        ("/score/batch", {"records": "a"}, "records is a string"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_422(client: TestClient, path: str, body: Any, says: str) -> None:
    assert says in refused(client.post(path, json=body), 422, "invalid_request")["message"]


def test_a_batch_with_bad_records_names_them_and_scores_nothing(client: TestClient) -> None:
    records = [{"text": "ok"}, {"text": 1}, "x", {"data_id": 2}, {"text": "ok", "id": 3}]
    payload = refused(client.post("/score/batch", json={"records": records}), 422, "invalid_record")
    assert payload["records"] == [1, 2, 3, 4]
    for part in ("record 1: text is a number", "record 2 must be an object", "record 3: text is missing",
                 "record 4: unknown field(s) 'id'"):  # fmt: skip
        assert part in payload["message"], payload["message"]
    many = TestClient(create_app(Scorer.rules_only("test")))
    payload = refused(
        many.post("/score/batch", json={"records": [{"text": i} for i in range(8)]}), 422, "invalid_record"
    )
    assert payload["records"] == list(range(8)) and payload["message"].endswith("and 3 more")


def test_bodies_over_the_byte_cap_are_413_by_content_length_and_while_streamed(client: TestClient) -> None:
    big = json.dumps({"text": "收" * 5000}, ensure_ascii=False).encode("utf-8")
    payload = refused(post(client, "/score", big), 413, "body_too_large")
    assert "Content-Length is" in payload["message"] and "4096" in payload["message"]

    def chunks():  # no Content-Length: the cap is enforced on the bytes as they arrive
        yield b'{"text": "'
        for _ in range(100):
            yield b"a" * 100
        yield b'"}'

    response = client.post("/score", content=chunks(), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert "more than 4096 bytes arrived" in refused(response, 413, "body_too_large")["message"]
    refused(post(client, "/score", b"{}", **{"content-length": "abc"}), 400, "bad_content_length")


def test_too_many_records_or_characters_are_413(client: TestClient) -> None:
    payload = refused(client.post("/score/batch", json={"records": [{"text": "a"}] * 6}), 413, "too_many_records")
    assert "6 records" in payload["message"] and "at most 5" in payload["message"]
    payload = refused(client.post("/score", json={"text": "a" * 401}), 413, "too_many_characters")
    assert "401 characters" in payload["message"]
    records = [{"text": "a" * 100}] * 5
    assert "500 characters" in refused(client.post("/score/batch", json={"records": records}), 413,
                                       "too_many_characters")["message"]  # fmt: skip


def test_unknown_paths_and_methods_are_json_404_and_405(client: TestClient) -> None:
    assert "POST /score" in refused(client.get("/nowhere"), 404, "not_found")["message"]
    refused(client.get("/score"), 405, "method_not_allowed")
    refused(client.post("/health"), 405, "method_not_allowed")


def test_a_failure_of_the_server_is_a_500_without_its_details(scorer: Scorer, monkeypatch, caplog) -> None:
    app = create_app(scorer)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(scorer, "score_batch", broken)
    response = post(TestClient(app), "/score", b'{"text": "a"}')
    payload = refused(response, 500, "internal_error")
    assert "secret" not in response.text
    assert "secret internal detail" in caplog.text  # logged for the operator
    assert payload["message"]


# ---------------------------------------------------------------------------------------------- process
def test_serving_an_artifact_imports_neither_mlflow_nor_pandas(small_artifact: Path) -> None:
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "pandas", "sklearn"):
            raise ImportError(name + " is blocked by the test")
sys.meta_path.insert(0, Block())
from starlette.testclient import TestClient
from duanka.adapters.http_app import create_app, load
client = TestClient(create_app(load({str(small_artifact)!r}, strict=True)))
answer = client.post("/score", json={{"text": "收卡", "data_id": 1}}).json()
assert answer["data_id"] == 1 and not answer["degraded"], answer
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_cli_serve_refuses_a_missing_model_before_listening(tmp_path: Path, capsys) -> None:
    from duanka.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing"), "--strict", "--port", "1"]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path), "--workers", "0"]) == 2


# ---------------------------------------------------------------------------------------------- load test
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Connection:
    """One keep-alive connection that reconnects after the server closed it (as it does after a 413)."""

    def __init__(self, port: int) -> None:
        self.port, self.conn = port, http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
        response = None
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            return response.status, response.read()
        finally:
            if response is None or response.will_close:
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


class _chunks:
    """A JSON body of ``size`` bytes that http.client sends with chunked encoding (an iterable, no length)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __iter__(self):
        yield b'{"text": "'
        for _ in range(self.size // 10_000):
            yield b"a" * 10_000
        yield b'"}'


def _bad_requests() -> list[tuple[Any, dict[str, str], int, str]]:
    """(body, headers, status, error code) of each kind of bad request the load test sends."""
    return [
        (b'{"text": "unterminated', JSON_HEADERS, 400, "malformed_json"),
        (b'{"text": 12}', JSON_HEADERS, 422, "invalid_request"),
        (b'{"text": "a", "policy": "no-such-policy"}', JSON_HEADERS, 400, "unknown_policy"),
        (b'{"text": "' + b"a" * 200_000 + b'"}', JSON_HEADERS, 413, "body_too_large"),  # drained, then refused
        (_chunks(200_000), JSON_HEADERS, 413, "body_too_large"),  # chunked: no Content-Length, refused at the cap
        (b'{"text": "a"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"records": [{"text": "a"}, {"text": null}]}', JSON_HEADERS, 422, "invalid_record"),
    ]


def test_a_real_server_keeps_answering_while_bad_requests_arrive(scorer: Scorer) -> None:
    import uvicorn

    app = create_app(scorer, max_body_bytes=65_536, inline_chars=200)  # batches of 20 go to the scoring thread
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.config.port
    singles = {t: expected(scorer, t, data_id=t[:4]) for t in TEXTS}
    batch_texts = (TEXTS * 5)[:20]
    batch = json.loads(json.dumps([r.to_dict() for r in scorer.score_batch(batch_texts, list(range(20)))]))
    bad = _bad_requests()
    failures: list[str] = []

    def worker(number: int) -> int:
        conn, sent = _Connection(port), 0
        for i in range(36):  # bounded: 6 workers x 36 requests, good and bad interleaved
            kind = (number + i) % (len(bad) + 3)
            if kind < len(bad):
                body, headers, status, code = bad[kind]
                path = "/score/batch" if isinstance(body, bytes) and b"records" in body else "/score"
                got, raw = conn.send("POST", path, body, headers)
                if got != status or json.loads(raw)["error"] != code:
                    failures.append(f"bad request {code}: got {got} {raw[:200]!r}")
            elif kind == len(bad):
                records = [{"text": t, "data_id": j} for j, t in enumerate(batch_texts)]
                got, raw = conn.send("POST", "/score/batch", json.dumps({"records": records}).encode(), JSON_HEADERS)
                if got != 200 or json.loads(raw) != {"results": batch}:
                    failures.append(f"batch: got {got} {raw[:200]!r}")
            else:
                text = TEXTS[(number + i) % len(TEXTS)]
                body = json.dumps({"text": text, "data_id": text[:4]}).encode()
                got, raw = conn.send("POST", "/score", body, JSON_HEADERS)
                if got != 200 or json.loads(raw) != singles[text]:
                    failures.append(f"single: got {got} {raw[:200]!r}")
            sent += 1
        return sent

    health: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        conn = _Connection(port)
        while not stop.is_set() and len(health) < 500:
            health.append(conn.send("GET", "/health")[0])
            time.sleep(0.01)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            sent = sum(pool.map(worker, range(6)))
        stop.set()
        prober.join(10)
        assert not failures, failures[:5]
        assert sent == 6 * 36
        assert health and set(health) == {200}, health
        assert _Connection(port).send("GET", "/health")[0] == 200  # still answering afterwards
    finally:
        stop.set()
        server.should_exit = True
        thread.join(20)


def test_the_worker_factory_reads_its_settings_from_the_environment(small_artifact: Path, monkeypatch) -> None:
    from duanka.adapters.http_app import CONFIG_ENV, app_from_environment

    settings = {"model": str(small_artifact), "scorer_options": {"strict": True}, "max_records": 2}
    monkeypatch.setenv(CONFIG_ENV, json.dumps(settings))
    client = TestClient(app_from_environment())
    assert client.get("/ready").json()["limits"]["max_records"] == 2
    assert client.post("/score", json={"text": AD, "data_id": 5}).json()["data_id"] == 5


@pytest.mark.slow
def test_duanka_serve_with_two_workers_answers_and_stops_on_sigterm(small_artifact: Path, tmp_path: Path) -> None:
    import signal

    port = _free_port()
    command = [sys.executable, "-c", "import sys; from duanka.cli import main; sys.exit(main())", "serve",
               "--model", str(small_artifact), "--port", str(port), "--workers", "2", "--strict"]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, ready = time.monotonic() + 60, None
        while ready is None and time.monotonic() < deadline and server.poll() is None:
            try:
                ready = _Connection(port).send("GET", "/ready")
            except OSError:
                time.sleep(0.2)
        assert ready is not None and ready[0] == 200, (tmp_path / "serve.log").read_text()[-2000:]
        status, raw = _Connection(port).send("POST", "/score", json.dumps({"text": AD}).encode(), JSON_HEADERS)
        assert status == 200 and json.loads(raw)["label"]
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
