"""Note 004 families (deep_training, mc_dropout, transfer) on small made-up images."""

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import experiment_cfg
from pipeline.errors import ConfigError
from pipeline.experiments import get_experiment
from pipeline.experiments.mc_dropout import expected_calibration_error, uncertainty_scores
from pipeline.experiments.transfer import compare_paired, split_tasks
from pipeline.models.dense import build_deep_mlp
from pipeline.models.factories import make_schedule


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "selu"])
def test_deep_mlp_options(activation, images):
    model = build_deep_mlp(
        x_train=images["x_train"],
        n_outputs=10,
        activation=activation,
        batch_norm=True,
        dropout=0.2,
        l2=0.01,
        max_norm=1.0,
        standardize=True,
    )
    names = [layer.name for layer in model.layers]
    assert names.count("bn1") == 1 and "bn3" in names and "dropout3" in names
    assert model.get_layer("hidden1").kernel_regularizer is not None
    assert model.get_layer("output").kernel_constraint is not None
    assert model.predict(images["x_test"][:3], verbose=0).shape == (3, 10)


@pytest.mark.parametrize(
    "initializer", ["he_normal", {"class_name": "VarianceScaling", "config": {"scale": 2.0}}]
)
def test_same_shaped_layers_start_from_different_kernels(initializer, images):
    """Transfer's 50-50-50 layers: one initializer object shared by all layers draws its seed
    once in Keras 3 and gave them equal kernels; each layer has its own now, seeded all the same."""
    keras.utils.set_random_seed(0)
    model = build_deep_mlp(
        x_train=images["x_train"], n_outputs=10, hidden=[300, 100, 50, 50, 50], initializer=initializer
    )
    kernels = [model.get_layer(f"hidden{i}").kernel.numpy() for i in (4, 5)]
    assert kernels[0].shape == kernels[1].shape == (50, 50)
    assert not np.array_equal(*kernels)
    keras.utils.set_random_seed(0)
    again = build_deep_mlp(
        x_train=images["x_train"], n_outputs=10, hidden=[300, 100, 50, 50, 50], initializer=initializer
    )
    assert np.array_equal(again.get_layer("hidden4").kernel.numpy(), kernels[0])  # seeded


def test_schedules_follow_the_note():
    power = make_schedule({"kind": "power", "initial": 0.01, "decay": 1e-4}, steps_per_epoch=100)
    assert float(power(10_000)) == pytest.approx(0.01 / 2)
    exponential = make_schedule({"kind": "exponential", "initial": 0.01, "s": 20}, steps_per_epoch=100)
    assert float(exponential(20 * 100)) == pytest.approx(0.001)
    piecewise = make_schedule(
        {"kind": "piecewise", "boundaries": [5, 15], "values": [0.01, 0.005, 0.001]}, steps_per_epoch=10
    )
    assert [round(float(piecewise(s)), 4) for s in (0, 60, 200)] == [0.01, 0.005, 0.001]
    assert make_schedule(None, 10) is None
    with pytest.raises(ValueError, match="valid choices"):
        make_schedule({"kind": "cosine"}, 10)


def test_groups_choose_the_variants():
    experiment = get_experiment("deep_training")
    cfg = experiment_cfg("deep_training", epochs=1)
    assert len(experiment.variants(cfg)) == len(cfg.variants)
    cfg.train.groups = ["optimizers"]
    assert experiment.variants(cfg) == [v for v in cfg.variants if v.startswith("opt_")]
    cfg.train.groups = ["optimisers"]
    with pytest.raises(ConfigError, match="optimizers"):
        experiment.variants(cfg)


def test_other_optimizer_replaces_the_base_one():
    experiment = get_experiment("deep_training")
    resolved = experiment.resolve(experiment_cfg("deep_training", epochs=1), "opt_adam")
    assert OmegaConf.to_container(resolved.train.optimizer) == {"name": "adam", "learning_rate": 0.001}
    momentum = experiment.resolve(experiment_cfg("deep_training", epochs=1), "opt_nesterov").train.optimizer
    assert (momentum.name, momentum.momentum, momentum.nesterov) == ("sgd", 0.9, True)


@pytest.mark.parametrize(
    "variant",
    ["opt_nadam", "sched_piecewise", "sched_plateau", "clip_norm", "init_variance_scaling", "reg_l2"],
)
def test_variants_train_and_record_gradients_and_learning_rate(variant, images):
    experiment = get_experiment("deep_training")
    trained = experiment.train_variant(experiment_cfg("deep_training", epochs=1), variant, images, seed=0)
    assert "learning_rate" in trained.fit.history
    assert trained.metrics["grad_norm_start_hidden1"] > 0
    assert trained.metrics["grad_norm_end_output"] > 0
    assert trained.metrics["group"] == experiment_cfg("deep_training", epochs=1).variants[variant].group


