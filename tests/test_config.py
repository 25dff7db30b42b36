from __future__ import annotations

from pathlib import Path

import pytest

from duanka.errors import ConfigError
from duanka.training.config import TrainConfig, load_config


def test_config_files(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("seed = 3\nc_grid = [1, 2]\n[model]\nchar_ngram_range = [2, 3]\n", encoding="utf-8")
    config = load_config(toml)
    assert config.seed == 3 and config.c_grid == (1.0, 2.0) and config.model.char_ngram_range == (2, 3)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("model:\n  min_df: 1\n", encoding="utf-8")
    assert load_config(yaml_file).model.min_df == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("sed = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(bad)


def test_config_round_trips_through_its_dict() -> None:
    config = TrainConfig(seed=5, c_grid=(1.0,))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.flat_params()["model.C"] == config.model.C


@pytest.mark.parametrize(
    "settings", [{"normal_weight_grid": []}, {"normal_weight_grid": [1.0, 0.0]}, {"label_f1_tolerance": -0.1}]
)
def test_bad_label_rule_settings_are_config_errors(settings) -> None:
    with pytest.raises(ConfigError, match=r"normal_weight_grid|label_f1_tolerance"):
        TrainConfig.from_dict(settings)
