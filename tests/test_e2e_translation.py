"""End to end: `dvc repro` of the real dvc.yaml with every image-to-image family (pix2pix,
CycleGAN, DiscoGAN, SRGAN, SPADE) and VQ-GAN on the four translation datasets, at tiny sizes:
every declared output, each family's metrics with intervals, the floor and the bicubic
baseline, the report's sections, and a no-op second run.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import tiny_params_dict
from tests.test_e2e import dvc, dvc_project, ran_stages

TINY = {"steps": 4, "batch_size": 8, "width": 4}
VARIANTS = {
    "p2p": {"dataset": "digits_edges", "family": "pix2pix", "arch": "unet", **TINY},
    "cycle": {"dataset": "digits_fonts", "family": "cyclegan", "arch": "resnet",
              "residual_blocks": 1, **TINY},
    "disco": {"dataset": "digits_fonts", "family": "discogan", "arch": "encoder_decoder",
              **TINY},
    "sr_gan": {"dataset": "photos_sr", "family": "srgan", "arch": "srresnet",
               "pretrain_steps": 2, "feature_epochs": 1, "residual_blocks": 1,
               "bicubic_skip": True, **TINY},
    "layout": {"dataset": "digits_layout", "family": "spade", "arch": "spade", "latent_dim": 4,
               **TINY},
    "vqgan": {"dataset": "digits", "family": "vqgan", "arch": "vq_vae", "latent_dim": 4,
              "codebook_size": 8, "prior_steps": 2, "disc_start": 1, "disc_layers": 1,
              "disc_width": 4, "perceptual_epochs": 1, "steps": 6, "batch_size": 8,
              "width": 4},
}  # fmt: skip


def params() -> dict:
    raw = tiny_params_dict()
    raw["data"] = {
        "digits": {"test_fraction": 0.2},
        "digits_edges": {},
        "digits_fonts": {"n_b": 200},
        "photos_sr": {"train_patches": 16, "test_patches": 8},
        "digits_layout": {},
    }
    raw["evaluator"] = {"epochs": 1, "datasets": {d: {"downsample": 2} for d in raw["data"]
                                                  if d != "digits"}}  # fmt: skip
    raw["variants"] = VARIANTS
    raw["evaluate"] = {"metrics": ["frechet", "kid", "prdc", "coverage", "vq", "translation"],
                       "n": 100, "bootstrap": 10}  # fmt: skip
    raw["sample"]["n"] = 100
    raw["toys"], raw["sweeps"] = {}, {}  # dvc.yaml loops over both (the report's folders for
    # them are made empty by the fixture)
    return raw


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    # the report stage reads reports/toys and reports/sweeps; no toy or study here
    return dvc_project(tmp_path_factory.mktemp("e2e_translation"), params(),
                       folders=("reports/toys", "reports/sweeps"))  # fmt: skip


def _metrics(root, name: str) -> dict:
    return json.loads((root / "metrics" / f"{name}.json").read_text())


@pytest.mark.slow
def test_every_family_trains_samples_and_is_scored(project):
    for v in VARIANTS:
        assert (project / "models" / v / "model.pt").is_file()
        assert (project / "metrics" / "bootstrap" / f"{v}.csv").is_file()
    for v in ("p2p", "sr_gan", "layout"):
        m = _metrics(project, v)
        for key in ("psnr", "ssim", "l1", "class_preservation", "kid"):  # 48 < 64 rows: no FD
            assert math.isfinite(m[key]) and m[f"{key}_ci_low"] <= m[f"{key}_ci_high"], (v, key)
        assert (project / "samples" / v / "translation.png").is_file()
    for v in ("cycle", "disco"):
        m = _metrics(project, v)
        for d in ("a2b", "b2a"):
            assert 0 <= m[f"{d}_class_preservation"] <= 1 and m[f"{d}_cycle_l1"] >= 0
            assert f"{d}_psnr" not in m
            assert (project / "samples" / v / f"{d}.png").is_file()
    assert {"test_recon_mse", "codes_used", "kid"} <= set(_metrics(project, "vqgan"))
    assert (project / "samples" / "vqgan" / "reconstructions.png").is_file()


@pytest.mark.slow
def test_floor_and_bicubic_baseline_are_scored_like_the_models(project):
    scored = json.loads((project / "metrics" / "evaluator" / "photos_sr.json").read_text())
    assert scored["baseline_name"] == "bicubic"
    assert {"psnr", "ssim", "l1", "psnr_ci_low"} <= set(scored["baseline"])
    assert _metrics(project, "sr_gan")["n_samples"] == scored["baseline"]["n_samples"] == 48
    fonts = json.loads((project / "metrics" / "evaluator" / "digits_fonts.json").read_text())
    assert {"a2b_kid", "b2a_kid"} <= set(fonts["floor"])


@pytest.mark.slow
def test_the_report_has_a_section_per_task_and_reruns_nothing(project):
    readme = (project / "reports" / "README.md").read_text()
    for section in ("## Image-to-image translation", "## Unpaired translation",
                    "## Super-resolution", "## Label map to image", "## VQ-GAN"):  # fmt: skip
        assert section in readme, section
    assert "bicubic (baseline)" in readme and "figures/translation_photos_sr.png" in readme
    assert "source | bicubic | sr_gan | target" in readme
    assert ran_stages(dvc(project, "repro")) == set()
