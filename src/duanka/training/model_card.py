"""The model card (``MODEL_CARD.md``) every artifact carries: intended use, labels and the card/lure rule, training
data and its counts, evaluation figures, thresholds and policies, known limits, and real-traffic figures when the
caller measured them.

Generated from a :class:`~duanka.training.workflow.TrainRun` at training; the same text becomes the registered model
version's description in MLflow (``duanka.adapters.tracking``). Everything in it comes from the run (the manifest's
figures, the data it read); the prose sections are fixed text, kept in step with ``data/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duanka._version import __version__
from duanka.labels import LABELS
from duanka.scoring.limits import MAX_RECORDS, MAX_REQUEST_CHARS
from duanka.scoring.scorer import MAX_CHARS, MAX_INPUT_CHARS

__all__ = ["MODEL_CARD", "model_card"]

MODEL_CARD = "MODEL_CARD.md"

INTENDED_USE = """\
Moderation triage of Chinese (and code-mixed) posts, chat, comments, listings and SMS for the illegal trade in
phone cards, numbers, SMS codes, accounts and bank cards, and the job lures that recruit people into it (断卡). Each
post gets a label, a risk in [0, 1] and a decision (`pass`, `review`, `block`) under a policy per surface. Not for
decisions about people (one post is read, not an account's history), legal evidence, or other languages."""

LABEL_ROWS = {
    "card_trading": "a one-off purchase or sale of cards, numbers, codes or accounts at a price per item, whoever "
    "the ad addresses",
    "recruitment_lure": "renting one out for a time, operating one for someone (上号, 跑分), opening one to order, "
    "or such an offer framed as a job",
    "normal": "everything else, also warnings, news and court reports quoting the trade's words, genuine jobs, "
    "SIM and bank talk",
}

CARD_LURE_RULE = """\
**The card/lure rule** (data/README.md, 2026-12-06): the line is the transaction, not who reads the ad. A one-off
sale at a price per item is `card_trading`; time-limited use, operation, opening to order or a job framing is
`recruitment_lure`. A post that quotes the trade's words to warn, report or ask is `normal`."""

KNOWN_LIMITS = f"""\
- Trained on hand-written and augmented posts, about half of them risky: where far under 1% of posts are, precision
  is much lower. Set thresholds on your own traffic (`--background`) and measure it labelled before blocking.
- New slang, spellings and kinds of ads lower recall until they are labelled and trained on (`duanka monitor`).
- Most often wrong: terse one-liners, other spam (contact lines, get-rich 项目 ads) labelled risky; short dealer
  jargon in new spellings missed. One post at a time: no account, image, link or conversation is seen.
- A text is read up to {MAX_INPUT_CHARS:,} characters, scored on at most {MAX_CHARS:,} normalized ones
  (`truncated: true`); a served request holds at most {MAX_RECORDS:,} records and {MAX_REQUEST_CHARS:,} characters.
- A damaged artifact loaded non-strictly leaves the far weaker rules alone (`degraded: true`)."""

# (column title, key in Metrics.to_dict()); rows of the evaluation table.
EVALUATION_COLUMNS = (
    ("rows", "rows"),
    ("macro-F1", "macro_f1"),
    *((f"F1 {label}", f"{label}_f1") for label in LABELS),
    ("normal FPR", "normal_fpr"),
    ("risk ROC-AUC", "risk_roc_auc"),
    ("recall @ precision 0.99", "risk_recall_at_p99"),
    ("review: precision / recall", ("review_precision", "review_recall")),
    ("block: precision / recall", ("block_precision", "block_recall")),
)


def model_card(run: Any, real_traffic: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The model card of ``run`` as Markdown.

    Args:
        run: the :class:`~duanka.training.workflow.TrainRun` (typed ``Any``: workflow imports this module).
        real_traffic: figures measured on real traffic for this model, by what was measured on (a file, a surface)
            then by figure name (``{"tg_stream.csv": {"rows": 17604, "recall": 0.883}}``); omitted when None.
    """
    info = run.info
    sections = [
        _header(run),
        "## Intended use\n\n" + INTENDED_USE,
        "## Labels\n\n"
        + _table(["label", "what it is"], [[f"`{k}`", LABEL_ROWS[k]] for k in LABELS])
        + "\n\n"
        + CARD_LURE_RULE,
        "## Training data\n\n" + _training_data(run),
        "## Evaluation\n\n" + _evaluation(info.metrics),
        "## Thresholds and policies\n\n" + _policies(info.thresholds, info.policies or {}),
        "## Real traffic\n\n" + _real_traffic(real_traffic),
        "## Known limits\n\n" + KNOWN_LIMITS,
    ]
    return "\n\n".join(sections) + "\n"


def _header(run: Any) -> str:
    info = run.info
    rows = [
        ["model_version", f"`{info.model_version}`"],
        ["MLflow run", f"`{info.mlflow_run_id}`" if info.mlflow_run_id else "(not tracked)"],
        ["duanka", __version__],
        ["C / prior weight on normal / seed", f"{info.C:g} / {info.normal_weight:g} / {info.seed}"],
        ["engine", run.result.config.engine],
    ]
    return (
        f"# Model card: duanka {info.model_version}\n\n"
        "Generated at training from the run (its data and the manifest's figures); also the registered model "
        "version's description in MLflow.\n\n" + _table(["", ""], rows)
    )


def _training_data(run: Any) -> str:
    """One row per training file: its digest, rows and rows per label; then background and holdout."""
    import pandas as pd

    from duanka.files.readers import sha256_file

    frame = run.data_frame
    lines = []
    for path in run.data_files or [None]:
        rows = frame if path is None else frame[frame["_file"] == str(path)]
        counts = rows["label"].value_counts() if len(rows) else pd.Series(dtype=int)
        name = "(in-memory frame)" if path is None else f"`{Path(path).name}`"
        digest = "" if path is None else f"`{sha256_file(path)[:12]}`"
        feedback = int((rows["source"] == "feedback").sum()) if "source" in rows else 0
        held = [f"{int(counts.get(label, 0)):,}" for label in LABELS] if len(rows) else ["(not held)"] * len(LABELS)
        lines.append([name, digest, f"{len(rows):,}" if len(rows) else "(streamed)", *held, f"{feedback:,}"])
    text = _table(["file", "sha256", "rows", *LABELS, "of them feedback"], lines)
    text += f"\n\nRows the final model was fitted on (before augmented copies): {run.info.training_rows:,}."
    if run.background_files:
        names = ", ".join(f"`{Path(p).name}`" for p in run.background_files)
        text += f" Background traffic, presumed normal: {run.info.background_rows:,} rows from {names}."
    if run.holdout_frame is not None and run.holdout_file is not None:
        counts = run.holdout_frame["label"].value_counts()
        per_label = ", ".join(f"{label} {int(counts.get(label, 0)):,}" for label in LABELS)
        text += (
            f" Holdout (never fitted on, nor used to choose C or thresholds): `{Path(run.holdout_file).name}` "
            f"(`{sha256_file(run.holdout_file)[:12]}`), {len(run.holdout_frame):,} rows: {per_label}."
        )
    return text


def _evaluation(metrics: Mapping[str, Any]) -> str:
    names = {"validation": "validation (out-of-fold)", "holdout": "holdout"}
    rows = []
    for key, title in names.items():
        values = metrics.get(key)
        if values:
            rows.append([title, *(_figure(values, column) for _, column in EVALUATION_COLUMNS)])
    if not rows:
        return "No evaluation figures were recorded."
    text = _table(["on", *(title for title, _ in EVALUATION_COLUMNS)], rows)
    shares = [
        f"{key} {1 - values['normal_support'] / values['rows']:.0%}"
        for key, values in ((k, metrics.get(k)) for k in names)
        if values and values.get("rows") and values.get("normal_support") is not None
    ]
    return text + (
        "\n\nReview and block: the default policy's thresholds. Risky share of the rows: "
        + (", ".join(shares) or "unknown")
        + "; precision on traffic with fewer risky posts is lower (Known limits)."
    )


def _figure(values: Mapping[str, Any], key: str | tuple[str, ...]) -> str:
    keys = (key,) if isinstance(key, str) else key
    shown = []
    for name in keys:
        value = values.get(name)
        if value is None:
            shown.append("–")
        elif name == "rows":
            shown.append(f"{int(value):,}")
        else:
            shown.append(f"{float(value):.4f}")
    return " / ".join(shown)


def _policies(thresholds: Mapping[str, float], policies: Mapping[str, Mapping[str, Any]]) -> str:
    text = (
        f"Default thresholds on risk: review {thresholds['review']:.4f}, block {thresholds['block']:.4f}. Each "
        "policy's were chosen on the validation rows (out-of-fold) by its rule.\n\n"
    )
    shown = ("block_precision", "review_recall", "block_rate", "review_rate")  # keys of the policy's validation
    rows = []
    for name, policy in policies.items():
        rule = ", ".join(f"{k} {v:g}" for k, v in (policy.get("rule") or {}).items()) or "the training config's"
        seen = policy.get("validation") or {}
        rows.append(
            [
                f"`{name}`",
                f"{policy['review']:.4f} / {policy['block']:.4f}",
                rule,
                " / ".join(_plain(seen.get(key)) for key in shown),
            ]
        )
    header = ["policy", "review / block", "rule", "validation: block precision / review recall / block / review rate"]
    return text + _table(header, rows) + "\n\nWhat each policy is for: `policies.json` of the run, the policy file."


def _real_traffic(real_traffic: Mapping[str, Mapping[str, Any]] | None) -> str:
    if not real_traffic:
        return "Not measured for this model version (the shipped model's are in the README, Measured quality)."
    columns = list(dict.fromkeys(key for figures in real_traffic.values() for key in figures))
    rows = [[name, *(_plain(figures.get(key)) for key in columns)] for name, figures in real_traffic.items()]
    return "Measured on real traffic for this model version:\n\n" + _table(["on", *columns], rows)


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"

    return "\n".join([line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)])
