"""Every output path of the pipeline, in one place (DESIGN "Outputs"); stages, sweeps and the
report ask here instead of spelling ``root / "models" / name / ...`` themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """The project layout under ``root`` (the folder holding params.yaml)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ------------------------------------------------------------ data
    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    def prepared(self, dataset: str) -> Path:
        return self.root / "data" / "prepared" / dataset

    # ------------------------------------------------------------ evaluator
    def evaluator(self, dataset: str) -> Path:
        return self.root / "models" / "evaluator" / f"{dataset}.pt"

    def evaluator_metrics(self, dataset: str) -> Path:
        return self.root / "metrics" / "evaluator" / f"{dataset}.json"

    def floor_replicates(self, dataset: str) -> Path:
        """The floor's bootstrap replicates (one row per replicate, one column per estimate)."""
        return self.root / "metrics" / "evaluator" / f"{dataset}.bootstrap.csv"

    # ------------------------------------------------------------ one variant
    def model_dir(self, variant: str) -> Path:
        return self.root / "models" / variant

    def model(self, variant: str) -> Path:
        return self.model_dir(variant) / "model.pt"

    def state(self, variant: str) -> Path:
        return self.model_dir(variant) / "state.pt"

    def run(self, variant: str) -> Path:
        return self.model_dir(variant) / "run.json"

    def train_csv(self, variant: str) -> Path:
        return self.root / "plots" / "train" / f"{variant}.csv"

    def partial(self, variant: str) -> Path:
        """Where a run trains (model.pt, state.pt, run.json and its CSV) until it finishes and
        replaces ``model_dir`` and ``train_csv``; an interrupted run stays here to resume."""
        return self.root / "models" / f".{variant}.partial"

    def samples_dir(self, variant: str) -> Path:
        return self.root / "samples" / variant

    def samples(self, variant: str) -> Path:
        return self.samples_dir(variant) / "samples.pt"

    def metrics(self, variant: str) -> Path:
        return self.root / "metrics" / f"{variant}.json"

    def replicates(self, variant: str) -> Path:
        """Bootstrap replicates of every estimate in ``metrics``: the same reference resamples
        for every variant of a dataset, so the report can compare variants pairwise."""
        return self.root / "metrics" / "bootstrap" / f"{variant}.csv"

    # ------------------------------------------------------------ reports
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def toys(self) -> Path:
        return self.reports / "toys"

    @property
    def report_figures(self) -> Path:
        return self.reports / "figures"

    def study_dir(self, study: str) -> Path:
        return self.reports / "sweeps" / study
