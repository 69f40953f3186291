"""Batch inference (python -m pipeline.predict): tiny untrained models logged and registered once
per module in a throw-away MLflow store, files made up here. The predictions written must be the
logged model's own answer; a file the model cannot take must be refused (exit 2, one clear line,
nothing written)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import experiment_cfg, run_module
from pipeline import cli, predict
from pipeline.batch import stream
from pipeline.data.splits import split_imdb, split_reuters
from pipeline.experiments import get_experiment

FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
rng = np.random.default_rng(0)


# --- made-up data ----------------------------------------------------------------------------
def california() -> dict:
    x = {s: rng.normal(size=(n, 8)) * 3 + 30 for s, n in (("train", 200), ("valid", 40), ("test", 40))}
    return {
        **{f"x_{s}": v for s, v in x.items()},
        **{f"y_{s}": rng.uniform(0.5, 5, len(v)) for s, v in x.items()},
    }


def reviews() -> dict:
    words = {9: "great", 8: "good", 3: "poor", 2: "bad"}

    def make(n):
        ratings = rng.choice(list(words), n)
        texts = [" ".join([words[r]] * 3 + ["film"] * int(rng.integers(1, 9))) for r in ratings]
        return np.array(texts, dtype=object), (ratings >= 7).astype("int64"), ratings.astype("int64")

    (t_train, y_train, r_train), (t_test, y_test, r_test) = make(60), make(20)
    return split_imdb(
        {
            "text_train": t_train,
            "y_train": y_train,
            "rating_train": r_train,
            "text_test": t_test,
            "y_test": y_test,
            "rating_test": r_test,
        },
        {"valid_size": 10, "random_state": 0},
    )


def newswires() -> dict:
    labels = np.arange(80) % 46
    rows = np.empty(80, dtype=object)
    rows[:] = [list(rng.integers(1, 10_000, int(rng.integers(3, 30)))) for _ in labels]
    return split_reuters(
        {"x_train": rows[:60], "y_train": labels[:60], "x_test": rows[60:], "y_test": labels[60:]},
        {"valid_size": 10, "random_state": None},
    )


def pictures(n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 28, 28)).astype("uint8")


def houses(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame(rng.normal(size=(n, 8)) * 3 + 30, columns=FEATURES)


TEXTS = ["a great great film", "bad bad film", "NA", "10", "poor film, é", "good"]


# --- a store with registered models -----------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A throw-away MLflow store (artifacts inside it too, never in the project's mlruns/), set
    for this process and its subprocesses."""
    import mlflow

    folder = tmp_path_factory.mktemp("predict-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        experiment_id = mlflow.create_experiment(
            "predict-tests", artifact_location=(folder / "artifacts").as_uri()
        )
        yield {"uri": uri, "experiment_id": experiment_id, "models": {}}
        mlflow.set_tracking_uri(None)


