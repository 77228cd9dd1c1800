"""The translation infrastructure every image-to-image family shares: PatchGAN's receptive
field, the task check at params load, the sampler over the test split, the evaluate stage's
per-direction scoring (PSNR/SSIM against scikit-image, class preservation, cycle error), the
floor and the bicubic baseline. A tiny paired, unpaired and super-resolution dataset and a
1x1-convolution "translator" family are registered here, so nothing depends on the real
families' sizes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DATASETS
from genlab.data.base import dataset
from genlab.data.translation import PAIRED, UNPAIRED
from genlab.families import FAMILIES, Family, register
from genlab.families.translation import (
    TRANSLATION_LOSSES,
    TranslationSampler,
    requires_task,
    translation_figures,
)
from genlab.metrics.translation import psnr, ssim
from genlab.nets.patchgan import PatchGAN, measured_receptive_field, receptive_field
from genlab.options import Options
from genlab.registry import Registry
from genlab.runtime import make_optimizer
from tests.conftest import tiny_params_dict


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_patchgan_receptive_field_is_the_stated_one(layers):
    net = PatchGAN(in_channels=2, width=4, layers=layers, norm="batch")
    assert net.receptive_field == receptive_field(layers) == 9 * 2**layers - 2
    assert measured_receptive_field(net, 2, 2 * receptive_field(layers)) == receptive_field(layers)


def test_patchgan_gives_one_logit_per_patch():
    assert receptive_field(3) == 70  # Isola et al.'s 70 x 70 discriminator
    out = PatchGAN(in_channels=3, width=4, layers=3)(torch.zeros(2, 3, 256, 256))
    assert out.shape == (2, 1, 30, 30)  # the paper's 30 x 30 map for 256 x 256 inputs
    assert PatchGAN(in_channels=1, width=4, layers=2)(torch.zeros(2, 1, 32, 32)).shape == (
        2, 1, 6, 6)  # fmt: skip


def test_psnr_and_ssim_are_scikit_images_on_minus_one_to_one():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gen = torch.Generator().manual_seed(0)
    t = torch.rand(3, 16, 16, generator=gen) * 2 - 1
    o = (t + 0.1 * torch.randn(3, 16, 16, generator=gen)).clamp(-1, 1)
    mse = float((o.double() - t.double()).pow(2).mean())
    assert psnr(o, t) == pytest.approx(10 * math.log10(2.0**2 / mse))
    assert psnr(o, t) == pytest.approx(peak_signal_noise_ratio(t.numpy(), o.numpy(), data_range=2))
    ref = structural_similarity(np.moveaxis(t.double().numpy(), 0, -1),
                                np.moveaxis(o.double().numpy(), 0, -1), data_range=2,
                                channel_axis=-1)  # fmt: skip
    assert ssim(o, t) == pytest.approx(ref) and ssim(t, t) == pytest.approx(1.0)


# ---------------------------------------------------------------- tiny datasets and family
class TinyCfg(Options):
    pass


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data.astype(np.float32) / 8 - 1).view(-1, 1, 8, 8)[:600]
    return x, torch.from_numpy(bunch.target[:600].astype(np.int64))


def _meta(name: str, task: str, directions: list[dict], **extra) -> dict:
    return {"name": name, "kind": "image", "shape": [1, 8, 8], "num_classes": 10,
            "translation": {"task": task, "directions": directions}, **extra}  # fmt: skip


PAIRED_FIELDS = {"source": {"kind": "image"}, "x": {"kind": "image"}, "y": {"kind": "class"}}


def _pairs(cfg, raw_dir, seed):
    """source = the negated digit; target = the digit."""
    x, y = _digits()
    split = lambda s: {"source": -x[s], "x": x[s], "y": y[s]}  # noqa: E731
    meta = _meta("tiny_pairs", "paired", PAIRED, n_train=400, n_test=200, source_shape=[1, 8, 8])
    return split(slice(0, 400)), split(slice(400, 600)), meta


def _low_res(cfg, raw_dir, seed):
    """source = the digit averaged down to 4 x 4 (scale 2)."""
    x, y = _digits()
    split = lambda s: {"source": F.avg_pool2d(x[s], 2), "x": x[s], "y": y[s]}  # noqa: E731
    meta = _meta("tiny_sr", "super_resolution", PAIRED, n_train=400, n_test=200, scale=2,
                 source_shape=[1, 4, 4])  # fmt: skip
    return split(slice(0, 400)), split(slice(400, 600)), meta


UNPAIRED_FIELDS = {"x": {"kind": "image", "domain": "a"}, "y": {"kind": "class", "domain": "a"},
                   "x_b": {"kind": "image", "domain": "b"},
                   "y_b": {"kind": "class", "domain": "b"}}  # fmt: skip


def _domains(cfg, raw_dir, seed):
    """A: digits 0..299; B: digits 300..599 negated (different sizes per split)."""
    x, y = _digits()
    train = {"x": x[:200], "y": y[:200], "x_b": -x[300:550], "y_b": y[300:550]}
    test = {"x": x[200:300], "y": y[200:300], "x_b": -x[550:], "y_b": y[550:]}
    meta = _meta("tiny_domains", "unpaired", UNPAIRED, n_train=200, n_test=100, n_train_b=250,
                 n_test_b=50, evaluator_fields=[["x", "y"], ["x_b", "y_b"]])  # fmt: skip
    return train, test, meta


class Translator(nn.Module):
    """A 1x1 convolution (after nearest upsampling to ``size``)."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.size, self.conv = size, nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="nearest")
        return self.conv(x).clamp(-1, 1)


