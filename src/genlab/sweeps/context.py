"""``Context``: what every part of a running study needs (params, the study's name in params and
in the storage, the project root, the storage URL), and the study loaded from the storage."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from genlab.config import VariantCfg
from genlab.sweeps.space import SweepCfg, study_cfg
from genlab.sweeps.storage import make_pruner, make_sampler, make_storage, quiet_optuna


@dataclass
class Context:
    """Everything a worker needs: params, the study's name in params and in storage, the root."""

    params: Any
    name: str
    root: Path
    study_name: str
    url: str

    @cached_property
    def sweep(self) -> SweepCfg:
        """``sweeps.<name>``, validated once (``study_cfg``)."""
        return study_cfg(self.params, self.name)

    @property
    def base(self) -> VariantCfg:
        return self.params.variants[self.sweep.base]

    @cached_property
    def storage(self):
        """This process's RDB storage of the study (one engine, one connection pool)."""
        return make_storage(self.url, self.sweep, self._end_stale_run)

    def open(self):
        """The study, loaded from storage (it must exist)."""
        optuna = quiet_optuna()
        return optuna.load_study(
            study_name=self.study_name, storage=self.storage,
            sampler=make_sampler(self.sweep, self.params.seed), pruner=make_pruner(self.sweep),
        )  # fmt: skip

    @cached_property
    def stale_runs(self) -> list[str | None]:
        """MLflow runs of trials just failed as stale, to be ended by ``end_stale_runs``."""
        return []

    def _end_stale_run(self, trial) -> None:
        """Optuna's stale-trial callback, called under the study's storage lock: it only notes
        the trial's MLflow run, so that a slow tracking server does not hold up every machine's
        claims; ``end_stale_runs`` ends it once the lock is released."""
        self.stale_runs.append(trial.user_attrs.get("mlflow_run"))

    def end_stale_runs(self) -> None:
        """End the noted runs of stale trials FAILED with the reason (outside the lock)."""
        from genlab import tracking

        while self.stale_runs:
            run = tracking.reopen(self.params.tracking, self.root, self.stale_runs.pop(0))
            run.set_tags({"optuna.state": "FAIL", "failure": "worker stopped sending heartbeats"})
            run.end("FAILED")
