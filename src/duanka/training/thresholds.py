"""Choosing decision thresholds on validation risk, and the per-surface policies resolved from their targets.

A policy file is YAML (shipped: ``resources/policies.yaml``)::

    version: 1
    policies:
      default: {description: the training config's targets}
      sms: {block_precision: 0.995, review_recall: 0.95}
      comment: {review: 0.4, block_precision: 0.97}

Targets are resolved by :func:`resolve_policies` on out-of-fold validation risk with :func:`choose_thresholds`
(the one threshold chooser), and the resolved thresholds go into the artifact's manifest (``ModelInfo.policies``).
Scoring reads them back with :func:`duanka.scoring.policy.manifest_policies`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duanka.errors import PolicyError
from duanka.scoring.policy import DEFAULT_POLICY, NOTHING_BLOCKED
from duanka.text.lexicon import yaml_file

__all__ = [
    "Policy",
    "PolicySet",
    "choose_thresholds",
    "decision_rates",
    "rate_threshold",
    "resolve_policies",
    "thresholds_for_rates",
]

_TOP_KEYS = {"version", "policies"}
_POLICY_KEYS = {"description", "review", "block", "block_precision", "review_recall"}


def choose_thresholds(
    is_risky: np.ndarray, risk: np.ndarray, block_precision: float, review_recall: float
) -> dict[str, float]:
    """Decision thresholds on validation risk scores.

    ``block`` is the lowest risk from which on precision stays at least ``block_precision`` for every
    higher threshold (so one lucky point cannot set it); 1.0 + ε when no threshold reaches it, so
    nothing is blocked. ``review`` is the highest risk that keeps recall at least ``review_recall``,
    never above ``block``.

    Args:
        is_risky: true for rows labeled card_trading or recruitment_lure.
        risk: the model's out-of-fold risk per row.
        block_precision, review_recall: the targets.

    Returns:
        ``{"review": r, "block": b}``, rounded to 6 decimals.
    """
    is_risky = np.asarray(is_risky, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    candidates = np.unique(risk)[::-1]  # high to low
    block = NOTHING_BLOCKED
    for t in candidates:
        flagged = risk >= t
        if is_risky[flagged].mean() >= block_precision:
            block = float(t)
        else:
            break
    review = float(candidates[-1]) if len(candidates) else 0.5
    total = is_risky.sum()
    for t in candidates:
        if total and (is_risky & (risk >= t)).sum() / total >= review_recall:
            review = float(t)
            break
    review = min(review, block)
    # Rounded for the manifest, never past the chosen point: review rounds down (keeps its recall), block
    # rounds up (keeps its precision).
    rounded_review, rounded_block = round(review, 6), round(block, 6)
    if rounded_review > review:
        rounded_review = round(rounded_review - 1e-6, 6)
    if rounded_block < block:
        rounded_block = round(rounded_block + 1e-6, 6)
    return {"review": rounded_review, "block": rounded_block}


def decision_rates(is_risky: np.ndarray, risk: np.ndarray, thresholds: dict[str, float]) -> dict[str, float]:
    """What ``thresholds`` do on labeled rows.

    Returns:
        ``block_precision`` (risky share of blocked rows; 1.0 when nothing is blocked), ``review_recall``
        (share of risky rows at review or above), ``block_rate``/``review_rate`` (share of all rows
        blocked / sent to review), ``false_block_rate`` (share of normal rows blocked) and ``miss_rate``
        (share of risky rows passed).
    """
    is_risky = np.asarray(is_risky, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    blocked = risk >= thresholds["block"]
    flagged = risk >= thresholds["review"]
    risky, normal = int(is_risky.sum()), int((~is_risky).sum())
    rows = max(len(risk), 1)
    return {
        "block_precision": round(float(is_risky[blocked].mean()) if blocked.any() else 1.0, 6),
        "review_recall": round(float((is_risky & flagged).sum() / risky) if risky else 1.0, 6),
        "block_rate": round(float(blocked.sum() / rows), 6),
        "review_rate": round(float((flagged & ~blocked).sum() / rows), 6),
        "false_block_rate": round(float((blocked & ~is_risky).sum() / normal) if normal else 0.0, 6),
        "miss_rate": round(float((is_risky & ~flagged).sum() / risky) if risky else 0.0, 6),
    }


@dataclass(frozen=True)
class Policy:
    """One surface's decision rule: each threshold explicit or a target, or (``default``) the training targets."""

    name: str
    description: str = ""
    review: float | None = None
    block: float | None = None
    block_precision: float | None = None
    review_recall: float | None = None

    def rule(self) -> dict[str, float]:
        """The rule as written: the explicit thresholds and targets that were set."""
        values = {
            "review": self.review,
            "block": self.block,
            "block_precision": self.block_precision,
            "review_recall": self.review_recall,
        }
        return {k: v for k, v in values.items() if v is not None}

    def resolve(
        self, is_risky: np.ndarray, risk: np.ndarray, block_precision: float, review_recall: float
    ) -> dict[str, float]:
        """Thresholds on validation rows; unset targets fall back to ``block_precision``/``review_recall``."""
        chosen = choose_thresholds(
            is_risky,
            risk,
            self.block_precision if self.block_precision is not None else block_precision,
            self.review_recall if self.review_recall is not None else review_recall,
        )
        block = self.block if self.block is not None else chosen["block"]
        review = self.review if self.review is not None else min(chosen["review"], block)
        return {"review": round(float(review), 6), "block": round(float(block), 6)}


