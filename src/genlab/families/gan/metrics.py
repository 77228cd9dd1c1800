"""GAN-only metrics."""

from __future__ import annotations

import torch

from genlab.metrics.scores import Context, metric


@metric(
    "info", requires=("image", "class"), generic=False, ranges={"info_matched_accuracy": (0, 1)}
)
def info_matched_accuracy(ctx: Context) -> dict[str, float]:
    """InfoGAN: accuracy of the categorical code as a classifier of the evaluator's predicted
    class, after the best one-to-one matching of code values to classes (Hungarian algorithm);
    Chen et al. 2016 report 95% on MNIST. Nothing without a categorical code."""
    if ctx.codes is None:
        return {}
    from scipy.optimize import linear_sum_assignment

    pred = ctx.predictions()
    k, classes = int(ctx.codes.max()) + 1, ctx.meta["num_classes"]
    counts = torch.zeros(k, classes, dtype=torch.long)
    counts.index_put_((ctx.codes, pred), torch.ones_like(pred), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    return {"info_matched_accuracy": float(counts[rows, cols].sum()) / len(pred)}
