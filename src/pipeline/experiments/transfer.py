"""Note 004, transfer learning: does reusing a network trained on 8 Fashion-MNIST classes help a
2-class task with 200 training images? Measured over several seeds with a paired test.

Task A: the 8 classes other than sandal (5) and shirt (6). Task B: shirt (positive) vs sandal,
only the first 200 such training images. model_A: Dense 300-100-50-50-50 (selu) + softmax(8).
model_B from scratch vs model_B_on_A: A's hidden layers (cloned, so model_A stays intact) plus a
new sigmoid output, frozen for ``frozen_epochs`` then unfrozen (lower learning rate) for
``unfrozen_epochs``. The note reports 0.9855 vs 0.9945; the book it follows warns that such a
gain depends on the seed, which is why this experiment repeats B over ``seeds``.
"""

from __future__ import annotations

import json

import keras
import numpy as np
from omegaconf import OmegaConf
from scipy import stats

from pipeline import training
from pipeline.experiments.base import NullLogger, TrainedVariant
from pipeline.experiments.classification import PREDICT_BATCH, ClassificationExperiment
from pipeline.models.dense import build_deep_mlp
from pipeline.serving import (
    CHECK_ROWS,
    FASHION_CLASSES,
    Servable,
    binary_output,
    classes_output,
    head,
    image_input,
)
from pipeline.training import compile_model

SANDAL, SHIRT = 5, 6
TASK_A_CLASSES = tuple(name for label, name in enumerate(FASHION_CLASSES) if label not in (SANDAL, SHIRT))


def split_tasks(x: np.ndarray, y: np.ndarray, b_size: int | None = None):
    """(x_A, y_A) with labels renumbered 0..7, and (x_B, y_B) with y_B = 1 for shirts."""
    in_b = (y == SANDAL) | (y == SHIRT)
    y_a = y[~in_b]
    y_a = np.where(y_a > SHIRT, y_a - 2, y_a)  # 7, 8, 9 -> 5, 6, 7
    x_b, y_b = x[in_b], (y[in_b] == SHIRT).astype("float32")
    if b_size is not None:
        x_b, y_b = x_b[:b_size], y_b[:b_size]
    return (x[~in_b], y_a), (x_b, y_b)


def accuracy(model, x, y) -> float:
    probabilities = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    return float(((probabilities > 0.5) == y.astype(bool)).mean())


