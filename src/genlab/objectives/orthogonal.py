"""BigGAN's orthogonal regularisation of the generator (Brock et al. 2019, sec. 3.1):

    R_beta(W) = beta * || W W^T * (1 - I) ||_F^2

summed over G's weights, each flattened to (out, in * k * k) so that the rows are the filters
(a transposed convolution's (in, out, k, k) weight is transposed first); ``*`` is the
element-wise product, so only the off-diagonal part of the filters' Gram matrix is penalised
(the filters' norms are left free), the paper's relaxation of Brock et al. 2017's
||W^T W - I||. Its gradient is 4 beta (W W^T * (1 - I)) W. The paper's beta is 1e-4. The
reference code (BigGAN-PyTorch ``utils.ortho``) adds 2 beta (W W^T * (1 - I)) W to the
gradient directly, which is this term with half the weight.

Which weights: every G parameter with two or more dimensions except embeddings (the reference
code skips the shared class embedding). With spectral norm these are the raw weights (the
parametrisation's ``original``), as in the reference code. Biases and norm scales are left out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.objectives.terms import Stats, Step, Term


def penalised_weights(G: nn.Module) -> list[tuple[Tensor, bool]]:
    """G's parameters with >= 2 dims, embeddings out, each with whether it is a transposed
    convolution's (in, out, k, k) weight (its filters are along dim 1)."""
    skip = {id(p) for m in G.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    transposed = {
        id(p)
        for m in G.modules()
        if isinstance(m, nn.modules.conv._ConvTransposeNd)
        for p in m.parameters()
    }
    return [(p, id(p) in transposed) for p in G.parameters() if p.dim() >= 2 and id(p) not in skip]


def filter_matrix(p: Tensor, transposed: bool = False) -> Tensor:
    """A weight as an (out, in * k * k) matrix whose rows are the filters."""
    return p.transpose(0, 1).flatten(1) if transposed else p.flatten(1)


def off_diagonal_gram(w: Tensor) -> Tensor:
    """|| W W^T * (1 - I) ||_F^2 of one (out, fan_in) matrix."""
    gram = w @ w.t()
    return (gram - torch.diag_embed(gram.diagonal())).pow(2).sum()


def orthogonal_penalty(weights: list[tuple[Tensor, bool]]) -> Tensor:
    """sum over W of || W W^T * (1 - I) ||_F^2 (unweighted), in float32 at least (bf16
    weights are promoted; float64 ones kept, for gradcheck)."""
    grams = [
        off_diagonal_gram(filter_matrix(p.to(torch.promote_types(p.dtype, torch.float32)), t))
        for p, t in weights
    ]
    return torch.stack(grams).sum()


class OrthogonalRegularization(Term):
    """Generator-side term beta * sum_W ||W W^T * (1 - I)||_F^2 (BigGAN sec. 3.1); statistic
    ``orthogonal``: the unweighted sum, a detached tensor."""

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self.weights: list[tuple[Tensor, bool]] = []

    def setup(self, nets: dict[str, nn.Module]) -> None:
        self.weights = penalised_weights(nets["G"])

    def generator(self, s: Step) -> tuple[Tensor, Stats]:
        penalty = orthogonal_penalty(self.weights or penalised_weights(s.nets["G"]))
        return self.beta * penalty, {"orthogonal": penalty.detach()}
