"""Note 003, layer weight sharing: a Siamese network on pairs of Fashion-MNIST images ("same
class?"). The note is theory without code or figures; the pairs, the encoders and the bar are ours.

Pairs are made from each split's own images (train pairs from x_train, validation pairs from
x_valid, test pairs from x_test), half of them same-class, with a fixed seed per split from
``train.pairs``: every stage that calls split() gets the same pairs, so evaluate scores exactly
the test pairs that were never trained or validated on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

import pipeline.plots  # noqa: F401  (selects matplotlib's file-only backend before any figure)
from pipeline.errors import ConfigError
from pipeline.experiments.base import Arrays
from pipeline.experiments.classification import PREDICT_BATCH, ClassificationExperiment
from pipeline.models.siamese import ENCODERS, build_encoder, build_siamese
from pipeline.serving import binary_output, image_input
from pipeline.training import compile_model

SPLITS = ("train", "valid", "test")


def make_pairs(labels: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs into ``labels`` and their target: (a, b, same) with same = 1 for exactly
    ``n_pairs // 2`` pairs. Anchors are drawn uniformly; a same-class partner is another image
    of the anchor's class (never the anchor itself), a different-class partner an image of a
    uniformly drawn other class. Pairs come shuffled; the same seed gives the same pairs."""
    labels = np.asarray(labels).reshape(-1)
    classes, class_of, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(
            "pairs need at least two classes with at least two images each; "
            f"got class counts {dict(zip(classes.tolist(), counts.tolist()))}"
        )
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2, got {n_pairs}")
    rng = np.random.default_rng(seed)
    order = np.argsort(class_of, kind="stable")  # image indices grouped by class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(labels), dtype=np.int64)  # position of each image within its class
    rank[order] = np.arange(len(labels)) - np.repeat(starts, counts)

    n_same = n_pairs // 2
    anchors = rng.integers(0, len(labels), n_pairs)
    anchor_class = class_of[anchors]
    partner_class = anchor_class.copy()
    n_classes = len(classes)
    # different pairs: one of the other classes, uniformly
    partner_class[n_same:] = (
        anchor_class[n_same:] + 1 + rng.integers(0, n_classes - 1, n_pairs - n_same)
    ) % n_classes
    partner_rank = np.empty(n_pairs, dtype=np.int64)
    # same pairs: another image of the class (an offset of 1..count-1 from the anchor's rank)
    same_counts = counts[anchor_class[:n_same]]
    partner_rank[:n_same] = (
        rank[anchors[:n_same]] + 1 + np.floor(rng.random(n_same) * (same_counts - 1)).astype(np.int64)
    ) % same_counts
    other_counts = counts[partner_class[n_same:]]
    partner_rank[n_same:] = np.floor(rng.random(n_pairs - n_same) * other_counts).astype(np.int64)
    partners = order[starts[partner_class] + partner_rank]
    same = np.zeros(n_pairs, dtype=np.int64)
    same[:n_same] = 1
    shuffle = rng.permutation(n_pairs)
    return anchors[shuffle], partners[shuffle], same[shuffle]


class Siamese(ClassificationExperiment):
    name = "siamese"

    # --- pairs ----------------------------------------------------------------------------
    def pair_indices(self, cfg, data: Arrays, split: str):
        """(a, b, same) of a split: ``train.pairs.per_image[split]`` pairs per image of the split,
        seeded with ``train.pairs.seed`` plus the split's position (train 0, valid 1, test 2)."""
        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}; valid choices: {', '.join(SPLITS)}.")
        pairs = cfg.train.pairs
        labels = data[f"y_{split}"]
        n_pairs = int(round(float(pairs.per_image[split]) * len(labels)))
        return make_pairs(labels, n_pairs, int(pairs.seed) + SPLITS.index(split))

    def split(self, cfg, variant, data, split):
        a, b, same = self.pair_indices(cfg, data, split)
        images = data[f"x_{split}"]  # only this split's images: test pairs never see training images
        return {"image_a": images[a], "image_b": images[b]}, same.astype("float32")

    def serving_input(self, cfg, variant, data):
        return image_input(("image_a", "image_b"), shape=data["x_train"].shape[1:])

    def serving_outputs(self, cfg, variant, data):
        return [binary_output("same_class", ["no", "yes"])]

    # --- model ----------------------------------------------------------------------------
    def encoder_kind(self, cfg, variant) -> str:
        kind = self.variant_config(cfg, variant).encoder
        if kind not in ENCODERS:
            raise ConfigError(
                f"Unknown encoder {kind!r} in variant {variant!r}; valid choices: {', '.join(ENCODERS)}."
            )
        return kind

    def build(self, cfg, variant, data):
        kind, spec = self.encoder_kind(cfg, variant), cfg.model
        encoder = build_encoder(
            image_shape=data["x_train"].shape[1:],
            kind=kind,
            filters=list(spec.filters),
            hidden=list(spec.conv_hidden if kind == "conv" else spec.dense_hidden),
            embedding=int(spec.embedding),
            batch_norm=bool(spec.batch_norm),
            dropout=float(spec.dropout),
            name="encoder",
        )
        model = build_siamese(encoder=encoder, head_units=int(spec.head_units), name=f"siamese_{variant}")
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss="binary_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    # --- scores ---------------------------------------------------------------------------
    def probabilities(self, cfg, variant, model, data, split) -> tuple[np.ndarray, np.ndarray]:
        inputs, same = self.split(cfg, variant, data, split)
        return same, model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)

    def score(self, cfg, variant, model, data, split) -> dict[str, float]:
        same, probability = self.probabilities(cfg, variant, model, data, split)
        return {
            "accuracy": float(((probability > 0.5) == (same == 1)).mean()),
            "auc": float(roc_auc_score(same, probability)),
        }

    def baseline(self, cfg, data) -> dict[str, Any]:
        """Test-pair accuracy of a constant answer (0.5: the pairs are balanced), and of the
        raw-pixel rule "same if the Euclidean distance is below a threshold", the threshold
        chosen on the training pairs: what the learned embedding has to beat."""

        def distances(split):
            a, b, same = self.pair_indices(cfg, data, split)
            x = data[f"x_{split}"].reshape(len(data[f"x_{split}"]), -1).astype("float32") / 255
            return np.sqrt(((x[a] - x[b]) ** 2).sum(axis=1)), same

        train_d, train_same = distances("train")
        candidates = np.quantile(train_d, np.linspace(0.01, 0.99, 99))
        accuracy = [((train_d < t) == (train_same == 1)).mean() for t in candidates]
        threshold = float(candidates[int(np.argmax(accuracy))])
        test_d, test_same = distances("test")
        return {
            "accuracy": float(max(test_same.mean(), 1 - test_same.mean())),
            "pixel_distance_accuracy": float(((test_d < threshold) == (test_same == 1)).mean()),
            "pixel_distance_auc": float(roc_auc_score(test_same, -test_d)),
        }

    def figure(self, cfg, variant, model, data):
        """Histogram of the test pairs' predicted probabilities, same- and different-class."""
        import matplotlib.pyplot as plt

        same, probability = self.probabilities(cfg, variant, model, data, "test")
        figure, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(0, 1, 41)
        ax.hist(probability[same == 0], bins=bins, alpha=0.6, label="different class")
        ax.hist(probability[same == 1], bins=bins, alpha=0.6, label="same class")
        ax.axvline(0.5, color="black", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.set_xlabel("predicted P(same class)")
        ax.set_ylabel("test pairs")
        ax.set_title(f"siamese / {variant}: test pairs")
        ax.legend()
        figure.tight_layout()
        return figure
