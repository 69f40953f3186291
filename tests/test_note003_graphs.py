"""Note 003 graph networks (residual, inception, ensemble) and TensorBoard support, on small
made-up images; one slow test runs the three experiments on the real data."""

import contextlib
import json

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import experiment_cfg
from pipeline import config, training
from pipeline.errors import ConfigError
from pipeline.experiments import get_experiment
from pipeline.models.ensemble import build_average_ensemble, ensemble_members
from pipeline.models.graphs import build_conv_net, build_deep_dense, build_member, deep_widths


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


class Recorder:
    """A RunLogger that keeps what each child run was sent."""

    def __init__(self):
        self.children = []

    def log_metrics(self, metrics, step=None):
        self.children[-1][1].append((step, dict(metrics)))

    def child(self, name):
        self.children.append((name, []))
        return contextlib.nullcontext(self)


# --- builders ------------------------------------------------------------------------------


def test_deep_dense_plain_and_residual_have_the_same_main_path():
    assert deep_widths([8, 4], 2) == [8, 8, 8, 4, 4]
    kwargs = dict(input_shape=(28, 28), n_outputs=10, widths=[32, 16, 8], layers_per_width=8)
    plain = build_deep_dense(residual=False, **kwargs)
    residual = build_deep_dense(residual=True, **kwargs)
    hidden = [f"hidden{i}" for i in range(1, 26)]
    for model in (plain, residual):
        names = [layer.name for layer in model.layers]
        assert [n for n in names if n.startswith("hidden")] == hidden  # 25 hidden Dense layers
        assert names.count("output") == 1 and sum(n.startswith("bn") for n in names) == 25
    assert "Add" not in layer_types(plain)
    assert not any(layer.name.startswith("proj") for layer in plain.layers)
    assert layer_types(residual).count("Add") == 12  # one per 2-layer block after the stem
    # a linear projection exactly where the width changes (block 5: 32 -> 16, block 9: 16 -> 8)
    projections = {layer.name: layer for layer in residual.layers if layer.name.startswith("proj")}
    assert sorted(projections) == ["proj5", "proj9"]
    assert projections["proj5"].units == 16 and projections["proj9"].units == 8
    for layer in projections.values():
        assert layer.activation is keras.activations.linear and not layer.use_bias

    # the block's input comes straight in (identity) where the widths agree, else projected
    def add_inputs(name):
        return [tensor._keras_history[0].name for tensor in residual.get_layer(name).input]

    assert add_inputs("add1") == ["bn3", "relu1"]  # after hidden2-3, the stem's output
    assert add_inputs("add2") == ["bn5", "relu3"]
    assert add_inputs("add5") == ["bn11", "proj5"]
    assert residual.count_params() - plain.count_params() == 32 * 16 + 16 * 8
    assert plain.predict(np.zeros((2, 28, 28), "uint8"), verbose=0).shape == (2, 10)


def test_deep_dense_without_batch_norm_keeps_biases():
    model = build_deep_dense(
        input_shape=(28, 28),
        n_outputs=3,
        widths=[8],
        layers_per_width=2,
        batch_norm=False,
        residual=True,
        block_size=1,
    )
    assert "BatchNormalization" not in layer_types(model)
    assert model.get_layer("hidden1").use_bias and layer_types(model).count("Add") == 2


def test_conv_nets_have_their_branches_and_comparable_sizes():
    nets = {
        arch: build_conv_net(architecture=arch, input_shape=(28, 28), n_outputs=10)
        for arch in ("conv_baseline", "inception", "xception")
    }
    counts = {arch: model.count_params() for arch, model in nets.items()}
    assert max(counts.values()) / min(counts.values()) < 1.25, counts
    inception = nets["inception"]
    for module in ("mixed1", "mixed2"):
        concat = inception.get_layer(f"{module}_concat")
        branches = [
            f"{module}_1x1_relu",
            f"{module}_3x3_relu",
            f"{module}_5x5b_relu",
            f"{module}_pool_proj_relu",
        ]
        # four parallel branches of the same input, concatenated along the channels
        assert concat.output.shape[-1] == sum(inception.get_layer(b).output.shape[-1] for b in branches)
        assert inception.get_layer(f"{module}_1x1").kernel_size == (1, 1)
        assert inception.get_layer(f"{module}_3x3").kernel_size == (3, 3)
        assert type(inception.get_layer(f"{module}_pool")).__name__ == "AveragePooling2D"
    assert layer_types(nets["xception"]).count("SeparableConv2D") == 5
    assert "SeparableConv2D" not in layer_types(nets["conv_baseline"])
    for model in nets.values():
        assert "BatchNormalization" in layer_types(model)
        assert model.predict(np.zeros((2, 28, 28), "uint8"), verbose=0).shape == (2, 10)
    with pytest.raises(ValueError, match="conv_baseline, inception, xception"):
        build_conv_net(architecture="resnet", input_shape=(28, 28), n_outputs=10)


