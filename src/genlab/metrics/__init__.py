"""Sample-quality metrics: FID/KID on evaluator features, class coverage, 2-D mode metrics."""

from genlab.metrics import kinds, translation  # noqa: F401, E402, I001  (register metrics, kinds)
from genlab.metrics import recognition, text, trajectory, video  # noqa: F401, E402, I001
from genlab.metrics.coverage import class_coverage
from genlab.metrics.evaluator import (
    Evaluator,
    fit_evaluator,
    load_evaluator,
    predict,
    save_evaluator,
)
from genlab.metrics.frechet import frechet_distance, frechet_from_features, gaussian_stats
from genlab.metrics.kinds import EVALUATOR_KINDS, EvaluatorKind, evaluator_kind
from genlab.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from genlab.metrics.scores import METRICS, Context, Metric, metric, score
from genlab.metrics.toy import mode_metrics

__all__ = [
    "EVALUATOR_KINDS",
    "EvaluatorKind",
    "evaluator_kind",
    "METRICS",
    "Context",
    "Metric",
    "metric",
    "score",
    "Evaluator",
    "class_coverage",
    "fit_evaluator",
    "frechet_distance",
    "frechet_from_features",
    "gaussian_stats",
    "kernel_inception_distance",
    "load_evaluator",
    "mmd2_unbiased",
    "mode_metrics",
    "polynomial_kernel",
    "predict",
    "save_evaluator",
]
