"""A frozen feature network for content / perceptual losses that needs no download.

Ledig et al. 2017 (SRGAN, eq. 5) compare generated and real images in the feature space of a
pretrained VGG19 (phi_{i,j}: the feature map after the j-th convolution's activation, before the
i-th max-pool); Esser et al. 2021 (VQ-GAN) use LPIPS, itself built on VGG. ImageNet weights are
not available offline, so as for FID (``genlab.metrics.evaluator``) we train the small
classifier ``Evaluator`` on the training split's images and classes, with its own seed (so it is
not the evaluate stage's evaluator), and keep the output of one of its convolutional blocks.

``block`` says which (``Evaluator.body`` is conv-BN-ReLU, conv-BN-ReLU, max-pool, conv-BN-ReLU):
- 1: after the first block's ReLU (full resolution, ``width`` channels, 3x3 receptive field);
- 2: after the second block's ReLU, before the pool (full resolution, 2 ``width`` channels, 5x5
  receptive field): the position of VGG's phi_{2,2} (the last activation before a pool);
- 3 (default): after the third block's ReLU (half resolution, 4 ``width`` channels, 10x10
  receptive field): the deepest spatial map before the global pool, the analogue of phi_{5,4}
  (the last activation before the last pool), which Ledig et al. found to give the perceptually
  best SRGAN (their SRGAN-VGG54 vs SRGAN-VGG22, Sec. 3.4); shallower maps behave more like the
  pixel MSE.

The net is fitted in place (``FeatureNet.fit_``), so a trainer can build it at construction
(from the dataset's meta) and fit it on its first step from the training split; the ``fitted``
buffer travels in ``state_dict``, so a resumed run never refits it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.metrics.evaluator import Evaluator, fit_evaluator

BLOCK_ENDS = {1: 3, 2: 6, 3: 10}  # block -> len of the Evaluator.body prefix ending at its ReLU


class FeatureNet(nn.Module):
    """phi(x): the prefix of a (fitted) ``Evaluator.body`` ending at block ``block``'s ReLU.

    Frozen: no parameter requires grad, and the module stays in eval mode whatever ``train()``
    is called with (its BatchNorm always uses the running statistics of the classifier)."""

    def __init__(
        self,
        in_channels: int,  # image channels the classifier is built for
        num_classes: int,  # classes of the training split (the classifier's head)
        block: int = 3,  # which conv block's ReLU output is the feature map (1, 2 or 3)
    ) -> None:
        super().__init__()
        if block not in BLOCK_ENDS:
            raise ValueError(f"block must be one of {sorted(BLOCK_ENDS)}, got {block}")
        self.in_channels, self.num_classes, self.block = in_channels, num_classes, block
        body = Evaluator(in_channels, num_classes).body
        self.layers = nn.Sequential(*body[: BLOCK_ENDS[block]])
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.fit_stats: dict = {}
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FeatureNet:
        """Always eval mode: a frozen net's BatchNorm must not switch to batch statistics."""
        return super().train(False)

    def fit_(
        self,
        x: Tensor,  # (N, C, H, W) training images in [-1, 1]
        y: Tensor,  # (N,) their classes
        seed: int,  # the classifier's seed (its init, batch order and shifts)
        epochs: int = 5,  # classifier training epochs
    ) -> FeatureNet:
        """Train the classifier (``fit_evaluator``, seeded, deterministic on CPU) and keep its
        first blocks; in place, returns self."""
        net, stats = fit_evaluator(
            {"x": x, "y": y},
            {"x": x[:256], "y": y[:256]},  # accuracy on a slice, for fit_stats only
            epochs=epochs,
            seed=seed,
            device=str(x.device),
            num_classes=self.num_classes,
        )
        prefix = nn.Sequential(*net.body[: BLOCK_ENDS[self.block]])
        self.layers.load_state_dict(prefix.state_dict())
        self.fitted.fill_(True)
        self.fit_stats = stats
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Feature map (N, C', H', W') of images (N, in_channels, H, W) in [-1, 1]."""
        return self.layers(x)


def fit_feature_net(
    x: Tensor,  # (N, C, H, W) training images in [-1, 1]
    y: Tensor,  # (N,) their classes
    num_classes: int,  # classes of the split
    seed: int,  # the classifier's own seed (e.g. the run's seed + 7)
    epochs: int = 5,  # classifier training epochs
    block: int = 3,  # which conv block's output is kept (module docstring)
) -> FeatureNet:
    """A fitted, frozen FeatureNet on the device of ``x``."""
    net = FeatureNet(x.shape[1], num_classes, block).to(x.device)
    return net.fit_(x, y, seed, epochs)


def feature_loss(net: FeatureNet, fake: Tensor, real: Tensor) -> Tensor:
    """Ledig et al. eq. 5: 1/(W H) sum (phi(real) - phi(G(low)))^2, taken as the mean over
    feature positions, channels and the batch; gradients flow into ``fake`` only. Inputs of
    any float dtype (bf16 outputs of an autocast generator): the net runs in float32 unless the
    caller's autocast says otherwise."""
    with torch.no_grad():
        target = net(real.float())
    return (net(fake.float()).float() - target.float()).pow(2).mean()


def perceptual_distance(net: FeatureNet, fake: Tensor, real: Tensor) -> Tensor:
    """LPIPS-style distance (Zhang et al. 2018, eq. 1 with unit channel weights), the perceptual
    term of VQ-GAN: the feature vector at every position scaled to unit length, the squared
    difference summed over channels, averaged over positions and the batch (0 to 4). Unlike the
    raw MSE of ``feature_loss``, its scale does not depend on how large the classifier's
    activations happen to be, so a weight of 1 balances it against an L1 pixel loss as in the
    taming code; gradients flow into ``fake`` only."""
    with torch.no_grad():
        target = F.normalize(net(real.float()).float(), dim=1)
    return (F.normalize(net(fake.float()).float(), dim=1) - target).pow(2).sum(1).mean()


__all__ = ["BLOCK_ENDS", "FeatureNet", "feature_loss", "fit_feature_net", "perceptual_distance"]
