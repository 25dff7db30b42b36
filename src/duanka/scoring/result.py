"""``ScoreResult``: the answer for one post, and its JSON form (``to_dict``), copied by its known shape for speed.

The model evidence of a result is computed lazily: the scorer stores a callable, and reading ``evidence`` (or
serializing) resolves it once. ``evidence`` stays a dataclass field, so ``dataclasses.asdict`` and the JSON are
unchanged (tests/test_scorer.py checks ``to_dict`` against ``dataclasses.asdict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from duanka.scoring.policy import DEFAULT_POLICY

__all__ = ["LazyEvidence", "ScoreResult"]


@dataclass
class ScoreResult:
    """The answer for one post; ``to_dict()`` gives its JSON form."""

    label: str
    probabilities: dict[str, float]
    risk: float
    decision: str
    source: str
    evidence: dict[str, list[dict[str, Any]]]
    model_version: str
    degraded: bool
    data_id: Any = None
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    policy: str = DEFAULT_POLICY

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: a deep copy of every field, in field order (what ``dataclasses.asdict`` gives)."""
        # field by field, each copied by its known type (tests/test_scorer.py checks it equals dataclasses.asdict)
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "risk": self.risk,
            "decision": self.decision,
            "source": self.source,
            "evidence": _copy_evidence(self.evidence),
            "model_version": self.model_version,
            "degraded": self.degraded,
            "data_id": _json_copy(self.data_id),
            "truncated": self.truncated,
            "notes": list(self.notes),
            "policy": self.policy,
        }


class LazyEvidence:
    """The model evidence of one post, computed when the result's evidence is first read or serialized."""

    __slots__ = ("args", "compute")

    def __init__(self, compute: Any, *args: Any) -> None:
        self.compute = compute
        self.args = args

    def __call__(self) -> list[dict[str, Any]]:
        return self.compute(*self.args)


def _get_evidence(result: ScoreResult) -> dict[str, list[dict[str, Any]]]:
    evidence = result.__dict__["_evidence"]
    model = evidence.get("model")
    if isinstance(model, LazyEvidence):
        evidence["model"] = model()
    return evidence


def _set_evidence(result: ScoreResult, evidence: dict[str, list[dict[str, Any]]]) -> None:
    result.__dict__["_evidence"] = evidence


# ``evidence`` stays a dataclass field (same fields, same JSON); reading it resolves lazy model evidence.
ScoreResult.evidence = property(_get_evidence, _set_evidence)  # type: ignore[assignment]
_ATOMS = frozenset({str, int, float, bool, type(None)})


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (what ``dataclasses.asdict`` gives for these fields, faster)."""
    if type(value) in _ATOMS:  # most values: nothing to copy (exact types; subclasses take the checks below)
        return value
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_json_copy(v) for v in value)
    return value


def _copy_item(item: dict[str, Any]) -> dict[str, Any]:
    copy = {**item}
    for key, value in copy.items():
        if type(value) not in _ATOMS:  # a rule hit's list of flat match dicts, or anything a caller put there
            if type(value) is list:
                copy[key] = [{**m} if type(m) is dict else _json_copy(m) for m in value]
            else:
                copy[key] = _json_copy(value)
    return copy


def _copy_evidence(evidence: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    # Evidence items are flat dicts of JSON atoms, but for a rule hit's list of flat match dicts: copied by that
    # shape, a fraction of the generic recursion's cost, same value (tests/test_scorer.py compares the JSON).
    return {kind: [_copy_item(item) for item in items] for kind, items in evidence.items()}
