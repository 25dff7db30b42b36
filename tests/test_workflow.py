from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duanka import Scorer
from duanka.errors import DataError
from duanka.workflow import load_training_data, train_model, write_model


def test_holdout_never_touches_fitting_or_thresholds(small_posts, small_holdout, fast_config) -> None:
    with_holdout = train_model(small_posts, small_holdout, fast_config)
    without = train_model(small_posts, None, fast_config)
    assert with_holdout.result.thresholds == without.result.thresholds and with_holdout.result.C == without.result.C
    np.testing.assert_array_equal(with_holdout.result.validation_proba, without.result.validation_proba)
    assert without.holdout is None and with_holdout.holdout is not None


def test_holdout_figures_are_those_of_the_written_scorer(small_posts, small_holdout, fast_config, tmp_path) -> None:
    run = train_model(small_posts, small_holdout, fast_config)
    directory = write_model(run, tmp_path / "model")
    scorer = Scorer.load(directory, strict=True)
    np.testing.assert_allclose(scorer.predict_proba(run.holdout_frame["text"].tolist()), run.holdout_proba)
    assert scorer.manifest["metrics"]["holdout"]["macro_f1"] == pytest.approx(run.holdout.macro_f1, abs=1e-6)
    assert scorer.manifest["thresholds"] == run.result.thresholds


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
