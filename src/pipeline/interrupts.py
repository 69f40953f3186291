"""Ctrl-C that stops work at a safe point instead of wherever the signal lands.

Python raises KeyboardInterrupt at whatever bytecode runs when SIGINT arrives. During a fit
that is often a garbage-collection callback or a ``__del__`` (TensorFlow's resource deleters,
SQLAlchemy's weakref callbacks): Python prints "Exception ignored in ..." and carries on, so
the Ctrl-C is lost (a tune run went on for 13 more trials), or TensorFlow is left with a
half-freed resource and the process dies with SIGSEGV later. Inside ``deferred()`` the first
Ctrl-C only sets a flag; ``check()`` raises KeyboardInterrupt at the points that are safe (the
end of a batch, of a trial, of the block). A second Ctrl-C raises at once, as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

_pending = False
_depth = 0

NOTICE = b"\nCtrl-C: stopping at the end of the current batch (press Ctrl-C again to stop now)\n"


def _defer(signum, frame) -> None:
    global _pending
    if _pending:  # the user insists
        raise KeyboardInterrupt
    _pending = True
    os.write(2, NOTICE)  # not print(): a handler may run in the middle of another print


def pending() -> bool:
    return _pending


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed inside ``deferred()``."""
    if _pending:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Defer Ctrl-C to ``check()`` calls inside the block, and to its end. Re-entrant; a no-op
    outside the main thread (only it receives signals) or if SIGINT is not Python's default."""
    global _depth, _pending
    outermost = _depth == 0
    ours = (
        outermost
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if ours:
        signal.signal(signal.SIGINT, _defer)
    _depth += 1
    try:
        yield
        check()
    finally:
        _depth -= 1
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _pending = False


def keras_callback():
    """A Keras callback that calls ``check()`` after every batch (training, validation,
    prediction): the fit ends by KeyboardInterrupt between two steps, never inside one. Keras
    calls it after each compiled call: for a fast fit, whose call runs a whole epoch
    (``training.GatheredBatches``), between two epochs."""
    import keras

    class StopOnCtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            check()

        def on_test_batch_end(self, batch, logs=None):
            check()

        def on_predict_batch_end(self, batch, logs=None):
            check()

    return StopOnCtrlC()