def log_and_register(store, name: str, data: dict, variant: str | None = None) -> dict:
    """Build the (untrained) model of ``name``, log it as the train stage does, register it as
    the newest version of ``name`` with the alias champion."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline import tracking

    experiment, cfg = get_experiment(name), experiment_cfg(name)
    if "max_tokens" in cfg.model:
        cfg.model.max_tokens = 50
    variant = variant or cfg.tune.variant
    model = experiment.build(experiment.resolve(cfg, variant), variant, data)
    with mlflow.start_run(experiment_id=store["experiment_id"]) as run:
        info = tracking.log_servable(experiment.servable(cfg, variant, model, data))
    version = mlflow.register_model(info.model_uri, name).version
    MlflowClient().set_registered_model_alias(name, "champion", version)
    return {
        "run_id": run.info.run_id,
        "version": str(version),
        "model": mlflow.pyfunc.load_model(f"models:/{name}/{version}"),
    }


@pytest.fixture(scope="module")
def wide_deep(store):
    """Two versions of wide_deep (two outputs: main and aux); version 2 is the champion."""
    data = california()
    return [log_and_register(store, "wide_deep", data, "two_outputs") for _ in range(2)]


@pytest.fixture(scope="module")
def imdb(store):
    return log_and_register(store, "imdb", reviews())


@pytest.fixture(scope="module")
def fashion(store, images):
    return log_and_register(store, "fashion_regularization", images)


@pytest.fixture(scope="module")
def siamese(store, images):
    return log_and_register(store, "siamese", images)


@pytest.fixture(scope="module")
def reuters(store):
    return log_and_register(store, "reuters", newswires())


# --- running it ------------------------------------------------------------------------------
def predict_here(capsys, *args) -> tuple[int, str]:
    """The stage in this process (the models are loaded already): (exit code, stderr)."""
    code = cli.run_stage(predict.main, [str(a) for a in args])
    return code, capsys.readouterr().err


def predicted(capsys, experiment: str, source: Path, output: Path, *options) -> pd.DataFrame:
    """What the stage in this process wrote to ``output`` for ``source`` (it must succeed)."""
    code, err = predict_here(
        capsys, f"experiment={experiment}", f"input={source}", f"output={output}", *options
    )
    assert code == 0, f"{source.name}: {err}"
    return read(output)


def predict_cli(store, folder: Path, *args):
    """The stage as a user runs it, from another folder than the project."""
    return run_module(
        "pipeline.predict",
        *map(str, args),
        cwd=folder,
        env={"MLFLOW_TRACKING_URI": store["uri"]},
        timeout=300,
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict(orient="records")))
    return path


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True, precise_float=True, dtype=False)


def assert_same(written: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same columns in the same order, the same labels, numbers equal to float32 precision
    (a chunk is another batch for the network)."""
    assert list(written.columns) == list(expected.columns)
    assert len(written) == len(expected)
    for column in expected.columns:
        ours, theirs = written[column].to_numpy(), expected[column].to_numpy()
        if theirs.dtype.kind == "f":
            np.testing.assert_allclose(ours.astype("float64"), theirs, rtol=1e-6, atol=1e-7)
        else:
            assert list(ours) == list(theirs), column


# --- what it writes --------------------------------------------------------------------------
def test_help_prints_the_usage(store, tmp_path):
    result = predict_cli(store, tmp_path, "--help")
    assert result.returncode == 0
    assert "python -m pipeline.predict experiment=<name>" in result.stdout
    assert "chunk_size" in result.stdout and "models:/" in result.stdout


def test_the_cli_writes_the_logged_models_answer_with_the_ids(store, wide_deep, tmp_path):
    rows = houses(30)
    source = write(
        rows.assign(id=[f"house-{i}" for i in range(30)])[["id", *FEATURES]], tmp_path / "houses.csv"
    )
    result = predict_cli(
        store, tmp_path, "experiment=wide_deep", f"input={source}", "output=out/predictions.csv"
    )  # relative to the working folder
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    written = read(tmp_path / "out/predictions.csv")
    assert list(written["id"]) == [f"house-{i}" for i in range(30)]
    expected = wide_deep[1]["model"].predict(rows)  # version 2, the champion
    assert_same(written.drop(columns="id"), expected)
    assert list(written.columns) == ["id", "main", "aux"]
    assert "30 rows" in result.stderr and "models:/wide_deep@champion (version 2)" in result.stderr


