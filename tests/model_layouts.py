"""The layout of every model every experiment builds, on made-up data of the real shapes.

    PYTHONPATH=src python tests/model_layouts.py    # rewrite tests/fixtures/model_layouts.json

A layout is a model's parameter count and, layer by layer, its name, class, output shape,
parameter count and the arguments a refactoring of the builders could silently change
(units, activation, bias, initializer, regularizers, constraint, dropout rate). Models inside a
model (ensemble members, the Siamese encoder) get a layout of their own. Every variant is
built as configured; the first variant of each experiment once more with each of ``PROBES``
flipped where its config has that key, so the dropout and batch-norm paths of every builder
are covered even where the config leaves them off. Nothing is trained; no prepared data is read.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "model_layouts.json"

#: model keys set to another value in an extra build of each variant (when the config has them)
PROBES = {"dropout": lambda value: 0.25 if not value else 0.0, "batch_norm": lambda value: not value}

#: the layer arguments recorded besides name, class, shape and parameters
ARGUMENTS = (
    "units",
    "activation",
    "use_bias",
    "kernel_initializer",
    "kernel_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "rate",
)

ROWS = 60  # per split: enough for the adapt() of every preprocessing layer
VOCABULARY = 10_000  # imdb's max_tokens and reuters' num_words: the multi-hot width


def _splits(make) -> dict[str, np.ndarray]:
    """The arrays ``make(split)`` gives for each of the three splits, in one dict."""
    return {key: value for split in ("train", "valid", "test") for key, value in make(split).items()}


def _texts(rng: np.random.Generator, split: str) -> dict[str, np.ndarray]:
    from pipeline.data.text import pack_texts

    # more distinct words than the vocabulary holds, so it fills as IMDB's does
    words = VOCABULARY * 3 // ROWS
    texts = [" ".join(f"w{i}" for i in rng.choice(VOCABULARY * 2, words, replace=False)) for _ in range(ROWS)]
    return {
        **pack_texts(f"text_{split}", texts),
        f"y_{split}": np.arange(ROWS) % 2,
        f"rating_{split}": np.where(np.arange(ROWS) % 2, 8, 2),
    }


def _newswires(rng: np.random.Generator, split: str) -> dict[str, np.ndarray]:
    from pipeline.data.text import pack_ragged

    return {
        **pack_ragged(f"x_{split}", [rng.integers(1, VOCABULARY, 30) for _ in range(ROWS)]),
        f"y_{split}": np.arange(ROWS) % 46,
    }  # all 46 topics


@functools.cache
def made_up_data(dataset: str) -> dict[str, np.ndarray]:
    """Arrays with the keys, shapes, dtypes and classes of the prepared ``dataset``."""
    rng = np.random.default_rng(0)
    if dataset == "thoracic_surgery":  # one split; the folds are cut from it
        return {"x": rng.normal(size=(ROWS, 17)), "y": (np.arange(ROWS) % 2).astype("float64")}
    if dataset == "boston_housing":
        return {
            "x_train": rng.normal(size=(ROWS, 13)),
            "y_train": rng.normal(22, 9, ROWS),
            "x_test": rng.normal(size=(ROWS, 13)),
            "y_test": rng.normal(22, 9, ROWS),
        }
    makers = {
        "california_housing": lambda split: {
            f"x_{split}": rng.normal(size=(ROWS, 8)),
            f"y_{split}": rng.normal(2, 1, ROWS),
        },
        "fashion_mnist": lambda split: {
            f"x_{split}": rng.integers(0, 256, (ROWS, 28, 28), dtype=np.uint8),
            f"y_{split}": (np.arange(ROWS) % 10).astype(np.uint8),
        },
        "imdb_reviews": lambda split: _texts(rng, split),
        "reuters": lambda split: _newswires(rng, split),
    }
    return _splits(makers[dataset])


def _argument(value: Any) -> Any:
    """A layer argument as JSON: a serialized Keras object as its class and the options set."""
    if isinstance(value, dict) and "class_name" in value:
        options = {k: v for k, v in (value.get("config") or {}).items() if v is not None}
        return {"class_name": value["class_name"], **({"config": options} if options else {})}
    return value


def _shape(tensors: Any) -> Any:
    import keras

    return keras.tree.map_structure(lambda tensor: list(tensor.shape), tensors)


def layouts(model, prefix: str = "") -> dict[str, dict]:
    """{model path: layout} of ``model`` and of every model among its layers."""
    import keras

    path = f"{prefix}{model.name}"
    layers, found = [], {}
    for layer in model.layers:
        config = layer.get_config()
        layers.append(
            {
                "name": layer.name,
                "class": layer.__class__.__name__,
                "output_shape": _shape(layer.output),
                "params": int(layer.count_params()),
                **(
                    {}
                    if isinstance(layer, keras.Model)
                    else {key: _argument(config[key]) for key in ARGUMENTS if key in config}
                ),
            }
        )
        if isinstance(layer, keras.Model):
            found.update(layouts(layer, prefix=f"{path}/"))
    return {path: {"params": int(model.count_params()), "layers": layers}, **found}


def builds(cfg) -> list[tuple[str, str, Any, list[tuple[str, Any]]]]:
    """(experiment, variant, its resolved config, model overrides) of every build to record."""
    from omegaconf import OmegaConf

    from pipeline import config
    from pipeline.experiments import get_experiment

    found = []
    for name in cfg.experiments:
        exp_cfg = config.experiment_config(cfg, name)
        experiment = get_experiment(name)
        for index, variant in enumerate(exp_cfg.variants):  # tune-only ones too: tune builds them
            resolved = experiment.resolve(exp_cfg, variant)
            found.append((name, variant, resolved, []))
            for key, flip in PROBES.items():
                if index == 0 and key in resolved.model:
                    probe = OmegaConf.create(OmegaConf.to_container(resolved))
                    probe.model[key] = flip(resolved.model[key])
                    found.append((name, variant, probe, [(key, probe.model[key])]))
    return found


def build_id(experiment: str, variant: str, overrides: list[tuple[str, Any]]) -> str:
    """``residual/plain`` or, for a probe, ``residual/plain model.batch_norm=False``."""
    return " ".join([f"{experiment}/{variant}", *(f"model.{key}={value}" for key, value in overrides)])


def record(experiment_name: str, variant: str, cfg) -> dict[str, dict]:
    """Layouts of the models one variant builds: ``build()``'s, and transfer's model_B."""
    from pipeline.experiments import get_experiment
    from pipeline.experiments.transfer import Transfer

    experiment = get_experiment(experiment_name)
    data = made_up_data(cfg.dataset)
    found = layouts(experiment.build(cfg, variant, data))
    if isinstance(experiment, Transfer):
        x_b, _ = experiment._task_b(data, "train", cfg)
        found.update(layouts(experiment._network(cfg, x_b, 1, "sigmoid", "model_B")))
    return found


def load_config():
    from pipeline import config

    return config.load([])


def all_layouts() -> dict[str, dict[str, dict]]:
    cfg = load_config()
    return {
        build_id(name, variant, overrides): record(name, variant, resolved)
        for name, variant, resolved, overrides in builds(cfg)
    }


def to_json(found: dict[str, dict[str, dict]]) -> str:
    """The layouts as JSON with one line per layer, so a diff shows which layers changed."""

    def layout(entry: dict) -> str:
        layers = ",\n".join(f"    {json.dumps(layer)}" for layer in entry["layers"])
        return f'{{"params": {entry["params"]}, "layers": [\n{layers}\n  ]}}'

    builds = [
        f"{json.dumps(build)}: {{\n"
        + ",\n".join(f"  {json.dumps(model)}: {layout(entry)}" for model, entry in models.items())
        + "}"
        for build, models in found.items()
    ]
    return "{\n" + ",\n".join(builds) + "\n}\n"


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(to_json(all_layouts()))
    print(f"wrote {FIXTURE}")