ARCHS: Registry = Registry("translator arch")


@ARCHS.register("conv1x1")
def _conv(meta, cfg):
    return {"G": Translator(1, meta["shape"][-1]), "F": Translator(1, meta["shape"][-1])}


class TranslatorTrainer:
    """Paired: L1 to the target; unpaired: the cycle L1 of both directions."""

    def __init__(self, cfg, meta, device, seed) -> None:
        nets = ARCHS.build(cfg.arch, meta, cfg)
        self.G, self.F = nets["G"].to(device), nets["F"].to(device)
        self.opt = make_optimizer([*self.G.parameters(), *self.F.parameters()], cfg.optimizer)
        self.paired = meta["translation"]["task"] != "unpaired"

    @property
    def modules(self):
        return {"G": self.G, "F": self.F}

    @property
    def optimizers(self):
        return {"G": self.opt}

    def step(self, batches):
        b = batches.next()
        if self.paired:
            loss = (self.G(b["source"]) - b["x"]).abs().mean()
        else:
            loss = (self.F(self.G(b["x"])) - b["x"]).abs().mean() + (
                self.G(self.F(b["x_b"])) - b["x_b"]).abs().mean()  # fmt: skip
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def extra_state(self):
        return {}

    def load_extra_state(self, state):
        pass


def _sampler(modules, cfg, meta):
    G, F_ = modules["G"], modules["F"]
    if meta["translation"]["task"] == "unpaired":
        return TranslationSampler(
            {"a2b": G, "b2a": F_},
            meta,
            cycles={"a2b": lambda a: F_(G(a)), "b2a": lambda b: G(F_(b))},
        )
    return TranslationSampler({"": G}, meta)  # fmt: skip


@pytest.fixture(scope="module")
def translator():
    registered = []
    for name, fn, fields, task in [
        ("tiny_pairs", _pairs, PAIRED_FIELDS, "paired"),
        ("tiny_sr", _low_res, PAIRED_FIELDS, "super_resolution"),
        ("tiny_domains", _domains, UNPAIRED_FIELDS, "unpaired"),
    ]:
        dataset(name, options=TinyCfg, fields=fields, task=task)(fn)
        registered.append(name)
    family = register(
        Family(
            name="translator",
            archs=ARCHS,
            losses=TRANSLATION_LOSSES,
            default_loss="nonsaturating",
            trainer=TranslatorTrainer,
            sampler=_sampler,
            generator="G",
            model_modules=("G", "F"),
            figures=translation_figures,
            metrics=("translation",),
            check=requires_task("paired", "super_resolution", "unpaired"),
            sections={"Translators": "1x1 convolutions."},
        )  # fmt: skip
    )
    yield family
    FAMILIES.unregister("translator")
    for name in registered:
        DATASETS.unregister(name)


def _params(dataset_name: str, **overrides):
    from genlab.config import validate_params

    raw = tiny_params_dict()
    raw["data"] = {dataset_name: {}}
    raw["variants"] = {"t": {"dataset": dataset_name, "family": "translator", "arch": "conv1x1",
                             "steps": 30, "batch_size": 32, "optimizer": {"lr": 0.05},
                             **overrides}}  # fmt: skip
    raw["evaluate"] = {"metrics": ["frechet", "kid", "prdc", "coverage", "translation"],
                       "n": 150, "bootstrap": 20}  # fmt: skip
    return validate_params(raw)