def test_mc_dropout_fits_the_deep_training_network_without_its_bookkeeping(images, fit_callbacks):
    """deep_training adds its gradient norms between the config's callbacks and the stage's;
    mc_dropout trains the same network with the stage's callbacks only, and reports best_epoch
    alone, as before the hooks."""
    stage = keras.callbacks.Callback()
    deep = get_experiment("deep_training").train_variant(
        experiment_cfg("deep_training", epochs=1), "sched_plateau", images, seed=0, callbacks=[stage]
    )
    mc = get_experiment("mc_dropout").train_variant(
        experiment_cfg("mc_dropout", epochs=1), "dropout_0_2", images, seed=0, callbacks=[stage]
    )
    deep_callbacks, mc_callbacks = fit_callbacks
    assert [type(c).__name__ for c in deep_callbacks] == ["ReduceLROnPlateau", "GradientNorms", "Callback"]
    assert mc_callbacks == [stage]
    keys = list(deep.metrics)
    assert keys[0] == "best_epoch" and keys[-2:] == ["grad_ratio_first_to_last_start", "group"]
    assert list(mc.metrics) == ["best_epoch"]


def test_deep_training_summary_tables_per_group():
    experiment = get_experiment("deep_training")
    results = {
        "opt_sgd": {"group": "optimizers", "val_accuracy": 0.8},
        "act_elu": {"group": "activations", "val_accuracy": 0.85},
    }
    tables, figures = experiment.summary(
        experiment_cfg("deep_training", epochs=1), results, {"opt_sgd": {"val_accuracy": [0.7, 0.8]}}
    )
    assert set(tables) == {"optimizers", "activations"} and set(figures) == {
        "optimizers.png",
        "activations.png",
    }


def test_expected_calibration_error():
    perfect = np.eye(3)[[0, 1, 2, 0]]
    assert expected_calibration_error(perfect, np.array([0, 1, 2, 0])) == 0
    overconfident = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(overconfident, np.array([0, 1])) == pytest.approx(0.4)


def test_mc_dropout_scores_compare_mc_and_deterministic(images):
    experiment = get_experiment("mc_dropout")
    cfg = experiment_cfg("mc_dropout", epochs=1)
    cfg.train.mc.passes = 5
    trained = experiment.train_variant(cfg, "dropout_0_2", images, seed=0)
    scores = experiment.evaluation(cfg, "dropout_0_2", trained.model, images)
    for key in ("test_accuracy_mc", "test_accuracy_deterministic", "test_nll_mc", "test_ece_mc"):
        assert np.isfinite(scores[key])
    assert set(scores["per_class"]) == {str(c) for c in range(10)}
    samples = np.stack([np.full((2, 2), 0.5)] * 3)
    assert uncertainty_scores(np.array([0, 1]), np.full((2, 2), 0.5), samples)["test_accuracy_mc"] == 0.5


MC_SCRIPT = """
import random, sys
import keras, numpy as np
from pipeline.experiments.mc_dropout import mc_predict
random.seed(int(sys.argv[2]))  # another process: Python's random module in another state
model = keras.models.load_model(sys.argv[1])
np.save(sys.argv[3], mc_predict(model, np.ones((4, 6), "float32"), passes=3, seed=7))
"""


