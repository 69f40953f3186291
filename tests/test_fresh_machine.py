"""The quick start the README promises is what bench/fresh_machine.py and CI run."""

import importlib.util

from conftest import ROOT


def load_bench():
    spec = importlib.util.spec_from_file_location("fresh_machine", ROOT / "bench/fresh_machine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_quick_start_is_two_commands_one_runs_one_tests():
    commands = load_bench().quick_start_commands(ROOT / "README.md")
    assert len(commands) == 2
    assert commands[0].endswith("make run") and commands[1].endswith("make test")
    assert all(c.startswith("PIPELINE_DATA_MIRROR=../shared/data ") for c in commands)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    assert "\nmake test\n" in ci and "PIPELINE_DATA_MIRROR" in ci


def test_stage_times_run_from_one_stage_announcement_to_the_next():
    bench = load_bench()
    assert bench.STAGE_LINE.match("Running stage 'train@wide_deep':").group(1) == "train@wide_deep"
    starts = [("prepare@reuters", 10.0), ("train@reuters", 25.0), ("report", 90.0)]
    assert bench.stage_seconds(starts, end=100.0) == {
        "prepare@reuters": 15.0,
        "train@reuters": 65.0,
        "report": 10.0,
    }
    assert bench.stage_seconds([], end=5.0) == {}