@dataclass
class PolicySet:
    """The policies of one file, by name; ``default`` is always present."""

    policies: dict[str, Policy]
    path: str = "<memory>"
    source_text: str = field(default="", repr=False)

    @property
    def names(self) -> list[str]:
        return sorted(self.policies)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PolicySet:
        """Read a policy file (default: the shipped ``resources/policies.yaml``).

        Raises:
            PolicyError: unreadable YAML, unknown keys, a threshold set twice, or values out of range;
                the message names the file and the policy.
        """
        data, text, where = yaml_file(path, "policies.yaml", PolicyError, "policy file")
        return cls.from_dict(data, where, text)

    @classmethod
    def from_dict(cls, data: Any, where: str = "<memory>", text: str = "") -> PolicySet:
        """Build and validate a PolicySet from the parsed YAML mapping."""
        if not isinstance(data, dict) or not isinstance(data.get("policies"), dict) or not data["policies"]:
            raise PolicyError(f"{where}: a policy file is a mapping with a non-empty `policies` mapping")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: version, policies")
        policies = {name: _policy(str(name), spec, where) for name, spec in data["policies"].items()}
        policies.setdefault(DEFAULT_POLICY, Policy(DEFAULT_POLICY, "the training config's targets"))
        return cls(policies, where, text)

    def get(self, name: str) -> Policy:
        if name not in self.policies:
            raise PolicyError(f"{self.path}: unknown policy {name!r}; known: {', '.join(self.names)}")
        return self.policies[name]


def _policy(name: str, spec: Any, where: str) -> Policy:
    here = f"{where}: policy {name!r}"
    spec = spec or {}
    if not isinstance(spec, dict):
        raise PolicyError(f"{here}: expected a mapping of {', '.join(sorted(_POLICY_KEYS))}")
    unknown = set(spec) - _POLICY_KEYS
    if unknown:
        raise PolicyError(
            f"{here}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_POLICY_KEYS))}"
        )
    values: dict[str, float] = {}
    for key in ("review", "block", "block_precision", "review_recall"):
        if spec.get(key) is None:
            continue
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PolicyError(f"{here}: {key} must be a number, not {value!r}")
        low_ok = value >= 0 if key in ("review", "block") else value > 0
        if not (low_ok and value <= 1):
            raise PolicyError(f"{here}: {key} must be in {'[0, 1]' if key in ('review', 'block') else '(0, 1]'}")
        values[key] = float(value)
    if name == DEFAULT_POLICY and values:
        raise PolicyError(
            f"{here}: `default` takes the training config's targets (block_precision, review_recall); "
            "set them in the training config, or name this policy differently"
        )
    for explicit, target in (("block", "block_precision"), ("review", "review_recall")):
        if explicit in values and target in values:
            raise PolicyError(f"{here}: give {explicit} or {target}, not both")
    if "review" in values and "block" in values and values["review"] > values["block"]:
        raise PolicyError(f"{here}: review {values['review']} is above block {values['block']}")
    return Policy(name, str(spec.get("description") or ""), **values)


def resolve_policies(
    policy_set: PolicySet,
    is_risky: np.ndarray,
    risk: np.ndarray,
    block_precision: float,
    review_recall: float,
) -> dict[str, dict[str, Any]]:
    """Every policy's thresholds on the validation rows, with the rule it came from and what it does there.

    Args:
        policy_set: the policies.
        is_risky, risk: validation labels (risky or not) and out-of-fold risk.
        block_precision, review_recall: the training config's targets (``default`` and unset targets).

    Returns:
        ``{name: {"review", "block", "description", "rule", "validation": decision_rates(...)}}``: the
        manifest's ``policies`` entry.
    """
    resolved = {}
    for name in policy_set.names:
        policy = policy_set.policies[name]
        thresholds = policy.resolve(is_risky, risk, block_precision, review_recall)
        resolved[name] = {
            **thresholds,
            "description": policy.description,
            "rule": policy.rule(),
            "validation": decision_rates(is_risky, risk, thresholds),
        }
    return resolved


def rate_threshold(risk: np.ndarray, rate: float) -> float:
    """The lowest risk at which at most ``rate`` of ``risk`` reaches the threshold (rounded up to 6 decimals, so
    rounding never lets one more row through); ``NOTHING_BLOCKED`` caps it."""
    ranked = np.sort(np.asarray(risk, dtype=float))[::-1]
    allowed = int(np.floor(rate * len(ranked)))  # rows that may reach the threshold
    if allowed >= len(ranked):
        return 0.0
    return min(float(np.ceil(np.nextafter(ranked[allowed], np.inf) * 1e6) / 1e6), NOTHING_BLOCKED)


def thresholds_for_rates(risk: np.ndarray, review_rate: float, block_rate: float) -> dict[str, float]:
    """Thresholds set on presumed-normal traffic: ``block`` (``review``) is the lowest risk at which at most
    ``block_rate`` (``review_rate``) of ``risk`` would be blocked (flagged); ``review`` never above ``block``.

    Args:
        risk: the risk decisions see (after the evidence gate) on the user's own ordinary traffic, out-of-fold.
        review_rate, block_rate: the shares of that traffic the platform accepts to review and to block.
    """
    block = rate_threshold(risk, block_rate)
    return {"review": min(rate_threshold(risk, review_rate), block), "block": block}
