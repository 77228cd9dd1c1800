"""Multi-layer perceptrons for 2-D point sets (the VEEGAN/PacGAN mode-collapse benchmarks)."""

from __future__ import annotations

from torch import Tensor, nn

from genlab.nets.base import DEPTH, GAN_ARCHS, require_kind
from genlab.options import declare


def mlp(dim_in: int, dim_out: int, width: int, depth: int, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(dim_in if i == 0 else width, width), act()]
    layers.append(nn.Linear(width if depth else dim_in, dim_out))
    return nn.Sequential(*layers)


class Critic(nn.Module):
    """D(x) -> one logit per sample."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


@GAN_ARCHS.register("mlp")
@declare(depth=DEPTH)
def build_mlp(meta: dict, cfg) -> dict[str, nn.Module]:
    require_kind("mlp", meta, "points")
    width = cfg.width or 128
    dim = meta["shape"][0]
    return {
        "G": mlp(cfg.latent_dim, dim, width, cfg.depth, nn.ReLU),
        "D": Critic(mlp(dim, 1, width, cfg.depth, lambda: nn.LeakyReLU(0.2))),
    }