@pytest.mark.parametrize(
    "source, target", [("csv", "parquet"), ("parquet", "jsonl"), ("jsonl", "csv"), ("ndjson", "ndjson")]
)
def test_every_format_gives_the_logged_models_answer(store, wide_deep, tmp_path, capsys, source, target):
    rows = houses(40)
    path = write(rows, tmp_path / f"houses.{source}")
    assert_same(
        predicted(capsys, "wide_deep", path, tmp_path / f"out.{target}"), wide_deep[1]["model"].predict(rows)
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_chunks_give_the_answer_of_one_chunk(store, wide_deep, tmp_path, capsys, fmt):
    rows = houses(50).assign(id=range(50))
    path = write(rows, tmp_path / f"houses.{fmt}")
    in_chunks, at_once = (
        predicted(capsys, "wide_deep", path, tmp_path / f"out_{size}.{fmt}", f"chunk_size={size}")
        for size in (7, 1000)
    )
    assert list(in_chunks["id"]) == list(range(50))  # the input's order
    assert_same(in_chunks, at_once)
    assert_same(at_once.drop(columns="id"), wide_deep[1]["model"].predict(rows[FEATURES]))


def test_the_output_has_the_usual_permissions(store, wide_deep, tmp_path, capsys):
    """Not the owner-only mode of the temporary file it is written to (io.atomic_path)."""
    path = write(houses(5), tmp_path / "houses.csv")
    umask = os.umask(0o022)
    try:
        predicted(capsys, "wide_deep", path, tmp_path / "out.csv")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o644


def test_a_version_number_and_a_run_uri_choose_the_model(store, wide_deep, tmp_path, capsys):
    rows = houses(20)
    path = write(rows, tmp_path / "houses.parquet")
    first, champion = (entry["model"].predict(rows) for entry in wide_deep)
    assert not np.allclose(first["main"], champion["main"])  # else this test proves nothing
    choices = {
        "1": first,
        f"runs:/{wide_deep[0]['run_id']}/model": first,
        "models:/wide_deep/2": champion,
        "champion": champion,
    }
    for index, (model, expected) in enumerate(choices.items()):
        assert_same(
            predicted(capsys, "wide_deep", path, tmp_path / f"out{index}.csv", f"model={model}"), expected
        )


def test_a_text_file_of_reviews_for_imdb(store, imdb, tmp_path, capsys):
    (tmp_path / "reviews.txt").write_text("\n".join(TEXTS[:3]) + "\n\n" + "\n".join(TEXTS[3:]) + "\n")
    write(pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS}), tmp_path / "reviews.csv")
    expected = imdb["model"].predict(pd.DataFrame({"text": TEXTS}))
    assert list(expected.columns) == ["sentiment_probability", "sentiment"]
    for name in ("reviews.txt", "reviews.csv"):
        written = predicted(capsys, "imdb", tmp_path / name, tmp_path / f"{name}.jsonl", "chunk_size=4")
        assert_same(written.drop(columns=["id"], errors="ignore"), expected)  # blank line skipped


def test_images_for_a_fashion_experiment(store, fashion, tmp_path, capsys):
    images = pictures(12)
    expected = fashion["model"].predict(images)
    assert expected.columns[0] == "class" and len(expected.columns) == 11
    write(pd.DataFrame({"image": [image.tolist() for image in images]}), tmp_path / "nested.parquet")
    write(pd.DataFrame({"image": [image.reshape(-1).tolist() for image in images]}), tmp_path / "flat.jsonl")
    kaggle = pd.DataFrame(images.reshape(12, -1), columns=[f"pixel{i}" for i in range(1, 785)])
    kaggle.insert(0, "label", rng.integers(0, 10, 12))  # Kaggle's fashion-mnist CSV layout
    write(kaggle, tmp_path / "kaggle.csv")
    for name in ("nested.parquet", "flat.jsonl", "kaggle.csv"):
        assert_same(
            predicted(
                capsys, "fashion_regularization", tmp_path / name, tmp_path / f"{name}.csv", "chunk_size=5"
            ),
            expected,
        )


def test_pairs_of_images_for_siamese(store, siamese, tmp_path, capsys):
    a, b = pictures(6), pictures(6)
    expected = siamese["model"].predict({"image_a": a, "image_b": b})
    write(
        pd.DataFrame(
            {"id": range(6), "image_a": [x.tolist() for x in a], "image_b": [x.tolist() for x in b]}
        ),
        tmp_path / "pairs.parquet",
    )
    write(
        pd.concat(
            [
                pd.DataFrame(images.reshape(6, -1), columns=[f"{name}{i}" for i in range(1, 785)])
                for name, images in (("image_a", a), ("image_b", b))
            ],
            axis=1,
        ),
        tmp_path / "pairs.csv",
    )
    for name in ("pairs.parquet", "pairs.csv"):
        written = predicted(capsys, "siamese", tmp_path / name, tmp_path / f"{name}.parquet")
        assert_same(written.drop(columns="id", errors="ignore"), expected)


