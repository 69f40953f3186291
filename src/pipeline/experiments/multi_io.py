"""Note 003, multi-input and multi-output models, on IMDB: the review's words (multi-hot, the
note-002 vectors) and its length in; its sentiment and its star rating out.

The note is theory without code or figures. The rating (1-4 negative, 7-10 positive, from the
aclImdb file names) is a second target that the sentiment output does not see: does learning it
too help the sentiment (variant both_outputs against sentiment_only), and how well is it predicted
(MAE against predicting the training mean)? Loss functions and loss weights per output come from
``train.losses`` / ``train.loss_weights``; inputs, outputs, targets and predictions are dicts keyed
by name, so note 000's slip (predictions labelled with metric names) cannot happen here.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

import pipeline.plots  # noqa: F401  (selects matplotlib's file-only backend before any figure)
from pipeline.data.sources import array_sha256
from pipeline.data.text import ragged_parts
from pipeline.errors import ConfigError, DataError
from pipeline.experiments.bag_of_words import SPLITS, Imdb
from pipeline.experiments.base import Arrays, Experiment
from pipeline.models.multi_io import OUTPUTS, build_multi_io
from pipeline.serving import binary_output, text_input, value_output
from pipeline.training import compile_model

PREDICT_BATCH = 4096
METRICS = {"sentiment": lambda: ["accuracy"], "rating": lambda: [keras.metrics.MeanAbsoluteError(name="mae")]}


def log_word_counts(data: Arrays, split: str) -> np.ndarray:
    """log(1 + number of whitespace-separated words) of every review of a split, (n, 1) float32;
    counted on the packed UTF-8 bytes (no decoding)."""
    values, splits = ragged_parts(data, f"text_{split}")
    buffer = values.tobytes()
    counts = np.fromiter(
        (len(buffer[start:end].split()) for start, end in zip(splits[:-1], splits[1:])),
        dtype=np.float64,
        count=len(splits) - 1,
    )
    return np.log1p(counts).astype("float32").reshape(-1, 1)


class MultiIO(Experiment):
    name = "multi_io"
    #: what the tuning pruner watches: the sentiment's validation loss (the tuned metric is the
    #: sentiment's accuracy; the weighted total would favour a small rating weight)
    monitor = "val_sentiment_loss"
    reports_best_epoch = True

    def __init__(self) -> None:
        self._words = Imdb()  # the note-002 vectors, vectorized once per process and data
        self._lengths: tuple[str, dict[str, np.ndarray]] | None = None

    # --- data -----------------------------------------------------------------------------
    def outputs(self, cfg) -> list[str]:
        outputs = list(cfg.model.outputs)
        unknown = [output for output in outputs if output not in OUTPUTS]
        if unknown or not outputs:
            raise ConfigError(f"model.outputs must name one or more of {', '.join(OUTPUTS)}; got {outputs}.")
        return outputs

    def log_words(self, data: Arrays) -> dict[str, np.ndarray]:
        key = array_sha256(*(data[f"text_{split}_splits"] for split in SPLITS))
        if self._lengths is None or self._lengths[0] != key:
            self._lengths = (key, {split: log_word_counts(data, split) for split in SPLITS})
        return self._lengths[1]

    def ratings(self, data: Arrays, split: str) -> np.ndarray:
        if f"rating_{split}" not in data:
            raise DataError(
                "The prepared imdb_reviews has no star ratings (rating_train/valid/test): it was "
                "prepared before they were kept. Run `python -m pipeline.prepare "
                "dataset=imdb_reviews` (or `dvc repro prepare@imdb_reviews`) again."
            )
        return data[f"rating_{split}"]

    def split(self, cfg, variant, data, split):
        inputs = {"words": self._words.vectors(cfg, data)[split], "log_words": self.log_words(data)[split]}
        targets = {}
        for output in self.outputs(cfg):
            values = data[f"y_{split}"] if output == "sentiment" else self.ratings(data, split)
            targets[output] = values.astype("float32").reshape(-1, 1)
        return inputs, targets

    # --- the logged model: the review's text in, its sentiment and rating out -------------
    def serving_input(self, cfg, variant, data):
        return text_input({"words": "multi_hot", "log_words": "log_word_count"})

    def serving_outputs(self, cfg, variant, data):
        named = {
            "sentiment": binary_output("sentiment", ["negative", "positive"], output="sentiment"),
            "rating": value_output("rating", output="rating"),
        }  # stars, 1-10
        return [named[output] for output in self.outputs(cfg)]

    def raw_inputs(self, cfg, variant, data, split):
        return self._words.raw_inputs(cfg, variant, data, split)

    def vocabulary(self, cfg, data):
        return self._words.vocabulary(cfg, data)

    # --- model ----------------------------------------------------------------------------
    def build(self, cfg, variant, data):
        outputs = self.outputs(cfg)
        inputs, _ = self.split(cfg, variant, data, "train")
        model = build_multi_io(
            n_words=inputs["words"].shape[1],
            log_words_train=inputs["log_words"],  # the length is standardized on train only
            outputs=outputs,
            units=int(cfg.model.units),
            dropout=float(cfg.model.dropout),
            rating_mean=float(self.ratings(data, "train").mean()) if "rating" in outputs else 0.0,
            name=f"multi_io_{variant}",
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss={output: cfg.train.losses[output] for output in outputs},
            loss_weights={output: float(cfg.train.loss_weights[output]) for output in outputs},
            metrics={output: METRICS[output]() for output in outputs},
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    # --- scores ---------------------------------------------------------------------------
    def predictions(self, cfg, variant, model, data, split):
        inputs, targets = self.split(cfg, variant, data, split)
        predicted = model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0)
        return targets, {name: np.asarray(values).reshape(-1, 1) for name, values in predicted.items()}

    def score(self, cfg, variant, model, data, split) -> dict[str, float]:
        targets, predicted = self.predictions(cfg, variant, model, data, split)
        scores = {}
        if "sentiment" in predicted:
            scores["sentiment_accuracy"] = float(
                ((predicted["sentiment"] > 0.5) == (targets["sentiment"] == 1)).mean()
            )
        if "rating" in predicted:
            error = predicted["rating"] - targets["rating"]
            scores["rating_mae"] = float(np.abs(error).mean())
            scores["rating_rmse"] = float(np.sqrt((error**2).mean()))
        return scores

    def baseline(self, cfg, data) -> dict[str, Any]:
        """Constant answers on the test reviews: the training majority sentiment, and the
        training mean rating (the bar)."""
        majority = int(np.bincount(data["y_train"]).argmax())
        train, test = self.ratings(data, "train"), self.ratings(data, "test")
        return {
            "sentiment_accuracy": float((data["y_test"] == majority).mean()),
            "rating_mae": float(np.abs(test - train.mean()).mean()),
        }

    def figure(self, cfg, variant, model, data):
        """Predicted rating per true rating on the test reviews (variants with a rating output)."""
        if "rating" not in self.outputs(cfg):
            return None
        import matplotlib.pyplot as plt

        targets, predicted = self.predictions(cfg, variant, model, data, "test")
        truth, rating = targets["rating"].ravel(), predicted["rating"].ravel()
        stars = np.unique(truth)
        figure, ax = plt.subplots(figsize=(6, 4))
        ax.boxplot([rating[truth == star] for star in stars], positions=stars, widths=0.6, showfliers=False)
        ax.plot([1, 10], [1, 10], color="black", linewidth=1, linestyle="--")
        ax.set_xlabel("true rating (stars)")
        ax.set_ylabel("predicted rating")
        ax.set_title(f"multi_io / {variant}: test reviews")
        figure.tight_layout()
        return figure
