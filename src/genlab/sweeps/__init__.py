"""Optuna studies over losses, regularisers and learning rates (the only package that imports
Optuna, DESIGN rule 5).

A study (``sweeps.<name>`` in params.yaml, validated by ``study_cfg``) samples variant settings
from a search space around a base variant, trains each trial in memory for ``steps`` generator
steps and scores it with the same seeded latent batch and metric functions as ``sample`` +
``evaluate`` (``GeneratorScorer``), every ``report_every`` steps for the pruner. The arms are the
loss x regulariser choices; the best trial of each arm is retrained over ``seeds``. Tables follow
Lucic et al. 2018 ("Are GANs Created Equal?"): per-arm statistics, the expected best score as a
function of the number of trials, seed variance of the best configurations. Trials, retrains and
the study's MLflow parent run live in the Optuna storage, so a study resumes where it stopped and
many workers can share it.

Modules: ``space`` (settings schema, search space -> variants), ``storage`` (storage, study name,
sampler, pruner, budget bookkeeping), ``context`` (what a worker needs), ``objective`` (one
trial, one retrain), ``workers`` (processes, ``run_sweep``), ``tables`` (statistics and outputs).
To replace a function in tests, patch it in its module (``genlab.sweeps.objective.fit_and_score``).
"""

from __future__ import annotations

from genlab.errors import SweepFailed
from genlab.sweeps.context import Context
from genlab.sweeps.objective import METRIC_KEY, Objective, TrialFailed, retrain
from genlab.sweeps.space import (
    ARM_KEYS,
    FIXED_IN_SWEEPS,
    PrunerCfg,
    SearchParam,
    SweepCfg,
    arm_label,
    arms,
    check_study,
    study_cfg,
    suggest,
    variant_for,
)
from genlab.sweeps.storage import (
    best_by_arm,
    consumed,
    create_study,
    fingerprint,
    public_url,
    retried_numbers,
    storage_url,
    study_dir,
    trial_arm,
)
from genlab.sweeps.tables import bootstrap_ci, expected_best, trials_frame, write_tables
from genlab.sweeps.workers import dashboard_command, run_sweep, split

__all__ = [
    "ARM_KEYS",
    "FIXED_IN_SWEEPS",
    "METRIC_KEY",
    "Context",
    "Objective",
    "PrunerCfg",
    "SearchParam",
    "SweepCfg",
    "SweepFailed",
    "TrialFailed",
    "arm_label",
    "arms",
    "best_by_arm",
    "bootstrap_ci",
    "check_study",
    "consumed",
    "create_study",
    "dashboard_command",
    "expected_best",
    "fingerprint",
    "public_url",
    "retrain",
    "retried_numbers",
    "run_sweep",
    "split",
    "storage_url",
    "study_cfg",
    "study_dir",
    "suggest",
    "trial_arm",
    "trials_frame",
    "variant_for",
    "write_tables",
]
