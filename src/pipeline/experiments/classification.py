"""What the classification experiments share: accuracy (sklearn), the null models, a confusion
matrix of the test set, and the epoch where validation loss was lowest."""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score

import pipeline.plots  # noqa: F401  (selects matplotlib's file-only backend before any figure)
from pipeline.errors import ConfigError
from pipeline.experiments.base import Arrays, Experiment
from pipeline.serving import FASHION_CLASSES, classes_output, image_input

PREDICT_BATCH = 4096


def class_labels(values: np.ndarray) -> np.ndarray:
    """Integer classes from labels or model outputs: one-hot rows and softmax probabilities ->
    argmax; one sigmoid column -> probability > 0.5; integer labels as they are."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] > 1:
        return values.argmax(axis=1)
    if np.issubdtype(values.dtype, np.floating):
        return (values.reshape(-1) > 0.5).astype("int64")
    return values.reshape(-1).astype("int64")


def n_classes(data: Arrays) -> int:
    """Classes seen in any split's labels (labels are 0..n-1)."""
    return int(max(data[key].max() for key in data if key.startswith("y_"))) + 1


def null_accuracies(y_train: np.ndarray, y_test: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Test accuracy of always predicting the training majority class, and of guessing at
    random with the training class frequencies (Chollet's shuffled-labels baseline)."""
    no_features_train, no_features_test = np.zeros((len(y_train), 1)), np.zeros((len(y_test), 1))
    scores = {}
    for name, strategy in (("accuracy", "most_frequent"), ("chance_accuracy", "stratified")):
        dummy = DummyClassifier(strategy=strategy, random_state=seed).fit(no_features_train, y_train)
        scores[name] = float(dummy.score(no_features_test, y_test))
    return scores


class ClassificationExperiment(Experiment):
    """An Experiment whose targets are classes; subclasses provide build() and split()."""

    reports_best_epoch = True

    def labels_and_predictions(self, cfg, variant, model, data, split) -> tuple[np.ndarray, np.ndarray]:
        inputs, targets = self.split(cfg, variant, data, split)
        outputs = model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0)
        return class_labels(targets), class_labels(outputs)

    def score(self, cfg, variant, model, data, split) -> dict[str, float]:
        truth, predicted = self.labels_and_predictions(cfg, variant, model, data, split)
        return {"accuracy": float(accuracy_score(truth, predicted))}

    def baseline(self, cfg, data) -> dict[str, float]:
        return null_accuracies(data["y_train"], data["y_test"])

    def figure(self, cfg, variant, model, data):
        truth, predicted = self.labels_and_predictions(cfg, variant, model, data, "test")
        many = n_classes(data) > 12  # e.g. 46 topics: colours only, no numbers
        display = ConfusionMatrixDisplay.from_predictions(
            truth,
            predicted,
            normalize="true",
            include_values=not many,
            values_format=".2f",
            colorbar=False,
            cmap="Blues",
        )
        display.figure_.set_size_inches((10, 10) if many else (6, 6))
        display.ax_.set_title(f"{self.name} / {variant}: test set (rows: true class)")
        if many:
            display.ax_.tick_params(labelsize=6)
        display.figure_.tight_layout()
        return display.figure_


class FashionClassifier(ClassificationExperiment):
    """Fashion-MNIST networks that scale their own uint8 pixels: the logged model takes 28x28
    uint8 images and answers the class name with a probability per class."""

    def split(self, cfg, variant, data, split):
        return data[f"x_{split}"], data[f"y_{split}"]  # uint8 pixels; the model scales them

    def serving_input(self, cfg, variant, data):
        return image_input(shape=data["x_train"].shape[1:])

    def serving_outputs(self, cfg, variant, data):
        return [classes_output(FASHION_CLASSES[: n_classes(data)])]


class ArchitectureChoiceExperiment(FashionClassifier):
    """Fashion-MNIST networks, one architecture per variant (``variants.<name>.architecture``,
    one of ``architectures``)."""

    architectures: tuple[str, ...] = ()

    def architecture(self, cfg, variant) -> str:
        architecture = self.variant_config(cfg, variant).get("architecture")
        if architecture not in self.architectures:
            raise ConfigError(
                f"Unknown architecture {architecture!r} in variant {variant!r}; "
                f"valid choices: {', '.join(self.architectures)}."
            )
        return architecture
