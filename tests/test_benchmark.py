"""Smoke test of ``python -m benchmarks.run`` on a tiny generated sample (well under a minute)."""

from __future__ import annotations

import csv
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("rules", "naive", "duanka_model", "duanka_scorer", "fasttext")
TRAIN_PER_LABEL = 40
HOLDOUT_PER_LABEL = 15

_CARD_ACTIONS = ("收", "出", "高价收", "长期收", "急收", "批量出", "常年回收", "低价出")
_CARD_ITEMS = (
    "电话卡",
    "银行卡",
    "四件套",
    "对公户",
    "微信号",
    "QQ号",
    "实名手机卡",
    "流量卡",
    "支付宝账号",
    "企业户",
    "U盾",
)
_CARD_TAILS = ("价格好商量，私聊", "当天结算，量大优先", "可验货，诚信交易", "全国都收，加我详谈", "要的老板速度联系")

_LURE_HOOKS = (
    "招聘兼职",
    "在家就能做",
    "宝妈学生都能做",
    "轻松赚零花钱",
    "日结工资",
    "急招人手",
    "朋友圈推荐一个活",
    "不用坐班",
)
_LURE_TASKS = (
    "带身份证去银行办张卡",
    "用你的手机号帮忙接码",
    "出借银行卡走流水",
    "实名注册几个账号",
    "帮忙刷单跑分",
    "办张新电话卡交给我们",
    "开个对公账户",
    "把闲置的卡租出来",
    "扫码认证一下",
    "帮公司收款再转账",
    "注册支付宝给我们用",
)
_LURE_PAYS = ("一天三百", "日结五百", "当天结清", "一单两百", "月入过万")

_NORMAL_WHEN = ("今天", "周末", "昨晚", "早上", "下班后", "这几天", "刚才", "放假时")
_NORMAL_EVENTS = (
    "带孩子去公园放风筝",
    "和同事吃了一顿火锅",
    "在家做了红烧肉",
    "去图书馆借了两本书",
    "陪爸妈去爬山",
    "沿着河边跑了五公里",
    "看了一部老电影",
    "整理了阳台的花草",
    "去菜市场买了新鲜的鱼",
    "去银行挂失补办了丢的银行卡",
    "给手机换了个便宜的流量套餐",
)
_NORMAL_FEELINGS = ("心情很好", "有点累但是开心", "推荐大家也试试", "日子就这样平平淡淡", "下次还想再来")


def _posts(parts: tuple[tuple[str, ...], ...], count: int) -> list[str]:
    """``count`` distinct posts joining one piece of every part, cycling through each at its own pace."""
    first, second, third = parts
    return [f"{first[i % len(first)]}{second[i % len(second)]}，{third[i % len(third)]}" for i in range(count)]


def _write(path: Path, rows: list[tuple[str, str]], prefix: str) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label", "group", "source"])
        for i, (text, label) in enumerate(rows):
            key = f"{prefix}-{label}-{i:03d}"
            writer.writerow([key, text, label, key, "test"])
    return path


def write_sample(directory: Path) -> tuple[Path, Path]:
    """A training file with 40 posts per label and a holdout file with 15, all distinct, one group each."""
    count = TRAIN_PER_LABEL + HOLDOUT_PER_LABEL
    by_label = {
        "card_trading": _posts((_CARD_ACTIONS, _CARD_ITEMS, _CARD_TAILS), count),
        "recruitment_lure": _posts((_LURE_HOOKS, _LURE_TASKS, _LURE_PAYS), count),
        "normal": _posts((_NORMAL_WHEN, _NORMAL_EVENTS, _NORMAL_FEELINGS), count),
    }
    train = [(text, label) for label, texts in by_label.items() for text in texts[:TRAIN_PER_LABEL]]
    holdout = [(text, label) for label, texts in by_label.items() for text in texts[TRAIN_PER_LABEL:]]
    return (_write(directory / "posts.csv", train, "train"), _write(directory / "holdout.csv", holdout, "holdout"))


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return []


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_benchmark_smoke(tmp_path: Path) -> None:
    posts, holdout = write_sample(tmp_path)
    out = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--data",
        str(posts),
        "--holdout",
        str(holdout),
        "--output-dir",
        str(out),
        "--sample",
        "105",
        "--repeats",
        "1",
        "--latency-posts",
        "100",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    markdown = (out / "latest.md").read_text(encoding="utf-8")
    assert "# duanka benchmark" in done.stdout
    has_fasttext = _importable("fasttext")
    for name in CONTENDERS:
        entry = result["contenders"][name]
        assert entry["title"] in markdown
        if name == "fasttext" and not has_fasttext:
            assert entry["status"] == "skipped"
            continue
        assert entry["status"] == "ok", entry
        for which in ("clean", "obfuscated"):
            assert 0.0 <= entry["quality"][which]["macro_f1"] <= 1.0
            assert 0.0 <= entry["quality"][which]["normal_fpr"] <= 1.0
        assert entry["speed"]["posts_per_s"] > 0
        assert 0 < entry["latency"]["p50_ms"] <= entry["latency"]["p99_ms"]
        assert entry["cold"]["peak_rss_mb"] > 0 and entry["cold"]["cold_start_s"] > 0
        assert entry["artifact_bytes"] > 0 and entry["train_s"] >= 0
    measured = [n for n in CONTENDERS if result["contenders"][n]["status"] == "ok"]
    for base in ("duanka_scorer", "duanka_model"):
        assert set(result["ratios"][base]) == set(measured) - {base}
    numbers = _numbers(result)
    assert numbers and all(math.isfinite(n) for n in numbers)

    assert result["data"]["train"]["rows"] == 105
    assert result["data"]["train"]["labels"] == {"card_trading": 35, "recruitment_lure": 35, "normal": 35}
    assert result["data"]["holdout"]["rows"] == 3 * HOLDOUT_PER_LABEL
    assert result["environment"]["machine"]["cores"] >= 1
    versions = result["environment"]["versions"]
    assert {"python", "scikit-learn", "numpy", "jieba", "fasttext", "duanka"} <= set(versions)
    headings = ("Quality, clean holdout", "Quality, obfuscated holdout", "Speed and cost", "the others")
    for heading in headings:
        assert heading in markdown


def test_skip_fasttext_leaves_only_fasttext_out() -> None:
    code = (
        "import json\n"
        "from benchmarks.run import CONTENDERS, parse_args, unavailable\n"
        "args = parse_args(['--skip-fasttext'])\n"
        "print(json.dumps({s.name: unavailable(s, args) for s in CONTENDERS}))"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    reasons = json.loads(done.stdout.strip().splitlines()[-1])
    assert reasons == {name: ("--skip-fasttext" if name == "fasttext" else None) for name in CONTENDERS}


def test_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    code = f"from benchmarks.run import main; raise SystemExit(main(['--data', {str(missing)!r}]))"
    done = _python(code)
    assert done.returncode == 2
    assert "no such file" in done.stderr and not (tmp_path / "results").exists()
