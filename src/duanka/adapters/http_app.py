"""``duanka serve``: the Scorer over HTTP, as an ASGI app (Starlette) run by uvicorn. No pandas, no MLflow.

Endpoints (JSON in, JSON out; every result is exactly ``ScoreResult.to_dict()`` of the Python API):

* ``POST /score`` ``{"text": "...", "data_id": "a1", "policy": "comment"}`` → one result (``data_id`` and
  ``policy`` optional; ``data_id`` is echoed; ``policy`` defaults to ``default``).
* ``POST /score/batch`` ``{"records": [{"text": "...", "data_id": 1}, ...], "policy": "sms"}`` →
  ``{"results": [...]}``, one result per record, in order; one policy per request.
* ``GET /health``: liveness, ``{"status": "ok"}`` while the process answers.
* ``GET /ready``: readiness, 200 with the model version, whether it is degraded (rules only) and signed, the
  policies and the limits.

Errors are JSON ``{"error": code, "message": text}`` (``records``: the indexes at fault, for a batch), never a
traceback: 400 malformed JSON or an unknown policy (the message names the known ones), 404/405 unknown path or
method, 413 a body over the byte cap (refused on its Content-Length before it is parsed or kept, or as soon as a
chunked body passes the cap; the rest, up to 4 x the cap, is read and dropped so that a client still sending sees
the 413, and the connection is closed), more records or characters than the limits, 415 a body that is not
``application/json``, 422 a body of the wrong shape (missing or non-string ``text``, unknown fields), 500 a
failure of the server itself (logged, not shown).

Small requests are scored on the event loop (a thread hop costs more than scoring them); requests of more than
``inline_chars`` characters are scored in one worker thread, so a large batch does not stop ``/health``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter, move_on_after, to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive

from duanka.errors import DuankaError, PolicyError
from duanka.scoring.limits import MAX_BODY_BYTES, MAX_RECORDS, MAX_REQUEST_CHARS
from duanka.scoring.scorer import Scorer, is_model_uri

__all__ = [
    "CONFIG_ENV",
    "INLINE_CHARS",
    "RequestError",
    "app_from_environment",
    "create_app",
    "http_error_handler",
    "load",
    "serve",
]

logger = logging.getLogger("duanka")

INLINE_CHARS = 20_000  # requests up to this many characters are scored on the event loop (about 40 ms at most)
CONFIG_ENV = "DUANKA_SERVE_CONFIG"  # JSON settings handed to uvicorn's worker processes (see `serve`)
MAX_LISTED = 5  # bad records named in one error message
DRAIN_FACTOR = 4  # a refused body of up to 4 x the cap is read and dropped, so that its client sees the 413 ...
DRAIN_SECONDS = 5.0  # ... within this time; larger or slower bodies: the connection is closed unread
SINGLE_FIELDS = frozenset({"text", "data_id", "policy"})
BATCH_FIELDS = frozenset({"records", "policy"})
RECORD_FIELDS = frozenset({"text", "data_id"})
_ID_TYPES = (str, int, float, bool, type(None))
_JSON_TYPES = ("application/json",)
ENDPOINTS = "POST /score, POST /score/batch, GET /health, GET /ready"


class RequestError(Exception):
    """A request refused with ``status``; ``code`` and ``message`` go to the client as JSON."""

    def __init__(self, status: int, code: str, message: str, records: list[int] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.records = status, code, message, records


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _dumps(payload: Any) -> bytes:
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate sent as "\ud800" in a data_id or policy: escape it back
        return json.dumps(payload, separators=(",", ":")).encode("ascii")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _error(exc: RequestError) -> Response:
    payload: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if exc.records is not None:
        payload["records"] = exc.records
    # A refused body may be unread: close the connection rather than read or misparse the rest of it.
    headers = {"connection": "close"} if exc.status == 413 else None
    return _json(payload, exc.status, headers)


# ---------------------------------------------------------------------------------------------- reading
async def _read_json(request: Request, max_body_bytes: int) -> Any:
    """The request's JSON body, refused before it is read whole when it is over ``max_body_bytes``."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in _JSON_TYPES and not kind.endswith("+json"):
        raise RequestError(
            415, "unsupported_media_type", f"send the body as JSON with Content-Type: application/json (got {kind!r})"
        )
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise RequestError(400, "bad_content_length", f"Content-Length {declared!r} is not a number")
    if declared is not None and int(declared) > max_body_bytes:
        if int(declared) <= DRAIN_FACTOR * max_body_bytes and "100-continue" not in request.headers.get("expect", ""):
            await _drain(request.receive, DRAIN_FACTOR * max_body_bytes)
        raise _too_large(int(declared), max_body_bytes)
    body = await _read_body(request.receive, max_body_bytes)
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(400, "malformed_json", f"the body is not JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno} (byte {exc.pos})") from None  # fmt: skip
    except UnicodeDecodeError as exc:
        raise RequestError(400, "malformed_json", f"the body is not UTF-8 text (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, a 5,000-digit number, nesting too deep
        raise RequestError(400, "malformed_json", f"the body is not accepted JSON: {str(exc)[:200]}") from None


async def _read_body(receive: Receive, cap: int) -> bytes:
    """The body as it arrives, refused (413) as soon as it passes ``cap`` bytes (chunked bodies have no length)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away
            raise RequestError(400, "client_disconnected", "the client closed the connection before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            if message.get("more_body", False):
                await _drain(receive, DRAIN_FACTOR * cap - size)
            raise _too_large(size, cap, streamed=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a refused body, up to ``budget`` bytes and DRAIN_SECONDS: a client that sends its
    whole body before reading the answer then reads the 413 instead of a reset connection. Beyond the budget the
    connection is closed unread."""
    with move_on_after(DRAIN_SECONDS):
        while budget > 0:
            message = await receive()
            budget -= len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return


def _too_large(size: int, cap: int, streamed: bool = False) -> RequestError:
    seen = f"more than {cap} bytes arrived" if streamed else f"Content-Length is {size} bytes"
    return RequestError(
        413, "body_too_large", f"request body too large: {seen}, at most {cap} are accepted; send several requests"
    )


def _check_fields(value: Any, allowed: frozenset[str], where: str, shape: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(422, "invalid_request", f"{where} must be a JSON object {shape}, not {_kind(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise RequestError(
            422,
            "invalid_request",
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(allowed))}",
        )
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _record_problem(record: Any, where: str) -> str | None:
    """Why a record (``{"text", "data_id"}``) cannot be scored, or None."""
    if not isinstance(record, dict):
        return f'{where} must be an object {{"text": ..., "data_id": ...}}, not {_kind(record)}'
    unknown = sorted(set(record) - RECORD_FIELDS)
    if unknown:
        return f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; known: text, data_id"
    if "text" not in record:
        return f"{where}: text is missing"
    if not isinstance(record["text"], str):
        return f"{where}: text is {_kind(record['text'])}, not a string"
    if not isinstance(record.get("data_id"), _ID_TYPES):
        return f"{where}: data_id is {_kind(record['data_id'])}; send a string, a number or null"
    return None


