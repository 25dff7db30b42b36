"""Default locations and names, defined once: the CLI, the workflow, the adapters and the docs use these."""

from __future__ import annotations

DATA = "data/posts.csv"
HOLDOUT = "data/holdout.csv"
ARTIFACT_DIR = "models/duanka"
TRACKING_URI = "sqlite:///mlruns/mlflow.db"
EXPERIMENT = "duanka"
MODEL_NAME = "duanka"