def test_ensemble_output_is_the_mean_of_its_members(tmp_path, images):
    keras.utils.set_random_seed(0)
    members = [
        build_member({"kind": "dense", "hidden": [16]}, input_shape=(28, 28), n_outputs=10, name="member1"),
        build_member(
            {"kind": "dense", "hidden": [8, 8]},
            input_shape=(28, 28),
            n_outputs=10,
            dropout=0.2,
            name="member2",
        ),
        build_member({"kind": "conv", "filters": 4}, input_shape=(28, 28), n_outputs=10, name="member3"),
    ]
    ensemble = build_average_ensemble(members)
    x = images["x_test"][:7]
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # one .keras file that loads with its members inside
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.models.load_model(tmp_path / "ensemble.keras")
    assert [m.name for m in ensemble_members(loaded)] == ["member1", "member2", "member3"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dense, conv"):
        build_member({"kind": "rnn"}, input_shape=(28, 28), n_outputs=10)


# --- TensorBoard --------------------------------------------------------------------------


def test_tensorboard_callback_writes_event_files(tmp_path, images):
    assert training.tensorboard_callbacks({}, tmp_path) == []
    assert training.tensorboard_callbacks({"tensorboard": None}, tmp_path) == []
    assert len(training.tensorboard_callbacks({"tensorboard": True}, tmp_path)) == 1
    [callback] = training.tensorboard_callbacks({"tensorboard": {"histogram_freq": 1}}, tmp_path)
    model = build_member({"kind": "dense", "hidden": [8]}, input_shape=(28, 28), n_outputs=10)
    training.compile_model(
        model,
        optimizer={"name": "adam"},
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=4,
    )
    training.fit(
        model,
        (images["x_train"], images["y_train"]),
        (images["x_valid"], images["y_valid"]),
        epochs=2,
        batch_size=32,
        callbacks=[callback],
    )
    events = sorted(p.parent.name for p in tmp_path.rglob("events.out.tfevents.*"))
    assert events == ["train", "validation"]


def test_tensorboard_option_errors_name_the_valid_choices(tmp_path):
    with pytest.raises(ConfigError, match="histogram_frequency.*valid choices: .*histogram_freq"):
        training.tensorboard_callbacks({"tensorboard": {"histogram_frequency": 1}}, tmp_path)


def test_artifact_dir_logs_files_to_the_active_run(tmp_path, tracking_store):
    import mlflow

    from pipeline import tracking

    mlflow.set_tracking_uri(tracking_store)
    with mlflow.start_run() as run:
        with tracking.artifact_dir("tensorboard") as folder:
            (folder / "train").mkdir()
            (folder / "train" / "events.out.tfevents.1").write_bytes(b"x")
        with tracking.artifact_dir("empty"):
            pass
    client = mlflow.MlflowClient(tracking_store)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["tensorboard"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "tensorboard/train")] == [
        "tensorboard/train/events.out.tfevents.1"
    ]


def test_configs_enable_tensorboard_and_keep_note_003_without_note_figures():
    composed = config.compose()
    for name in ("residual", "inception"):
        assert composed.experiments[name].train.tensorboard.histogram_freq == 1
    for name in ("residual", "inception", "ensemble"):
        cfg = composed.experiments[name]
        assert cfg.dataset == "fashion_mnist"
        # the note has no figures: an empty entry per variant (the evaluate stage needs a mapping)
        assert OmegaConf.to_container(cfg.note_figures) == {v: {} for v in cfg.variants} and cfg.bar
        assert 1 <= cfg.tune.n_trials <= 4 and cfg.tune.variant in cfg.variants


# --- experiments --------------------------------------------------------------------------


