"""``duanka monitor`` on real text, and its speed and memory at scale: ``python -m benchmarks.monitor_bench``.

Real text (``../shared/real``, when present; nothing here is copied into the project):

* **Surface A, chat** (``tg_stream.csv``, shuffled by its source): cut into four windows of equal size. Random
  windows of one stream: the monitor should stay ``ok``; anything else is a false alarm. A fifth window repeats
  the fourth with an evasion wave injected (half of its flagged posts rewritten by
  ``duanka.training.augment.obfuscate``: separators, near-forms, pinyin), which the monitor should call.
* **Surface B, public posts** (``weibo_posts.csv``, ``news_titles.csv``, ``antifraud_articles.csv``,
  ``job_ads.csv``): a window each (at most 5,000 rows, a seeded sample), in that order: every step changes the
  kind of text, the drift a platform sees when a new audience arrives.

Scale: a scored JSONL of N rows (the chat stream's scored lines with their text, repeated with new ids) is read by
``duanka monitor`` in a fresh process pinned to one core under ``/usr/bin/time -v``, at 100,000 and 1,000,000
rows: rows/s and peak RSS (flat memory is the claim). The HTML and JSON reports go to
``benchmarks/results/monitor_reports/`` (not committed: they quote real posts); the figures, verdicts and top
slang terms go to ``benchmarks/results/monitor.md``/``.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import save_report

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL = REPO_ROOT.parent / "shared" / "real"
RESULTS = REPO_ROOT / "benchmarks" / "results"
REPORTS = RESULTS / "monitor_reports"
MODEL = REPO_ROOT / "models" / "duanka"
SURFACE_B = ("weibo_posts.csv", "news_titles.csv", "antifraud_articles.csv", "job_ads.csv")
WINDOW_CAP = 5_000
SEED = 11


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write_posts(rows: list[dict[str, str]], path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows((row["id"], row["text"]) for row in rows)
    return path


def _score(posts: Path, output: Path) -> Path:
    command = [sys.executable, "-m", "duanka.cli", "score", "--model", str(MODEL), "--input", str(posts)]
    subprocess.run([*command, "--output", str(output), "--keep", "text", "--quiet"], check=True)
    return output


def _monitor(inputs: list[Path], name: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    REPORTS.mkdir(parents=True, exist_ok=True)
    html, js = REPORTS / f"{name}.html", REPORTS / f"{name}.json"
    command = [sys.executable, "-m", "duanka.cli", "monitor", *map(str, inputs), "--model", str(MODEL)]
    subprocess.run([*command, "--html", str(html), "--json", str(js), *extra], check=True, capture_output=True)
    return json.loads(js.read_text(encoding="utf-8"))


def _evasion_wave(rows: list[dict[str, str]], flagged: set[str]) -> list[dict[str, str]]:
    from duanka.training.augment import obfuscate

    rng = random.Random(SEED)
    return [
        {**row, "id": row["id"] + "-w", "text": obfuscate(row["text"], rng)}
        if row["id"] in flagged and rng.random() < 0.5
        else {**row, "id": row["id"] + "-w"}
        for row in rows
    ]


def surface_a(work: Path) -> dict[str, Any]:
    rows = _rows(REAL / "tg_stream.csv")
    size = len(rows) // 4
    scored = []
    for k in range(4):
        posts = _write_posts(rows[k * size : (k + 1) * size], work / f"chat{k + 1}.csv")
        scored.append(_score(posts, work / f"chat{k + 1}.jsonl"))
    flagged = {
        line["id"]
        for line in map(json.loads, scored[3].read_text(encoding="utf-8").splitlines())
        if line.get("decision") in ("review", "block")
    }
    wave = _write_posts(_evasion_wave(rows[3 * size : 4 * size], flagged), work / "chat4_evasion_wave.csv")
    scored.append(_score(wave, work / "chat4_evasion_wave.jsonl"))
    return _monitor(scored, "surface_a_chat")


def surface_b(work: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    scored = []
    for name in SURFACE_B:
        rows = _rows(REAL / name)
        rows = rng.sample(rows, min(WINDOW_CAP, len(rows)))
        rows = [{"id": f"{Path(name).stem}{k}", "text": row["text"]} for k, row in enumerate(rows)]
        stem = Path(name).stem
        scored.append(_score(_write_posts(rows, work / f"{stem}.csv"), work / f"{stem}.jsonl"))
    return _monitor(scored, "surface_b_public")


def _big_file(source: Path, rows: int, path: Path) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines()
    with open(path, "w", encoding="utf-8") as handle:
        for k in range(rows):
            line = json.loads(lines[k % len(lines)])
            line["id"] = f"{line['id']}-{k // len(lines)}"
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def scale(work: Path, sizes: list[int]) -> list[dict[str, Any]]:
    source = work / "chat_all.jsonl"
    _score(_write_posts(_rows(REAL / "tg_stream.csv"), work / "chat_all.csv"), source)
    measured = []
    for rows in sizes:
        data = _big_file(source, rows, work / f"big{rows}.jsonl")
        html, js = work / f"big{rows}.html", work / f"big{rows}.json"
        command = ["/usr/bin/time", "-v", "taskset", "-c", "1", sys.executable, "-m", "duanka.cli", "monitor"]
        command += [str(data), "--model", str(MODEL), "--html", str(html), "--json", str(js)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
        report = json.loads(js.read_text(encoding="utf-8"))
        measured.append(
            {
                "rows": rows,
                "file_mb": round(data.stat().st_size / 2**20),
                "wall_s": round(wall, 2),
                "rows_per_s": round(rows / wall),
                "peak_rss_mb": round(peak),
                "text_rate": report["windows"][0]["text_rate"],
                "posts_read_for_text": report["windows"][0]["input"]["posts_read"],
            }
        )
        data.unlink()
    return measured


def _window_line(window: dict[str, Any]) -> str:
    default = window["rates"].get("default", {})
    flagged = sum(default.get(d, {}).get("share", 0) for d in ("review", "block"))
    steps = window["input"]["steps"]
    psi = window["risk"].get("default", {}).get("psi_previous")
    slang = ", ".join(e["term"] for e in window["slang"][:5]) or "-"
    return (
        f"| {window['name']} | {window['rows']:,} | {window['verdict']} | {flagged:.2%} | "
        f"{default.get('block', {}).get('share', 0):.2%} | {'-' if psi is None else f'{psi:.3f}'} | "
        f"{steps['near_form']['share']:.1%} / {steps['separator']['share']:.1%} | "
        f"{window['input']['oov_words']:.1%} | {slang} |"
    )


def _reasons(report: dict[str, Any]) -> list[str]:
    return [f"- {w['name']}: {'; '.join(w['reasons']) or 'nothing moved'}" for w in report["windows"]]


def _without_examples(report: dict[str, Any]) -> dict[str, Any]:
    for window in report["windows"]:
        for entry in window["slang"]:
            entry.pop("examples", None)
    return report


def markdown(results: dict[str, Any]) -> str:
    head = (
        "| window | posts | verdict | flagged | blocked | risk PSI vs previous | near-form / separator posts | "
        "OOV words | top new slang |\n|---|---:|---|---:|---:|---:|---:|---:|---|"
    )
    parts = [f"# duanka monitor on real text ({results['date']})\n"]
    for key, title in (("surface_a", "Surface A: chat stream"), ("surface_b", "Surface B: public posts")):
        if key in results:
            report = results[key]
            parts += [f"## {title}\n", head, *map(_window_line, report["windows"]), "", *_reasons(report), ""]
    if results.get("scale"):
        parts += ["## Scale (one core, fresh process)\n", "| rows | file | wall | rows/s | peak RSS | text read |"]
        parts += ["|---:|---:|---:|---:|---:|---:|"]
        for m in results["scale"]:
            parts.append(
                f"| {m['rows']:,} | {m['file_mb']} MB | {m['wall_s']} s | {m['rows_per_s']:,} | {m['peak_rss_mb']} MB "
                f"| {m['posts_read_for_text']:,} (rate {m['text_rate']}) |"
            )
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args(argv)
    if not (REAL / "tg_stream.csv").is_file():
        print(f"no real text at {REAL}: nothing to measure (the monitor's own tests do not need it)")
        return 0
    if not (MODEL / "manifest.json").is_file():
        print(f"no model at {MODEL}: run `make train` first")
        return 1
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "model": str(MODEL)}
    previous = RESULTS / "monitor.json"
    if previous.is_file():  # a partial run (--skip-real, --sizes) keeps the other part of the last results
        results = {**json.loads(previous.read_text(encoding="utf-8")), **results}
    with tempfile.TemporaryDirectory(prefix="duanka-monitor-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_real:
            results["surface_a"] = _without_examples(surface_a(work))
            results["surface_b"] = _without_examples(surface_b(work))
        if args.sizes:
            results["scale"] = scale(work, args.sizes)
    save_report(results, markdown(results), RESULTS, "monitor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
