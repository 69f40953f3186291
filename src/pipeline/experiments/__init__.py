"""The registry of source experiments: experiment name -> the code that runs it.

Adding an experiment = a module here with an Experiment subclass, an entry below, and a config
in conf/experiments/. The stages never change.
"""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.experiments.bag_of_words import Imdb, Reuters
from pipeline.experiments.base import Experiment
from pipeline.experiments.boston import Boston
from pipeline.experiments.deep_training import DeepTraining
from pipeline.experiments.ensemble import Ensemble
from pipeline.experiments.fashion import FashionRegularization
from pipeline.experiments.inception import Inception
from pipeline.experiments.mc_dropout import MCDropout
from pipeline.experiments.multi_io import MultiIO
from pipeline.experiments.residual import Residual
from pipeline.experiments.siamese import Siamese
from pipeline.experiments.thoracic import Thoracic
from pipeline.experiments.transfer import Transfer
from pipeline.experiments.wide_deep import WideDeep

REGISTRY: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        WideDeep(),
        Thoracic(),
        Boston(),
        FashionRegularization(),
        Imdb(),
        Reuters(),
        DeepTraining(),
        MCDropout(),
        Transfer(),
        Siamese(),
        MultiIO(),
        Residual(),
        Inception(),
        Ensemble(),
    )
}


def get_experiment(name: str) -> Experiment:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"No experiment code registered for {name!r}; valid choices: {', '.join(sorted(REGISTRY))}."
        ) from None