def _run(root, dataset_name: str):
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    params = _params(dataset_name)
    prepare_dataset(dataset_name, params.dataset_cfg(dataset_name), root, params.seed)
    floor = fit_evaluator_stage(params, dataset_name, root)
    train_variant(params, "t", root)
    paths = sample_variant(params, "t", root)
    return params, floor, paths, evaluate_variant(params, "t", root)


def test_a_family_refuses_a_dataset_of_another_task_at_params_load(translator):
    from genlab.config import ConfigError

    with pytest.raises(ConfigError, match=r"dataset = 'digits' is a generative dataset.*"
                       r"task paired or super_resolution or unpaired; allowed datasets: .*"
                       r"tiny_pairs, tiny_sr, tiny_domains"):  # fmt: skip
        _params("digits")


def test_paired_outputs_are_scored_row_by_row_against_their_targets(translator, tmp_path):
    from genlab.data import load_prepared
    from genlab.evaluate import scored_rows
    from genlab.paths import Paths

    params, floor, paths, metrics = _run(tmp_path, "tiny_pairs")
    saved = torch.load(paths["samples"], weights_only=True)
    _, test, _ = load_prepared(tmp_path, "tiny_pairs")
    assert saved["outputs"][""].shape == (200, 1, 8, 8) and "x" in saved
    rows = scored_rows(200, 150, params.seed)
    out, target = saved["outputs"][""][rows], test["x"][rows]
    assert metrics["n_samples"] == metrics["n_reference"] == 150
    expected = [psnr(o, t) for o, t in zip(out, target, strict=True)]
    assert metrics["psnr"] == pytest.approx(float(np.mean(expected)))
    assert metrics["l1"] == pytest.approx(float((out - target).abs().mean()), rel=1e-5)
    assert metrics["psnr_ci_low"] <= metrics["psnr"] <= metrics["psnr_ci_high"]
    assert 0 <= metrics["class_preservation"] <= 1 and math.isfinite(metrics["frechet"])
    assert metrics["psnr"] > 15  # -x -> x is learnt by a 1x1 convolution in 30 steps
    assert "psnr" not in floor["floor"] and "frechet" in floor["floor"]
    reps = Paths(tmp_path).replicates("t").read_text().splitlines()
    assert "psnr" in reps[0] and len(reps) == 21
    assert (paths["dir"] / "translation.png").is_file()


def test_unpaired_directions_are_scored_against_their_target_domain(translator, tmp_path):
    params, floor, paths, metrics = _run(tmp_path, "tiny_domains")
    saved = torch.load(paths["samples"], weights_only=True)
    assert saved["outputs"]["a2b"].shape == (100, 1, 8, 8)
    assert saved["outputs"]["b2a"].shape == (50, 1, 8, 8)
    assert metrics["a2b_n_samples"] == 100 and metrics["a2b_n_reference"] == 50
    assert metrics["b2a_n_samples"] == 50 and metrics["b2a_n_reference"] == 100
    for d in ("a2b", "b2a"):
        assert 0 <= metrics[f"{d}_class_preservation"] <= 1 and f"{d}_psnr" not in metrics
        assert metrics[f"{d}_cycle_l1"] >= 0 and math.isfinite(metrics[f"{d}_kid"])
        assert f"{d}_frechet" in floor["floor"] or f"{d}_kid" in floor["floor"]
        assert (paths["dir"] / f"{d}.png").is_file()
    # the evaluator learnt both domains (meta evaluator_fields)
    assert floor["test_accuracy"] is not None


def test_super_resolution_gets_the_bicubic_baseline(translator, tmp_path):
    from genlab.data import load_prepared
    from genlab.evaluate import scored_rows
    from genlab.metrics.translation import bicubic

    params, floor, _, metrics = _run(tmp_path, "tiny_sr")
    _, test, _ = load_prepared(tmp_path, "tiny_sr")
    rows = scored_rows(200, 150, params.seed)
    up = bicubic(test["source"], 8)[rows]
    expected = float(np.mean([psnr(o, t) for o, t in zip(up, test["x"][rows], strict=True)]))
    assert floor["baseline_name"] == "bicubic"
    assert floor["baseline"]["psnr"] == pytest.approx(expected)
    assert "psnr_ci_low" in floor["baseline"] and "psnr" in metrics
    written = json.loads((tmp_path / "metrics" / "evaluator" / "tiny_sr.json").read_text())
    assert written["baseline"]["psnr"] == pytest.approx(expected)