def _policy(payload: dict[str, Any]) -> str | None:
    policy = payload.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise RequestError(422, "invalid_request", f"policy is {_kind(policy)}; send a policy name or null")
    return policy or None


def parse_single(payload: Any) -> tuple[list[str], list[Any], str | None]:
    """(texts, data ids, policy) of a ``POST /score`` body; RequestError (422) when it has the wrong shape."""
    payload = _check_fields(payload, SINGLE_FIELDS, "the body", '{"text": ..., "data_id": ..., "policy": ...}')
    problem = _record_problem({k: v for k, v in payload.items() if k != "policy"}, "the body")
    if problem:
        raise RequestError(422, "invalid_request", problem)
    return [payload["text"]], [payload.get("data_id")], _policy(payload)


def parse_batch(payload: Any, max_records: int) -> tuple[list[str], list[Any], str | None]:
    """(texts, data ids, policy) of a ``POST /score/batch`` body; RequestError naming the records at fault."""
    payload = _check_fields(payload, BATCH_FIELDS, "the body", '{"records": [{"text": ..., "data_id": ...}, ...]}')
    records = payload.get("records")
    if not isinstance(records, list):
        shape = "missing" if "records" not in payload else _kind(records)
        raise RequestError(422, "invalid_request", f'records is {shape}; send an array of {{"text", "data_id"}}')
    if len(records) > max_records:
        raise RequestError(
            413,
            "too_many_records",
            f"{len(records)} records in one request; at most {max_records} are accepted, send several requests",
        )
    policy = _policy(payload)
    problems = [(i, p) for i, r in enumerate(records) if (p := _record_problem(r, f"record {i}")) is not None]
    if problems:
        more = f" and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise RequestError(
            422,
            "invalid_record",
            "nothing was scored: " + "; ".join(p for _, p in problems[:MAX_LISTED]) + more,
            records=[i for i, _ in problems],
        )
    return [r["text"] for r in records], [r.get("data_id") for r in records], policy


