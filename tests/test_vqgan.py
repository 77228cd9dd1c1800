"""VQ-GAN (Esser et al. 2021): the adaptive weight of eq. 7, the autoencoder loss term by term,
the discriminator switched on after disc_start, deterministic training through the one driver
and an exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data import load_prepared, prepare_dataset
from genlab.families import FAMILIES
from genlab.families.vqgan import VQGAN
from genlab.families.vqgan.trainer import VQGANTrainer, disc_start_of, last_layer
from genlab.families.vqvae import VQVAE
from genlab.families.vqvae.figures import reconstructions
from genlab.objectives.adaptive import adaptive_weight
from genlab.paths import Paths
from genlab.train.checkpoint import CheckpointError, load_model
from genlab.train.loop import build_trainer, train_variant
from tests.conftest import restore_training, tiny_params_dict, training_snapshot

META = {"name": "x", "kind": "image", "shape": [1, 16, 16], "num_classes": 3}
CPU = torch.device("cpu")


def variant(**overrides):
    """A validated tiny vqgan variant (16 x 16 images, 4 x 4 codes, a 1-layer PatchGAN)."""
    cfg = {"dataset": "digits", "family": "vqgan", "arch": "vq_vae", "latent_dim": 4, "width": 4,
           "codebook_size": 8, "steps": 8, "prior_steps": 2, "disc_start": 2, "batch_size": 8,
           "disc_layers": 1, "disc_width": 4, **overrides}  # fmt: skip
    if cfg.get("perceptual_weight", 1.0) > 0:
        cfg.setdefault("perceptual_epochs", 1)  # read only with a perceptual term
    return validate_params({"variants": {"v": cfg}}).variant("v")


class FixedBatch:
    """A BatchStream stand-in that always returns the same smooth batch."""

    def __init__(self, n: int = 8, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 1, 4, 4, generator=gen) * 2 - 1
        self.batch = {"x": F.interpolate(x, size=16, mode="bilinear", align_corners=False),
                      "y": torch.randint(3, (n,), generator=gen)}  # fmt: skip

    def next(self):
        return self.batch


def tiny_trainer(**overrides) -> VQGANTrainer:
    torch.manual_seed(0)
    trainer = VQGANTrainer(variant(**overrides), META, CPU, seed=0)
    if trainer.features is not None:
        trainer.features.fitted.fill_(True)  # a random-init feature net: no training split here
    return trainer


# ---------------------------------------------------------------- eq. 7
def test_adaptive_weight_is_the_ratio_of_gradient_norms_on_a_linear_decoder():
    """Decoder out = W h. rec = 1/2 ||W h - t||^2 has gradient (W h - t) h^T, gan = -a . W h
    has -a h^T, so lambda = ||W h - t|| ||h|| / (||a|| ||h|| + delta)."""
    W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], requires_grad=True)
    h, t, a = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.3, -0.2]), torch.tensor([0.6, 0.8])
    out = W @ h
    rec, gan = 0.5 * (out - t).pow(2).sum(), -(a * out).sum()
    lam = adaptive_weight(rec, gan, W)

    residual = torch.tensor([0.5 - 2.0 - 2.0, 1.5 + 0.5]) - t  # W h - t
    by_hand = residual.norm() * h.norm() / (a.norm() * h.norm() + 1e-4)
    assert_close(lam, by_hand)
    # the same ratio from separate autograd calls on fresh graphs
    g_rec = torch.autograd.grad(0.5 * (W @ h - t).pow(2).sum(), W)[0]
    g_gan = torch.autograd.grad(-(a * (W @ h)).sum(), W)[0]
    assert_close(g_rec, torch.outer(residual, h))
    assert_close(g_gan, -torch.outer(a, h))
    assert_close(lam, g_rec.norm() / (g_gan.norm() + 1e-4))
    # a constant: detached; the graph is kept for the caller's backward
    assert not lam.requires_grad
    (rec + lam * gan).backward()
    assert_close(W.grad, g_rec + by_hand * g_gan)


def test_adaptive_weight_is_clamped():
    W = torch.ones(2, 2, requires_grad=True)
    out = W @ torch.ones(2)
    rec = 10.0 * out.sum()  # gradient norm 20
    flat = 0.0 * out.sum()  # no GAN gradient: 20 / 1e-4 = 2e5 -> clamped
    assert_close(adaptive_weight(rec, flat, W), torch.tensor(1e4))
    assert_close(adaptive_weight(rec, out.sum(), W, max=3.0), torch.tensor(3.0))  # 20 / 2 -> 3
    assert_close(adaptive_weight(rec, out.sum(), W, delta=2.0), torch.tensor(5.0))  # 20 / (2+2)


# ---------------------------------------------------------------- the autoencoder loss
def test_autoencoder_loss_by_hand():
    """loss = mean|x - x_rec| + pw * mean (phi(x_rec) - phi(x))^2 + codebook + beta commitment
    + disc_weight * lambda * (-mean D(x_rec)), and its gradient at G_L is
    grad L_rec + disc_weight * lambda * grad L_GAN (lambda a constant)."""
    trainer = tiny_trainer(perceptual_weight=0.5, disc_weight=0.8, commitment=0.25)
    trainer.step_count = trainer.disc_start + 1  # D is on
    model, D, phi = trainer.model, trainer.D, trainer.features.layers
    x = FixedBatch().batch["x"]
    D.eval()  # batch norm on running statistics: D(x_rec) is the same in every forward

    loss, stats, _ = trainer.autoencoder_loss(model, x)

    def terms():
        z_e = model.encoder(x)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
        e = model.codebook.weight
        idx = torch.cdist(flat, e).argmin(1).view(z_e.shape[0], *z_e.shape[2:])
        z_q = e[idx].permute(0, 3, 1, 2)
        x_rec = model.decoder(z_e + (z_q - z_e).detach())
        l1 = (x - x_rec).abs().mean()
        unit = lambda f: f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)  # noqa: E731
        perceptual = (unit(phi(x_rec)) - unit(phi(x))).pow(2).sum(1).mean()
        vq = (z_e.detach() - z_q).pow(2).mean() + 0.25 * (z_e - z_q.detach()).pow(2).mean()
        return l1 + 0.5 * perceptual, vq, -D(x_rec).mean(), l1, perceptual

    rec, vq, gan, l1, perceptual = terms()
    g_rec = torch.autograd.grad(rec, last_layer(model))[0]
    rec, vq, gan, _, _ = terms()
    g_gan = torch.autograd.grad(gan, last_layer(model))[0]
    lam = 0.8 * g_rec.norm() / (g_gan.norm() + 1e-4)
    rec, vq, gan, _, _ = terms()
    assert_close(loss, rec + vq + lam * gan)
    assert_close(float(stats["d_weight"]), lam.item())
    assert_close(float(stats["g_loss"]), gan.item())
    assert_close((float(stats["l1"]), float(stats["perceptual"])), (l1.item(), perceptual.item()))
    assert lam > 0 and stats["perceptual"] > 0

    model.zero_grad()
    loss.backward()
    assert_close(last_layer(model).grad, g_rec + lam * g_gan)
    assert all(p.grad is None for p in D.parameters())  # D is not trained by this loss
    assert all(p.grad is None for p in phi.parameters())  # the feature net is frozen


def test_before_disc_start_the_loss_has_no_gan_term():
    trainer = tiny_trainer(perceptual_weight=0.0)
    trainer.step_count = trainer.disc_start  # the last step without D
    loss, stats, out = trainer.autoencoder_loss(trainer.model, FixedBatch().batch["x"])
    x = FixedBatch().batch["x"]
    assert_close(loss.detach(), stats["l1"] + stats["codebook"] + 0.25 * stats["commitment"])
    assert_close(float(stats["l1"]), (out.x_rec - x).abs().mean().item())
    assert (stats["g_loss"], stats["d_weight"], stats["perceptual"]) == (0.0, 0.0, 0.0)
    assert trainer.features is None and "features" not in trainer.modules


def test_discriminator_is_off_before_disc_start_and_trained_after():
    trainer = tiny_trainer(disc_start=2)
    batches = FixedBatch()
    d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    rows = [trainer.step(batches) for _ in range(2)]
    assert all(torch.equal(v, trainer.D.state_dict()[k]) for k, v in d_before.items())
    for row in rows:
        assert row["disc_on"] == 0
        assert (row["loss_d"], row["g_loss"], row["d_weight"], row["grad_norm_d"]) == (0, 0, 0, 0)
    assert trainer.d_updates == 0

    row = trainer.step(batches)  # step 3: D on
    assert row["disc_on"] == 1 and trainer.d_updates == 1
    assert row["d_weight"] > 0 and row["grad_norm_d"] > 0 and row["loss_d"] > 0
    assert not torch.equal(d_before["net.0.weight"], trainer.D.state_dict()["net.0.weight"])


def test_both_stages_keep_one_set_of_columns():
    trainer = tiny_trainer(steps=6, prior_steps=2, disc_start=1)
    batches = FixedBatch()
    rows = [trainer.step(batches) for _ in range(4)]
    d_after_stage_1 = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    rows += [trainer.step(batches) for _ in range(2)]
    assert [r["phase"] for r in rows] == [1, 1, 1, 1, 2, 2]
    assert [r["disc_on"] for r in rows] == [0, 1, 1, 1, 0, 0]
    assert [r["perceptual"] > 0 for r in rows] == [True] * 4 + [False] * 2  # frozen: skipped
    assert all(r.keys() == rows[0].keys() for r in rows)
    assert all(math.isfinite(v) for r in rows for v in r.values())
    assert trainer.d_updates == 3
    assert all(torch.equal(v, trainer.D.state_dict()[k]) for k, v in d_after_stage_1.items())


def test_bf16_runs_both_stages_with_the_adaptive_weight():
    trainer = tiny_trainer(precision="bf16", steps=6, prior_steps=2, disc_start=1)
    rows = [trainer.step(FixedBatch()) for _ in range(6)]
    assert [r["disc_on"] for r in rows] == [0, 1, 1, 1, 0, 0]
    assert all(r["d_weight"] > 0 for r in rows[1:4])
    assert all(math.isfinite(v) for r in rows for v in r.values())


# ---------------------------------------------------------------- config
def test_family_reuses_the_vqvae_options_and_refuses_bad_variants():
    for key in ("codebook_size", "commitment", "restart_every", "prior_steps", "conditional"):
        assert VQGAN.options[key] is VQVAE.options[key]
    assert FAMILIES.get("vqgan") is VQGAN and VQGAN.model_modules == ("vae",)
    cfg = variant(disc_start=None, steps=10, prior_steps=4)
    assert (cfg.loss, disc_start_of(cfg)) == ("hinge", 3)  # half of the 6 autoencoder steps
    with pytest.raises(ConfigError, match=r"disc_start = 6 must be below steps - prior_steps = 6"):
        variant(disc_start=6, steps=8, prior_steps=2)
    with pytest.raises(ConfigError, match=r"prior_steps = 8 must be below steps = 8"):
        variant(prior_steps=8)
    with pytest.raises(ConfigError, match=r"perceptual_epochs = 3 has no effect here"):
        variant(perceptual_weight=0.0, perceptual_epochs=3)
    with pytest.raises(ConfigError, match=r"unknown loss 'wasserstein'"):
        variant(loss="wasserstein")
    with pytest.raises(ValueError, match=r"disc_layers <= 2"):  # 16 px: 16 / 2**3 - 2 < 1
        VQGANTrainer(variant(disc_layers=3), META, CPU, seed=0)


# ---------------------------------------------------------------- the driver
@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("vqgan")
    prepare_dataset("digits", {"test_fraction": 0.2}, root, 0)
    return root


def digits_variant(**overrides):
    return variant(**{"disc_start": 1, "steps": 6, "prior_steps": 2, **overrides})


def run_steps(cfg, root, n: int):
    train, _, meta = load_prepared(root, "digits")
    trainer, batches, _, _ = build_trainer(cfg, train, meta, seed=3, device="cpu", threads=1)
    rows = [trainer.step(batches) for _ in range(n)]
    return trainer, batches, rows


def test_training_through_the_driver_is_deterministic(digits_root):
    cfg = digits_variant(conditional=True)
    a, _, rows_a = run_steps(cfg, digits_root, 6)
    b, _, rows_b = run_steps(cfg, digits_root, 6)
    assert rows_a == rows_b
    for key in a.modules:
        sa, sb = a.modules[key].state_dict(), b.modules[key].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert bool(a.features.fitted) and set(a.modules) == {"vae", "D", "features"}
    assert [r["disc_on"] for r in rows_a] == [0, 1, 1, 1, 0, 0]
    assert a.features.fit_stats  # fitted on the training split on the first step


def test_extra_state_round_trip_resumes_exactly(digits_root):
    cfg = digits_variant()
    straight, _, rows = run_steps(cfg, digits_root, 5)

    first, batches, _ = run_steps(cfg, digits_root, 2)
    saved = training_snapshot(first, batches)
    assert saved["trainer"]["disc_start"] == 1 and saved["trainer"]["d_updates"] == 1
    train, _, meta = load_prepared(digits_root, "digits")
    resumed, stream, _, _ = build_trainer(cfg, train, meta, seed=3, device="cpu", threads=1)
    restore_training(saved, resumed, stream)
    again = [resumed.step(stream) for _ in range(3)]
    assert again == rows[2:]
    assert resumed.d_updates == straight.d_updates == 3

    moved = VQGANTrainer(digits_variant(disc_start=3), meta, CPU, seed=3)
    with pytest.raises(CheckpointError, match="switched D on after 1 steps"):
        moved.load_extra_state(saved["trainer"])


def test_train_variant_keeps_the_vqvae_in_model_pt(tmp_path):
    raw = tiny_params_dict()
    raw["variants"] = {"vqg": {"dataset": "digits", "family": "vqgan", "arch": "vq_vae",
                               "latent_dim": 4, "width": 4, "codebook_size": 8, "steps": 4,
                               "prior_steps": 1, "disc_layers": 1, "disc_width": 4,
                               "perceptual_epochs": 1}}  # fmt: skip
    params = validate_params(raw)
    prepare_dataset("digits", params.dataset_cfg("digits"), tmp_path, params.seed)
    train_variant(params, "vqg", tmp_path)
    paths = Paths(tmp_path)
    model = torch.load(paths.model("vqg"), weights_only=True)
    assert set(model["modules"]) == {"vae"}
    state = torch.load(paths.state("vqg"), weights_only=True)
    assert set(state["nets"]) == {"vae", "D", "features"}
    assert set(state["optimizers"]) == {"vae", "prior", "D"}
    net, _ = load_model(paths.model("vqg"))
    x = net(torch.randn(3, net.noise_dim))
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1

    _, test, _ = load_prepared(tmp_path, "digits")
    path = reconstructions(net, test["x"][:5], tmp_path / "reconstructions.png")
    from PIL import Image

    assert Image.open(path).size == (2 + 5 * 34, 2 + 2 * 34)  # 2 rows of 5 (4x enlarged + pad)
