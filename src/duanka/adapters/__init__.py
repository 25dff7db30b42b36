"""Adapters: file scoring, the review loop, MLflow serving and tracking, Spark."""
