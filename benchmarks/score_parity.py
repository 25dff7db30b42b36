"""Every field of every result on a fixed set of texts, to show that a change to loading changes no score.

``python -m benchmarks.score_parity dump ARTIFACT_DIR OUT.json`` scores the holdout files, the rule examples of
the artifact's rules snapshot, a few hundred training rows and generated edge cases (empty, padded, over-long,
NUL, lone surrogates, full-width) in a fresh process, one post at a time and then as one batch, and writes
``to_dict()`` of every result. ``python -m benchmarks.score_parity compare A.json B.json`` exits 1 and names the
first differing text when two dumps differ. Run ``dump`` before and after a change and compare.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
_TRAINING_ROWS = 400


def _column(path: Path, limit: int | None = None) -> list[str]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return texts[:limit] if limit is not None else texts


def _edge_cases() -> list[str]:
    ad = "出售银行卡 一类卡 加V：abc123 价格私聊"
    return [
        "",
        "   ",
        "\x00",
        ad,
        ad.replace(" ", "\u200b"),
        "😀" * 6000 + ad + "✨" * 6000,
        "哈" * 12_000 + ad,
        ad * 800,
        "ＶＸ：ａｂｃ１２３ 收卡 高价回收 ",
        "收\ud800卡 加微",
        "今天天气不错，出去走走。",
        "招聘 日结 300 一天 在家可做 无需经验 加QQ 12345678",
    ]


def texts_for(artifact: Path) -> list[str]:
    """The texts a dump scores: data files, the snapshot's rule examples, edge cases (in that order)."""
    import yaml

    texts = _column(REPO_ROOT / "data" / "holdout.csv") + _column(REPO_ROOT / "data" / "holdout_channel.csv")
    texts += _column(REPO_ROOT / "data" / "posts.csv", _TRAINING_ROWS)
    rules = yaml.safe_load((artifact / "rules.yaml").read_text(encoding="utf-8"))
    for rule in rules.get("rules", []):
        examples = rule.get("examples") or {}
        texts += list(examples.get("match") or []) + list(examples.get("no_match") or [])
    return texts + _edge_cases()


def dump(artifact: Path, out: Path) -> int:
    """Score :func:`texts_for` one by one and as one batch in this process; write every result's ``to_dict()``."""
    from duanka.scoring.scorer import Scorer

    texts = texts_for(artifact)
    scorer = Scorer.load(artifact, strict=True)
    single = [scorer.score(text, data_id=i).to_dict() for i, text in enumerate(texts)]
    batch = [result.to_dict() for result in scorer.score_batch(texts, list(range(len(texts))))]
    payload = {"texts": texts, "single": single, "batch": batch}
    out.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
    print(f"{len(texts)} texts scored twice (one by one, one batch) -> {out}")
    return 0


def compare(first: Path, second: Path) -> int:
    """0 when two dumps hold the same results for the same texts; else 1, naming the first difference."""
    a: dict[str, Any] = json.loads(first.read_text(encoding="utf-8"))
    b: dict[str, Any] = json.loads(second.read_text(encoding="utf-8"))
    if a["texts"] != b["texts"]:
        print(f"the dumps scored different texts ({len(a['texts'])} and {len(b['texts'])})")
        return 1
    for mode in ("single", "batch"):
        for i, (left, right) in enumerate(zip(a[mode], b[mode], strict=True)):
            if left != right:
                print(f"{mode} result {i} differs for {a['texts'][i][:80]!r}:\n  {left}\n  {right}")
                return 1
    print(f"identical: {len(a['texts'])} texts, one by one and in one batch")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``dump ARTIFACT_DIR OUT.json`` or ``compare A.json B.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ("dump", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "dump":
        return dump(Path(args[1]), Path(args[2]))
    return compare(Path(args[1]), Path(args[2]))


if __name__ == "__main__":
    raise SystemExit(main())
