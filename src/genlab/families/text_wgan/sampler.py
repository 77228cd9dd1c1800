"""How a token-row GAN is sampled: seeded latents z and a token per position: the argmax of G's
softmax (WGAN-GP: the most probable character, as Gulrajani et al. 2017 decode), or with
``perturb`` the argmax of the logits plus seeded Gumbel noise, a categorical draw from G's
softmax (the Gumbel-max trick; Kusner & Hernandez-Lobato 2016), fed back to a recurrent G."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from genlab.families.latent import interpolation_latents, sample_latents
from genlab.nets.sequence import one_hot

# (shape, generator, device) -> noise added to G's logits before the argmax
Perturb = Callable[[tuple[int, ...], torch.Generator, Any], Tensor]


class TokenSampler:
    """Feeds G ``n`` seeded latents; ``generate`` gives int64 (N, L) tokens on the CPU."""

    def __init__(self, net: nn.Module, meta: dict, perturb: Perturb | None = None) -> None:
        self.net, self.meta, self.perturb = net, meta, perturb

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]:
        """``n`` latents (and, with ``perturb``, their Gumbel noise) from a generator seeded by
        ``seed``; ``data`` is not read (token rows are unconditional)."""
        z, gen = sample_latents(seed, n, self.net.latent_dim, device)
        inputs: dict[str, Any] = {"z": z, "generator": gen}
        if self.perturb is not None:
            inputs["noise"] = self.perturb((n, self.net.length, self.net.vocab_size), gen, device)
        return inputs

    @torch.no_grad()
    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        """Tokens (N, L) int64 on the CPU: without noise the argmax of G's softmax rows; with
        it, at each position the one-hot of argmax(logits + noise), fed back to a recurrent G."""
        z, noise = inputs["z"], inputs.get("noise")
        rows = []
        for i, chunk in enumerate(z.split(batch_size)):
            if noise is None:
                rows.append(self.net(chunk).argmax(-1).cpu())
                continue
            g = noise[i * batch_size : i * batch_size + len(chunk)]

            def draw(logits: Tensor, t: int | slice, g: Tensor = g) -> Tensor:
                picked = (logits.float() + g[:, t]).argmax(-1)
                return one_hot(picked, self.net.vocab_size).to(logits.dtype)

            rows.append(self.net.rows(chunk, draw).argmax(-1).cpu())
        return torch.cat(rows).to(torch.int64)

    @torch.no_grad()
    def interpolation(
        self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int
    ) -> Tensor:
        """Tokens along ``rows`` linear paths z0 -> z1 of ``steps`` points (Radford et al. 2016,
        fig. 4), without noise (the most probable character at each position, fed back), so
        that the path shows what z encodes."""
        z, gen = inputs["z"], inputs["generator"]
        ends = torch.randn(2, rows, z.shape[1], generator=gen, device=z.device)
        path = {"z": interpolation_latents(ends[0], ends[1], steps)}
        if self.perturb is not None:
            path["noise"] = torch.zeros(len(path["z"]), self.net.length, self.net.vocab_size,
                                        device=z.device)  # fmt: skip
        return self.generate(path, batch_size)

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"z": inputs["z"].cpu()}
