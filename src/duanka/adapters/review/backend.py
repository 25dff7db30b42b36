"""``duanka review backend``: a Label Studio ML backend around the Scorer, in label-studio-ml's HTTP conventions.

Label Studio (*Settings* → *Model* → *Connect model*, URL ``http://HOST:9090``) calls:

* ``GET /health`` (and ``GET /``): ``{"status": "UP", "model_class": "duanka", "model_version": ...}``.
* ``POST /setup`` ``{"project": "4.1700000000", "schema": "<View>…"}`` → ``{"model_version": ...}``; a label
  config with no ``Choices`` of duanka's three labels is refused (400, naming the cause).
* ``POST /predict`` ``{"tasks": [...], "label_config": "<View>…"}`` → ``{"results": [prediction, ...]}``, one
  per task, in order: the prediction ``duanka review export`` writes (a ``choices`` result in the config's
  ``from_name``/``to_name``, ``score`` = risk, ``model_version``); a task without the text gives no result.
* ``POST /webhook`` ``{"action": "ANNOTATION_CREATED", "annotation": {...}, "task": {...}, "project": {...}}``:
  the ``fit`` hook. ``ANNOTATION_CREATED``/``ANNOTATION_UPDATED`` append the annotation to the feedback file
  through ``duanka review import`` (same checks, duplicates and conflicts; ``reviewed_file`` names the project,
  task and annotation); ``ANNOTATION_DELETED`` is recorded but removes nothing (the feedback file is append-only);
  ``START_TRAINING`` answers how many rows the next retrain gets. Every event is journaled, one JSON line each,
  to ``<feedback>.labelstudio.jsonl``. Other actions: 200 ``{"status": "Unknown event"}``.
* ``GET /metrics``: ``{}``.

With ``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS`` set (as for label-studio-ml), every request needs them.
Errors are JSON ``{"error": code, "message": text}``, never a traceback.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import logging
import os
import tempfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from duanka.adapters.http_app import RequestError, _error, _json, _read_json, http_error_handler, load
from duanka.adapters.review.feedback import import_feedback
from duanka.adapters.review.labelstudio import FROM_NAME, TO_NAME, prediction
from duanka.errors import DataError, DuankaError, PolicyError
from duanka.labels import LABELS
from duanka.scoring.limits import MAX_BODY_BYTES, MAX_RECORDS, MAX_REQUEST_CHARS
from duanka.scoring.scorer import Scorer

__all__ = ["TRAIN_EVENTS", "LabelConfigError", "LabelStudioBackend", "config_names", "create_app", "serve"]

logger = logging.getLogger("duanka")

TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "START_TRAINING")
RECORDED_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class LabelConfigError(DuankaError):
    """A label config duanka cannot predict into."""


def config_names(config: str | None) -> tuple[str, str, str]:
    """``(from_name, to_name, data key)`` of the ``Choices`` control of a label config that offers duanka's labels.

    ``None`` or ``""``: the names of the config ``duanka review export`` writes.

    Raises:
        LabelConfigError: the config is not XML, or no ``Choices`` offers every label, or its object shows no
            ``$field`` of the task's data.
    """
    if not config:
        return FROM_NAME, TO_NAME, TO_NAME
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise LabelConfigError(f"the label config is not XML: {exc}") from None
    objects = {e.get("name"): e.get("value", "") for e in root.iter() if e.get("name") and e.get("value")}
    for control in root.iter("Choices"):
        choices = {choice.get("value") for choice in control.iter("Choice")}
        if not set(LABELS) <= choices:
            continue
        to_name = (control.get("toName") or "").split(",")[0]
        value = objects.get(to_name, "")
        if not value.startswith("$"):
            raise LabelConfigError(f"<Choices name={control.get('name')!r}> labels {to_name!r}, which shows no $field")
        return str(control.get("name")), to_name, value[1:]
    raise LabelConfigError(
        f"the label config has no <Choices> offering {', '.join(LABELS)} (see `duanka review export`)"
    )


class LabelStudioBackend:
    """``predict`` pre-annotations with a Scorer; ``fit`` records annotations in a feedback file for the next retrain.

    Args:
        scorer: the model.
        feedback: the feedback file that ``duanka review import`` appends to.
        policy: the policy whose decision the scorer applies (the label and risk do not depend on it).
        accept_unexported: record annotations of tasks that ``duanka review export`` never wrote.
    """

    def __init__(
        self, scorer: Scorer, feedback: str | Path, *, policy: str | None = None, accept_unexported: bool = False
    ) -> None:
        scorer.policy_thresholds(policy)  # an unknown policy fails before the port opens
        self.scorer, self.policy, self.accept_unexported = scorer, policy, accept_unexported
        self.feedback = Path(feedback)
        self.journal = self.feedback.with_name(self.feedback.name + ".labelstudio.jsonl")
        self.lock = threading.Lock()  # one import at a time: each rewrites the feedback file

    def predict(self, tasks: list[Any], label_config: str | None = None) -> list[dict[str, Any]]:
        """One prediction per task, in order (``{}``-like empty result for a task without the text).

        Raises:
            LabelConfigError: see :func:`config_names`.
        """
        from_name, to_name, key = config_names(label_config)
        texts = [task.get("data", {}).get(key) if isinstance(task, dict) else None for task in tasks]
        scorable = [k for k, text in enumerate(texts) if isinstance(text, str)]
        results = self.scorer.score_batch([texts[k] for k in scorable], None, policy=self.policy)
        found: list[dict[str, Any]] = [
            {"model_version": self.scorer.model_version, "score": 0.0, "result": []} for _ in tasks
        ]
        for k, result in zip(scorable, results):
            found[k] = prediction(result.label, result.risk, result.model_version, from_name=from_name, to_name=to_name)
        return found

    def fit(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Record one webhook event; annotations go to the feedback file through ``duanka review import``.

        Raises:
            DataError: the annotation cannot be imported (the cause names the task), or the payload has no
                ``task``/``annotation`` object.
        """
        with self.lock:
            try:
                outcome = self._fit(event, data)
            except DataError as exc:
                self._journal(event, data, {"error": str(exc)})
                raise
            self._journal(event, data, outcome)
            return outcome

    def _fit(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        if event == "START_TRAINING":
            rows = _count_rows(self.feedback)
            command = f"duanka train --data data/posts.csv --data {self.feedback}"
            return {"feedback_rows": rows, "next": f"retrain with: {command}"}
        if event not in RECORDED_EVENTS:
            return {"recorded": False, "note": "the feedback file is append-only: nothing was removed"}
        task, annotation = data.get("task"), data.get("annotation")
        if not isinstance(task, dict) or not isinstance(annotation, dict) or not isinstance(task.get("data"), dict):
            raise DataError(f"{event}: the payload needs `task` (with `data`) and `annotation` objects")
        project = (data.get("project") or {}).get("id", "") if isinstance(data.get("project"), dict) else ""
        name = f"labelstudio-project{project}-task{task.get('id', '')}-annotation{annotation.get('id', '')}.json"
        with tempfile.TemporaryDirectory(prefix="duanka-backend-") as scratch:
            staged = Path(scratch) / name
            staged.write_text(json.dumps([{**task, "annotations": [annotation]}], ensure_ascii=False), "utf-8")
            summary = import_feedback(staged, self.feedback, accept_unexported=self.accept_unexported)
        return {
            "recorded": True,
            "added": summary.added,
            "duplicates": summary.duplicates,
            "conflicts": [c.replace(str(staged), name) for c in summary.conflicts],
            "feedback_rows": summary.output_rows,
        }

    def _journal(self, event: str, data: dict[str, Any], outcome: dict[str, Any]) -> None:
        ids = {
            key: (data.get(key) or {}).get("id") if isinstance(data.get(key), dict) else None
            for key in ("project", "task", "annotation")
        }
        line = {"received_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "action": event, **ids}
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**line, **outcome}, ensure_ascii=False) + "\n")


