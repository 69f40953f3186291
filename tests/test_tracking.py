"""The git commit and CPU kind recorded on every MLflow run."""

import subprocess

from pipeline.tracking import cpu_kind, git_commit, standard_tags


def git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


def test_commit_is_dirty_for_code_changes_but_not_for_what_dvc_repro_writes(tmp_path):
    for name in ("dvc.lock", "train.py", "reports/report.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert git_commit(tmp_path) == head

    # a `dvc repro` in progress rewrites its record and the report: still the same code
    (tmp_path / "dvc.lock").write_text("v2\n")
    (tmp_path / "reports/report.md").write_text("v2\n")
    (tmp_path / "untracked.txt").write_text("scratch\n")
    assert git_commit(tmp_path) == head

    (tmp_path / "train.py").write_text("v2\n")
    assert git_commit(tmp_path) == head + "-dirty"


def test_commit_outside_a_repository_is_unknown(tmp_path):
    assert git_commit(tmp_path / "missing") == "unknown"


EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw
processor\t: 1
model name\t: AMD EPYC
"""


def test_cpu_kind_names_the_model_and_its_widest_vector_extension():
    assert cpu_kind(EPYC) == "AMD EPYC (family 25 model 1, avx512f)"
    assert cpu_kind(EPYC.replace(" avx512f avx512bw", "")) == "AMD EPYC (family 25 model 1, avx2)"
    assert cpu_kind("model name\t: Some CPU\n") == "Some CPU"
    assert cpu_kind("")  # not /proc/cpuinfo's format: still names something


def test_every_run_is_tagged_with_this_machines_cpu_kind():
    tags = standard_tags("train", "wide_deep", {"content": "0" * 64})
    assert tags["pipeline.cpu"] == cpu_kind() != ""


def test_mlflow_sql_store_still_fails_one_of_two_runs_logging_a_new_dataset_at_once(tmp_path):
    """The upstream race train.main works around by logging the dataset on the parent run before
    its workers start (see tracking.log_dataset): the store looks the dataset up, then inserts
    it. Here another run inserts the same dataset in between, just before this run's INSERT, as
    a second worker would. When this test fails, MLflow has fixed the race and the parent's
    log_dataset may go (the parent run keeps a Datasets entry either way)."""
    import sqlite3

    import sqlalchemy
    from mlflow.entities import Dataset, DatasetInput
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db = tmp_path / "mlflow.db"
    store = SqlAlchemyStore(f"sqlite:///{db}", (tmp_path / "artifacts").as_uri())
    experiment_id = store.create_experiment("race")
    run = store.create_run(experiment_id, user_id="t", start_time=0, tags=[], run_name="worker")

    raced = []

    def another_worker_inserts_first(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("INSERT INTO DATASETS") and not raced:
            raced.append(statement)
            with sqlite3.connect(db) as other:
                other.execute(
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, "
                    "dataset_source_type, dataset_source) VALUES ('other', ?, 'data', 'abc', 'http', '{}')",
                    (int(experiment_id),),
                )

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", another_worker_inserts_first)
    dataset = Dataset(name="data", digest="abc", source_type="http", source="{}")
    try:
        store.log_inputs(run.info.run_id, datasets=[DatasetInput(dataset, tags=[])])
    except MlflowException as error:
        assert "UNIQUE constraint failed: datasets" in str(error)
    else:
        raise AssertionError("MLflow now survives the race: train.main's parent log_dataset may go")
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", another_worker_inserts_first)
    assert raced
