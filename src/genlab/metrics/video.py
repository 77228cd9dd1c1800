"""How clips are judged: the evaluator kind ``video`` (the image classifier of
``genlab.metrics.evaluator`` fitted on frames of the training clips) and the metric ``video``.

MoCoGAN (Tulyakov et al. 2018, sec. 4) scores clips with an Inception score over video features
and with per-frame measures of content consistency; offline, without a pretrained video network,
the frames are scored by the dataset's own classifier:
- ``frame_frechet``: the Frechet distance (Heusel et al. 2017) of its features over all frames
  of the scored clips against all frames of the test clips;
- ``class_consistency``: the share of clips whose digit it reads the same in every frame
  (MoCoGAN's content consistency, with a classifier in place of the face identity), and
  ``frame_class_agreement``, a graded form: the mean share of a clip's frames read as its most
  frequent digit;
- ``frame_class_kl``: the KL divergence of the predicted class histogram over the frames
  against the test frames';
- ``frame_motion``: the mean change between consecutive frames (0 for a still clip; the real
  clips' value is the floor's).

Each clip's per-frame features, predictions and motion are computed once per scored set
(``Context.per_row``, (N, T, D)); a bootstrap replicate picks clip rows and flattens their
frames.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.io import torch_save
from genlab.metrics.coverage import class_coverage
from genlab.metrics.evaluator import Evaluator, fit_evaluator
from genlab.metrics.frechet import frechet_from_features
from genlab.metrics.kinds import EvaluatorKind, evaluator_kind
from genlab.metrics.scores import UNIT, Context, metric

FIT_FRAMES = 4  # frames per clip the evaluator learns from and is tested on (neighbours alike)


def clip_frames(split: dict[str, Tensor], per_clip: int | None, seed: int) -> dict[str, Tensor]:
    """Frames of clips ``split["x"]`` (N, T, C, H, W) as images {"x": (M, C, H, W), "y": (M,)},
    each labelled with its clip's ``y`` (the first digit's class). ``per_clip``: that many
    distinct frames of each clip, drawn uniformly with a generator seeded by ``seed``; None:
    every frame."""
    x, y = split["x"], split["y"]
    n, t = x.shape[:2]
    if per_clip is None or per_clip >= t:
        return {"x": x.flatten(0, 1), "y": y.repeat_interleave(t)}
    gen = torch.Generator().manual_seed(seed)
    pick = torch.rand(n, t, generator=gen).argsort(dim=1)[:, :per_clip]
    return {"x": x[torch.arange(n)[:, None], pick].flatten(0, 1),
            "y": y.repeat_interleave(per_clip)}  # fmt: skip


def _fit(train: dict, test: dict, meta: dict, settings: dict) -> tuple[Evaluator, dict]:
    """The image classifier on ``FIT_FRAMES`` frames of each training clip, labelled with the
    clip's class (for two digits per clip: the first digit's, which the frames alone do not
    tell apart from the second; its accuracy is then at most about one half); its
    ``test_accuracy`` is over ``FIT_FRAMES`` frames of every test clip."""
    frames = clip_frames(train, FIT_FRAMES, settings["seed"])
    test_frames = clip_frames(test, FIT_FRAMES, settings["seed"] + 1)
    net, stats = fit_evaluator(frames, test_frames, num_classes=meta["num_classes"], **settings)
    return net.cpu(), {**stats, "frames_per_clip": FIT_FRAMES, "train_frames": len(frames["x"])}


def _save(net: Evaluator, path: Path, info: dict, meta: dict) -> None:
    """``genlab.metrics.evaluator.save_evaluator``'s format, marked ``"kind": "video"``."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch_save({"kind": "video", "state_dict": state, "kwargs": net.kwargs, "meta": info}, path)


