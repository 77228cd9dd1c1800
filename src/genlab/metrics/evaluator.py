"""Per-dataset evaluator CNN: classifier whose penultimate features replace Inception for FID/KID.

Inception-v3 features (Heusel et al. 2017) are meaningless for 8x8 digits, so as in e.g.
Santurkar et al. 2018 / Lucic et al. 2018 we train a small classifier on the real data instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.io import torch_load, torch_save


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class Evaluator(nn.Module):
    """conv-BN-ReLU x2, maxpool, conv-BN-ReLU, global avg pool, linear-ReLU (features), linear."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        feature_dim: int = 64,
        width: int = 32,
        downsample: int = 1,  # average-pool the input by this factor first (large images)
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            in_channels=in_channels, num_classes=num_classes, feature_dim=feature_dim, width=width
        )
        if downsample > 1:  # only then: the kwargs of every evaluator saved before stay valid
            self.kwargs["downsample"] = downsample
        self.pool = nn.AvgPool2d(downsample) if downsample > 1 else nn.Identity()
        self.body = nn.Sequential(
            *_block(in_channels, width),
            *_block(width, 2 * width),
            nn.MaxPool2d(2),
            *_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, num_classes) for images (N, C, H, W) in [-1, 1]."""
        return self.head(self.embed(x))

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features of a batch (with gradients, in the current mode)."""
        return self.body(self.pool(x))

    @torch.no_grad()
    def _batched(self, fn, x: Tensor, batch_size: int) -> Tensor:
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            out = [fn(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, 0)

    def features(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """Penultimate (post-ReLU) features (N, feature_dim) on CPU, in eval mode without grad."""
        return self._batched(self.embed, x, batch_size)


def predict(net: Evaluator, x: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted class indices (N,) on CPU (eval mode, no grad, batched)."""
    return net._batched(net, x, batch_size).argmax(dim=1)


def _random_shift(x: Tensor, gen: torch.Generator, max_shift: int = 1) -> Tensor:
    """Translate each image by up to max_shift pixels (replicate padding), per-sample shifts."""
    n, c, h, w = x.shape
    xp = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen)).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[idx_n, idx_c, rows, cols]


def _accuracy(net: Evaluator, data: dict) -> float:
    return float((predict(net, data["x"]) == data["y"].cpu()).double().mean())


def fit_evaluator(
    train: dict,
    test: dict,
    *,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    num_classes: int | None = None,
    downsample: int = 1,  # Evaluator's input pooling factor
) -> tuple[Evaluator, dict]:
    """Train an Evaluator (Adam, cosine LR, random 1-px shifts) on {"x": (N,C,H,W), "y": (N,)}.

    Seeded and deterministic on CPU; returns the net in eval mode and accuracy/timing stats.
    """
    start = time.perf_counter()
    x, y = train["x"].float().to(device), train["y"].long().to(device)
    if num_classes is None:
        num_classes = int(max(train["y"].max(), test["y"].max())) + 1
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the CPU generator only: it builds the net
        torch.default_generator.manual_seed(seed)
        net = Evaluator(x.shape[1], num_classes, downsample=downsample).to(device)
    steps_per_epoch = -(-len(x) // batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch)
    )
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2:  # BatchNorm needs > 1 sample; still step the schedule
                sched.step()
                continue
            loss = F.cross_entropy(net(_random_shift(x[idx], gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    stats = {
        "test_accuracy": _accuracy(net, test),
        "train_accuracy": _accuracy(net, train),
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
    }
    return net, stats


def save_evaluator(net: Evaluator, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Atomically save {"state_dict", "kwargs", "meta"} (meta: plain Python types only)."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch_save({"state_dict": state, "kwargs": net.kwargs, "meta": meta}, Path(path))


def load_evaluator(path: str | os.PathLike) -> tuple[Evaluator, dict]:
    """Load an Evaluator (CPU, eval mode) and its meta saved by save_evaluator."""
    ckpt = torch_load(Path(path), "evaluator")
    net = Evaluator(**ckpt["kwargs"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), ckpt["meta"]