# ---------------------------------------------------------------------------------------------- the app
class _Service:
    """The endpoints around one loaded Scorer."""

    def __init__(self, scorer: Scorer, max_body_bytes: int, max_records: int, max_chars: int, inline: int) -> None:
        self.scorer = scorer
        self.max_body_bytes, self.max_records = max_body_bytes, max_records
        self.max_chars, self.inline = max_chars, inline
        self.limiter = CapacityLimiter(1)  # large requests are scored one at a time, off the event loop

    async def score(self, request: Request) -> Response:
        return await self._answer(request, lambda payload: parse_single(payload), single=True)

    async def score_batch(self, request: Request) -> Response:
        return await self._answer(request, lambda payload: parse_batch(payload, self.max_records), single=False)

    async def _answer(self, request: Request, parse: Callable[[Any], tuple[list[str], list[Any], str | None]],
                      single: bool) -> Response:  # fmt: skip
        try:
            texts, ids, policy = parse(await _read_json(request, self.max_body_bytes))
            total = sum(map(len, texts))
            if total > self.max_chars:
                raise RequestError(
                    413,
                    "too_many_characters",
                    f"{total} characters of text in one request; at most "
                    f"{self.max_chars} are accepted (all records together), send fewer or shorter records",
                )
            try:
                self.scorer.policy_thresholds(policy)
            except PolicyError as exc:
                raise RequestError(400, "unknown_policy", str(exc)) from None
            if total <= self.inline:
                body = self._scored(texts, ids, policy, single)
            else:
                body = await to_thread.run_sync(self._scored, texts, ids, policy, single, limiter=self.limiter)
            return Response(body, media_type="application/json")
        except RequestError as exc:
            return _error(exc)
        except Exception:
            logger.exception("duanka serve: %s %s failed", request.method, request.url.path)
            return _json({"error": "internal_error", "message": "the server failed on this request; it is logged"}, 500)

    def _scored(self, texts: list[str], ids: list[Any], policy: str | None, single: bool) -> bytes:
        results = [r.to_dict() for r in self.scorer.score_batch(texts, ids, policy=policy)]
        return _dumps(results[0] if single else {"results": results})

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        scorer = self.scorer
        return _json(
            {
                "ready": True,
                "model_version": scorer.model_version,
                "degraded": scorer.degraded,
                "degraded_cause": scorer.degraded_cause,
                "signed": scorer.signed,
                "policies": sorted(scorer.policies),
                "labels": list(scorer.labels),
                "limits": {
                    "max_body_bytes": self.max_body_bytes,
                    "max_records": self.max_records,
                    "max_request_chars": self.max_chars,
                },
            }
        )


