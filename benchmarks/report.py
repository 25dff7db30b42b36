"""The benchmark's record: machine and library versions, ratios, the Markdown tables, the result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["environment", "markdown", "ratios", "write_results"]

BASELINES = ("duanka_scorer", "duanka_model")
_FASTTEXT_DISTRIBUTIONS = ("fasttext", "fasttext-numpy2-wheel", "fasttext-wheel")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(*distributions: str) -> str:
    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "not installed"


def _git_commit(root: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment(root: Path, pinned_cpu: int | None) -> dict[str, Any]:
    """The date, the machine and the library versions the figures were measured with."""
    import duanka

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": _cpu_model(),
            "cores": os.cpu_count(),
            "pinned_cpu": pinned_cpu,
            "platform": platform.platform(),
            "thread_limits": {
                k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            },
        },
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": _version("scikit-learn"),
            "numpy": _version("numpy"),
            "scipy": _version("scipy"),
            "jieba": _version("jieba"),
            "fasttext": _version(*_FASTTEXT_DISTRIBUTIONS),
            "duanka": duanka.__version__,
            "git_commit": _git_commit(root),
        },
    }


def ratios(contenders: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """duanka (scorer and model) against every other measured contender, so drift in machine speed cancels.

    ``throughput_ratio`` > 1 and ``p50_latency_ratio`` < 1 mean duanka is faster; ``macro_f1_diff_*`` > 0
    means duanka is more accurate.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for base in BASELINES:
        mine = contenders.get(base, {})
        if mine.get("status") != "ok":
            continue
        out[base] = {}
        for name, other in contenders.items():
            if name == base or other.get("status") != "ok":
                continue
            out[base][name] = {
                "throughput_ratio": mine["speed"]["posts_per_s"] / other["speed"]["posts_per_s"],
                "p50_latency_ratio": mine["latency"]["p50_ms"] / other["latency"]["p50_ms"],
                "macro_f1_diff_clean": _f1(mine, "clean") - _f1(other, "clean"),
                "macro_f1_diff_obfuscated": _f1(mine, "obfuscated") - _f1(other, "obfuscated"),
            }
    return out


def _f1(entry: dict[str, Any], which: str) -> float:
    return float(entry["quality"][which]["macro_f1"])


# ---------------------------------------------------------------------------------------------- Markdown
def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _quality_rows(contenders: dict[str, dict[str, Any]], which: str) -> list[list[str]]:
    rows = []
    for entry in contenders.values():
        if entry["status"] != "ok":
            rows.append([entry["title"], *([_skipped(entry)] + [""] * 6)])
            continue
        q = entry["quality"][which]
        rows.append(
            [entry["title"]]
            + [
                f"{q[key]:.3f}"
                for key in (
                    "macro_f1",
                    "card_trading_f1",
                    "recruitment_lure_f1",
                    "normal_f1",
                    "normal_fpr",
                    "card_trading_recall",
                    "recruitment_lure_recall",
                )
            ]
        )
    return rows


def _skipped(entry: dict[str, Any]) -> str:
    return f"*{entry['status']}: {entry.get('note', '')}*"


