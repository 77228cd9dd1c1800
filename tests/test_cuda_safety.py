"""Every default variant would run on CUDA under ``torch.use_deterministic_algorithms(True)``.

CI has no GPU, so this checks it on CPU: every default variant of params.yaml and of the
``bigger`` profile (on tiny raw files) trains a few steps through each of its phases and draws
samples, and every kind of evaluator fits an epoch, with genlab's CUDA-only code paths taken
(``genlab.runtime.emulate_cuda_paths``), while a dispatch mode records every aten operator
called, backward included. None of them may be one that torch's documentation lists as having
no deterministic CUDA kernel (``torch.use_deterministic_algorithms``: those raise on CUDA).
The vqvae prior's spatial cross-entropy (``nll_loss2d``) did, on an H200; so would CycleGAN's
reflection padding and the recogniser's CTC backward without genlab's replacements."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils._python_dispatch import TorchDispatchMode

from genlab.config import validate_params
from genlab.data import load_prepared, prepare_dataset
from genlab.families import FAMILIES
from genlab.nets.translators import ReflectionPad
from genlab.nets.vqvae import code_cross_entropy
from genlab.runtime import emulate_cuda_paths
from genlab.train.loop import build_trainer, model_modules, training_steps
from tests.conftest import REPO
from tests.rawfiles import write_cifar10, write_idx

# aten operators (overload packets) that raise under deterministic algorithms on CUDA (the
# "will throw a RuntimeError" list of torch.use_deterministic_algorithms, torch 2.x)
NONDETERMINISTIC_ON_CUDA = {
    "avg_pool3d_backward", "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward",
    "adaptive_max_pool2d_backward", "fractional_max_pool2d_backward",
    "fractional_max_pool3d_backward", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "upsample_linear1d_backward", "upsample_bilinear2d_backward",
    "_upsample_bilinear2d_aa_backward", "upsample_bicubic2d_backward",
    "_upsample_bicubic2d_aa_backward", "upsample_trilinear3d_backward",
    "reflection_pad1d_backward", "reflection_pad2d_backward", "reflection_pad3d_backward",
    "nll_loss2d_forward", "nll_loss2d_backward", "_embedding_bag_backward", "put_", "put",
    "histc", "median", "grid_sampler_2d_backward", "grid_sampler_3d_backward",
    "_ctc_loss", "_ctc_loss_backward",
}  # fmt: skip
# genlab.objectives.ctc runs the CTC loss on CPU copies when the tensors are on CUDA
RUN_ON_CPU_COPIES = {"_ctc_loss", "_ctc_loss_backward"}

SMALL_DATA = {  # the default datasets, small enough to prepare in seconds
    "ring8": {"n": 512, "n_test": 256},
    "digits_fonts": {"n_b": 300},
    "photos_sr": {"train_patches": 32, "test_patches": 16},
    "digit_strings": {"n_train": 200, "n_test": 64},
    "text": {"n_train": 200, "n_test": 64},
    "grammar": {"n_train": 200, "n_test": 64},
    "trajectories": {"n_train": 64, "n_test": 32},
    "moving_digits": {"n_train": 16, "n_test": 8},
}
PHASES = {  # every phase within 6 steps: stage switches, D switching on, pre-training
    "prior_steps": 2, "disc_start": 1, "pretrain_steps": 1, "phase_steps": 1,
    "encoder_steps": 1, "feature_epochs": 1, "perceptual_epochs": 1,
}  # fmt: skip
STEPS = 6

DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text())
PROFILE = yaml.safe_load((REPO / "profiles" / "bigger.yaml").read_text())
VARIANTS = sorted(DEFAULTS["variants"]) + sorted(PROFILE["variants"])
EVALUATED = ("digits", "digit_strings", "moving_digits", "cifar10")  # image, word, video kinds


class Recorder(TorchDispatchMode):
    """The names of the aten operators called within."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.add(func._overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """params.yaml's defaults on small data sets, each prepared once."""
    root = tmp_path_factory.mktemp("cuda_safety")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["variants"].update(PROFILE["variants"])
    raw["data"].update(PROFILE["data"])
    raw["evaluator"]["datasets"].update(PROFILE["evaluator"]["datasets"])
    write_idx(root / "data" / "raw", "MNIST", n_train=64, n_test=32)
    write_idx(root / "data" / "raw", "FashionMNIST", n_train=64, n_test=32)
    write_cifar10(root / "data" / "raw", n_per_batch=20, n_test=32)
    used = {v["dataset"] for v in raw["variants"].values()}
    raw["data"] = {k: {**v, **SMALL_DATA.get(k, {})} for k, v in raw["data"].items() if k in used}
    for variant in raw["variants"].values():
        variant.update({k: v for k, v in PHASES.items() if k in variant})
        variant.update(steps=STEPS, batch_size=min(variant.get("batch_size", 64), 16))
    params = validate_params(raw)
    for name in raw["data"]:
        prepare_dataset(name, params.dataset_cfg(name), root, params.seed)
    return params, root


