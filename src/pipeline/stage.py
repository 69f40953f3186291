"""What train, evaluate and tune share, built in one place: the stage context.

Each of those stages starts the same way: check the tracking server, find the experiment's code,
load its prepared data and the data's hashes, and make the MLflow tags every run carries. A
stage's ``main`` validates its arguments first (``config.load``: bad input stops before
TensorFlow is imported), then opens its context here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from pipeline.config import experiment_config


@dataclass
class StageContext:
    stage: str  # train | evaluate | tune: the ``pipeline.stage`` tag
    cfg: DictConfig  # the whole composed config
    exp_cfg: DictConfig  # cfg.experiments[<experiment>]
    experiment: Any  # the experiment's code (pipeline.experiments registry)
    data: dict  # the prepared arrays
    info: dict  # data/<dataset>/info.json: source, sha256 of every raw file, splits
    experiment_id: str  # the MLflow experiment named after the source experiment
    tags: dict[str, str]  # git commit, dataset sha256s, stage, experiment

    @classmethod
    def open(cls, stage: str, cfg: DictConfig) -> "StageContext":
        """Tracking first: an unreachable tracking server fails before any work is done."""
        from pipeline import tracking
        from pipeline.data.store import load_info, load_prepared
        from pipeline.experiments import get_experiment

        tracking.configure(cfg)
        exp_cfg = experiment_config(cfg)
        experiment = get_experiment(cfg.experiment)
        data = load_prepared(exp_cfg.dataset)  # first: a missing dataset says how to prepare it
        info = load_info(exp_cfg.dataset)
        return cls(
            stage,
            cfg,
            exp_cfg,
            experiment,
            data,
            info,
            tracking.get_experiment_id(cfg, cfg.experiment),
            tracking.standard_tags(stage, cfg.experiment, info["sha256"]),
        )

    @property
    def name(self) -> str:
        """The source experiment's name (``experiment=<name>``)."""
        return self.cfg.experiment

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @property
    def data_origin(self) -> str:
        """Where the raw data comes from (the URL a logged dataset input names)."""
        from pipeline.data.sources import get_source

        return get_source(self.info["source"]).origin

    def variants(self) -> list[str]:
        return list(self.experiment.variants(self.exp_cfg))
