"""Note 003 (Chollet ch. 7), model ensembling: several small networks of different shapes and
seeds trained apart, their softmax outputs averaged.

One variant trains ``model.members`` networks (member k takes ``model.architectures`` entry
(k - 1) modulo its length and seed ``seed + k - 1``), each reported as an MLflow child run
``member<k>`` of the variant's run, and returns one Keras model that averages them
(keras.layers.Average over the members, which sit inside it as layers): it saves, loads and is
scored like any model. Evaluation scores the ensemble and each member on the same splits.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score

from pipeline import training
from pipeline.errors import ConfigError
from pipeline.experiments.base import NullLogger, TrainedVariant
from pipeline.experiments.classification import PREDICT_BATCH, FashionClassifier, n_classes
from pipeline.models.ensemble import build_average_ensemble, ensemble_members
from pipeline.models.graphs import MEMBER_KINDS, build_member
from pipeline.training import compile_model

SPLITS = {"test": "test", "valid": "val"}


class Ensemble(FashionClassifier):
    name = "ensemble"

    def member_specs(self, cfg) -> list[tuple[str, dict[str, Any]]]:
        """``[("member1", {kind: dense, hidden: [...]}), ...]``, validated."""
        architectures = OmegaConf.to_container(cfg.model.architectures, resolve=True)
        count = int(cfg.model.members)
        if count < 1 or not architectures:
            raise ConfigError(
                f"An ensemble needs model.members >= 1 and at least one entry in "
                f"model.architectures; got {count} and {len(architectures)}."
            )
        for spec in architectures:
            if spec.get("kind") not in MEMBER_KINDS:
                raise ConfigError(
                    f"Unknown ensemble member kind {spec.get('kind')!r} in "
                    f"model.architectures; valid choices: {', '.join(MEMBER_KINDS)}."
                )
        return [(f"member{k}", architectures[(k - 1) % len(architectures)]) for k in range(1, count + 1)]

    def build_member(self, cfg, data, name: str, spec: dict):
        model = build_member(
            spec,
            input_shape=data["x_train"].shape[1:],
            n_outputs=n_classes(data),
            dropout=float(cfg.model.dropout),
            name=name,
        )
        return compile_model(
            model,
            optimizer=cfg.train.optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=int(cfg.train.steps_per_execution),
        )

    def build(self, cfg, variant, data):
        """The averaging model over freshly built (compiled, untrained) members. It is never
        trained itself, so it has no optimizer: compiling it would save one whose variables
        do not match on loading."""
        members = [self.build_member(cfg, data, name, spec) for name, spec in self.member_specs(cfg)]
        return build_average_ensemble(members, name=f"ensemble_{variant}", input_name="pixels")

    def train_variant(
        self, cfg, variant, data, *, seed, callbacks=(), fast=True, logger=None
    ) -> TrainedVariant:
        """Train the members one after the other, then average them.

        The stage's ``callbacks`` (MLflow's per-epoch logger, the tune stage's pruner,
        TensorBoard) are made for one fit per run: they watch the first member, whose learning
        curve is also the variant's history. Every member's curve and validation accuracy go to
        its own child run and to the variant's metrics (``member<k>_val_accuracy``).
        """
        cfg = self.resolve(cfg, variant)
        logger = logger or NullLogger()
        train, valid = self.split(cfg, variant, data, "train"), self.split(cfg, variant, data, "valid")
        members, fits, metrics = [], [], {}
        started = time.perf_counter()
        for index, (name, spec) in enumerate(self.member_specs(cfg)):
            training.seed_everything(seed + index)
            member = self.build_member(cfg, data, name, spec)
            fit = training.fit(
                member,
                train,
                valid,
                epochs=int(cfg.train.epochs),
                batch_size=int(cfg.train.batch_size),
                fast=fast,
                callbacks=[*training.callbacks_from_config(cfg.train), *(callbacks if index == 0 else ())],
            )
            accuracy = self.accuracy(member, *valid)
            scores = {
                f"{name}_val_accuracy": accuracy,
                f"{name}_epochs": fit.epochs,
                f"{name}_params": int(member.count_params()),
            }
            with logger.child(name) as child:
                for epoch, values in enumerate(zip(*fit.history.values())):
                    child.log_metrics(dict(zip(fit.history, values)), step=epoch)
                child.log_metrics(
                    {
                        "final_val_accuracy": accuracy,
                        "epochs": fit.epochs,
                        "train_seconds": fit.seconds,
                        "seed": seed + index,
                    }
                )
            members.append(member)
            fits.append(fit)
            metrics.update(scores)
        seconds = time.perf_counter() - started
        model = build_average_ensemble(members, name=f"ensemble_{variant}", input_name="pixels")
        accuracies = [metrics[f"{name}_val_accuracy"] for name, _ in self.member_specs(cfg)]
        metrics.update(
            {
                "members": len(members),
                "params": int(model.count_params()),
                "best_member_val_accuracy": max(accuracies),
                "mean_member_val_accuracy": float(np.mean(accuracies)),
            }
        )
        summary = training.FitResult(
            history=fits[0].history,
            epochs=max(fit.epochs for fit in fits),  # per member; member<k>_epochs has each
            seconds=seconds,  # all members
            samples_per_second=sum(f.samples_per_second * f.seconds for f in fits) / seconds,
        )
        return TrainedVariant(model, summary, metrics)

    @staticmethod
    def accuracy(model, x, y) -> float:
        predicted = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).argmax(axis=1)
        return float(accuracy_score(y, predicted))

    def evaluation(self, cfg, variant, model, data) -> dict[str, float]:
        """The ensemble's accuracy (``test_accuracy``, ``val_accuracy``), each member's
        (``test_accuracy_member<k>``), the best and mean member, and the gain over the best."""
        scores: dict[str, float] = {}
        members = ensemble_members(model)
        for split, prefix in SPLITS.items():
            x, y = self.split(cfg, variant, data, split)
            scores[f"{prefix}_accuracy"] = self.accuracy(model, x, y)
            per_member = {member.name: self.accuracy(member, x, y) for member in members}
            scores.update({f"{prefix}_accuracy_{name}": value for name, value in per_member.items()})
            if per_member:
                best = max(per_member.values())
                scores[f"{prefix}_accuracy_best_member"] = best
                scores[f"{prefix}_accuracy_mean_member"] = float(np.mean(list(per_member.values())))
                scores[f"{prefix}_gain_over_best_member"] = scores[f"{prefix}_accuracy"] - best
        return scores

    def summary(self, cfg, results, histories):
        """Members against the ensemble: one table and a bar chart of test accuracy."""
        import matplotlib.pyplot as plt

        tables, figures = {}, {}
        for variant, entry in results.items():
            names = sorted(
                (k.removeprefix("test_accuracy_") for k in entry if k.startswith("test_accuracy_member")),
                key=lambda n: int(n[6:]),
            )
            rows = [
                {
                    "model": name,
                    "test_accuracy": entry[f"test_accuracy_{name}"],
                    "val_accuracy": entry.get(f"val_accuracy_{name}"),
                    "params": entry.get(f"{name}_params"),
                    "epochs": entry.get(f"{name}_epochs"),
                }
                for name in names
            ]
            rows.append(
                {
                    "model": "ensemble",
                    "test_accuracy": entry.get("test_accuracy"),
                    "val_accuracy": entry.get("val_accuracy"),
                    "params": entry.get("params"),
                    "epochs": entry.get("epochs"),
                }
            )
            tables[variant] = rows
            figure, axis = plt.subplots(figsize=(6, 4))
            values = [row["test_accuracy"] for row in rows]
            axis.bar(
                [row["model"] for row in rows], values, color=["tab:blue"] * (len(rows) - 1) + ["tab:orange"]
            )
            low = min(values)
            axis.set_ylim(low - 0.02, max(values) + 0.01)
            axis.set_ylabel("test accuracy")
            axis.set_title(f"{self.name} / {variant}: members vs their average")
            axis.grid(alpha=0.3, axis="y")
            figure.tight_layout()
            figures[f"{variant}_members.png"] = figure
        return tables, figures