def test_mc_passes_over_a_saved_model_repeat_in_another_process(tmp_path):
    """A loaded model's dropout masks come from generators seeded at load time; mc_predict
    reseeds them, so evaluate's MC scores repeat in every process and every clone."""
    import os
    import subprocess
    import sys

    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(8),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3),
        ]
    )
    model.save(tmp_path / "model.keras")
    outputs = []
    for run, (hash_seed, random_state) in enumerate([("1", "11"), ("2", "22")]):
        out = tmp_path / f"mc{run}.npy"
        subprocess.run(
            [sys.executable, "-c", MC_SCRIPT, str(tmp_path / "model.keras"), random_state, str(out)],
            check=True,
            cwd=tmp_path,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        outputs.append(np.load(out))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.allclose(outputs[0][0], outputs[0][1])  # the passes differ: dropout is on


def test_transfer_tasks_split_as_the_note():
    y = np.array([0, 5, 6, 7, 9, 6, 5, 1])
    x = np.arange(len(y))
    (x_a, y_a), (x_b, y_b) = split_tasks(x, y, b_size=3)
    assert list(x_a) == [0, 3, 4, 7] and list(y_a) == [0, 5, 7, 1]
    assert list(x_b) == [1, 2, 5] and list(y_b) == [0, 1, 1]


def test_paired_comparison():
    result = compare_paired([0.90, 0.92, 0.91], [0.95, 0.96, 0.97])
    assert result["transfer_gain_mean"] == pytest.approx(0.05)
    assert 0 < result["paired_t_pvalue"] < 0.05
    assert compare_paired([0.9, 0.9], [0.9, 0.9])["paired_t_pvalue"] == 1.0


def test_transfer_keeps_model_a_intact_and_logs_each_model_and_seed(images):
    experiment = get_experiment("transfer")
    cfg = experiment_cfg("transfer", epochs=1)
    cfg.train.transfer.update({"seeds": 2, "frozen_epochs": 1, "unfrozen_epochs": 1, "b_train_size": 30})
    children = []

    class Recorder:
        def log_metrics(self, metrics, step=None):
            children[-1][1].update(metrics)

        def child(self, name):
            import contextlib

            children.append((name, {}))
            return contextlib.nullcontext(self)

        def log_model(self, servable, name="model"):
            children[-1][1]["model"] = servable

    trained = experiment.train_variant(cfg, "transfer_comparison", images, seed=0, logger=Recorder())
    weights_before = [w.copy() for w in trained.model.get_weights()]
    assert [name for name, _ in children] == [
        "b_scratch-seed0",
        "b_on_a-seed0",
        "b_scratch-seed1",
        "b_on_a-seed1",
    ]
    assert all("test_accuracy" in metrics for _, metrics in children)
    # each seed's model_B and model_B_on_A is a logged model: an image in, Shirt or Sandal out
    for _, metrics in children:
        spec = metrics["model"].spec
        assert spec["input"]["kind"] == "image"
        assert spec["outputs"][0]["labels"] == ["Sandal", "Shirt"]
    assert {metrics["model"].spec["variant"] for _, metrics in children} == {"model_B", "model_B_on_A"}
    assert {"b_scratch_test_accuracy_mean", "b_on_a_test_accuracy_mean", "paired_t_pvalue"} <= set(
        trained.metrics
    )
    assert "transfer_comparison.png" in trained.figures
    # training B on A changed none of model_A's weights
    experiment.train_variant(cfg, "transfer_comparison", images, seed=0, logger=Recorder())
    for before, after in zip(weights_before, trained.model.get_weights()):
        np.testing.assert_array_equal(before, after)


@pytest.mark.slow
def test_note_004_experiments_on_the_real_data(mirror, tmp_path, tracking_store):
    """Shrunk runs of the three note-004 experiments on Fashion-MNIST, prepared once."""
    import json

    from conftest import run_module

    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}
    prepared = run_module("pipeline.prepare", "dataset=fashion_mnist", cwd=tmp_path, env=env)
    assert prepared.returncode == 0, prepared.stderr
    shrunk = {
        "deep_training": [
            "experiments.deep_training.train.epochs=1",
            "experiments.deep_training.train.groups=[optimizers]",
        ],
        "mc_dropout": ["experiments.mc_dropout.train.epochs=1", "experiments.mc_dropout.train.mc.passes=10"],
        "transfer": [
            "experiments.transfer.train.epochs=1",
            "experiments.transfer.train.transfer.seeds=2",
            "experiments.transfer.train.transfer.frozen_epochs=1",
            "experiments.transfer.train.transfer.unfrozen_epochs=1",
        ],
    }
    for name, overrides in shrunk.items():
        for stage in ("train", "evaluate"):
            result = run_module(f"pipeline.{stage}", f"experiment={name}", *overrides, cwd=tmp_path, env=env)
            assert result.returncode == 0, result.stderr
    deep = json.loads((tmp_path / "metrics/deep_training.json").read_text())
    assert set(deep["variants"]) == {v for v in deep["variants"] if v.startswith("opt_")}
    assert len(deep["variants"]) == 8 and set(deep["tables"]) == {"optimizers"}
    assert all(entry["val_accuracy"] > 0.5 for entry in deep["variants"].values())
    assert (tmp_path / "plots/deep_training/evaluate/optimizers.png").is_file()
    mc = json.loads((tmp_path / "metrics/mc_dropout.json").read_text())["variants"]["dropout_0_2"]
    assert mc["test_accuracy_mc"] > 0.7 and mc["note_test_accuracy_mc"] == 0.0942
    transfer = json.loads((tmp_path / "metrics/transfer.json").read_text())["variants"]["transfer_comparison"]
    assert len(transfer["b_on_a_test_accuracy_per_seed"]) == 2 and "paired_t_pvalue" in transfer
    assert transfer["note_b_on_a_test_accuracy_mean"] == 0.9945
