"""Ctrl-C stops at a safe point: never lost in a finalizer, a fit ends between two batches.
Each case runs in its own interpreter, which sends SIGINT to itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT

# an object whose finalizer is where SIGINT lands: the handler runs inside __del__
FINALIZER = textwrap.dedent("""
    import os, signal
    from pipeline import interrupts

    class LandsInFinalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(10_000))  # bytecodes after the signal: the handler runs in here
""")


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_python_loses_a_ctrl_c_that_lands_in_a_finalizer():
    """Why ``interrupts`` exists: without it the KeyboardInterrupt is "ignored" and the work goes
    on. The day this fails, Python stopped swallowing it and the deferral could go."""
    result = run_python(FINALIZER + "LandsInFinalizer()\nprint('went on')")
    assert result.returncode == 0 and "went on" in result.stdout
    assert "Exception ignored" in result.stderr and "KeyboardInterrupt" in result.stderr


def test_inside_deferred_that_ctrl_c_stops_the_block():
    result = run_python(
        FINALIZER
        + textwrap.dedent("""
        try:
            with interrupts.deferred():
                LandsInFinalizer()
                print('block ran to its end')
        except KeyboardInterrupt:
            print('stopped')
        print('handler restored', signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["block ran to its end", "stopped", "handler restored True"]
    assert "Exception ignored" not in result.stderr
    assert "stopping at the end of the current batch" in result.stderr


FIT = textwrap.dedent("""
    import os, signal
    import keras, numpy as np
    from pipeline import training

    class PressCtrlC(keras.callbacks.Callback):
        def __init__(self, at, times):
            super().__init__()
            self.at, self.times, self.batches = at, times, 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == self.at:
                for _ in range(self.times):
                    os.kill(os.getpid(), signal.SIGINT)
                    sum(range(10_000))
                print("the callback went on")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((64, 3), "float32"), np.zeros((64, 1), "float32")
    press = PressCtrlC(at=3, times=TIMES)
    try:
        training.fit(model, (x, y), None, epochs=5, batch_size=4, callbacks=[press])
    except KeyboardInterrupt:
        print("stopped after batch", press.batches)
""")


def test_ctrl_c_ends_a_fit_at_the_end_of_a_batch():
    """The Ctrl-C pressed at the end of batch 3 lets that callback finish and stops the fit
    there or at the end of batch 4 (whichever callback checks first), not 5 epochs later."""
    result = run_python(FIT.replace("TIMES", "1"))
    assert result.returncode == 0, result.stderr[-2000:]
    went_on, stopped = result.stdout.strip().splitlines()
    assert went_on == "the callback went on"
    assert stopped in ("stopped after batch 3", "stopped after batch 4")


def test_a_second_ctrl_c_stops_at_once():
    result = run_python(FIT.replace("TIMES", "2"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "stopped after batch 3"  # inside the pressing callback