class Transfer(ClassificationExperiment):
    name = "transfer"
    tune_in_one_process = True  # the trials share model_A (train_variant's cache)

    def __init__(self) -> None:
        self._model_a_cache: dict[str, TrainedVariant] = {}

    def split(self, cfg, variant, data, split):
        (x_a, y_a), _ = split_tasks(data[f"x_{split}"], data[f"y_{split}"])
        return x_a, y_a

    def serving_input(self, cfg, variant, data):
        return image_input(shape=data["x_train"].shape[1:])

    def serving_outputs(self, cfg, variant, data):
        return [classes_output(TASK_A_CLASSES)]  # model_A: the 8 classes of task A

    def task_b_servable(self, model, data) -> Servable:
        """model_B or model_B_on_A as a logged model: a 28x28 image in, "Shirt" or "Sandal" out."""
        x_b, _ = self._task_b(data, "test")
        spec = {
            "experiment": self.name,
            "variant": model.name,
            "input": image_input(shape=x_b.shape[1:]),
            "outputs": [binary_output("class", [FASHION_CLASSES[SANDAL], FASHION_CLASSES[SHIRT]])],
        }
        return Servable(model, spec, raw_test=head(x_b, CHECK_ROWS), network_test=head(x_b, CHECK_ROWS))

    def _network(self, cfg, x, n_outputs, activation, name):
        return build_deep_mlp(
            x_train=x,
            n_outputs=n_outputs,
            output_activation=activation,
            hidden=list(cfg.model.hidden),
            activation=cfg.model.activation,
            initializer=cfg.model.initializer,
            name=name,
        )

    def _compile(self, cfg, model, loss, learning_rate):
        return compile_model(
            model,
            optimizer={**cfg.train.optimizer, "learning_rate": learning_rate},
            loss=loss,
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def build(self, cfg, variant, data):
        x_a, _ = self.split(cfg, variant, data, "train")
        model = self._network(cfg, x_a, 8, "softmax", "model_A")
        return self._compile(cfg, model, "sparse_categorical_crossentropy", cfg.train.optimizer.learning_rate)

    def _task_b(self, data, split, cfg=None):
        _, (x_b, y_b) = split_tasks(
            data[f"x_{split}"],
            data[f"y_{split}"],
            int(cfg.train.transfer.b_train_size) if cfg is not None else None,
        )
        return x_b, y_b

    def _b_from_scratch(self, cfg, data, seed):
        training.seed_everything(seed)
        x_b, y_b = self._task_b(data, "train", cfg)
        model = self._compile(
            cfg,
            self._network(cfg, x_b, 1, "sigmoid", "model_B"),
            "binary_crossentropy",
            cfg.train.optimizer.learning_rate,
        )
        epochs = int(cfg.train.transfer.frozen_epochs) + int(cfg.train.transfer.unfrozen_epochs)
        training.fit(
            model,
            (x_b, y_b),
            self._task_b(data, "valid"),
            epochs=epochs,
            batch_size=int(cfg.train.batch_size),
        )
        return model

    def _b_on_a(self, cfg, model_a, data, seed):
        training.seed_everything(seed)
        clone = keras.models.clone_model(model_a)  # A's architecture ...
        clone.set_weights(model_a.get_weights())  # ... and weights; model_A itself stays intact
        reused = clone.get_layer(f"hidden{int(cfg.train.transfer.reuse_layers)}").output
        output = keras.layers.Dense(1, activation="sigmoid", name="output_b")(reused)
        model = keras.Model(clone.inputs, output, name="model_B_on_A")
        x_b, y_b = self._task_b(data, "train", cfg)
        valid = self._task_b(data, "valid")
        for layer in model.layers[:-1]:
            layer.trainable = False
        self._compile(cfg, model, "binary_crossentropy", cfg.train.optimizer.learning_rate)
        training.fit(
            model,
            (x_b, y_b),
            valid,
            epochs=int(cfg.train.transfer.frozen_epochs),
            batch_size=int(cfg.train.batch_size),
        )
        for layer in model.layers[:-1]:
            layer.trainable = True
        self._compile(cfg, model, "binary_crossentropy", float(cfg.train.transfer.unfrozen_learning_rate))
        training.fit(
            model,
            (x_b, y_b),
            valid,
            epochs=int(cfg.train.transfer.unfrozen_epochs),
            batch_size=int(cfg.train.batch_size),
        )
        return model

    def train_model_a(self, cfg, variant, data, *, logger=None, **kwargs) -> TrainedVariant:
        """model_A alone, on task A (8 classes), as any single-fit experiment trains its model."""
        return super().train_variant(cfg, variant, data, logger=logger, **kwargs)

    def train_variant(self, cfg, variant, data, *, logger=None, **kwargs) -> TrainedVariant:
        logger = logger or NullLogger()
        cfg = self.resolve(cfg, variant)
        # model_A depends only on model/train/seed: a tuning study over the transfer settings
        # trains it once, not once per trial
        a_train = {k: v for k, v in OmegaConf.to_container(cfg.train).items() if k != "transfer"}
        key = json.dumps(
            [OmegaConf.to_container(cfg.model), a_train, kwargs.get("seed"), len(data["y_train"])],
            sort_keys=True,
        )
        if key not in self._model_a_cache:
            self._model_a_cache.clear()
            self._model_a_cache[key] = self.train_model_a(cfg, variant, data, logger=logger, **kwargs)
        cached = self._model_a_cache[key]
        trained = TrainedVariant(cached.model, cached.fit, dict(cached.metrics))
        model_a = trained.model
        test_b = self._task_b(data, "test")
        results: dict[str, list[float]] = {"b_scratch": [], "b_on_a": []}
        for seed in range(
            int(cfg.train.transfer.first_seed),
            int(cfg.train.transfer.first_seed) + int(cfg.train.transfer.seeds),
        ):
            for name, make in (
                ("b_scratch", lambda: self._b_from_scratch(cfg, data, seed)),
                ("b_on_a", lambda: self._b_on_a(cfg, model_a, data, seed)),
            ):
                with logger.child(f"{name}-seed{seed}") as run:
                    model_b = make()
                    score = accuracy(model_b, *test_b)
                    run.log_metrics({"test_accuracy": score, "seed": seed})
                    run.log_model(self.task_b_servable(model_b, data))
                results[name].append(score)
        trained.metrics.update(compare_paired(results["b_scratch"], results["b_on_a"]))
        trained.figures["transfer_comparison.png"] = comparison_figure(results)
        return trained


def compare_paired(scratch: list[float], on_a: list[float]) -> dict:
    """Mean ± std of both, the mean paired difference and a paired t-test's p-value."""
    scratch_a, on_a_a = np.asarray(scratch), np.asarray(on_a)
    result = {
        "b_scratch_test_accuracy_mean": float(scratch_a.mean()),
        "b_scratch_test_accuracy_std": float(scratch_a.std(ddof=1)) if len(scratch) > 1 else 0.0,
        "b_on_a_test_accuracy_mean": float(on_a_a.mean()),
        "b_on_a_test_accuracy_std": float(on_a_a.std(ddof=1)) if len(on_a) > 1 else 0.0,
        "transfer_gain_mean": float((on_a_a - scratch_a).mean()),
        "b_scratch_test_accuracy_per_seed": scratch,
        "b_on_a_test_accuracy_per_seed": on_a,
    }
    differences = on_a_a - scratch_a
    if len(scratch) > 1 and np.any(differences != differences[0]):
        result["paired_t_pvalue"] = float(stats.ttest_rel(on_a_a, scratch_a).pvalue)
    else:
        result["paired_t_pvalue"] = 1.0 if not differences.any() else 0.0
    return result


def comparison_figure(results: dict[str, list[float]]):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4))
    labels = {"b_scratch": "model_B (scratch)", "b_on_a": "model_B_on_A (transfer)"}
    for position, (name, scores) in enumerate(results.items()):
        axis.scatter(np.full(len(scores), position), scores, alpha=0.7)
        axis.errorbar(
            position + 0.15, np.mean(scores), yerr=np.std(scores), fmt="o", color="black", capsize=4
        )
    for pair in zip(*results.values()):
        axis.plot([0, 1], pair, color="gray", alpha=0.4, linewidth=1)
    axis.set_xticks([0, 1], [labels[n] for n in results])
    axis.set_ylabel("test accuracy (shirt vs sandal)")
    axis.set_title("Transfer learning over seeds (lines pair one seed)")
    figure.tight_layout()
    return figure
