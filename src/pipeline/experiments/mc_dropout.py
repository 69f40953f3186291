"""Note 004, Monte-Carlo dropout: a dropout network trained properly, then 100 stochastic
forward passes (dropout on at inference) against the same model's deterministic prediction.

The note's MC accuracy, 0.0942, came from a model it never trained (chance level for 10
classes); here the model is trained first, and the comparison is made on the same weights.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from pipeline.experiments.classification import PREDICT_BATCH
from pipeline.experiments.deep_training import DeepTraining


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def mc_predict(model, x: np.ndarray, passes: int, seed: int) -> np.ndarray:
    """(passes, n, classes) probabilities with dropout active (``training=True``)."""
    import keras

    keras.utils.set_random_seed(seed)
    reseed_dropout(model, seed)
    return np.stack(
        [
            np.concatenate(
                [
                    keras.ops.convert_to_numpy(model(x[i : i + PREDICT_BATCH], training=True))
                    for i in range(0, len(x), PREDICT_BATCH)
                ]
            )
            for _ in range(passes)
        ]
    )


def reseed_dropout(model, seed: int) -> None:
    """Start every dropout mask generator of ``model`` from ``seed`` (the i-th from seed + i).

    A loaded model's generators are seeded when it is loaded, from whatever state Python's
    random module has then, so MC passes over one saved model differed between processes
    (evaluate's MC accuracy moved in the 4th decimal between two fresh-clone runs)."""
    import keras

    generators = [
        layer.seed_generator
        for layer in walk_layers(model)
        if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)
    ]
    for index, generator in enumerate(generators):
        generator.state.assign(keras.random.SeedGenerator(seed + index).state)


def walk_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def uncertainty_scores(labels: np.ndarray, deterministic: np.ndarray, samples: np.ndarray) -> dict:
    mean = samples.mean(axis=0)
    classes = np.arange(mean.shape[1])
    return {
        "test_accuracy_mc": float(accuracy_score(labels, mean.argmax(axis=1))),
        "test_accuracy_deterministic": float(accuracy_score(labels, deterministic.argmax(axis=1))),
        "test_nll_mc": float(log_loss(labels, np.clip(mean, 1e-7, 1), labels=classes)),
        "test_nll_deterministic": float(log_loss(labels, np.clip(deterministic, 1e-7, 1), labels=classes)),
        "test_ece_mc": expected_calibration_error(mean, labels),
        "test_ece_deterministic": expected_calibration_error(deterministic, labels),
    }


class MCDropout(DeepTraining):
    name = "mc_dropout"

    def variants(self, cfg) -> list[str]:
        return list(cfg.variants)

    def summary(self, cfg, results, histories):
        return {}, {}  # one variant: nothing to compare across

    # the deep-training network in the plain fit: none of that experiment's per-technique
    # bookkeeping (gradient norms, the technique group)
    def extra_callbacks(self, cfg, variant, data):
        return []

    def after_training(self, cfg, variant, data, trained, callbacks):
        return {}

    def _predictions(self, cfg, model, data):
        """Deterministic and MC predictions of the test set, computed once per model (the
        evaluate stage asks for the scores and then for the figure)."""
        if getattr(self, "_cached", (None,))[0] is not model:
            x, y = data["x_test"], data["y_test"]
            deterministic = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
            samples = mc_predict(model, x, int(cfg.train.mc.passes), int(cfg.train.mc.seed))
            self._cached = (model, (y, deterministic, samples))
        return self._cached[1]

    def evaluation(self, cfg, variant, model, data) -> dict:
        y, deterministic, samples = self._predictions(cfg, model, data)
        scores = {
            **uncertainty_scores(y, deterministic, samples),
            "val_accuracy": self.score(cfg, variant, model, data, "valid")["accuracy"],
        }
        mean, std = samples.mean(axis=0), samples.std(axis=0)
        scores["per_class"] = {
            str(c): {
                "mean_probability": float(mean[y == c, c].mean()),
                "std_probability": float(std[y == c, c].mean()),
            }
            for c in range(mean.shape[1])
        }
        return scores

    def figure(self, cfg, variant, model, data):
        import matplotlib.pyplot as plt

        y, _, samples = self._predictions(cfg, model, data)
        mean, std = samples.mean(axis=0), samples.std(axis=0)
        spread = std[np.arange(len(y)), mean.argmax(axis=1)]
        picks = [("most certain", i) for i in np.argsort(spread)[:3]] + [
            ("least certain", i) for i in np.argsort(spread)[-3:]
        ]
        figure, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 5.2))
        for column, (label, index) in enumerate(picks):
            axes[0, column].imshow(data["x_test"][index], cmap="binary")
            axes[0, column].set_title(f"{label}\ntrue {y[index]}", fontsize=9)
            axes[0, column].axis("off")
            classes = np.arange(mean.shape[1])
            axes[1, column].bar(classes, mean[index], yerr=std[index], capsize=2)
            axes[1, column].set_ylim(0, 1.05)
            axes[1, column].set_xticks(classes)
            axes[1, column].tick_params(labelsize=7)
        axes[1, 0].set_ylabel("MC mean probability ± std")
        figure.suptitle(f"MC dropout ({int(cfg.train.mc.passes)} passes): most and least certain test images")
        figure.tight_layout()
        return figure