def _count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    import pandas as pd

    return len(pd.read_csv(path, dtype=str, keep_default_na=False))


# ------------------------------------------------------------------------------------------------ HTTP
class _Routes:
    def __init__(self, backend: LabelStudioBackend, max_body_bytes: int, auth: tuple[str, str] | None) -> None:
        self.backend, self.max_body_bytes, self.auth = backend, max_body_bytes, auth

    def _check_auth(self, request: Request) -> None:
        if self.auth is None:
            return
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""
        same = hmac.compare_digest(user.encode(), self.auth[0].encode())
        if scheme.lower() != "basic" or not (same & hmac.compare_digest(password.encode(), self.auth[1].encode())):
            raise RequestError(401, "unauthorized", "this backend needs HTTP basic auth (BASIC_AUTH_USER/PASS)")

    async def _body(self, request: Request) -> dict[str, Any]:
        self._check_auth(request)
        payload = await _read_json(request, self.max_body_bytes)
        if not isinstance(payload, dict):
            raise RequestError(422, "wrong_shape", f"the body must be a JSON object, not {type(payload).__name__}")
        return payload

    async def health(self, request: Request) -> Response:
        try:
            self._check_auth(request)
        except RequestError as exc:
            return _error(exc)
        version = self.backend.scorer.model_version
        return _json({"status": "UP", "model_class": "duanka", "model_version": version})

    async def metrics(self, request: Request) -> Response:
        return await self._answer(request, lambda payload: {}, body=False)

    async def setup(self, request: Request) -> Response:
        def answer(payload: dict[str, Any]) -> dict[str, Any]:
            config_names(_string(payload.get("schema"), "schema"))
            return {"model_version": self.backend.scorer.model_version}

        return await self._answer(request, answer)

    async def predict(self, request: Request) -> Response:
        def answer(payload: dict[str, Any]) -> dict[str, Any]:
            tasks = payload.get("tasks")
            if not isinstance(tasks, list):
                raise RequestError(422, "wrong_shape", "`tasks` must be a list of Label Studio tasks")
            if len(tasks) > MAX_RECORDS:
                raise RequestError(413, "too_many_records", f"{len(tasks)} tasks; at most {MAX_RECORDS} at a time")
            chars = sum(len(str(t.get("data", ""))) for t in tasks if isinstance(t, dict))
            if chars > MAX_REQUEST_CHARS:
                raise RequestError(413, "too_many_characters", f"{chars} characters of task data; at most "
                                   f"{MAX_REQUEST_CHARS}")  # fmt: skip
            return {"results": self.backend.predict(tasks, _string(payload.get("label_config"), "label_config"))}

        return await self._answer(request, answer, thread=True)

    async def webhook(self, request: Request) -> Response:
        def answer(payload: dict[str, Any]) -> dict[str, Any]:
            event = payload.pop("action", None)
            if event not in TRAIN_EVENTS:
                return {"status": "Unknown event"}
            return {"status": "ok", "result": self.backend.fit(str(event), payload)}

        return await self._answer(request, answer, thread=True, status=201)

    async def _answer(self, request: Request, answer: Any, *, body: bool = True, thread: bool = False,
                      status: int = 200) -> Response:  # fmt: skip
        try:
            payload = await self._body(request) if body else self._check_auth(request)
            found = await to_thread.run_sync(answer, payload) if thread else answer(payload)
            return _json(found, 200 if found.get("status") == "Unknown event" else status)
        except RequestError as exc:
            return _error(exc)
        except LabelConfigError as exc:
            return _error(RequestError(400, "label_config", str(exc)))
        except (DataError, PolicyError) as exc:
            return _error(RequestError(422, "not_recorded", str(exc)))
        except Exception:
            logger.exception("duanka review backend: %s %s failed", request.method, request.url.path)
            return _json(
                {"error": "internal_error", "message": "the backend failed on this request; it is logged"}, 500
            )


