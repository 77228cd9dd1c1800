"""A model family registered from this file alone, run through train -> sample -> evaluate ->
report without touching ``src/``: the worked example of README "Adding a model family".

"meanshift": x = tanh(mu + softplus(s) * W z), z ~ N(0, I), fitted to the per-pixel mean and
standard deviation of digits batches. It brings its own arch and loss registries, a trainer, a
sampler (``LatentSampler``), one figure, one family-only metric and a report section.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from genlab.drawing import save_grid
from genlab.families import FAMILIES, Family, register
from genlab.families.latent import LatentSampler
from genlab.metrics.scores import METRICS, Context, metric, score
from genlab.registry import Registry
from genlab.runtime import make_optimizer
from tests.conftest import tiny_params_dict

NAME, METRIC, SECTION = "meanshift", "pixel_mean_gap", "Mean-shift family"


class MeanShift(nn.Module):
    def __init__(self, latent_dim: int, shape: list[int]) -> None:
        super().__init__()
        self.latent_dim, self.shape = latent_dim, tuple(shape)
        pixels = math.prod(shape)
        self.mu = nn.Parameter(torch.zeros(pixels))
        self.s = nn.Parameter(torch.zeros(pixels))
        self.W = nn.Parameter(torch.randn(pixels, latent_dim) / latent_dim**0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mu + F.softplus(self.s) * (z @ self.W.T)
        return torch.tanh(x).view(-1, *self.shape)


ARCHS: Registry = Registry("meanshift arch")
LOSSES: Registry = Registry("meanshift loss")


@ARCHS.register("linear")
def _linear(meta: dict, cfg) -> dict[str, nn.Module]:
    return {"generator": MeanShift(cfg.latent_dim, meta["shape"])}


@LOSSES.register("moments")
def _moments():
    """Squared gaps between the per-pixel mean and std of a fake batch and a real one."""

    def loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return (fake.mean(0) - real.mean(0)).pow(2).mean() + (fake.std(0) - real.std(0)).pow(
            2
        ).mean()

    return loss


class MeanShiftTrainer:
    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        self.net = ARCHS.build(cfg.arch, meta, cfg)["generator"].to(device)
        self.loss = LOSSES.build(cfg.loss)
        self.opt = make_optimizer(self.net.parameters(), cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.device = device

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.net}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt}

    def step(self, batches) -> dict[str, float]:
        real = batches.next()["x"]
        z = torch.randn(len(real), self.net.latent_dim, generator=self.noise, device=self.device)
        loss = self.loss(self.net(z), real)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state()}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])


def _mean_figure(ctx) -> list:
    path = ctx.out / "mean.png"
    save_grid(torch.tanh(ctx.modules["generator"].mu).view(1, *ctx.modules["generator"].shape)
              .detach().cpu(), path, nrow=1)  # fmt: skip
    return [path]


@torch.no_grad()
def pixel_mean_gap(ctx: Context) -> dict[str, float]:
    """|mean pixel of the samples - mean pixel of the test images|, and the mean absolute gap
    between the model's mean image tanh(mu) and the test split's (read from model.pt)."""
    test_mean = ctx.test["x"].mean(0).flatten()
    mu_gap = (torch.tanh(ctx.model.mu) - test_mean).abs().mean()
    return {METRIC: float((ctx.samples.mean() - ctx.test["x"].mean()).abs()),
            "meanshift_mu_gap": float(mu_gap)}  # fmt: skip


@pytest.fixture(scope="module")
def meanshift():
    """Register the family and its metric for this module only."""
    metric(METRIC, requires=("image",), generic=False)(pixel_mean_gap)
    family = register(
        Family(
            name=NAME,
            archs=ARCHS,
            losses=LOSSES,
            regularizers=Registry("meanshift regularizer"),
            default_loss="moments",
            trainer=MeanShiftTrainer,
            sampler=lambda modules, cfg, meta: LatentSampler(
                modules["generator"], modules["generator"].latent_dim
            ),
            generator="generator",
            figures=_mean_figure,
            metrics=(METRIC,),
            sections={SECTION: "x = tanh(mu + softplus(s) W z), fitted to pixel moments."},
        )
    )
    yield family
    FAMILIES.unregister(NAME)
    METRICS.unregister(METRIC)


def _params(variants: dict):
    from genlab.config import validate_params

    raw = tiny_params_dict()
    raw["variants"] = variants
    raw["evaluate"]["metrics"] = ["frechet", "kid", "coverage", METRIC]
    return validate_params(raw)


VARIANT = {"dataset": "digits", "family": NAME, "arch": "linear", "latent_dim": 4, "steps": 20,
           "batch_size": 32, "checkpoint_every": 10, "optimizer": {"lr": 0.05}}  # fmt: skip


@pytest.fixture(scope="module")
def project(meanshift, tmp_path_factory):
    """digits prepared, its evaluator fitted (2 epochs), and variant "shift" run through train,
    sample and evaluate."""
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    root = tmp_path_factory.mktemp("meanshift")
    params = _params({"shift": VARIANT})
    prepare_dataset("digits", params.dataset_cfg("digits"), root, params.seed)
    fit_evaluator_stage(params, "digits", root)
    trained = train_variant(params, "shift", root)
    paths = sample_variant(params, "shift", root)
    metrics = evaluate_variant(params, "shift", root)
    return root, params, trained, paths, metrics


@pytest.mark.slow
def test_the_family_trains_into_a_model_pt_that_reloads_to_the_same_samples(project):
    from genlab.paths import Paths
    from genlab.train.checkpoint import load_modules

    root, params, trained, paths, _ = project
    assert trained["steps"] == 20
    modules, cfg, ckpt = load_modules(Paths(root).model("shift"))
    assert ckpt["family"] == NAME and cfg.family == NAME and cfg.loss == "moments"
    assert set(modules) == {"generator"} and isinstance(modules["generator"], MeanShift)
    assert not torch.equal(modules["generator"].mu, torch.zeros(64))  # it trained
    saved = torch.load(paths["samples"], weights_only=True)
    sampler = FAMILIES.get(NAME).sampler(modules, cfg, ckpt["meta"])
    inputs = sampler.inputs(params.seed, params.sample.n, "cpu")
    torch.testing.assert_close(inputs["z"], saved["z"])
    torch.testing.assert_close(sampler.generate(inputs, 50), saved["x"], rtol=0, atol=1e-6)
    assert saved["x"].shape == (params.sample.n, 1, 8, 8) and "y" not in saved
    for figure in ("grid.png", "interpolation.png", "mean.png"):
        assert (paths["dir"] / figure).is_file()


@pytest.mark.slow
def test_the_family_metric_is_scored_with_the_generic_ones(project):
    from genlab.data import load_prepared
    from genlab.paths import Paths
    from genlab.train.checkpoint import load_model

    root, params, _, paths, metrics = project
    written = json.loads(Paths(root).metrics("shift").read_text())
    assert written == pytest.approx(metrics)
    _, test, _ = load_prepared(root, "digits")
    from genlab.evaluate import scored_rows

    x = torch.load(paths["samples"], weights_only=True)["x"]
    x = x[scored_rows(len(x), metrics["n_samples"], params.seed)]  # the rows evaluate scores
    assert written[METRIC] == pytest.approx(float((x.mean() - test["x"].mean()).abs()), abs=1e-6)
    mu = load_model(Paths(root).model("shift"))[0].mu.detach()
    expected = float((torch.tanh(mu) - test["x"].mean(0).flatten()).abs().mean())
    assert written["meanshift_mu_gap"] == pytest.approx(expected, abs=1e-6)
    for key in ("frechet", "kid", "classes_covered"):
        assert math.isfinite(written[key])
    # generic=False: another family (one that does not list it) does not get the metric
    ctx = Context(x, test, {"kind": "image"}, None, params)
    assert score(ctx, [METRIC], family_metrics=()) == {
        "n_samples": len(x),
        "n_reference": len(test["x"]),
    }


@pytest.mark.slow
def test_the_report_lists_the_variant_under_the_family_section(project):
    from genlab.report import write_report

    root, params, *_ = project
    variants = {k: v.model_dump(mode="json") for k, v in params.variants.items()}
    out = write_report(root, variants)
    readme = out["readme"].read_text()
    section = readme.index(f"## {SECTION}")
    assert readme.index("### shift", section) > section
    assert "meanshift on digits, arch linear, loss moments." in readme
    assert "figures/shift_mean.png" in readme
    assert (root / "reports" / "figures" / "shift_grid.png").is_file()
    header = out["csv"].read_text().splitlines()[0].split(",")
    assert {METRIC, "meanshift_mu_gap", "frechet"} <= set(header)


@pytest.mark.slow
def test_an_exact_resume_of_the_family_matches_the_uninterrupted_run(project):
    """10 steps, then --resume to 20: the same model.pt as the 20 uninterrupted steps."""
    from genlab.paths import Paths
    from genlab.train.loop import train_variant

    root, *_ = project
    train_variant(_params({"halves": {**VARIANT, "steps": 10}}), "halves", root)
    train_variant(_params({"halves": VARIANT}), "halves", root, resume=True)
    load = lambda name: torch.load(Paths(root).model(name), weights_only=True)  # noqa: E731
    whole, resumed = load("shift")["modules"], load("halves")["modules"]
    for key, value in whole["generator"].items():
        torch.testing.assert_close(resumed["generator"][key], value, rtol=0, atol=0)


def test_the_family_and_its_metric_are_registered_while_the_fixture_is_active(meanshift):
    """The fixture registers both (and unregisters them after this module's tests)."""
    assert NAME in FAMILIES and METRIC in METRICS
    assert not METRICS.get(METRIC).generic
