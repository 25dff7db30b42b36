"""The contenders: how each one is trained, saved to disk and loaded back as a predictor.

Every loaded contender has ``predict_proba(texts) -> ndarray`` with columns in ``duanka.labels.LABELS``
order, so ``duanka.training.evaluate.metrics`` measures them all the same way.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pandas stays out of the probe processes: loading a contender must not pay for it
    import pandas as pd

__all__ = [
    "BACKGROUND_FILES",
    "CONTENDERS",
    "FASTTEXT_PARAMS",
    "Predictor",
    "Spec",
    "Trained",
    "artifact_bytes",
    "load",
    "train_and_save",
]

FASTTEXT_PARAMS: dict[str, Any] = {
    "lr": 0.5,
    "epoch": 25,
    "dim": 50,
    "wordNgrams": 2,
    "minCount": 1,
    "bucket": 200_000,
    "loss": "softmax",
    "thread": 1,
    "seed": 13,
    "verbose": 0,
}
_FASTTEXT_PREFIX = "__label__"


class Predictor(Protocol):
    """Anything that scores texts into probabilities in ``LABELS`` order."""

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Trained:
    """What training one contender produced and how long it took."""

    model: Any
    train_s: float
    info: dict[str, Any]


@dataclass(frozen=True)
class Spec:
    """One contender: its name, a title for the tables, and where its artifact comes from.

    ``shares`` names another contender whose training run and artifact this one reuses
    (the full scorer and the bare model come from the same ``duanka.training.fit.train`` call).
    """

    name: str
    title: str
    kind: str
    shares: str | None = None
    needs: str | None = None  # a module that must be importable


CONTENDERS: tuple[Spec, ...] = (
    Spec("rules", "rules alone", "rules"),
    Spec("naive", "naive jieba+TF-IDF+LR", "naive"),
    Spec("duanka_model", "duanka model", "duanka_model"),
    Spec("duanka_scorer", "duanka scorer (model+rules)", "duanka_scorer", shares="duanka_model"),
    Spec("duanka_scorer_json", "duanka scorer + to_dict()", "duanka_scorer_json", shares="duanka_model"),
    Spec("segmentation", "bound: rjieba segmentation only", "segmentation", needs="rjieba"),
    Spec("fasttext", "fastText", "fasttext", needs="fasttext"),
    Spec("duanka_background", "duanka scorer + background (weibo, news)", "duanka_background", needs="real"),
    Spec("duanka_stream", "duanka scorer + labelled stream, half A", "duanka_stream", needs="stream"),
)
# Real files the background contender trains on; it is measured on the other real files only.
BACKGROUND_FILES = ("weibo_posts.csv", "news_titles.csv")


# ---------------------------------------------------------------------------------------------- predictors
class PipelinePredictor:
    """A fitted scikit-learn pipeline whose probability columns are put in ``LABELS`` order."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        from duanka.training.features import proba_in_label_order

        return proba_in_label_order(self.pipeline, list(texts))


class FastTextPredictor:
    """A fastText model over jieba words of normalized text."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        from duanka.labels import LABELS

        lines = [fasttext_line(text) for text in texts]
        labels, probs = self.model.predict(lines, k=len(LABELS))
        out = np.zeros((len(lines), len(LABELS)))
        column = {f"{_FASTTEXT_PREFIX}{label}": i for i, label in enumerate(LABELS)}
        for row, (names, values) in enumerate(zip(labels, probs, strict=True)):
            for name, value in zip(names, values, strict=True):
                out[row, column[name]] = value
        return out


class ScorerJsonPredictor:
    """The duanka scorer with every result serialized (``to_dict()``), as a service returning JSON does."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        from duanka.labels import LABELS

        payloads = [result.to_dict() for result in self.scorer.score_batch(texts)]
        return np.array([[p["probabilities"][label] for label in LABELS] for p in payloads]).reshape(-1, len(LABELS))


class SegmentationBound:
    """Not a classifier: rjieba cuts each raw post and nothing else; an upper bound on any segmenting scorer."""

    def __init__(self) -> None:
        from duanka.text.lexicon import domain_terms
        from duanka.text.segment import segmenter

        self.cut = segmenter(domain_terms(), hmm=False, backend="rjieba").cut

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 3))
        for row, text in enumerate(texts):
            self.cut(text)
            out[row, 2] = 1.0  # always "normal": its quality columns mean nothing
        return out


