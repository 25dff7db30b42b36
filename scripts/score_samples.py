"""The end of `make run`: five sample posts through the model just trained, as a table, and what to try next."""

from __future__ import annotations

import sys
import unicodedata

from duanka import Scorer

SAMPLES = (
    "收*咔 加薇，长期高价收，秒结",
    "兼职日结，只需身份证，帮忙实名认证一次两百",
    "警方提醒：高价收卡是诈骗分子的惯用话术，切勿出售银行卡",
    "周末日结发传单，一百一天，包午饭",
    "移动营业厅可以补卡吗，手机丢了",
)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def main(model: str = "models/duanka") -> int:
    scorer = Scorer.load(model)
    results = scorer.score_batch(list(SAMPLES))
    column = max(_width(text) for text in SAMPLES)
    degraded = f" (DEGRADED, rules only: {scorer.degraded_cause})" if scorer.degraded else ""
    print(f"\nmodel {scorer.model_version} from {model}{degraded}")
    print(f"{'post'.ljust(column)}  {'label':<17} {'risk':>6}  decision")
    for text, result in zip(SAMPLES, results):
        print(f"{text}{' ' * (column - _width(text))}  {result.label:<17} {result.risk:6.3f}  {result.decision}")
    print(
        "\nnext:\n"
        "  make ui                                        # the run in MLflow (http://127.0.0.1:5000)\n"
        '  .venv/bin/duanka score "你的帖子"                  # one post, with its evidence\n'
        "  .venv/bin/duanka score --input posts.csv --keep text --output scored.jsonl   # a file\n"
        "  .venv/bin/duanka review export --input scored.jsonl --output queue.csv --budget 300   # a review queue\n"
        "  .venv/bin/duanka monitor scored.jsonl --html monitor.html   # rates, drift and new slang, a window a file\n"
        "  .venv/bin/duanka serve --port 8000                 # HTTP: POST /score, /score/batch\n"
        '  .venv/bin/mlflow models serve -m "models:/duanka@champion" --env-manager local --port 5001   # via MLflow'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