def http_error_handler(endpoints: str) -> Any:
    """Starlette's handler for its own errors (unknown path, wrong method, a crash): JSON naming the endpoints."""

    async def handle(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        message = f"{request.method} {request.url.path}: {detail}; endpoints: {endpoints}"
        return _json({"error": code, "message": message}, status, getattr(exc, "headers", None))

    return handle


def create_app(
    scorer: Scorer,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_records: int = MAX_RECORDS,
    max_request_chars: int = MAX_REQUEST_CHARS,
    inline_chars: int = INLINE_CHARS,
) -> Starlette:
    """The ASGI app serving ``scorer`` (see the module docstring for the endpoints and errors).

    Args:
        scorer: a loaded Scorer (shared by the requests; it is immutable).
        max_body_bytes: request bodies over this many bytes are refused (413) before they are read whole.
        max_records, max_request_chars: the batch limits (413), as in the MLflow pyfunc.
        inline_chars: requests of at most this many characters are scored on the event loop, larger ones in a thread.
    """
    service = _Service(scorer, max_body_bytes, max_records, max_request_chars, inline_chars)
    routes = [
        Route("/score", service.score, methods=["POST"]),
        Route("/score/batch", service.score_batch, methods=["POST"]),
        Route("/health", service.health, methods=["GET"]),
        Route("/ready", service.ready, methods=["GET"]),
    ]
    handler = http_error_handler(ENDPOINTS)
    app = Starlette(routes=routes, exception_handlers={HTTPException: handler, 500: handler})
    app.state.scorer = scorer
    return app


# ---------------------------------------------------------------------------------------------- running
def load(model: str | Path, **options: Any) -> Scorer:
    """A Scorer for ``model``: an artifact directory (no MLflow imported) or an MLflow URI (resolved lazily)."""
    if is_model_uri(model):
        from duanka.adapters.serving import load_scorer  # imports MLflow: only for models:/ and runs:/ URIs

        return load_scorer(model, **options)
    return Scorer.load(model, **options)


def app_from_environment() -> Starlette:
    """uvicorn's factory in each worker process: the settings ``serve`` put in ``$DUANKA_SERVE_CONFIG``."""
    settings = json.loads(os.environ[CONFIG_ENV])
    scorer = Scorer.load(settings.pop("model"), **settings.pop("scorer_options"))
    app = create_app(scorer, **settings)
    gc.freeze()  # see serve()
    return app


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
    scorer_options: dict[str, Any] | None = None,
    **limits: Any,
) -> None:
    """Run ``duanka serve`` under uvicorn until it is stopped (Ctrl-C or SIGTERM: uvicorn shuts down gracefully).

    The model is loaded once here, so a bad path, URI or (with ``strict``) a bad artifact is an error before any
    port opens. With ``workers`` > 1 each worker process loads the artifact directory again (an MLflow URI is
    downloaded once, here, and the workers load that copy); uvicorn picks uvloop and httptools when installed.

    Raises:
        DuankaError: the model cannot be loaded (ArtifactError) or ``workers`` is below 1.
    """
    import tempfile

    import uvicorn

    if workers < 1:
        raise DuankaError(f"--workers {workers}: give at least 1")
    options = dict(scorer_options or {})
    common = {"host": host, "port": port, "access_log": access_log, "server_header": False, "log_level": "info"}
    if workers == 1:
        app = create_app(load(model, **options), **limits)
        gc.freeze()  # the loaded model is never garbage: keep the collector from scanning it (5 ms a full pass)
        uvicorn.run(app, **common)
        return
    with tempfile.TemporaryDirectory(prefix="duanka-serve-") as scratch:
        if is_model_uri(model):
            from duanka.adapters.serving import download_artifact_dir

            model = download_artifact_dir(str(model), scratch, options.pop("tracking_uri", None))
        Scorer.load(model, **options)  # fail here, once, rather than in every worker
        settings = {"model": str(model), "scorer_options": options, **limits}
        os.environ[CONFIG_ENV] = json.dumps(settings)
        uvicorn.run("duanka.adapters.http_app:app_from_environment", factory=True, workers=workers, **common)
