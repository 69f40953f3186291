"""Reproducible TensorFlow/Keras experiments: DVC stages, Hydra configs, Optuna, MLflow."""

__version__ = "0.1.0"