def test_the_sampler_is_seeded_and_keeps_dropout_noise(translator):
    net = nn.Sequential(nn.Dropout(0.5))
    meta = {"translation": {"directions": PAIRED}}
    sampler = TranslationSampler({"": net}, meta, dropout=True)
    data = {"source": torch.ones(6, 1, 4, 4), "x": torch.ones(6, 1, 4, 4)}
    a = sampler.generate(sampler.inputs(3, 5, "cpu", data), 2)
    b = sampler.generate(sampler.inputs(3, 5, "cpu", data), 2)
    c = sampler.generate(sampler.inputs(4, 5, "cpu", data), 2)
    assert a.shape == (5, 1, 4, 4) and torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 2.0} and not net[0].training
    plain = TranslationSampler({"": net}, meta).generate(sampler.inputs(3, 5, "cpu", data), 2)
    assert torch.equal(plain, torch.ones(5, 1, 4, 4))  # dropout off unless asked for
    with pytest.raises(ValueError, match="not the dataset's"):
        TranslationSampler({"b2a": net}, meta)


def test_the_report_has_the_baseline_row_the_section_table_and_the_comparison(translator, tmp_path):
    from genlab.report import write_report

    params, *_ = _run(tmp_path, "tiny_sr")
    variants = {"t": params.variants["t"].model_dump(mode="json")}
    out = write_report(tmp_path, variants, level=0.95, replicates=20)
    readme = out["readme"].read_text()
    assert "## Translators" in readme and "bicubic (baseline)" in readme
    answer = readme.split("## Evaluator test accuracy")[0]
    assert "| variant | psnr | ssim | class_preservation | frechet |" in answer
    assert "bicubic (baseline)" in answer  # a row of the answer, tested against the best
    assert "tiny_sr, test examples, one per row: source | bicubic | t | target" in readme
    assert (tmp_path / "reports" / "figures" / "translation_tiny_sr.png").is_file()
    assert "translation_tiny_sr.png" in out["html"].read_text()


# ---------------------------------------------------------------- bad inputs at params load
def _cli(tmp_path, capsys, raw, *argv):
    from genlab.cli import main
    from tests.conftest import write_params

    write_params(tmp_path, raw)
    code = main(["--params", str(tmp_path / "params.yaml"), *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _with_variant(**variant):
    raw = tiny_params_dict()
    raw["variants"]["t"] = variant
    return raw


def test_an_unpaired_dataset_given_to_pix2pix_stops_at_params_load(tmp_path, capsys):
    raw = _with_variant(dataset="digits_fonts", family="pix2pix", arch="unet")
    code, out = _cli(tmp_path, capsys, raw, "prepare")
    assert code == 2 and "variants.t" in out and "Traceback" not in out
    assert "dataset = 'digits_fonts' is an unpaired translation dataset" in out
    assert "allowed datasets: digits_edges, digits_layout, photos_sr" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_a_dataset_without_its_source_field_stops_at_params_load(tmp_path, capsys):
    dataset("no_source", options=TinyCfg, fields={"x": {"kind": "image"}, "y": {"kind": "class"}},
            task="paired")(_pairs)  # fmt: skip
    try:
        raw = _with_variant(dataset="no_source", family="pix2pix", arch="unet")
        raw["data"]["no_source"] = {}
        code, out = _cli(tmp_path, capsys, raw, "train", "t")
    finally:
        DATASETS.unregister("no_source")
    assert code == 2 and "dataset = 'no_source' declares no field 'source'" in out


def test_a_scale_that_does_not_divide_the_size_stops_at_params_load(tmp_path, capsys):
    raw = tiny_params_dict()
    raw["data"]["photos_sr"] = {"size": 32, "scale": 3}
    code, out = _cli(tmp_path, capsys, raw, "prepare", "photos_sr")
    assert code == 2 and "data.photos_sr.scale = 3" in out and "allowed: 2, 4, 8" in out
    assert not (tmp_path / "data").exists()