def test_residual_records_gradient_norms_and_compares_the_variants(images):
    experiment = get_experiment("residual")
    cfg = experiment_cfg("residual", epochs=1)
    cfg.model.widths = [16, 8]
    cfg.model.layers_per_width = 10  # 21 hidden layers
    results = {}
    for variant in ("plain", "residual"):
        trained = experiment.train_variant(cfg, variant, images, seed=0)
        metrics = trained.metrics
        assert list(metrics)[:4] == ["best_epoch", "params", "dense_layers", "grad_norm_start_hidden1"]
        assert metrics["dense_layers"] == 22  # 21 hidden + output
        for moment in ("start", "end"):
            assert metrics[f"grad_norm_{moment}_hidden1"] > 0 and metrics[f"grad_norm_{moment}_output"] > 0
            assert metrics[f"grad_ratio_first_last_{moment}"] == pytest.approx(
                metrics[f"grad_norm_{moment}_hidden1"] / metrics[f"grad_norm_{moment}_output"]
            )
        results[variant] = {**metrics, **experiment.evaluation(cfg, variant, trained.model, images)}
    assert any(k.startswith("grad_norm_start_proj") for k in results["residual"])
    tables, figures = experiment.summary(cfg, results, {})
    ratio = tables["residual_vs_plain"]["first_layer_grad_ratio_start"]
    assert ratio == pytest.approx(
        results["residual"]["grad_norm_start_hidden1"] / results["plain"]["grad_norm_start_hidden1"]
    )
    assert [row["variant"] for row in tables["comparison"]] == ["plain", "residual"]
    assert set(figures) == {"gradient_norms.png"}
    cfg.variants.plain.architecture = "highway"
    with pytest.raises(ConfigError, match="valid choices: plain, residual"):
        experiment.build(cfg, "plain", images)


def test_inception_records_parameter_counts(images):
    experiment = get_experiment("inception")
    cfg = experiment_cfg("inception", epochs=1, steps_per_execution=4)
    cfg.model.filters = 4
    trained = experiment.train_variant(cfg, "inception", images, seed=0)
    assert list(trained.metrics) == ["best_epoch", "params", "trainable_params", "seconds_per_epoch"]
    assert trained.metrics["params"] == trained.model.count_params()
    assert 0 < trained.metrics["trainable_params"] < trained.metrics["params"]  # BN statistics
    results = {"inception": {**trained.metrics, "test_accuracy": 0.9, "val_accuracy": 0.9}}
    tables, figures = experiment.summary(cfg, results, {"inception": {"val_accuracy": [0.8, 0.9]}})
    assert tables["comparison"][0]["params"] == trained.metrics["params"]
    assert set(figures) == {"comparison.png"}
    cfg.variants.xception.architecture = "resnet"
    with pytest.raises(ConfigError, match="valid choices: conv_baseline, inception, xception"):
        experiment.build(cfg, "xception", images)


def test_ensemble_trains_members_as_child_runs_and_scores_each(tmp_path, images):
    experiment = get_experiment("ensemble")
    cfg = experiment_cfg("ensemble", epochs=1, steps_per_execution=4)
    cfg.model.members = 3
    cfg.model.architectures = [{"kind": "dense", "hidden": [16]}, {"kind": "conv", "filters": 4}]
    recorder = Recorder()
    trained = experiment.train_variant(cfg, "dense_members", images, seed=0, logger=recorder)
    assert [name for name, _ in recorder.children] == ["member1", "member2", "member3"]
    for _, logged in recorder.children:
        assert logged[0][0] == 0 and "val_accuracy" in logged[0][1]  # epoch 0's curve point
        assert "final_val_accuracy" in logged[-1][1]
    members = ensemble_members(trained.model)
    assert [m.name for m in members] == ["member1", "member2", "member3"]
    assert type(members[1].get_layer("conv1")).__name__ == "Conv2D"  # architectures cycle
    assert trained.metrics["members"] == 3 and "member3_val_accuracy" in trained.metrics
    path = tmp_path / "ensemble.keras"
    trained.model.save(path)
    scores = experiment.evaluation(cfg, "dense_members", keras.models.load_model(path), images)
    best = max(scores[f"test_accuracy_member{k}"] for k in (1, 2, 3))
    assert scores["test_accuracy_best_member"] == best
    assert scores["test_gain_over_best_member"] == pytest.approx(scores["test_accuracy"] - best)
    assert scores["val_accuracy_member1"] == pytest.approx(trained.metrics["member1_val_accuracy"])
    tables, figures = experiment.summary(cfg, {"dense_members": {**trained.metrics, **scores}}, {})
    assert [row["model"] for row in tables["dense_members"]] == ["member1", "member2", "member3", "ensemble"]
    assert set(figures) == {"dense_members_members.png"}
    cfg.model.architectures = [{"kind": "transformer"}]
    with pytest.raises(ConfigError, match="valid choices: dense, conv"):
        experiment.member_specs(cfg)


