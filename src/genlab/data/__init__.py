"""Datasets: registry of builders plus atomic prepare/load of `data/prepared/<name>/`."""

from genlab.data import (  # noqa: F401  (registers builders)
    embedded,
    faces,
    strings,
    text,
    torchvision_sets,
    toy2d,
    trajectories,
    translation,
    video,
)
from genlab.data.base import (
    DATASETS,
    Builder,
    DataUnavailableError,
    Split,
    field_kind,
    load_prepared,
    prepare_dataset,
    prepared_dir,
)

__all__ = [
    "DATASETS",
    "Builder",
    "DataUnavailableError",
    "Split",
    "field_kind",
    "load_prepared",
    "prepare_dataset",
    "prepared_dir",
]
