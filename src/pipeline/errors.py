"""The failures a user can fix. Each message says what is wrong and how to fix it; entry points
turn them into one paragraph on stderr and a non-zero exit (no traceback). Importing this module
is cheap, so bad input fails before TensorFlow or MLflow are loaded."""


class PipelineError(RuntimeError):
    exit_code = 1


class ConfigError(PipelineError, ValueError):
    """A bad experiment name, group option or override; the message lists the valid choices."""

    exit_code = 2


class DataError(PipelineError):
    """A dataset could not be fetched or verified; the message says which file and how to fix it."""


class MissingInput(PipelineError):
    """An upstream stage's output is missing (a stage run out of order)."""


class TrackingError(PipelineError):
    """The MLflow store cannot be reached; raised fast instead of hanging."""


class StorageError(PipelineError):
    """The study's storage cannot be used: an RDB server that does not answer or refuses the
    login, a journal file that cannot be read. Raised before any work; no password in it."""


class WorkerDied(PipelineError):
    """A worker process ended without a result (killed, out of memory, a crash in native code)."""


class TrainingDiverged(PipelineError):
    """The loss became NaN or infinite; the model must not be saved as if it were good."""


class ServingMismatch(PipelineError):
    """A logged model would answer raw rows differently from the network it wraps."""


class BadInput(PipelineError):
    """Rows given to a model (a file for batch inference) that it cannot take: which and why."""

    exit_code = 2
