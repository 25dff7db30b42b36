"""The review loop's file schemas: the columns of a queue, of a reviewer's answer and of the feedback file."""

from __future__ import annotations

__all__ = ["FEEDBACK_COLUMNS", "QUEUE_COLUMNS", "REVIEWER_COLUMNS"]

# What a queue row holds; the reviewer fills the last four.
QUEUE_COLUMNS = (
    "queue_id",
    "text",
    "reason",
    "policy",
    "decision",
    "model_label",
    "risk",
    "group_size",
    "evidence",
    "disagreement",
    "id",
    "row",
    "model_version",
    "stratum",
    "stratum_size",
    "stratum_sampled",
    "sample_count",
    "sample_weight",
    "sample_seed",
    "review_label",
    "reviewer",
    "review_date",
    "review_note",
)
REVIEWER_COLUMNS = ("review_label", "reviewer", "review_date", "review_note")
FEEDBACK_COLUMNS = (
    "id",
    "text",
    "label",
    "group",
    "source",
    "review_date",
    "reviewer",
    "model_version",
    "policy",
    "model_decision",
    "model_label",
    "risk",
    "queue_id",
    "reviewed_file",
    "post_id",
    "provenance",
)
