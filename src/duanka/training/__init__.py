"""Training: features, classifier, data, fitting, evaluation, threshold choice, the workflow, artifact export."""
