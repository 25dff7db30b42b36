"""The MLflow pyfunc of duanka, logged as code (models-from-code) so nothing is cloudpickled."""

import mlflow

from duanka.tracking import DuankaModel

mlflow.models.set_model(DuankaModel())
