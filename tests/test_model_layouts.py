"""Every model every experiment builds keeps its layers (order, names, classes, shapes, arguments)
and parameter counts: tests/fixtures/model_layouts.json, written by tests/model_layouts.py.

A change that means to alter a model rewrites the fixture with that script, and the diff shows
which layers of which variants it changed."""

from __future__ import annotations

import functools
import json

import pytest

from model_layouts import FIXTURE, build_id, builds, load_config, record

EXPECTED = json.loads(FIXTURE.read_text())


@functools.cache
def configs() -> dict[str, tuple[str, str, object]]:
    """{build id: (experiment, variant, resolved config)} of the builds the script records."""
    return {
        build_id(name, variant, overrides): (name, variant, resolved)
        for name, variant, resolved, overrides in builds(load_config())
    }


def test_the_fixture_covers_every_variant():
    assert sorted(configs()) == sorted(EXPECTED), (
        "variants or probes changed: run `PYTHONPATH=src python tests/model_layouts.py`"
    )


@pytest.mark.parametrize("build", sorted(EXPECTED))
def test_model_layout(build):
    name, variant, cfg = configs()[build]
    found = record(name, variant, cfg)
    assert sorted(found) == sorted(EXPECTED[build])
    for model, expected in EXPECTED[build].items():
        assert found[model]["layers"] == expected["layers"], model
        assert found[model]["params"] == expected["params"], model