def test_word_id_lists_for_reuters(store, reuters, tmp_path, capsys):
    lists = [[1, 5, 7, 12], [2, 3], [9_999, 20_000, 4]]  # 20000 is outside the vocabulary
    expected = reuters["model"].predict(pd.DataFrame({"word_ids": lists}))
    write(pd.DataFrame({"word_ids": lists}), tmp_path / "wires.jsonl")
    write(pd.DataFrame({"word_ids": [" ".join(map(str, ids)) for ids in lists]}), tmp_path / "wires.csv")
    for name in ("wires.jsonl", "wires.csv"):
        assert_same(predicted(capsys, "reuters", tmp_path / name, tmp_path / f"{name}.parquet"), expected)


# --- what it refuses -------------------------------------------------------------------------
def houses_csv(folder: Path, name: str = "houses.csv", frame: pd.DataFrame | None = None) -> Path:
    return write(houses(10) if frame is None else frame, folder / name)


def wrong_type(folder: Path) -> Path:
    frame = houses(10).astype(object)
    frame.loc[2, "HouseAge"] = "old"
    return houses_csv(folder, frame=frame)


def small_image(folder: Path) -> Path:
    images = [image[:27].tolist() for image in pictures(3)]
    return write(pd.DataFrame({"image": images}), folder / "images.parquet")


def numbers_as_text(folder: Path) -> Path:
    path = folder / "reviews.jsonl"
    path.write_text('{"text": "a good film"}\n{"text": 5}\n')
    return path


def empty(folder: Path, name: str = "empty.csv", content: str = "") -> Path:
    (folder / name).write_text(content)
    return folder / name


BAD_INPUTS = [
    pytest.param(
        "wide_deep", lambda d: d / "nowhere.csv", [], ["nowhere.csv", "does not exist"], id="missing-file"
    ),
    pytest.param("wide_deep", empty, [], ["empty.csv", "empty"], id="empty-file"),
    pytest.param(
        "wide_deep",
        lambda d: empty(d, content=",".join(FEATURES) + "\n"),
        [],
        ["no rows", "only a header"],
        id="header-only",
    ),
    pytest.param(
        "wide_deep",
        lambda d: empty(d, "rows.xlsx", "x"),
        [],
        ["unknown format", "'.xlsx'", ".csv", ".parquet", ".jsonl"],
        id="unknown-format",
    ),
    pytest.param(
        "wide_deep",
        lambda d: houses_csv(d, frame=houses(5).assign(MedHouseVal=1.0)),
        [],
        ["'MedHouseVal'", "not an input", "MedInc", "Longitude"],
        id="unknown-column",
    ),
    pytest.param(
        "wide_deep",
        lambda d: houses_csv(d, frame=houses(5).drop(columns="Latitude")),
        [],
        ["no column 'Latitude'", "MedInc"],
        id="missing-column",
    ),
    pytest.param(
        "wide_deep", wrong_type, [], ["'HouseAge'", "row 3", "'old'", "numbers"], id="text-in-a-number-column"
    ),
    pytest.param(
        "imdb", numbers_as_text, [], ["'text'", "row 2", "takes text"], id="number-in-the-text-column"
    ),
    pytest.param(
        "fashion_regularization", small_image, [], ["row 1", "27x28", "28x28"], id="wrong-image-size"
    ),
    pytest.param(
        "wide_deep",
        houses_csv,
        ["model=9"],
        ["models:/wide_deep/9", "versions of 'wide_deep': 1, 2", "@champion = version 2"],
        id="unknown-version",
    ),
    pytest.param(
        "wide_deep",
        houses_csv,
        ["model=best"],
        ["models:/wide_deep@best", "alias", "@champion = version 2"],
        id="unknown-alias",
    ),
    pytest.param(
        "wide_deep",
        houses_csv,
        [f"model=runs:/{'0' * 32}/model"],
        [f"runs:/{'0' * 32}/model", "not found"],
        id="unknown-run",
    ),
    pytest.param("boston", houses_csv, [], ["registered as 'boston'", "wide_deep"], id="nothing-registered"),
    pytest.param(
        "wide_deep",
        lambda d: empty(d, "reviews.txt", "a review\n"),
        [],
        [".txt", "text models", "MedInc"],
        id="text-file-for-a-table-model",
    ),
]


