"""VQ-VAE (van den Oord et al. 2017) and its autoregressive prior: quantisation, straight-through
gradients, the eq. 3 terms, dead-code restarts, a causal prior, inverse-CDF sampling, both
training stages and a bit-exact resume."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.families.vqvae.trainer import VQVAETrainer
from genlab.nets.vqvae import (
    VQ_LOSSES,
    VQVAE,
    CodePrior,
    codebook_loss,
    commitment_loss,
    inverse_cdf_sample,
    normal_cdf,
)
from genlab.paths import Paths
from genlab.train.checkpoint import CheckpointError, load_model
from genlab.train.loop import train_variant
from tests.conftest import tiny_params_dict

META = {"name": "x", "kind": "image", "shape": [1, 8, 8], "num_classes": 10}
CPU = torch.device("cpu")


def variant(**overrides):
    """A validated tiny vqvae variant on digits."""
    cfg = {"dataset": "digits", "family": "vqvae", "arch": "vq_vae", "latent_dim": 4, "width": 8,
           "codebook_size": 8, "steps": 6, "prior_steps": 2, "batch_size": 16,
           **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


def tiny_model(**kw) -> VQVAE:
    torch.manual_seed(0)
    args = {"channels": 1, "size": (8, 8), "width": 8, "latent_dim": 4, "codebook_size": 8}
    return VQVAE(**{**args, **kw})


class FixedBatch:
    """A BatchStream stand-in that always returns the same batch."""

    def __init__(self, n: int = 16, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 1, 4, 4, generator=gen) * 2 - 1
        self.batch = {
            "x": F.interpolate(x, size=8, mode="bilinear", align_corners=False),  # smooth images
            "y": torch.randint(10, (n,), generator=gen),
        }

    def next(self):
        return self.batch


# ---------------------------------------------------------------- the autoencoder
def test_quantisation_picks_the_nearest_code():
    model = tiny_model(codebook_size=16)
    z_e = torch.randn(3, 4, 4, 4)
    z_q, idx = model.quantize(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    expected = torch.cdist(flat, model.codebook.weight.detach()).argmin(1)
    assert torch.equal(idx.flatten(), expected)
    assert idx.shape == (3, 4, 4) and idx.dtype == torch.long
    assert torch.equal(z_q.permute(0, 2, 3, 1).reshape(-1, 4), model.codebook.weight[expected])


def test_straight_through_copies_the_decoder_gradient_to_the_encoder():
    model = tiny_model()
    seen = {}

    def keep(name):
        def hook(module, args, out=None):
            t = out if out is not None else args[0]
            t.retain_grad()
            seen[name] = t

        return hook

    model.encoder.register_forward_hook(keep("z_e"))
    model.decoder.register_forward_pre_hook(keep("z_q_st"))
    x = FixedBatch().batch["x"]
    out = model.autoencode(x)
    F.mse_loss(out.x_rec, x).backward()  # reconstruction only
    assert_close(seen["z_e"].grad, seen["z_q_st"].grad, rtol=0, atol=0)
    assert seen["z_e"].grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.codebook.weight.grad is None  # the decoder's gradient skips the codebook
    assert_close(seen["z_q_st"], out.z_q)  # the decoder reads the codes' values


def test_codebook_and_commitment_losses_by_hand():
    model = tiny_model(latent_dim=2, codebook_size=2)
    with torch.no_grad():
        model.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    z_e = torch.tensor([0.2, 0.9]).view(1, 2, 1, 1).requires_grad_()
    z_q, idx = model.quantize(z_e)
    assert idx.item() == 1  # |(0.2, 0.9) - (1, 1)|^2 = 0.65 < 0.85 = |(0.2, 0.9)|^2
    codebook = codebook_loss(z_e, z_q)
    assert_close(codebook, torch.tensor(0.325))  # ((0.2 - 1)^2 + (0.9 - 1)^2) / 2
    codebook.backward()
    assert z_e.grad is None  # sg[z_e]
    assert_close(model.codebook.weight.grad, torch.tensor([[0.0, 0.0], [0.8, 0.1]]))

    model.codebook.weight.grad = None
    z_q, _ = model.quantize(z_e)
    commitment = commitment_loss(z_e, z_q)
    assert_close(commitment, torch.tensor(0.325))
    commitment.backward()
    assert model.codebook.weight.grad is None  # sg[e]
    assert_close(z_e.grad, torch.tensor([-0.8, -0.1]).view(1, 2, 1, 1))


@pytest.mark.parametrize("term", ["codebook", "commitment"])
def test_each_vq_term_moves_only_its_side(term):
    model = tiny_model()
    out = model.autoencode(FixedBatch().batch["x"])
    (codebook_loss if term == "codebook" else commitment_loss)(out.z_e, out.z_q).backward()
    encoder = [p.grad for p in model.encoder.parameters()]
    codebook = model.codebook.weight.grad
    if term == "codebook":
        assert codebook.abs().sum() > 0 and all(g is None for g in encoder)
    else:
        assert codebook is None and all(g.abs().sum() > 0 for g in encoder)
    assert all(p.grad is None for p in model.decoder.parameters())


def test_vq_loss_is_eq_3():
    model = tiny_model()
    x = FixedBatch().batch["x"]
    loss, stats, out = VQ_LOSSES.build("vq", commitment=0.25)(model, x)
    assert_close(loss.detach(), stats["recon"] + stats["codebook"] + 0.25 * stats["commitment"])
    assert_close(float(stats["recon"]), F.mse_loss(out.x_rec, x).item())
    used = torch.bincount(out.indices.flatten(), minlength=8).float() / out.indices.numel()
    entropy = -(used[used > 0] * used[used > 0].log()).sum()
    assert_close(float(stats["perplexity"]), entropy.exp().item())


def test_dead_codes_restart_onto_encoder_outputs():
    torch.manual_seed(0)
    trainer = VQVAETrainer(variant(restart_every=2), META, CPU, seed=0)
    model = trainer.model
    with torch.no_grad():
        model.codebook.weight[2:] = 100.0  # far from every encoder output: never chosen
    captured = {}
    model.encoder.register_forward_hook(lambda m, a, out: captured.update(z_e=out.detach()))
    batches = FixedBatch()

    stats = trainer.step(batches)
    assert stats["dead_codes_restarted"] == 0
    assert torch.equal(model.codebook.weight[2:], torch.full((6, 4), 100.0))  # no gradient

    stats = trainer.step(batches)
    assert stats["dead_codes_restarted"] >= 6  # codes 2..7, and 0 or 1 if unused too
    outputs = captured["z_e"].permute(0, 2, 3, 1).reshape(-1, 4)
    for code in model.codebook.weight[2:].detach():
        assert (outputs == code).all(1).any()  # exactly one of the batch's encoder outputs
    assert len(torch.unique(model.codebook.weight[2:].detach(), dim=0)) == 6
    assert trainer.usage.sum() == 0  # counting starts again


# ---------------------------------------------------------------- the prior
def test_prior_is_causal_and_conditional():
    torch.manual_seed(0)
    prior = CodePrior(num_codes=8, length=6, num_classes=3)
    idx = torch.randint(8, (2, 6))
    y = torch.tensor([0, 1])
    logits = prior(idx, y)
    assert logits.shape == (2, 6, 8)
    for i in range(6):
        changed = idx.clone()
        changed[:, i:] = (idx[:, i:] + 1) % 8
        other = prior(changed, y)
        assert_close(other[:, : i + 1], logits[:, : i + 1])  # row i reads codes < i only
        if i < 5:
            assert not torch.allclose(other[:, i + 1], logits[:, i + 1])
    assert not torch.allclose(prior(idx, torch.tensor([2, 2])), logits)  # y is the prefix
    with pytest.raises(ValueError, match="conditioned on the class label"):
        prior(idx)


def test_inverse_cdf_sampling_matches_the_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    u = torch.tensor([0.0, 0.05, 0.15, 0.35, 0.61, 0.999])
    assert inverse_cdf_sample(probs.expand(6, 4), u).tolist() == [0, 0, 1, 2, 3, 3]

    n = 10000
    z = torch.randn(n, generator=torch.Generator().manual_seed(0))
    draws = inverse_cdf_sample(probs.expand(n, 4), normal_cdf(z))
    counts = torch.bincount(draws, minlength=4).double()
    chi2 = ((counts - n * probs.double()) ** 2 / (n * probs.double())).sum()
    assert chi2 < 16.27  # the 0.999 quantile of chi-square with 3 degrees of freedom


def test_generation_is_the_prior_inverted_at_phi_z():
    model = tiny_model(num_classes=10).eval()  # the prior's dropout is off when sampling
    z = torch.randn(1000, model.noise_dim, generator=torch.Generator().manual_seed(1))
    y = torch.full((1000,), 3)
    idx = model.sample_indices(z, y)
    assert idx.shape == (1000, 4, 4)
    # every token is the inverse CDF of p(c_i | c_<i, y) at Phi(z_i) (teacher-forced check)
    with torch.no_grad():
        probs = model.prior_logits(idx, y).softmax(-1)
    redrawn = inverse_cdf_sample(probs.flatten(0, 1), normal_cdf(z).flatten())
    assert torch.equal(redrawn.view(1000, 4, 4), idx)
    # so the first code's frequencies are the prior's first categorical
    counts = torch.bincount(idx[:, 0, 0], minlength=8).double()
    expected = 1000 * probs[0, 0].double()
    assert ((counts - expected) ** 2 / expected).sum() < 24.32  # chi2(7) 0.999 quantile

    x = model(z[:8], y[:8])
    assert x.shape == (8, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, model(z[:8], y[:8]))  # a deterministic function of (z, y)
    assert not torch.equal(model.sample_indices(z[:64], y[:64] + 1), idx[:64])
    with pytest.raises(ValueError, match="conditioned on the class label"):
        model(z[:8])
    with pytest.raises(ValueError, match=r"noise_dim = 16"):
        model(torch.randn(2, 4), y[:2])
    assert (model.noise_dim, model.num_classes) == (16, 10)
    assert tiny_model().num_classes == 0


def test_prior_nll_is_the_sum_of_the_code_cross_entropies():
    model = tiny_model(num_classes=10).eval()
    idx = torch.randint(8, (3, 4, 4))
    y = torch.tensor([0, 5, 9])
    log_p = model.prior_logits(idx, y).log_softmax(-1)
    by_hand = -log_p.gather(2, idx.flatten(1)[..., None]).squeeze(2).sum(1)
    assert_close(model.prior_nll(idx, y), by_hand)
    assert_close(model.decode_indices(model.encode_indices(torch.zeros(1, 1, 8, 8))).shape[1:],
                 (1, 8, 8))  # fmt: skip


# ---------------------------------------------------------------- training
def test_both_stages_train():
    cfg = variant(steps=40, prior_steps=10, restart_every=10, conditional=True,
                  optimizer={"lr": 0.002})  # fmt: skip
    torch.manual_seed(0)
    trainer = VQVAETrainer(cfg, META, CPU, seed=0)
    batches = FixedBatch()
    rows = [trainer.step(batches) for _ in range(30)]
    assert [r["phase"] for r in rows] == [1] * 30
    assert rows[-1]["recon"] < 0.7 * rows[0]["recon"]  # 0.173 -> 0.106
    frozen = {k: v.clone() for k, v in trainer.model.state_dict().items() if "prior" not in k}
    rows = [trainer.step(batches) for _ in range(10)]
    assert [r["phase"] for r in rows] == [2] * 10
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in frozen.items())
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5  # nats per code on a fixed set of codes
    assert_close(
        float(rows[-1]["prior_bits_per_code"]) * 0.6931471805599453, float(rows[-1]["loss"])
    )
    assert trainer.step_count == 40


def test_bf16_runs_both_stages():
    torch.manual_seed(0)
    trainer = VQVAETrainer(variant(precision="bf16", conditional=True), META, CPU, seed=0)
    rows = [trainer.step(FixedBatch()) for _ in range(6)]
    assert [r["phase"] for r in rows] == [1, 1, 1, 1, 2, 2]
    assert all(math.isfinite(v) for r in rows for v in r.values())
    assert rows[0].keys() == rows[-1].keys()  # one set of CSV columns for both stages


def test_resume_refuses_a_moved_stage_boundary():
    trainer = VQVAETrainer(variant(steps=6, prior_steps=2), META, CPU, seed=0)
    trainer.step_count = 5  # a prior step
    state = trainer.extra_state()
    with pytest.raises(CheckpointError, match="stage boundary"):
        VQVAETrainer(variant(steps=8, prior_steps=2), META, CPU, seed=0).load_extra_state(state)
    longer = VQVAETrainer(variant(steps=8, prior_steps=4), META, CPU, seed=0)
    longer.load_extra_state(state)  # same boundary (4): more prior steps
    assert longer.step_count == 5


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_bit_exactly(tiny_project, monkeypatch):
    """6 steps straight == 3 steps, a crash at step 5 (stage 2), resume from the step-3 state."""
    root, _ = tiny_project
    raw = tiny_params_dict()
    raw["variants"] = {"vq": {"dataset": "digits", "family": "vqvae", "arch": "vq_vae",
                              "latent_dim": 4, "width": 8, "codebook_size": 8, "conditional": True,
                              "steps": 6, "prior_steps": 2, "restart_every": 2,
                              "checkpoint_every": 3}}  # fmt: skip
    params = validate_params(raw)
    p = Paths(root)
    paths = {"state": p.state("vq"), "model": p.model("vq"), "csv": p.train_csv("vq")}
    train_variant(params, "vq", root)
    straight = torch.load(paths["state"], weights_only=True)
    straight_model = torch.load(paths["model"], weights_only=True)
    straight_csv = paths["csv"].read_text()
    net, _ = load_model(paths["model"])
    z, y = torch.randn(4, net.noise_dim), torch.arange(4)
    straight_x = net(z, y)

    real_step = VQVAETrainer.step

    def crash_at_5(self, batches):
        if self.step_count == 4:
            raise Interrupt
        return real_step(self, batches)

    monkeypatch.setattr(VQVAETrainer, "step", crash_at_5)
    with pytest.raises(Interrupt):
        train_variant(params, "vq", root)
    monkeypatch.setattr(VQVAETrainer, "step", real_step)
    # the crashed run waits in its partial folder; models/vq/ keeps the finished run
    assert torch.load(p.partial("vq") / "state.pt", weights_only=True)["step"] == 3
    assert torch.load(paths["state"], weights_only=True)["step"] == 6
    train_variant(params, "vq", root, resume=True)

    resumed = torch.load(paths["state"], weights_only=True)
    for part in ("nets", "optimizers", "trainer", "batches", "rng"):
        assert_identical(straight[part], resumed[part])
    assert resumed["trainer"]["step"] == 6 and resumed["trainer"]["usage"].sum() >= 0
    assert_identical(straight_model["modules"]["vae"],
                     torch.load(paths["model"], weights_only=True)["modules"]["vae"])  # fmt: skip
    assert torch.equal(load_model(paths["model"])[0](z, y), straight_x)
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in _csv(paths["csv"].read_text())]
    assert rows == [{k: v for k, v in r.items() if k != "seconds"} for r in _csv(straight_csv)]
    assert [r["phase"] for r in rows] == ["1"] * 4 + ["2"] * 2
    assert float(rows[3]["dead_codes_restarted"]) > 0  # the step-4 restart drew from the state


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def assert_identical(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_identical(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            assert_identical(u, v)
    else:
        assert a == b


# ---------------------------------------------------------------- config
def test_config_accepts_a_vqvae_variant_and_refuses_bad_ones():
    cfg = variant()
    assert (cfg.family, cfg.arch, cfg.loss) == ("vqvae", "vq_vae", "vq")
    bad = {
        "arch": ("dcgan", r"variants.v.arch = 'dcgan': unknown arch 'dcgan'; allowed: vq_vae"),
        "loss": ("elbo", r"unknown loss 'elbo'; allowed: vq"),
        "prior_steps": (6, r"prior_steps = 6 must be below steps = 6"),
        "beta": (2.0, r"beta = 2.0 has no effect here; it is read by family: vae"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            variant(**{key: value})
    with pytest.raises(ConfigError, match=r"codebook_size = 8 has no effect here"):
        validate_params({"variants": {"v": {"dataset": "digits", "family": "vae",
                                            "arch": "conv_vae", "codebook_size": 8}}})  # fmt: skip
