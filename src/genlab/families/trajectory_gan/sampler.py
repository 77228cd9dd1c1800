"""How ``sample`` feeds a trajectory generator: the first min(n, n_test) test scenes (meta
``source_fields``), ``eval_k`` seeded noise draws per agent each, so samples.pt holds "x" of
shape (scenes, k, agents, pred_len, 2) and "source" {"observed", "future"} of those scenes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError


class TrajectorySampler:
    def __init__(self, G: nn.Module, k: int) -> None:
        self.G, self.k = G, k

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]:
        """The first min(n, n_test) scenes of the test split ``data`` and their noise
        (scenes, k, agents, noise_dim), drawn by a generator seeded with ``seed``."""
        if data is None or "observed" not in data:
            raise ConfigError(
                "the trajectory sampler predicts the test split's scenes and was given none; "
                "allowed: a dataset whose meta declares source_fields observed and future"
            )
        m = min(n, len(data["observed"]))
        observed = data["observed"][:m].to(device)
        gen = torch.Generator(device).manual_seed(seed)
        z = torch.randn(m, self.k, observed.shape[1], self.G.noise_dim, generator=gen,
                        device=device)  # fmt: skip
        return {"observed": observed, "future": data["future"][:m].to(device), "z": z,
                "generator": gen}  # fmt: skip

    @torch.no_grad()
    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        """G's k futures of every scene (scenes, k, agents, pred_len, 2), float on the CPU;
        ``batch_size`` scenes at a time."""
        chunks = zip(inputs["observed"].split(batch_size), inputs["z"].split(batch_size),
                     strict=True)  # fmt: skip
        return torch.cat([self.G(obs, z).float().cpu() for obs, z in chunks])

    def interpolation(self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int):
        return None

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"z": inputs["z"].cpu(),
                "source": {"observed": inputs["observed"].cpu(),
                           "future": inputs["future"].cpu()}}  # fmt: skip


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TrajectorySampler:
    return TrajectorySampler(modules["G"], cfg.eval_k)


__all__ = ["TrajectorySampler", "sampler"]