def _string(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RequestError(422, "wrong_shape", f"`{name}` must be a string (the label config's XML)")
    return value


ENDPOINTS = "GET /health, GET /, GET /metrics, POST /setup, POST /predict, POST /webhook"


def create_app(
    backend: LabelStudioBackend, *, max_body_bytes: int = MAX_BODY_BYTES, auth: tuple[str, str] | None = None
) -> Starlette:
    """The ASGI app; ``auth`` ``(user, password)`` requires HTTP basic auth on every request."""
    handler = http_error_handler(ENDPOINTS)
    routes = _Routes(backend, max_body_bytes, auth)
    return Starlette(
        routes=[
            Route("/", routes.health, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
            Route("/setup", routes.setup, methods=["POST"]),
            Route("/predict", routes.predict, methods=["POST"]),
            Route("/webhook", routes.webhook, methods=["POST"]),
        ],
        exception_handlers={HTTPException: handler, 500: handler},
    )


def serve(
    model: str | Path,
    feedback: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    policy: str | None = None,
    accept_unexported: bool = False,
    scorer_options: dict[str, Any] | None = None,
) -> None:
    """Run the backend under uvicorn until it is stopped; the model loads (or fails) before the port opens."""
    import uvicorn

    backend = LabelStudioBackend(
        load(model, **(scorer_options or {})), feedback, policy=policy, accept_unexported=accept_unexported
    )
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    app = create_app(backend, auth=(user, password) if user and password else None)
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False, log_level="info")
