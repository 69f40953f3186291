"""Where a small network's fit goes once Python is out of the loop (README, "Less work per step").

    python bench/fit_overhead.py [--epochs 10] [--repeats 2]

Wide & deep's shape (8 inputs, 30-30 units, the input concatenated to the last hidden layer,
one output; SGD, MSE) at batch 32 on 11,610 rows, ``steps_per_execution=128``, seeded, op
determinism on, one process, arms alternating. The rows are random numbers: this times the
machinery, it reports no result. Arms:

- keras fit: ``model.fit`` on the arrays (Keras' array pipeline: a tf.data element per batch).
- pipeline fit: ``training.fit`` (the fast path: batches of row indices, rows gathered in the
  compiled step), with the same batches.
- bare loop: the same train steps as one compiled loop over one fixed batch (no data pipeline,
  no Keras trainer): a floor.
- keras tf.data alone: Keras' array pipeline for the same epochs, iterated without training.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipeline import training  # noqa: E402

ROWS, FEATURES, BATCH, STEPS_PER_EXECUTION = 11610, 8, 32, 128


def build() -> keras.Model:
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(30, activation="relu")(inputs)
    hidden = keras.layers.Dense(30, activation="relu")(hidden)
    output = keras.layers.Dense(1)(keras.layers.Concatenate()([inputs, hidden]))
    model = keras.Model(inputs, output)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", steps_per_execution=STEPS_PER_EXECUTION)
    return model


def keras_fit(x, y, epochs):
    model = build()
    started = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0)
    return time.perf_counter() - started


def pipeline_fit(x, y, epochs):
    return training.fit(build(), (x, y), None, epochs=epochs, batch_size=BATCH).seconds


def bare_loop(x, y, epochs):
    model = build()
    optimizer = keras.optimizers.SGD(1e-3)
    optimizer.build(model.trainable_variables)
    xb, yb = tf.constant(x[:BATCH]), tf.constant(y[:BATCH])

    @tf.function
    def steps(n):
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
            optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    steps(tf.constant(1))  # traced outside the timing, as the fits' tracing is not worth comparing
    started = time.perf_counter()
    steps(tf.constant(epochs * -(-ROWS // BATCH)))
    return time.perf_counter() - started


def keras_data_alone(x, y, epochs):
    from keras.src.trainers.data_adapters import array_data_adapter

    dataset = array_data_adapter.ArrayDataAdapter(x, y, batch_size=BATCH, shuffle=True).get_tf_dataset()

    @tf.function
    def iterate(dataset):
        total = tf.constant(0.0)
        for xb, _ in dataset:
            total += tf.reduce_sum(xb)
        return total

    iterate(dataset)
    started = time.perf_counter()
    for _ in range(epochs):
        iterate(dataset)
    return time.perf_counter() - started


ARMS = {
    "keras fit": keras_fit,
    "pipeline fit": pipeline_fit,
    "bare loop": bare_loop,
    "keras tf.data alone": keras_data_alone,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, FEATURES), dtype=np.float32)
    y = rng.random((ROWS, 1), dtype=np.float32)
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(args.repeats):
        for arm, run in ARMS.items():
            training.seed_everything(0)
            seconds[arm].append(run(x, y, args.epochs))
    print(f"{args.epochs} epochs of {ROWS} rows at batch {BATCH}, steps_per_execution {STEPS_PER_EXECUTION}")
    for arm, values in seconds.items():
        print(f"{arm:20s} {statistics.median(values):6.2f} s (median of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
