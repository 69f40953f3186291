"""The parts of ``python -m pipeline.tune``: the search space (space), the study and its storage
with crash recovery (study), one trial (objective), the worker processes and progress bar
(workers), the summary, table and plots (report) and the registered best model (champion).

Only ``space`` and ``study`` are cheap to import; the others load TensorFlow or MLflow."""
