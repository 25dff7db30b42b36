"""Decision policies as scoring reads them: the thresholds of each surface, checked, and the one decision rule.

Thresholds are chosen at training time (:mod:`duanka.training.thresholds`) and stored in the artifact's manifest
(``ModelInfo.policies``); scoring reads them back with :func:`manifest_policies` and decides with :func:`decide`.
"""

from __future__ import annotations

from typing import Any

from duanka.errors import ArtifactError

__all__ = ["DEFAULT_POLICY", "NOTHING_BLOCKED", "checked_thresholds", "decide", "manifest_policies"]

DEFAULT_POLICY = "default"
NOTHING_BLOCKED = 1.000001  # a block threshold above every risk


def checked_thresholds(value: Any, where: str, error: type[Exception] = ArtifactError) -> dict[str, float]:
    """``{"review": r, "block": b}`` as floats, with ``0 <= r <= b <= NOTHING_BLOCKED`` (the one bounds check).

    Raises:
        error: not two numbers, or out of order or range; the message starts with ``where``.
    """
    try:
        review, block = float(value["review"]), float(value["block"])
    except (KeyError, TypeError, ValueError):
        raise error(f"{where}: {value!r} are not review/block numbers") from None
    if not 0.0 <= review <= block <= NOTHING_BLOCKED:
        raise error(f"{where}: {value!r} need 0 <= review <= block <= 1")
    return {"review": review, "block": block}


def decide(risk: float, thresholds: dict[str, float]) -> str:
    """``block`` at or above the block threshold, ``review`` at or above the review threshold, else ``pass``."""
    if risk >= thresholds["block"]:
        return "block"
    if risk >= thresholds["review"]:
        return "review"
    return "pass"


def manifest_policies(manifest: dict[str, Any], default: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{name: {"review", "block"}}`` from a manifest's ``policies`` (``default`` = ``default`` thresholds).

    Artifacts written before policies existed have only ``default``.

    Raises:
        ArtifactError: a policy entry without review/block numbers in order.
    """
    policies = {DEFAULT_POLICY: dict(default)}
    for name, entry in (manifest.get("policies") or {}).items():
        thresholds = checked_thresholds(entry, f"manifest policy {name!r}")
        if name != DEFAULT_POLICY:
            policies[name] = thresholds
    return policies