def jieba_words(text: str) -> list[str]:
    """``jieba.lcut`` under a module-level name: a pickled vectorizer refers to it, not to jieba's state."""
    import jieba

    return jieba.lcut(text)


def fasttext_line(text: str) -> str:
    """fastText input for one post: jieba words of the normalized text, separated by single spaces."""
    from duanka.text.normalize import normalize

    words = (w.strip() for w in jieba_words(normalize(text)))
    return " ".join(w for w in words if w)


# ---------------------------------------------------------------------------------------------- training
def _train_rules(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    from duanka.scoring.rules import RuleSet

    started = time.perf_counter()
    rules = RuleSet.load(options.get("rules"))
    elapsed = time.perf_counter() - started
    return Trained(rules, elapsed, {"rules": rules.path, "rule_count": len(rules.rules)})


def _train_segmentation(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    return Trained(None, 0.0, {"note": "no model: segmentation of each post only"})


def _train_naive(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    started = time.perf_counter()
    pipeline = Pipeline(
        [("tfidf", TfidfVectorizer(tokenizer=jieba_words, token_pattern=None)), ("lr", LogisticRegression())]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(frame["text"].tolist(), frame["label"].to_numpy())
    elapsed = time.perf_counter() - started
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return Trained(pipeline, elapsed, {"features": len(pipeline[0].vocabulary_), "converged": converged})


def _train_duanka(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    from duanka.training.config import TrainConfig
    from duanka.training.workflow import train_model

    config = options.get("config") or TrainConfig()
    progress: Callable[[str], None] | None = options.get("progress")
    started = time.perf_counter()
    background = options.get("background") or ()
    run = train_model(frame, None, config, rules=options.get("rules"), progress=progress, background=background)
    result = run.result
    elapsed = time.perf_counter() - started
    info = {
        "C": result.C,
        "cv_macro_f1": {f"{c:g}": f for c, f in result.cv_macro_f1.items()},
        "thresholds": run.thresholds,
        "train_rows": len(result.train_frame),
        "timings": result.timings,
        "config": config.to_dict(),
        "background_files": [p.name for p in background],
        "background_rows": result.background_rows,
    }
    return Trained(run, elapsed, info)


def _train_duanka_background(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    folder = options["real"]
    files = [folder / name for name in BACKGROUND_FILES if (folder / name).is_file()]
    return _train_duanka(frame, workdir, {**options, "background": files})


def _train_duanka_stream(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    """duanka on the training file plus the labelled rows of the stream's half A (a platform's own labels)."""
    import pandas as pd

    stream = options["stream"]
    rows = [i for i, label in enumerate(stream.labels) if label and stream.halves[i] == "a"]
    own = pd.DataFrame(
        {
            "id": [f"stream-{stream.ids[i]}" for i in rows],
            "text": [stream.texts[i] for i in rows],
            "label": [stream.labels[i] for i in rows],
            "group": [f"stream-{stream.ids[i]}" for i in rows],
            "source": "stream",
        }
    )
    trained = _train_duanka(pd.concat([frame, own], ignore_index=True), workdir, options)
    trained.info["stream_rows"] = len(rows)
    trained.info["stream_ads"] = sum(stream.labels[i] in ("card_trading", "recruitment_lure") for i in rows)
    return trained


def _train_fasttext(frame: pd.DataFrame, workdir: Path, options: dict[str, Any]) -> Trained:
    import fasttext

    started = time.perf_counter()
    path = workdir / "fasttext-train.txt"
    with path.open("w", encoding="utf-8") as handle:
        for text, label in zip(frame["text"], frame["label"], strict=True):
            handle.write(f"{_FASTTEXT_PREFIX}{label} {fasttext_line(text)}\n")
    params = dict(FASTTEXT_PARAMS)
    try:
        model = fasttext.train_supervised(input=str(path), **params)
    except RuntimeError as exc:  # fastText's "Encountered NaN" at lr 0.5, seen once in many runs
        if "NaN" not in str(exc):
            raise
        params["lr"] = params["lr"] / 2
        print(f"fastText diverged ({exc}); retrying once with lr={params['lr']:g}", file=sys.stderr)
        model = fasttext.train_supervised(input=str(path), **params)
    elapsed = time.perf_counter() - started
    return Trained(model, elapsed, {"params": params, "words": len(model.words)})


# ---------------------------------------------------------------------------------------------- saving
def _save_rules(trained: Trained, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(trained.model.source_text, encoding="utf-8")


def _save_segmentation(trained: Trained, directory: Path) -> None:
    from duanka.text.lexicon import domain_terms

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "terms.txt").write_text("\n".join(domain_terms()) + "\n", encoding="utf-8")  # what it adds to rjieba


def _save_naive(trained: Trained, directory: Path) -> None:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(trained.model, directory / "pipeline.joblib", compress=3)  # as duanka's artifact does


def _save_duanka(trained: Trained, directory: Path) -> None:
    from duanka.training.workflow import write_model

    write_model(trained.model, directory)  # the same artifact `duanka train` writes


def _save_fasttext(trained: Trained, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    trained.model.save_model(str(directory / "model.bin"))
    (directory / "params.json").write_text(json.dumps(trained.info["params"]), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- loading
def _load_rules(directory: Path) -> Predictor:
    from duanka.scoring.rules import RuleSet
    from duanka.scoring.scorer import Scorer

    return Scorer(rules=RuleSet.load(directory / "rules.yaml"))  # the scorer's rules-only path


def _load_naive(directory: Path) -> Predictor:
    import joblib

    return PipelinePredictor(joblib.load(directory / "pipeline.joblib"))


def _load_duanka_model(directory: Path) -> Predictor:
    from duanka.training.export import read_pipeline

    return PipelinePredictor(read_pipeline(directory))


def _load_duanka_scorer(directory: Path) -> Predictor:
    from duanka.scoring.scorer import Scorer

    return Scorer.load(directory, strict=True)


def _load_duanka_scorer_json(directory: Path) -> Predictor:
    from duanka.scoring.scorer import Scorer

    return ScorerJsonPredictor(Scorer.load(directory, strict=True))


def _load_segmentation(directory: Path) -> Predictor:
    return SegmentationBound()


def _load_fasttext(directory: Path) -> Predictor:
    import fasttext

    return FastTextPredictor(fasttext.load_model(str(directory / "model.bin")))


_TRAIN: dict[str, Callable[[pd.DataFrame, Path, dict[str, Any]], Trained]] = {
    "rules": _train_rules,
    "naive": _train_naive,
    "duanka_model": _train_duanka,
    "duanka_background": _train_duanka_background,
    "duanka_stream": _train_duanka_stream,
    "fasttext": _train_fasttext,
    "segmentation": _train_segmentation,
}
_SAVE: dict[str, Callable[[Trained, Path], None]] = {
    "rules": _save_rules,
    "naive": _save_naive,
    "duanka_model": _save_duanka,
    "duanka_background": _save_duanka,
    "duanka_stream": _save_duanka,
    "fasttext": _save_fasttext,
    "segmentation": _save_segmentation,
}
_LOAD: dict[str, Callable[[Path], Predictor]] = {
    "rules": _load_rules,
    "naive": _load_naive,
    "duanka_model": _load_duanka_model,
    "duanka_scorer": _load_duanka_scorer,
    "duanka_scorer_json": _load_duanka_scorer_json,
    "duanka_background": _load_duanka_scorer,
    "duanka_stream": _load_duanka_scorer,
    "fasttext": _load_fasttext,
    "segmentation": _load_segmentation,
}


def train_and_save(
    kind: str, frame: pd.DataFrame, directory: Path, workdir: Path, options: dict[str, Any]
) -> tuple[Trained, float]:
    """Train contender ``kind`` on ``frame`` and save it to ``directory``; returns it and the save time."""
    trained = _TRAIN[kind](frame, workdir, options)
    started = time.perf_counter()
    _SAVE[kind](trained, directory)
    return trained, time.perf_counter() - started


def load(kind: str, directory: str | Path) -> Predictor:
    """Load contender ``kind`` from its saved artifact ``directory``, ready to score."""
    return _LOAD[kind](Path(directory))


def artifact_bytes(directory: str | Path) -> int:
    """Total size of the files of an artifact directory."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