# --- the real data ------------------------------------------------------------------------


@pytest.mark.slow
def test_note_003_graphs_on_the_real_data(mirror, tmp_path, tracking_store):
    """Shrunk runs of residual, inception and ensemble: prepare -> train -> evaluate, metrics
    files and TensorBoard artifacts in the MLflow runs."""
    import mlflow

    from conftest import run_module

    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}
    prepared = run_module("pipeline.prepare", "dataset=fashion_mnist", cwd=tmp_path, env=env)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    shrunk = {
        # full depth (26 Dense layers), narrower layers and larger batches: seconds, not minutes
        "residual": [
            "experiments.residual.train.epochs=1",
            "experiments.residual.model.widths=[64,32,16]",
            "experiments.residual.train.batch_size=256",
        ],
        "inception": [
            "experiments.inception.train.epochs=1",
            "experiments.inception.model.filters=8",
            "experiments.inception.train.batch_size=128",
        ],
        "ensemble": [
            "experiments.ensemble.train.epochs=1",
            "experiments.ensemble.model.members=3",
            "experiments.ensemble.train.batch_size=256",
        ],
    }
    for name, overrides in shrunk.items():
        for stage in ("train", "evaluate"):
            result = run_module(f"pipeline.{stage}", f"experiment={name}", *overrides, cwd=tmp_path, env=env)
            assert result.returncode == 0, f"{name} {stage}: {result.stderr[-3000:]}"
    metrics = {name: json.loads((tmp_path / f"metrics/{name}.json").read_text()) for name in shrunk}

    residual = metrics["residual"]
    assert set(residual["variants"]) == {"plain", "residual"}
    for entry in residual["variants"].values():
        assert 0 < entry["val_accuracy"] <= 1 and 0 < entry["test_accuracy"] <= 1
        assert entry["grad_ratio_first_last_start"] > 0 and entry["dense_layers"] == 26
    # one epoch is enough for the residual network; the plain one may still be near chance (0.1)
    assert residual["variants"]["residual"]["val_accuracy"] > 0.5
    assert residual["tables"]["residual_vs_plain"]["first_layer_grad_ratio_start"] > 0
    assert residual["bar"]["rules"]["val_accuracy_min"]["threshold"] == {"residual": 0.86}
    assert (tmp_path / "plots/residual/evaluate/gradient_norms.png").is_file()

    inception = metrics["inception"]["variants"]
    assert set(inception) == {"conv_baseline", "inception", "xception"}
    for entry in inception.values():
        assert 0.2 < entry["test_accuracy"] <= 1 and entry["params"] > 1000 and entry["epochs"] == 1

    ensemble = metrics["ensemble"]["variants"]["dense_members"]
    assert ensemble["members"] == 3 and 0.7 < ensemble["test_accuracy"] <= 1
    for k in (1, 2, 3):
        assert 0.7 < ensemble[f"test_accuracy_member{k}"] <= 1
    assert ensemble["test_gain_over_best_member"] == pytest.approx(
        ensemble["test_accuracy"] - ensemble["test_accuracy_best_member"]
    )

    client = mlflow.MlflowClient(tracking_store)
    for name, variants in (("residual", residual["variants"]), ("inception", inception)):
        runs = json.loads((tmp_path / f"models/{name}/runs.json").read_text())["variants"]
        assert set(runs) == set(variants)
        for variant, run_id in runs.items():
            logged = {a.path for a in client.list_artifacts(run_id, "tensorboard")}
            assert logged == {"tensorboard/train", "tensorboard/validation"}, (name, variant)
            events = client.list_artifacts(run_id, "tensorboard/train")
            assert any("events.out.tfevents" in a.path for a in events), (name, variant)
    ensemble_run = json.loads((tmp_path / "models/ensemble/runs.json").read_text())["variants"][
        "dense_members"
    ]
    children = client.search_runs(
        [client.get_run(ensemble_run).info.experiment_id], f"tags.mlflow.parentRunId = '{ensemble_run}'"
    )
    assert sorted(run.data.tags["pipeline.child"] for run in children) == ["member1", "member2", "member3"]
    assert not client.list_artifacts(ensemble_run, "tensorboard")  # not enabled in its config
