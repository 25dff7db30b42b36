"""Smoke test of ``python -m benchmarks.run`` on the small shared fixtures (well under a minute)."""

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
CONTENDERS = (
    "rules",
    "naive",
    "duanka_model",
    "duanka_scorer",
    "duanka_scorer_json",
    "segmentation",
    "fasttext",
    "duanka_background",
    "duanka_stream",
)
# A stand-in for ../shared/real written by the test: ordinary posts, one file used as background, one measured.
REAL_POSTS = {
    "weibo_posts.csv": ["今天的晚霞真好看", "周末去爬山，风景不错", "这家店的面太好吃了", "考试终于结束了"] * 3,
    "job_ads.csv": ["Senior backend engineer, Go and Kafka", "招聘前台接待一名，双休", "Data analyst, SQL required"],
}


# A stand-in for the real stream: ads of the trade among ordinary chat, and its labels (ids only).
STREAM = [
    ("s01", "收一类卡 带盾 农行4000 落地三包 @shou_ka1", "card_trading"),
    ("s02", "出租微信 日结300 隔夜500 要求好友50以上", "recruitment_lure"),
    ("s03", "免押跑分 一单一结 新手包教 私聊", "recruitment_lure"),
    ("s04", "出实名QQ老号 十年号 30一个", "card_trading"),
    ("s05", "收*咔 加薇 长期高价", "card_trading"),
    ("s06", "同城资源 看简介", "normal"),
    ("s07", "大家晚上好", "normal"),
    ("s08", "这个群的广告太多了", "normal"),
    ("s09", "今天U价多少", "normal"),
    ("s10", "有人一起打游戏吗", ""),
    ("s11", "哈哈哈哈", ""),
    ("s12", "高价收微信号 一个80", "card_trading"),
]


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


def _rows(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_benchmark_smoke(tmp_path: Path, small_posts: Path, small_holdout: Path) -> None:
    posts, holdout = small_posts, small_holdout
    out = tmp_path / "results"
    real = tmp_path / "real"
    real.mkdir()
    for name, texts in REAL_POSTS.items():
        with (real / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "source", "orig_label"])
            writer.writerows([text, "normal", "test", ""] for text in texts)
    with (real / "tg_stream.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "source", "orig_label"])
        writer.writerows([key, text, "test", ""] for key, text, _ in STREAM)
    labels = tmp_path / "stream_labels.csv"
    with labels.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "round", "sure"])
        writer.writerows([key, label, "complete", "1"] for key, _, label in STREAM if label)
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
        "--real",
        str(real),
        "--extra-holdout",
        str(holdout),
        "--stream-labels",
        str(labels),
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
        assert set(entry["real"]) == set(REAL_POSTS)
        for figures in entry["real"].values():
            assert 0.0 <= figures["risky"] <= 1.0 and figures["rows"] > 0
            assert "top" not in figures  # third-party rows go to the git-ignored real_top_rows.json only
    background = result["contenders"]["duanka_background"]
    assert background["real"]["weibo_posts.csv"]["trained_on"] and not background["real"]["job_ads.csv"]["trained_on"]
    assert background["info"]["background_files"] == ["weibo_posts.csv"]
    assert result["contenders"]["duanka_scorer"]["real"]["job_ads.csv"]["block"] is not None
    assert "Real traffic" in markdown and (out / "real_top_rows.json").is_file()
    written = (out / "latest.json").read_text(encoding="utf-8") + markdown
    assert not any(text in written for texts in REAL_POSTS.values() for text in texts)
    # The stream is measured as ads and ordinary text, never as presumed-normal traffic.
    assert "tg_stream.csv" not in result["data"]["real"]["rows"]
    assert result["data"]["stream"]["ads"] == 6 and result["data"]["stream"]["ordinary"] == 6
    scorer_ads = result["contenders"]["duanka_scorer"]["real_ads"]
    curve = scorer_ads["all"]
    assert curve["ads"] == 6 and curve["ordinary"] == sum(map(len, REAL_POSTS.values())) + 6
    recalls = [point["recall"] for point in curve["recall_at_flag_rate"].values()]
    assert recalls == sorted(recalls) and all(0.0 <= r <= 1.0 for r in recalls)  # more flagged, more caught
    assert 0.0 <= curve["ads_blocked"] <= curve["ads_flagged"] <= 1.0
    assert scorer_ads["half_b"]["ads"] == result["data"]["stream"]["ads_half_b"]
    assert scorer_ads["templates"]["ads"] == result["data"]["stream"]["ad_templates"] <= 6
    stream_info = result["contenders"]["duanka_stream"]["info"]
    assert stream_info["stream_rows"] + scorer_ads["half_b"]["ads"] + scorer_ads["half_b"]["ordinary"] >= 10
    assert "Real underground ads" in markdown
    assert holdout.stem in result["contenders"]["duanka_scorer"]["quality"]
    measured = [n for n in CONTENDERS if result["contenders"][n]["status"] == "ok"]
    for base in ("duanka_scorer", "duanka_model"):
        assert set(result["ratios"][base]) == set(measured) - {base}
    numbers = _numbers(result)
    assert numbers and all(math.isfinite(n) for n in numbers)

    assert result["data"]["train"]["rows"] == 105
    assert result["data"]["train"]["labels"] == {"card_trading": 35, "recruitment_lure": 35, "normal": 35}
    assert result["data"]["holdout"]["rows"] == _rows(holdout)  # smaller than --sample: all of it
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
    real = "../shared/real"  # the background contender needs the real folder: absent or present here
    expected = {name: ("--skip-fasttext" if name == "fasttext" else None) for name in CONTENDERS}
    folder = REPO_ROOT.parent / "shared" / "real"
    if not folder.is_dir():
        expected["duanka_background"] = f"{folder}: no real-traffic folder"
    if not (folder / "tg_stream.csv").is_file():
        labels = REPO_ROOT / "data" / "real_labels" / "tg_stream.csv"
        expected["duanka_stream"] = f"{folder}: no labelled stream (tg_stream.csv and {labels})"
    assert reasons == expected, real


def test_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    code = f"from benchmarks.run import main; raise SystemExit(main(['--data', {str(missing)!r}]))"
    done = _python(code)
    assert done.returncode == 2
    assert "no such file" in done.stderr and not (tmp_path / "results").exists()


def test_train_scaling_copies_stay_in_their_source_group_and_never_repeat(monkeypatch) -> None:
    """The benchmark's generated rows: obfuscated copies keep their source's group (a held-out group must not have
    siblings in training) and no normalized text repeats (``duanka data check`` would refuse the file)."""
    import pandas as pd

    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is a folder of the checkout, not an installed package
    from benchmarks.train_scaling import POSTS, replicated_frame
    from duanka.text.normalize import normalize

    base = pd.read_csv(POSTS, dtype=str, keep_default_na=False)
    frame = replicated_frame(len(base) + 300)
    assert len(frame) == len(base) + 300
    copies = frame[frame["id"].str.contains("-r", regex=False)]
    assert len(copies) > 0 and set(copies["group"]) <= set(base["group"])
    assert not frame["text"].map(normalize).duplicated().any()
    assert frame.head(len(base))["id"].tolist() == base["id"].tolist()[: len(base)]