@pytest.mark.parametrize("experiment, make_input, options, words", BAD_INPUTS)
def test_bad_input_is_refused_and_nothing_is_written(
    store, wide_deep, imdb, fashion, tmp_path, experiment, make_input, options, words
):
    source = make_input(tmp_path)
    output = tmp_path / "out" / "predictions.csv"
    result = predict_cli(
        store, tmp_path, f"experiment={experiment}", f"input={source}", f"output={output}", *options
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(message) == 1, result.stderr
    for word in words:
        assert word in message[0], f"{word!r} not in {message[0]!r}"
    assert not output.exists() and not any(output.parent.glob("*"))


def kaggle_csv(folder: Path, images: np.ndarray, text_at: tuple[int, int] | None = None) -> Path:
    frame = pd.DataFrame(
        images.reshape(len(images), -1), columns=[f"pixel{i}" for i in range(1, images[0].size + 1)]
    )
    if text_at:
        frame = frame.astype(object)
        frame.iat[text_at] = "dark"
    return write(frame.assign(label=1), folder / "images.csv")


BAD_IMAGES = [
    pytest.param(
        lambda d: write(
            pd.DataFrame({"image": [(x / 255).tolist() for x in pictures(3)]}), d / "scaled.jsonl"
        ),
        ["row 1", "whole numbers 0-255", "multiplied by 255"],
        id="scaled-to-0-1",
    ),
    pytest.param(
        lambda d: kaggle_csv(d, pictures(4), text_at=(2, 9)),
        ["'pixel10'", "row 3", "'dark'"],
        id="text-in-a-pixel-column",
    ),
    pytest.param(
        lambda d: kaggle_csv(d, pictures(4)[:, :25]),
        ["784 pixel columns", "700", "pixel1 ... pixel700"],
        id="too-few-pixels",
    ),
    pytest.param(
        lambda d: write(pd.DataFrame({"image": [[1, 2, 3]]}), d / "tiny.parquet"),
        ["row 1", "shape 3", "784 values"],
        id="flat-list-of-the-wrong-size",
    ),
]


@pytest.mark.parametrize("make_input, words", BAD_IMAGES)
def test_bad_images_are_refused_with_the_row(store, fashion, tmp_path, capsys, make_input, words):
    output = tmp_path / "out.csv"
    code, err = predict_here(
        capsys, "experiment=fashion_regularization", f"input={make_input(tmp_path)}", f"output={output}"
    )
    assert code == 2
    message = err.splitlines()[-1]
    assert message.startswith("error: ") and all(word in message for word in words), message
    assert not output.exists()


def test_a_bad_row_in_a_later_chunk_leaves_the_old_output(store, wide_deep, tmp_path, capsys):
    frame = houses(30).astype(object)
    frame.loc[24, "Population"] = "many"
    path = houses_csv(tmp_path, frame=frame)
    output = tmp_path / "out.csv"
    output.write_text("yesterday's predictions\n")
    code, err = predict_here(
        capsys, "experiment=wide_deep", f"input={path}", f"output={output}", "chunk_size=10"
    )
    assert code == 2 and "'Population'" in err and "row 25" in err
    assert output.read_text() == "yesterday's predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["houses.csv", "out.csv"]


def test_ctrl_c_leaves_nothing(store, wide_deep, tmp_path, capsys, monkeypatch):
    path = houses_csv(tmp_path, frame=houses(30))
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    real = stream.predict_chunk
    monkeypatch.setattr(stream, "predict_chunk", interrupted)
    code, err = predict_here(
        capsys, "experiment=wide_deep", f"input={path}", f"output={tmp_path / 'out.parquet'}", "chunk_size=10"
    )
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["houses.csv"]


def test_arguments_are_checked_before_anything_is_loaded(store, capsys, tmp_path):
    for args, words in [
        ([f"input={tmp_path / 'a.csv'}"], ["output=<file>"]),
        (
            ["experiment=wide_deep", "input=a.csv", "output=b.csv", "chunk_size=0"],
            ["chunk_size", "at least 1"],
        ),
        (["input=a.csv", "output=b.csv"], ["experiment=<name>", "wide_deep"]),
        (["experiment=wide_deep", "model=not a uri", "input=a.csv", "output=b.csv"], ["'not a uri'"]),
    ]:
        (tmp_path / "a.csv").write_text("MedInc\n1\n")
        code, err = predict_here(capsys, *args)
        assert code == 2, err
        assert all(word in err for word in words), err
