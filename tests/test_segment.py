"""rjieba segments exactly as jieba does (corpus and stress text), and a shared segmenter is thread-safe."""

from __future__ import annotations

import csv
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from duanka.text.lexicon import domain_terms
from duanka.text.normalize import normalize
from duanka.text.segment import Segmenter, segmenter

pytest.importorskip("rjieba")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts = []
    for name in ("data/posts.csv", "data/holdout.csv"):
        with (ROOT / name).open(encoding="utf-8", newline="") as handle:
            texts += [normalize(row["text"]) for row in csv.DictReader(handle)]
    return texts


@pytest.fixture(scope="module")
def pair() -> tuple[Segmenter, Segmenter]:
    terms = domain_terms()
    return Segmenter(terms, hmm=False, backend="rjieba"), Segmenter(terms, hmm=False, backend="jieba")


def _stress(corpus: list[str], count: int, seed: int) -> list[str]:
    """Random strings over the corpus's own characters plus Latin, digits, punctuation, emoji and spaces."""
    rng = random.Random(seed)
    alphabet = sorted(set("".join(corpus))) + list("abcxyz0123456789 ,.!?*#@_-~") + ["😀", "📱", "\u3000", "﻿"]
    terms = list(domain_terms())
    out = []
    for _ in range(count):
        pieces = [rng.choice(terms) if rng.random() < 0.2 else rng.choice(alphabet) for _ in range(rng.randint(1, 90))]
        out.append("".join(pieces))
    return out


def test_rjieba_equals_jieba_on_the_corpus(corpus, pair) -> None:
    fast, reference = pair
    assert len(corpus) > 5_000
    differ = [t for t in corpus if fast.cut(t) != reference.cut(t)]
    assert differ == []


def test_rjieba_equals_jieba_on_stress_text(corpus, pair) -> None:
    fast, reference = pair
    texts = [*_stress(corpus, 8_000, seed=11), "", " ", "收" * 3_000, "a" * 500, "收卡加微信" * 200]
    differ = [t for t in texts if fast.cut(t) != reference.cut(t)]
    assert differ == []


def test_a_shared_segmenter_is_thread_safe(corpus) -> None:
    terms = (*domain_terms(), "独一无二的测试词")
    texts = corpus[:400]
    # Many threads ask for the same segmenter at once, then cut at once: one object, serial results.
    with ThreadPoolExecutor(max_workers=8) as pool:
        built = list(pool.map(lambda _: segmenter(terms), range(16)))
        assert all(s is built[0] for s in built)
        results = list(pool.map(built[0].cut, texts * 4))
    reference = Segmenter(terms, backend="jieba")
    expected = [reference.cut(t) for t in texts]
    assert results == expected * 4
    assert "独一无二的测试词" in built[0].cut("这是独一无二的测试词吗")


def test_one_dictionary_per_process_and_rjieba_still_importable() -> None:
    """A segmenter does not run rjieba's __init__ (whose default dictionary duanka never uses); importing rjieba
    afterwards reuses the loaded module rather than loading the library twice."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from duanka.text.segment import Segmenter\n"
        "cut = Segmenter(('收卡',), backend='rjieba').cut\n"
        "assert 'rjieba' not in sys.modules, 'rjieba __init__ ran'\n"
        "words = cut('我要收卡')\n"
        "import rjieba\n"
        "assert rjieba.Jieba is sys.modules['rjieba.rjieba'].Jieba\n"
        "print(words, rjieba.cut('我要收卡', False))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['我', '要', '收卡'] ['我', '要', '收', '卡']"


def test_threads_building_segmenters_at_once_load_rjieba_once() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from duanka.text.segment import Segmenter\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    made = list(pool.map(lambda i: Segmenter(('收卡',), backend='rjieba'), range(4)))\n"
        "assert len({type(s._impl) for s in made}) == 1\n"
        "print(sorted({tuple(s.cut('我要收卡')) for s in made}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('我', '要', '收卡')]"
