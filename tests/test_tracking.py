"""The git commit recorded on every MLflow run."""

import subprocess

from pipeline.tracking import git_commit


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
