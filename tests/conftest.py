"""Shared fixtures: a small labeled corpus, one artifact trained without MLflow, one tracked training run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPOSITORY_STORE = Path(__file__).resolve().parents[1] / "mlruns"


def _store_entries() -> set[str]:
    """What is in the repository's MLflow folder: runs' and logged models' folders, at any store layout."""
    patterns = ("*", "*/*", "*/models/*")
    return {str(p.relative_to(REPOSITORY_STORE)) for pattern in patterns for p in REPOSITORY_STORE.glob(pattern)}


@pytest.fixture(scope="session", autouse=True)
def nothing_written_to_the_repository_store():
    """No test writes runs or artifacts into the repository's mlruns/ (every test uses a store of its own; MLflow
    puts a SQLite store's artifacts in ./mlruns of the working folder unless told otherwise)."""
    before = _store_entries()
    yield
    leaked = sorted(_store_entries() - before)
    assert not leaked, (
        f"tests wrote {len(leaked)} entries into {REPOSITORY_STORE} (or another process trained in this folder "
        f"meanwhile): {leaked[:10]}"
    )


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _mlflow_uris_put_back():
    """Put MLflow's process-wide tracking and registry URIs back after each test.

    Training or logging to a test's own store sets them (``configure_tracking``), and MLflow mirrors them into the
    environment, which subprocesses inherit: one test's store must not become the next test's registry.
    """
    import os
    import sys

    saved_env = {key: os.environ.get(key) for key in _MLFLOW_ENV}
    modules = [sys.modules.get(name) for name in _MLFLOW_GLOBALS]
    saved = [getattr(module, attr, None) if module else None for module, attr in zip(modules, _MLFLOW_ATTRS)]
    yield
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for name, attr, value in zip(_MLFLOW_GLOBALS, _MLFLOW_ATTRS, saved):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, attr):
            setattr(module, attr, value)  # MLflow's own module globals: no public way to unset them


_MLFLOW_GLOBALS = ("mlflow.tracking._tracking_service.utils", "mlflow.tracking._model_registry.utils")
_MLFLOW_ATTRS = ("_tracking_uri", "_registry_uri")


@pytest.fixture(scope="session")
def small_posts() -> Path:
    return FIXTURES / "posts_small.csv"


@pytest.fixture(scope="session")
def small_holdout() -> Path:
    return FIXTURES / "holdout_small.csv"


@pytest.fixture(scope="session")
def fast_config():
    from duanka.training.config import TrainConfig

    return TrainConfig(seed=7, c_grid=(3.0, 10.0), cv_folds=3)


@pytest.fixture(scope="session")
def tracked_run(tmp_path_factory, small_posts, small_holdout, fast_config):
    """One `duanka train` equivalent on the small corpus, in its own MLflow store."""
    import mlflow

    from duanka.adapters.tracking import train_tracked

    root = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    run = train_tracked(
        small_posts,
        small_holdout,
        root / "model",
        fast_config,
        tracking_uri=uri,
        experiment="test",
        model_name="duanka-test",
    )
    yield run
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory, small_posts, small_holdout, fast_config) -> Path:
    """An artifact directory trained on the small corpus by the plain workflow (no MLflow involved)."""
    from duanka.training.workflow import train_artifact

    root = tmp_path_factory.mktemp("artifact")
    return train_artifact(small_posts, small_holdout, root / "model", fast_config).artifact_dir


@pytest.fixture()
def artifact_copy(small_artifact, tmp_path) -> Path:
    """A private copy of the trained artifact that a test may damage."""
    target = tmp_path / "model"
    shutil.copytree(small_artifact, target)
    return target


def _java_problem() -> str | None:
    """Why Spark cannot start here, or None when a Java runtime answers."""
    import os
    import subprocess

    home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=os.path.join(home, "bin")) if home else None
    java = java or shutil.which("java")
    if java is None:
        return (
            "no Java runtime (java not on PATH, JAVA_HOME unset): Spark tests skipped; install openjdk-17-jre-headless"
        )
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"{java} -version failed ({probe.stderr.strip()[:200]}): Spark tests skipped"
    return None


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for every Spark test of the run (a JVM start costs seconds; tests never stop it)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
    problem = _java_problem()
    if problem:
        pytest.skip(problem)
    from duanka.adapters.spark import local_session

    session = local_session("local[2]", conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()