def _load(ckpt: dict) -> Evaluator:
    net = Evaluator(**ckpt["kwargs"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


evaluator_kind("video", EvaluatorKind(fit=_fit, save=_save, load=_load))


@torch.no_grad()
def frame_outputs(evaluator: Any, clips: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """The evaluator's penultimate features (N, T, D) and predicted classes (N, T) of every
    frame of ``clips`` (N, T, C, H, W), in one pass (the class head reads the features)."""
    n, t = clips.shape[:2]
    features = evaluator.features(clips.flatten(0, 1), batch_size)
    head = evaluator.head
    device = next(head.parameters()).device
    logits = torch.cat([head(f.to(device)).cpu() for f in features.split(batch_size)])
    return features.view(n, t, -1), logits.argmax(1).view(n, t)


def motion(clips: Tensor) -> Tensor:
    """Each clip's mean absolute change between consecutive frames, (N,) float64."""
    return (clips[:, 1:].double() - clips[:, :-1].double()).abs().flatten(1).mean(1)


def consistent(predictions: Tensor) -> Tensor:
    """1.0 for each clip whose predicted class (N, T) is the same in every frame, else 0.0."""
    return (predictions == predictions[:, :1]).all(dim=1).double()


def agreement(predictions: Tensor) -> Tensor:
    """Each clip's share of frames whose predicted class (N, T) is the clip's most frequent
    one (the smallest such class on a tie), (N,) float64: 1 for a consistent clip."""
    majority = torch.mode(predictions, dim=1).values
    return (predictions == majority[:, None]).double().mean(dim=1)


def _rows(ctx: Context) -> dict[str, Tensor]:
    f_s, p_s = frame_outputs(ctx.evaluator, ctx.samples)
    f_t, p_t = frame_outputs(ctx.evaluator, ctx.test["x"])
    return {"samples.features": f_s, "samples.predictions": p_s, "test.features": f_t,
            "test.predictions": p_t, "samples.motion": motion(ctx.samples)}  # fmt: skip


@metric(
    "video",
    requires=("video",),
    settings=("frame_feature_dim",),
    ranges={
        "class_consistency": UNIT,
        "frame_class_agreement": UNIT,
        "frame_motion": (0.0, 2.0),
        "frame_frechet": (0.0, math.inf),
        "frame_class_kl": (0.0, math.inf),
    },
    descriptions={
        "frame_frechet": "Fréchet distance of the evaluator's features over every frame of the "
        "scored clips vs every frame of the test clips (lower is better)",
        "class_consistency": "share of clips whose digit the evaluator reads the same in every "
        "frame (higher is better; the floor shows real clips')",
        "frame_class_agreement": "mean share of a clip's frames read as its most frequent "
        "digit (higher is better; 1 for consistent clips)",
        "frame_class_kl": "KL divergence of the evaluator's class histogram over the frames vs "
        "over the test frames, in nats (lower is better)",
        "frame_motion": "mean absolute change between consecutive frames (0: still clips; "
        "compare with the floor's)",
    },
    headline={"frame_frechet": True, "class_consistency": False},
)
def _video(ctx: Context) -> dict[str, float]:
    """frame_frechet, class_consistency, frame_class_kl and frame_motion (module docstring);
    nothing without an evaluator, no Frechet distance where the frames are not more than the
    features have dimensions."""
    if ctx.evaluator is None:
        return {}
    rows = ctx.per_row("video", _rows)
    f_s, f_t = rows["samples.features"], rows["test.features"]
    p_s, p_t = rows["samples.predictions"], rows["test.predictions"]
    dim = f_s.shape[-1]
    out = {
        "class_consistency": float(consistent(p_s).mean()),
        "frame_class_agreement": float(agreement(p_s).mean()),
        "frame_class_kl": class_coverage(p_s, p_t, ctx.meta["num_classes"])["class_kl"],
        "frame_motion": float(rows["samples.motion"].mean()),
        "frame_feature_dim": dim,
    }
    fake, real = f_s.flatten(0, 1), f_t.flatten(0, 1)
    if min(len(fake), len(real)) > dim:
        out["frame_frechet"] = frechet_from_features(fake, real)
    return out


__all__ = ["FIT_FRAMES", "agreement", "clip_frames", "consistent", "frame_outputs", "motion"]
