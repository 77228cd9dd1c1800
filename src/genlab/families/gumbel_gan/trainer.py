"""The Gumbel-softmax GAN step (Kusner & Hernandez-Lobato 2016): G's logits at every position
relaxed to y = softmax((logits + g) / tau), g Gumbel noise from the trainer's seeded generator,
tau annealed from ``tau_start`` to ``tau_end`` over the run's G updates; with ``gumbel_hard`` the
straight-through one-hot. D sees one-hot real rows against y; the standard (non-saturating) GAN
loss. The k-then-1 step itself is the shared one (``genlab.families.text_wgan.trainer``)."""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.families.gumbel_gan.gumbel import annealed_tau, gumbel_noise, gumbel_softmax
from genlab.families.text_wgan.trainer import SequenceGANTrainer
from genlab.objectives.gan import Minimax, NonSaturating
from genlab.objectives.regularizers import R1, R2
from genlab.registry import Registry

GUMBEL_LOSSES: Registry = Registry("loss")
GUMBEL_LOSSES.register("nonsaturating")(NonSaturating)
GUMBEL_LOSSES.register("minimax")(Minimax)
# D's optional regularisers (none in the paper): the zero-centred penalties of Mescheder et al.
GUMBEL_REGULARIZERS: Registry = Registry("regularizer")
GUMBEL_REGULARIZERS.register("r1")(R1)
GUMBEL_REGULARIZERS.register("r2")(R2)


class GumbelGANTrainer(SequenceGANTrainer):
    """The shared k-then-1 step with D fed Gumbel-softmax samples of G's logits."""

    losses = GUMBEL_LOSSES
    regularizers = GUMBEL_REGULARIZERS

    def tau(self) -> float:
        """The temperature of the current G update (``annealed_tau``)."""
        cfg = self.cfg
        return annealed_tau(self.g_updates, cfg.steps, cfg.tau_start, cfg.tau_end)

    def relaxed(self, z: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Gumbel-softmax samples of G's logits at the current temperature (fed back position
        by position by a recurrent G); statistics: tau and how peaked G's softmax is."""
        shape = (len(z), self.G.length, self.G.vocab_size)
        noise = gumbel_noise(shape, self.noise, self.device)
        tau, hard, peaks = self.tau(), self.cfg.gumbel_hard, []

        def relax(logits: Tensor, t: int | slice) -> Tensor:
            with torch.no_grad():
                peaks.append(torch.softmax(logits.float(), dim=-1).amax(-1).mean())
            return gumbel_softmax(logits, tau, noise[:, t].to(logits.dtype), hard)

        y = self.G.rows(z, relax)
        return y, {"tau": tau, "fake_confidence": torch.stack(peaks).mean().detach()}
