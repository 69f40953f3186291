"""`make exp-show`'s table from `dvc exp show --json` (a made-up answer in DVC 3's shape)."""

from pipeline.compare import render, table


def revision(rev: str, name: str | None, epochs: int, units: int, val: float) -> dict:
    params = {
        "experiments": {
            "wide_deep": {"train": {"epochs": epochs, "batch_size": 32}, "model": {"units": units}},
            "imdb": {"train": {"epochs": 4}},
        }
    }
    metrics = {
        "metrics/headline/wide_deep.json": {"data": {"variant": "two_outputs", "val_rmse": val}},
        "metrics/imdb.json": {"data": {"variants": {"a": {"test_accuracy": 0.88}}}},
    }
    return {
        "rev": rev,
        "name": name,
        "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics},
    }


SHOWN = [
    {**revision("workspace", None, 20, 30, 0.61), "experiments": None},
    {
        **revision("a" * 40, "main", 20, 30, 0.61),
        "experiments": [
            {"revs": [revision("b" * 40, "wiser-owls", 30, 30, 0.58)]},
            {"revs": [revision("c" * 40, "broad-jays", 20, 64, 0.6)]},
        ],
    },
]


def test_one_experiment_its_changed_params_and_headline_metrics():
    columns, rows = table(SHOWN, "wide_deep")
    assert columns == [
        "experiment",
        "train.epochs",
        "train.batch_size",
        "model.units",
        "variant",
        "val_rmse",
    ]  # batch size always, units because it differs
    assert [row[0] for row in rows] == ["workspace", "main", "wiser-owls", "broad-jays"]
    assert rows[2][1] == 30 and rows[3][3] == 64


def test_rendered_to_the_terminal_width():
    columns, rows = table(SHOWN, "wide_deep")
    text = render(columns, rows, width=40)
    assert max(len(line) for line in text.splitlines()) <= 40
    assert "imdb" not in text and "0.58" in text
