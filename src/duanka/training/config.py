"""Training configuration: a dataclass with defaults, loadable from TOML or YAML, logged whole to MLflow."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duanka.errors import ConfigError
from duanka.training.features import ModelParams

__all__ = ["ENGINES", "StreamParams", "TrainConfig", "load_config"]

ENGINES = ("default", "stream")


@dataclass
class StreamParams:
    """Settings of the streamed engine (``engine = "stream"``, :mod:`duanka.training.stream`).

    Attributes:
        chunk_rows: rows read, featurized and fitted at a time: with the coefficients, what memory holds.
        alpha_grid: ``SGDClassifier`` regularization strengths tried on the held-out groups.
        max_epochs: passes over the training chunks; the best epoch on the held-out groups is kept.
        validation_share: share of the groups held out (chosen by a stable hash of ``group``) for alpha,
            epochs, the normal weight, thresholds and policies.
        validation_max_rows: at most about this many held-out rows (the share shrinks on big files), so
            the held-out set's memory does not grow with the file.
        word_max_features: the word vocabulary's size at most (top terms by document frequency).
        count_table_max: distinct n-grams counted at once per vectorizer; past it the rarest are pruned
            (lossy counting), so the vocabulary pass's memory is bounded on any data.
        vocabulary_rows: about this many rows (a stable hash sample of groups, sized from the files' bytes per
            row) are counted for the vocabulary and idf; every row is still read and checked.
        patience: stop the epochs when no alpha's held-out macro-F1 improved for this many epochs.
        refit: after alpha and epochs are chosen, fit once more on every row, held-out groups included.
    """

    chunk_rows: int = 20_000
    alpha_grid: tuple[float, ...] = (3e-6, 1e-6, 3e-7)
    max_epochs: int = 6
    validation_share: float = 0.2
    validation_max_rows: int = 20_000
    word_max_features: int | None = 200_000
    count_table_max: int = 1_000_000
    vocabulary_rows: int = 200_000
    patience: int = 2
    refit: bool = True


@dataclass
class TrainConfig:
    """Everything that decides a trained model besides the data.

    Attributes:
        seed: seeds the folds, the augmenter and the classifier.
        model: pipeline hyperparameters; ``model.C`` is replaced by the cross-validated choice.
        c_grid: values of ``C`` tried by group-aware cross-validation.
        cv_folds: number of ``StratifiedGroupKFold`` folds (out-of-fold predictions are the validation set).
        augment_copies: obfuscated variants added per risky training row (0: none).
        block_precision: ``block`` at the lowest risk whose validation precision is at least this.
        review_recall: ``review`` at the highest risk that keeps validation recall at least this.
        background_weight: sample weight of background rows (``duanka train --background``), presumed normal.
        background_sample: at most this many background rows, drawn with ``seed`` (0: all of them).
        background_review_rate, background_block_rate: with background rows, the default policy's ``review`` and
            ``block`` are the lowest risks at which at most these shares of the background (out-of-fold, after
            the evidence gate) would be flagged and blocked, instead of the validation targets: thresholds set
            for the traffic they act on (:func:`duanka.training.thresholds.thresholds_for_rates`).
        background_min_block_precision: with background, ``block`` is never below the risk at which validation
            block precision reaches this: background that rarely looks like the trade (news, everyday posts)
            would otherwise put ``block`` where hard normal posts of other kinds are blocked.
        normal_weight_grid: prior weights on ``normal`` tried on the validation rows (labels are the argmax
            after ``P(normal)`` is multiplied by the weight); see :func:`duanka.training.fit.choose_normal_weight`.
        label_f1_tolerance: weights whose validation macro-F1 is within this of the best count as equal, and
            the largest of them is chosen (fewer ordinary posts labelled risky at no measurable cost).
        engine: ``default`` (the whole file in memory, cross-validated) or ``stream`` (chunks, see ``stream``).
        stream: settings of the streamed engine.
    """

    seed: int = 13
    model: ModelParams = field(default_factory=ModelParams)
    c_grid: tuple[float, ...] = (10.0, 30.0)
    cv_folds: int = 4
    augment_copies: int = 0
    # 0.998 on the (45% risky, hard-case heavy) validation rows: block precision about 0.87 at 1% prevalence
    # there, where 0.99 gave 0.56 (README, measured quality)
    block_precision: float = 0.998
    review_recall: float = 0.97
    background_weight: float = 0.5
    background_sample: int = 20_000
    background_review_rate: float = 0.005
    background_block_rate: float = 0.0002
    background_min_block_precision: float = 0.99
    normal_weight_grid: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 3.0)
    # about one standard error of macro-F1 on ~10k validation rows: differences below it are noise
    label_f1_tolerance: float = 0.002
    engine: str = "default"
    stream: StreamParams = field(default_factory=StreamParams)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat_params(self) -> dict[str, Any]:
        """``{"seed": 13, "model.C": 10.0, ...}`` for MLflow params."""
        flat: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        data = dict(data)
        model_data = data.pop("model", {}) or {}
        stream_data = data.pop("stream", {}) or {}
        top = {f.name for f in dataclasses.fields(cls)} - {"model", "stream"}
        unknown = set(data) - top
        model_fields = {f.name for f in dataclasses.fields(ModelParams)}
        unknown_model = set(model_data) - model_fields
        unknown_model |= {f"stream.{k}" for k in set(stream_data) - {f.name for f in dataclasses.fields(StreamParams)}}
        if unknown or unknown_model:
            names = sorted(unknown | {k if k.startswith("stream.") else f"model.{k}" for k in unknown_model})
            raise ConfigError(
                f"{where}: unknown setting(s) {', '.join(names)}; known: {', '.join(sorted(top))}, "
                f"model.{{{', '.join(sorted(model_fields))}}}"
            )
        for key in ("word_ngram_range", "char_ngram_range"):
            if key in model_data:
                model_data[key] = tuple(model_data[key])
        for key in ("c_grid", "normal_weight_grid"):
            if key in data:
                data[key] = tuple(float(c) for c in data[key])
        if "alpha_grid" in stream_data:
            stream_data["alpha_grid"] = tuple(float(a) for a in stream_data["alpha_grid"])
        try:
            config = cls(model=ModelParams(**model_data), stream=StreamParams(**stream_data), **data)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        weights = config.normal_weight_grid
        if not weights or not all(math.isfinite(w) and w > 0 for w in weights):
            raise ConfigError(f"{where}: normal_weight_grid must be positive numbers, got {list(weights)}")
        for key in ("background_review_rate", "background_block_rate", "background_min_block_precision"):
            if not 0 <= getattr(config, key) <= 1:
                raise ConfigError(f"{where}: {key} must be a share between 0 and 1, got {getattr(config, key)}")
        if config.engine not in ENGINES:
            raise ConfigError(f"{where}: engine must be one of {', '.join(ENGINES)}, got {config.engine!r}")
        if not (math.isfinite(config.label_f1_tolerance) and config.label_f1_tolerance >= 0):
            raise ConfigError(f"{where}: label_f1_tolerance must be >= 0, got {config.label_f1_tolerance}")
        return config


def load_config(path: str | Path | None) -> TrainConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config; ``None`` gives the defaults."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config must be .toml, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ConfigError(f"{path}: cannot parse config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of settings")
    return TrainConfig.from_dict(data, str(path))
