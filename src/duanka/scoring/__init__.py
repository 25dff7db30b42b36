"""The scoring core: artifact reading, the exported linear model, rules, evidence gate, policies, Scorer.

Imports nothing from ``duanka.training`` or ``duanka.adapters``, and no scikit-learn, pandas, MLflow,
matplotlib or pyspark (tests/test_architecture.py checks it in a subprocess)."""
