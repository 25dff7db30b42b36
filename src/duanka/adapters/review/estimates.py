"""What a reviewed queue's random sample says about live traffic: false-block and miss rates, Wilson intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from duanka.intervals import wilson_interval
from duanka.labels import LABELS, RISKY_LABELS
from duanka.scoring.policy import DEFAULT_POLICY

__all__ = ["RateEstimate", "estimate_rates", "review_summary", "wilson_interval"]


@dataclass
class RateEstimate:
    """One rate, estimated from one stratum of the random sample."""

    policy: str
    rate: str  # "false_block" (blocked posts that are normal) or "miss" (passed posts that are risky)
    stratum: str
    stratum_size: int
    drawn: int
    labeled: int
    errors: int
    estimate: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        what = (
            "false-block rate (blocked posts that are normal)"
            if self.rate == "false_block"
            else ("miss rate (passed posts that are risky)")
        )
        if self.estimate is None:
            return f"  {what}: no labeled random rows in {self.stratum}"
        posts = f"≈ {self.estimate * self.stratum_size:,.0f} ({self.low * self.stratum_size:,.0f}–" + (
            f"{self.high * self.stratum_size:,.0f}) of {self.stratum_size:,} posts"
        )
        unlabeled = f"; {self.drawn - self.labeled} drawn but unlabeled" if self.labeled < self.drawn else ""
        return (
            f"  {what}: {self.errors}/{self.labeled} = {self.estimate:.1%} "
            f"(95% Wilson {self.low:.1%}–{self.high:.1%}) {posts}{unlabeled}"
        )


def estimate_rates(reviews: pd.DataFrame) -> dict[str, list[RateEstimate]]:
    """False-block and miss rates per policy from the random part of a labeled queue.

    Within a stratum (one policy's ``block`` or ``pass`` posts) every post was equally likely to be drawn,
    so the share of drawn posts labeled wrong estimates the stratum's rate; a row stands for
    ``sample_count`` drawn posts (near-duplicates drawn together). Rows chosen for review or uncertainty
    are not a sample of anything and are left out.

    Returns:
        ``{policy: [false_block estimate, miss estimate]}`` for every policy with a random stratum.
    """
    random_rows = reviews[reviews["stratum"].astype(str).str.contains("/")]
    estimates: dict[str, list[RateEstimate]] = {}
    for stratum, rows in random_rows.groupby(random_rows["stratum"].astype(str), sort=True):
        policy, decision = stratum.rsplit("/", 1)
        if decision not in ("block", "pass"):
            continue
        counts = pd.to_numeric(rows["sample_count"], errors="coerce").fillna(1).astype(int)
        labeled = rows["review_label"].isin(LABELS)
        wrong = rows["review_label"] == "normal" if decision == "block" else rows["review_label"].isin(RISKY_LABELS)
        n, k = int(counts[labeled].sum()), int(counts[wrong].sum())
        low, high = wilson_interval(k, n) if n else (None, None)
        estimates.setdefault(policy, []).append(
            RateEstimate(
                policy=policy,
                rate="false_block" if decision == "block" else "miss",
                stratum=stratum,
                stratum_size=int(pd.to_numeric(rows["stratum_size"], errors="coerce").max()),
                drawn=int(pd.to_numeric(rows["stratum_sampled"], errors="coerce").max()),
                labeled=n,
                errors=k,
                estimate=k / n if n else None,
                low=low,
                high=high,
            )
        )
    return {policy: sorted(found, key=lambda e: e.rate) for policy, found in estimates.items()}


def review_summary(reviews: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per policy: queue rows, labeled rows, and how the labeled ``review`` rows turned out (a census, not a sample)."""
    summary: dict[str, dict[str, int]] = {}
    for policy, rows in reviews.groupby(reviews["policy"].astype(str).replace("", DEFAULT_POLICY), sort=True):
        labeled = rows[rows["review_label"].isin(LABELS)]
        in_review = labeled[labeled["reason"].astype(str).str.startswith("review")]
        summary[policy] = {
            "rows": len(rows),
            "labeled": len(labeled),
            "review_rows_labeled": len(in_review),
            "review_rows_risky": int(in_review["review_label"].isin(RISKY_LABELS).sum()),
        }
    return summary
