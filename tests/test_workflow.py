from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duanka import Scorer
from duanka.errors import DataError
from duanka.training.workflow import load_training_data, train_model, write_model


def test_holdout_never_touches_fitting_or_thresholds(small_posts, small_holdout, fast_config) -> None:
    with_holdout = train_model(small_posts, small_holdout, fast_config)
    without = train_model(small_posts, None, fast_config)
    assert with_holdout.thresholds == without.thresholds and with_holdout.result.C == without.result.C
    np.testing.assert_array_equal(with_holdout.result.validation_proba, without.result.validation_proba)
    assert without.holdout is None and with_holdout.holdout is not None


def test_holdout_figures_are_those_of_the_written_scorer(small_posts, small_holdout, fast_config, tmp_path) -> None:
    run = train_model(small_posts, small_holdout, fast_config)
    directory = write_model(run, tmp_path / "model")
    scorer = Scorer.load(directory, strict=True)
    np.testing.assert_allclose(scorer.predict_proba(run.holdout_frame["text"].tolist()), run.holdout_proba)
    assert scorer.manifest["metrics"]["holdout"]["macro_f1"] == pytest.approx(run.holdout.macro_f1, abs=1e-6)
    assert scorer.manifest["thresholds"] == run.thresholds


def test_several_files_train_together_and_a_shared_group_is_refused(small_posts, tmp_path) -> None:
    frame = pd.read_csv(small_posts, dtype=str, keep_default_na=False)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.iloc[:60].to_csv(a, index=False)
    frame.iloc[60:].to_csv(b, index=False)
    both = load_training_data([a, b])
    assert len(both) == len(frame) and set(both["_file"]) == {str(a), str(b)}
    frame.iloc[55:].to_csv(b, index=False)  # rows 55-59 now in both files, with their groups
    with pytest.raises(DataError, match="also in"):
        load_training_data([a, b])


def test_background_rows_are_fitted_but_never_measured(small_posts, small_holdout, fast_config, tmp_path) -> None:
    import dataclasses

    background = tmp_path / "traffic.csv"
    # the user's own traffic: a text column (any other column, a label included, is ignored)
    rows = ["今天的晚霞真好看", "周末去爬山", "这家店的面真好吃", "Anyone up for lunch?", "考试终于结束了"] * 4
    pd.DataFrame({"text": rows, "label": "card_trading"}).to_csv(background, index=False)
    config = dataclasses.replace(fast_config, background_weight=0.25, background_sample=12)
    plain = train_model(small_posts, small_holdout, fast_config)
    with_background = train_model(small_posts, small_holdout, config, background=[background])
    assert with_background.result.background_rows == 12 and with_background.info.background_rows == 12
    assert with_background.info.background_sha256 and not plain.info.background_sha256
    # validation metrics and thresholds stay on the labeled rows
    assert (
        with_background.validation.rows
        == plain.validation.rows
        == plain.rules_validation.rows
        == len(plain.result.train_frame)
    )
    assert with_background.result.validation_proba.shape == plain.result.validation_proba.shape
    # with background, the default policy is set on it: its flag and block rates, out-of-fold
    default = with_background.info.policies["default"]
    assert default["rule"] == {
        "background_review_rate": 0.005,
        "background_block_rate": 0.0002,
        "background_min_block_precision": 0.99,
    }
    assert default["background"]["rows"] == 12 and default["background"]["blocked"] == 0.0
    # background that never looks like the trade cannot pull `block` below the validation precision floor
    assert default["validation"]["block_precision"] >= 0.99
    assert with_background.thresholds == {"review": default["review"], "block": default["block"]}
    assert "background" not in plain.info.policies["default"]
    missing = tmp_path / "no_text.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(missing, index=False)
    with pytest.raises(DataError, match="no 'text' column"):
        train_model(small_posts, None, config, background=[missing])