def ops_of(params, root: Path, name: str) -> set[str]:
    """Every aten operator of ``name``'s training steps and sampling, CUDA paths taken."""
    cfg = params.variant(name)
    train, test, meta = load_prepared(root, cfg.dataset)
    family = FAMILIES.get(cfg.family)
    recorder = Recorder()
    with emulate_cuda_paths():
        trainer, batches, ema, _ = build_trainer(cfg, train, meta, 0, "cpu", 1)
        for module in trainer.modules.values():
            module.train()
        with recorder:
            for _ in training_steps(trainer, batches, ema, 0, cfg.steps, name):
                pass
            modules = model_modules(trainer, ema, cfg.family)
            for module in modules.values():
                module.eval()
            sampler = family.sampler(modules, cfg, meta)
            fed = "translation" in meta or bool(meta.get("source_fields"))
            inputs = sampler.inputs(0, 8, torch.device("cpu"), test if fed else None)
            sampler.generate(inputs, 8)
    return recorder.seen


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_default_variant_calls_no_kernel_without_a_deterministic_cuda_form(project, name):
    params, root = project
    refused = (ops_of(params, root, name) & NONDETERMINISTIC_ON_CUDA) - RUN_ON_CPU_COPIES
    assert not refused, f"{name} would raise on CUDA under deterministic algorithms: {refused}"


@pytest.mark.slow
@pytest.mark.parametrize("dataset", EVALUATED)
def test_evaluator_fit_calls_no_kernel_without_a_deterministic_cuda_form(project, dataset):
    """fit-evaluator runs under deterministic kernels on CUDA too (one epoch recorded)."""
    from genlab.data import field_kind
    from genlab.metrics.kinds import EVALUATOR_KINDS

    params, root = project
    train, test, meta = load_prepared(root, dataset)
    settings = {"seed": 0, "device": "cpu", **params.evaluator.fit(dataset), "epochs": 1}
    recorder = Recorder()
    with emulate_cuda_paths(), recorder:
        EVALUATOR_KINDS.get(field_kind(meta)).fit(train, test, meta, settings)
    refused = (recorder.seen & NONDETERMINISTIC_ON_CUDA) - RUN_ON_CPU_COPIES
    assert not refused, f"fit-evaluator {dataset} would raise on CUDA: {refused}"
    assert "convolution_backward" in recorder.seen  # it trained a network


def test_the_recorder_sees_the_kernels_the_replacements_avoid():
    """The check is not vacuous: the plain ops record the refused kernels, and genlab's CUDA
    paths compute the same values without them."""
    logits = torch.randn(3, 5, 7, requires_grad=True)  # (B, N, K)
    codes = torch.randint(7, (3, 5))
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    plain, ours = Recorder(), Recorder()
    with plain:
        F.cross_entropy(logits.transpose(1, 2), codes).backward()
        F.pad(x, (2, 2, 2, 2), mode="reflect").sum().backward()
    assert {"nll_loss2d_forward", "reflection_pad2d_backward"} <= plain.seen
    expected = (
        F.cross_entropy(logits.transpose(1, 2), codes, reduction="none"),
        torch.autograd.grad((F.pad(x, (2,) * 4, mode="reflect") ** 2).sum(), x)[0],
    )
    with emulate_cuda_paths(), ours:
        per_code = code_cross_entropy(logits, codes, "none")
        mean = code_cross_entropy(logits, codes)
        (grad,) = torch.autograd.grad((ReflectionPad(2)(x) ** 2).sum(), x)
        mean.backward()
    assert not ours.seen & NONDETERMINISTIC_ON_CUDA
    torch.testing.assert_close(per_code, expected[0])
    torch.testing.assert_close(mean, expected[0].mean())
    torch.testing.assert_close(grad, expected[1])
