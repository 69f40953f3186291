"""`mlflow models serve` of the champions on the real data (shrunk training): raw rows in over
REST, the answers evaluate scored, and MLflow's 4xx (never a 500) for malformed requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import run_stages, stop_process_group, wait_until_answering
from test_servers import free_port

pytestmark = pytest.mark.slow
SHRUNK = {
    "wide_deep": ["experiments.wide_deep.train.epochs=2"],
    "imdb": ["experiments.imdb.train.epochs=1"],
    "fashion_regularization": [
        "experiments.fashion_regularization.train.epochs=1",
        "experiments.fashion_regularization.train.batch_size=256",
    ],
}
ROWS = 20


@pytest.fixture(scope="module")
def trained(mirror, tmp_path_factory):
    """One working folder where the three experiments were prepared, trained and evaluated
    (evaluate registers each one's champion) in one throw-away MLflow store."""
    workdir = tmp_path_factory.mktemp("served")
    env = {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    metrics = {name: run_stages(name, workdir, env, *overrides) for name, overrides in SHRUNK.items()}
    return workdir, env, metrics


def expected_answers(workdir: Path, name: str, variant: str):
    """The raw test rows and what the trained network (as evaluate loads it) answers on them."""
    import keras

    from pipeline import config
    from pipeline.experiments import get_experiment
    from pipeline.io import load_arrays
    from pipeline.serving import head
    from pipeline.serving.raw_model import RawInputModel

    experiment = get_experiment(name)
    cfg = experiment.resolve(config.experiment_config(config.compose(), name), variant)
    dataset = cfg.dataset
    data = load_arrays(workdir / f"data/{dataset}/arrays.npz")
    model = keras.models.load_model(workdir / f"models/{name}/{variant}.keras")
    servable = experiment.servable(cfg, variant, model, data)
    network = model.predict(head(experiment.split(cfg, variant, data, "test")[0], ROWS), verbose=0)
    return (
        head(experiment.raw_inputs(cfg, variant, data, "test"), ROWS),
        RawInputModel().setup(servable.spec, model).named_outputs(network),
    )


class Server:
    """`mlflow models serve -m models:/<name>@champion --env-manager local` on loopback."""

    def __init__(self, name: str, env: dict, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bin_dir = str(Path(sys.executable).parent)  # mlflow and the uvicorn it starts
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [
                f"{bin_dir}/mlflow",
                "models",
                "serve",
                "-m",
                f"models:/{name}@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env={**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_answering(self.process, f"{self.url}/ping", log)

    def post(self, body) -> requests.Response:
        data = body if isinstance(body, str) else json.dumps(body)
        return requests.post(
            f"{self.url}/invocations", data=data, timeout=60, headers={"Content-Type": "application/json"}
        )

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


@pytest.fixture
def serve(trained, tmp_path):
    workdir, env, _ = trained
    servers = []

    def start(name: str) -> Server:
        servers.append(Server(name, env, tmp_path / f"serve-{name}.log"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def assert_bad_request(response: requests.Response, *phrases: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    message = response.json()["message"]
    assert "Traceback" not in message
    for phrase in phrases:
        assert phrase in message, message


def served(trained, serve, name: str, body):
    """(server, its answers to the champion's raw test rows, what the network answers)."""
    workdir, _, metrics = trained
    raw, expected = expected_answers(workdir, name, metrics[name]["registry"]["variant"])
    server = serve(name)
    answer = server.post(body(raw))
    assert answer.status_code == 200, answer.text
    return server, raw, answer.json()["predictions"], expected


def split_body(raw):
    return {"dataframe_split": raw.to_dict(orient="split", index=False)}


def test_wide_deep_answers_a_houses_columns(trained, serve):
    server, raw, predictions, expected = served(trained, serve, "wide_deep", split_body)
    assert set(predictions[0]) == set(expected.columns) and "main" in predictions[0]
    np.testing.assert_allclose([p["main"] for p in predictions], expected["main"], rtol=1e-5)
    # records of one house with integer values, as a user types them, are fine too
    one = {column: int(value) for column, value in raw.iloc[0].items()}
    assert server.post({"dataframe_records": [one]}).status_code == 200

    missing = raw.drop(columns=["Latitude"]).to_dict(orient="split", index=False)
    assert_bad_request(server.post({"dataframe_split": missing}), "missing inputs", "Latitude")
    wrong_type = raw.astype(object)
    wrong_type.iloc[0, 0] = "eight"
    assert_bad_request(
        server.post({"dataframe_split": wrong_type.to_dict(orient="split", index=False)}), "MedInc"
    )
    assert_bad_request(server.post(""), "JSON")
    empty_value = raw.astype(object)
    empty_value.iloc[1, 2] = None
    assert_bad_request(
        server.post({"dataframe_split": empty_value.to_dict(orient="split", index=False)}),
        "AveRooms",
        "row(s) 1",
    )


def test_imdb_answers_raw_review_text(trained, serve):
    server, raw, predictions, expected = served(trained, serve, "imdb", split_body)
    np.testing.assert_allclose(
        [p["sentiment_probability"] for p in predictions],
        expected["sentiment_probability"],
        rtol=1e-5,
        atol=1e-7,
    )
    mine = server.post(
        {
            "dataframe_records": [
                {"text": "A wonderful, moving film. The best acting I have seen in years."},
                {"text": "Dreadful. A waste of two hours; the plot makes no sense at all."},
            ]
        }
    )
    assert mine.status_code == 200, mine.text
    first, second = mine.json()["predictions"]
    assert 0 <= second["sentiment_probability"] < first["sentiment_probability"] <= 1
    assert {first["sentiment"], second["sentiment"]} <= {"positive", "negative"}
    assert_bad_request(
        server.post({"dataframe_split": {"columns": ["review"], "data": [["good"]]}}),
        "missing inputs",
        "text",
    )


def test_fashion_answers_a_class_name_for_an_image(trained, serve):
    from pipeline.serving import FASHION_CLASSES

    server, raw, predictions, expected = served(
        trained, serve, "fashion_regularization", lambda images: {"inputs": images.tolist()}
    )
    assert [p["class"] for p in predictions] == list(expected["class"])
    assert set(p["class"] for p in predictions) <= set(FASHION_CLASSES)
    np.testing.assert_allclose(
        [p["probability_Trouser"] for p in predictions], expected["probability_Trouser"], rtol=1e-5, atol=1e-7
    )
    assert_bad_request(server.post({"inputs": raw[:, :27, :].tolist()}), "shape")