def _cost_rows(contenders: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in contenders.values():
        if entry["status"] != "ok":
            rows.append([entry["title"], _skipped(entry)] + [""] * 8)
            continue
        speed, lat, cold = entry["speed"], entry["latency"], entry["cold"]
        rows.append(
            [
                entry["title"],
                f"{speed['posts_per_s']:,.0f}",
                f"{lat['p50_ms']:.2f}",
                f"{lat['p99_ms']:.2f}",
                f"{entry['load_s']:.3f}",
                f"{cold['cold_start_s']:.2f}",
                f"{cold['peak_rss_mb']:.0f}",
                f"{entry['artifact_bytes'] / 1e6:.2f}",
                f"{entry['train_s']:.1f}",
                f"{entry['save_s']:.2f}",
            ]
        )
    return rows


def _ratio_rows(table: dict[str, dict[str, dict[str, float]]], titles: dict[str, str]) -> list[list[str]]:
    rows = []
    for base, others in table.items():
        for name, r in others.items():
            rows.append(
                [
                    f"{titles[base]} vs {titles[name]}",
                    f"{r['throughput_ratio']:.2f}×",
                    f"{r['p50_latency_ratio']:.2f}×",
                    f"{r['macro_f1_diff_clean']:+.3f}",
                    f"{r['macro_f1_diff_obfuscated']:+.3f}",
                ]
            )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The whole report as Markdown: context, quality on both holdouts, speed and cost, ratios, notes."""
    env, data, settings = result["environment"], result["data"], result["settings"]
    contenders = result["contenders"]
    machine, versions = env["machine"], env["versions"]
    lines = [
        "# duanka benchmark",
        "",
        f"- date: {env['date']}",
        f"- machine: {machine['cpu_model']}, {machine['cores']} cores; measured on one core "
        f"(cpu {machine['pinned_cpu']}, BLAS/OpenMP threads 1)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "- 1-minute load average at start, after training, after speed, after cold starts: "
        + ", ".join(f"{x:.2f}" for x in machine.get("load_average_1min", [])),
        f"- train: {data['train']['path']} ({data['train']['rows']} rows: {_counts(data['train'])})",
        f"- holdout: {data['holdout']['path']} ({data['holdout']['rows']} rows: {_counts(data['holdout'])}); "
        f"obfuscated copy: seed {settings['obfuscation_seed']}, "
        f"{data['holdout']['obfuscated_rows_changed']} rows rewritten",
        f"- repeats: {settings['repeats']}; single-post latency over {settings['latency_posts']} posts; "
        f"sample: {settings['sample'] or 'all rows'}; wall time {result.get('wall_s', 0):.0f} s",
        "",
    ]
    quality_header = [
        "contender",
        "macro-F1",
        "F1 card",
        "F1 lure",
        "F1 normal",
        "normal FPR",
        "recall card",
        "recall lure",
    ]
    sets = ["clean", "obfuscated"] + [k for k in data if k not in ("train", "holdout", "real", "stream")]
    for which in sets:
        heading = f"Quality, {which} holdout" if which in ("clean", "obfuscated") else f"Quality, {which}"
        lines += [f"## {heading}", "", *_table(quality_header, _quality_rows(contenders, which)), ""]
    lines += _real_ads_lines(contenders, data.get("stream"))
    lines += _real_lines(contenders, data.get("real", {}))
    cost_header = [
        "contender",
        "posts/s (batch)",
        "p50 ms",
        "p99 ms",
        "load s",
        "cold start s",
        "peak RSS MB",
        "artifact MB",
        "train s",
        "save s",
    ]
    lines += ["## Speed and cost (one core)", "", *_table(cost_header, _cost_rows(contenders)), ""]
    titles = {name: entry["title"] for name, entry in contenders.items()}
    ratio_rows = _ratio_rows(result["ratios"], titles)
    if ratio_rows:
        ratio_header = [
            "comparison",
            "throughput ratio",
            "p50 latency ratio",
            "Δ macro-F1 clean",
            "Δ macro-F1 obfuscated",
        ]
        lines += ["## duanka against the others", "", *_table(ratio_header, ratio_rows), ""]
    lines += _decision_lines(contenders)
    lines += ["## Notes", "", *[f"- {note}" for note in result["notes"]], ""]
    return "\n".join(lines)


def _real_lines(contenders: dict[str, dict[str, Any]], real: dict[str, Any]) -> list[str]:
    files = list(real.get("rows", {}))
    if not files:
        return []
    header = ["contender", *[f"{name.removesuffix('.csv')} risky / review / block" for name in files]]
    rows = []
    for entry in contenders.values():
        if entry["status"] != "ok" or "real" not in entry:
            continue
        cells = [entry["title"]]
        for name in files:
            r = entry["real"][name]
            parts = [f"{100 * r['risky']:.2f}%"] + [
                "-" if r[k] is None else f"{100 * r[k]:.2f}%" for k in ("review", "block")
            ]
            cells.append(" / ".join(parts) + (" (trained on)" if r.get("trained_on") else ""))
        rows.append(cells)
    counts = ", ".join(f"{name} {n:,}" for name, n in real["rows"].items())
    return [
        "## Real traffic (third-party texts, all presumed normal)",
        "",
        f"Share labelled risky / reviewed / blocked, per file of {real['folder']} ({counts} rows). Contenders",
        "without decisions show the labelled-risky share only. The 20 highest-risk rows of each file are in",
        "`real_top_rows.json` beside this report (git-ignored: third-party text).",
        "",
        *_table(header, rows),
        "",
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _real_ads_lines(contenders: dict[str, dict[str, Any]], stream: dict[str, Any] | None) -> list[str]:
    if not stream:
        return []
    lines = []
    for which, title in (
        ("all", "all labelled ads"),
        ("templates", "one ad per near-duplicate group"),
        ("half_b", "half B only"),
    ):
        rows = []
        for entry in contenders.values():
            curve = entry.get("real_ads", {}).get(which) if entry["status"] == "ok" else None
            if not curve:
                continue
            at = curve["recall_at_flag_rate"]
            rows.append(
                [
                    entry["title"],
                    *[_pct(at[k]["recall"]) for k in at],
                    _pct(curve["ads_labelled_risky"]),
                    _pct(curve.get("ads_flagged")),
                    _pct(curve.get("ads_blocked")),
                    f"{100 * curve['ordinary_labelled_risky']:.2f}%",
                    "-" if "ordinary_blocked" not in curve else f"{100 * curve['ordinary_blocked']:.3f}%",
                ]
            )
        if not rows:
            continue
        rates = list(
            next(e for e in contenders.values() if e.get("real_ads"))["real_ads"][which]["recall_at_flag_rate"]
        )
        header = ["contender", *[f"recall @ {r} flagged" for r in rates], "ads risky", "ads flagged", "ads blocked",
                  "ordinary risky", "ordinary blocked"]  # fmt: skip
        ads = {"all": stream["ads"], "templates": stream.get("ad_templates"), "half_b": stream["ads_half_b"]}[which]
        lines += [f"### Real underground ads: {title} ({ads} ads)", "", *_table(header, rows), ""]
    if not lines:
        return []
    own = []
    for entry in contenders.values():
        s = entry.get("real_ads", {}).get("stream_ordinary") if entry["status"] == "ok" else None
        if s:
            own.append([entry["title"], _pct(s["risky"]), _pct(s.get("flagged")), _pct(s.get("blocked"))])
    return [
        "## Real underground ads (the labelled stream)",
        "",
        f"`tg_stream.csv` ({stream['rows']:,} real chat rows) with the project's labels ({stream['labels']}, ids",
        f"only): {stream['ads']:,} ads of the trade, {stream['ordinary']:,} ordinary rows (other spam and chat,",
        "labelled normal or unlabelled). Recall at the risk threshold that flags the given share of all real",
        "ordinary text (the presumed-normal files plus the stream's ordinary rows); then the contender's own labels",
        "and decisions on the ads, and on the ordinary text. Half B is the half of the stream (split by",
        "near-duplicate group) that the half-A contender has not seen: every contender on the same unseen rows.",
        "",
        *lines,
        "Stream ordinary rows labelled risky / flagged / blocked:",
        "",
        *_table(["contender", "risky", "flagged", "blocked"], own),
        "",
    ]


def _decision_lines(contenders: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    keys = ("risky_flagged_recall", "risky_blocked_recall", "normal_flagged_rate", "normal_blocked_rate")
    for entry in contenders.values():
        for which, d in entry.get("decisions", {}).items():
            rows.append([entry["title"], which] + [f"{d[key]:.3f}" for key in keys])
    if not rows:
        return []
    header = ["contender", "holdout", "risky flagged (≠ pass)", "risky blocked", "normal flagged", "normal blocked"]
    return ["## Decisions of the Scorer-based contenders", "", *_table(header, rows), ""]


def _counts(data: dict[str, Any]) -> str:
    return ", ".join(f"{label} {count}" for label, count in data["labels"].items())


def write_results(result: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write ``latest.json`` and ``latest.md`` into ``output_dir``, each replaced atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "latest.json", output_dir / "latest.md"
    _replace(json_path, json.dumps(result, ensure_ascii=False, indent=2, allow_nan=False) + "\n")
    _replace(md_path, markdown(result))
    return json_path, md_path


def _replace(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def save_report(results: dict[str, Any], text: str, output_dir: Path, name: str) -> None:
    """Write ``<name>.json`` and ``<name>.md`` into ``output_dir`` and print the Markdown (the side benchmarks)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (output_dir / f"{name}.md").write_text(text, encoding="utf-8")
    print(text)
