"""Conditional GANs, InfoGAN, the conditional and beta VAE: known values, training through the
pipeline (train -> sample -> evaluate), the family figures and the per-class metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from genlab.config import ConfigError, validate_params
from genlab.nets.conditional import ConditionalBatchNorm2d, InfoDiscriminator, InfoGenerator
from tests.conftest import tiny_params_dict

META = {"name": "digits", "kind": "image", "shape": [1, 8, 8], "num_classes": 10}

CONDITIONAL = {
    "cgan_concat": {"g_condition": "concat", "d_condition": "concat"},
    "cgan_embed": {"g_condition": "embed", "d_condition": "embed"},
    "cgan_cbn_projection": {"g_condition": "cbn", "d_condition": "projection"},
    "infogan": {"info_categorical": 10, "info_continuous": 2, "info_weight": 1.0},
    "infogan_cont": {"info_continuous": 1},
}


def _variant(extra: dict, **over) -> dict:
    base = {"dataset": "digits", "family": "gan", "arch": "dcgan", "loss": "nonsaturating",
            "latent_dim": 8, "width": 8}  # fmt: skip
    return {**base, **extra, **over}


def _params(variants: dict, **sections):
    raw = tiny_params_dict()
    raw["variants"] = variants
    raw["evaluator"]["epochs"] = 10
    raw["evaluate"]["metrics"] = ["frechet", "coverage", "conditional", "info", "elbo", "iwae"]
    raw.update(sections)
    return validate_params(raw)


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    """A project folder with digits prepared and its evaluator fitted (10 epochs), shared by the
    tests of this module (each trains variants of its own name)."""
    from genlab.data import prepare_dataset
    from genlab.evaluate import fit_evaluator_stage

    root = tmp_path_factory.mktemp("families")
    params = _params({})
    prepare_dataset("digits", params.dataset_cfg("digits"), root, 0)
    fit_evaluator_stage(params, "digits", root)
    return root


def _run(params, name: str, root):
    """train -> sample -> evaluate; returns (sample paths, metrics)."""
    from genlab.evaluate import evaluate_variant
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    train_variant(params, name, root)
    paths = sample_variant(params, name, root)
    return paths, evaluate_variant(params, name, root)


def test_conditional_batch_norm_uses_the_class_scale_and_shift():
    cbn = ConditionalBatchNorm2d(3, num_classes=4)
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.arange(12.0).view(4, 3))
        cbn.beta.weight.copy_(-torch.arange(12.0).view(4, 3))
    x = torch.randn(64, 3, 5, 5)
    y = torch.randint(4, (64,))
    out = cbn(x, y)
    normalised = (x - x.mean((0, 2, 3), keepdim=True)) / (
        x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5
    ).sqrt()
    expected = (
        cbn.gamma.weight[y][:, :, None, None] * normalised + cbn.beta.weight[y][:, :, None, None]
    )
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_infogan_continuous_codes_are_uniform_and_q_loss_is_the_gaussian_nll():
    g = InfoGenerator(latent_dim=4, categorical=3, continuous=2, channels=1, size=8, width=8)
    z = torch.randn(200000, 6, generator=torch.Generator().manual_seed(0))
    u = g.codes(z)
    assert u.shape == (200000, 2) and u.abs().max() < 1
    # U(-1, 1): mean 0, variance 1/3, and the CDF at 0.5 is 0.75
    torch.testing.assert_close(u.mean(0), torch.zeros(2), atol=0.01, rtol=0)
    torch.testing.assert_close(u.var(0), torch.full((2,), 1 / 3), atol=0.01, rtol=0)
    assert abs(float((u[:, 0] < 0.5).float().mean()) - 0.75) < 0.01

    d = InfoDiscriminator(channels=1, size=8, width=8, norm=False, categorical=3, continuous=2,
                          weight=2.0, weight_continuous=0.1)  # fmt: skip
    x, c, uu = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0]), torch.rand(5, 2) * 2 - 1
    loss, stats = d.info_loss(x, c, uu)
    out = d.q(d.features(x))
    mean, log_std = out[:, 3:].chunk(2, 1)
    log_q = torch.distributions.Normal(mean, log_std.clamp(-5, 2).exp()).log_prob(uu).sum(1)
    expected = 2.0 * F.cross_entropy(out[:, :3], c) - 0.1 * log_q.mean()
    torch.testing.assert_close(loss, expected)
    assert 0 <= stats["info_cat_acc"] <= 1


@pytest.mark.parametrize("name", sorted(CONDITIONAL))
def test_conditional_and_info_gans_train_sample_and_evaluate(digits_root, name):
    params = _params({name: _variant(CONDITIONAL[name], steps=3)})
    paths, metrics = _run(params, name, digits_root)
    saved = torch.load(paths["samples"], weights_only=True)
    assert math.isfinite(metrics["frechet"])
    if CONDITIONAL[name].get("g_condition"):
        assert saved["y_kind"] == "class"
        torch.testing.assert_close(saved["y"], torch.arange(200) % 10)
        assert 0 <= metrics["conditional_accuracy"] <= 1 and math.isfinite(metrics["intra_kid"])
        # ~36 test digits per class against 64 feature dimensions: no per-class Frechet
        assert "intra_frechet" not in metrics and metrics["intra_n_reference_min"] < 64
        assert (paths["dir"] / "classes.png").is_file()
    elif CONDITIONAL[name].get("info_categorical"):
        assert saved["y_kind"] == "code" and "conditional_accuracy" not in metrics
        assert 0.1 <= metrics["info_matched_accuracy"] <= 1  # balanced codes: >= 1/10 matched
        assert (paths["dir"] / "traversal_c2.png").is_file()
    else:  # continuous codes only: no labels, the traversal is one row
        assert "y" not in saved and (paths["dir"] / "traversal_c1.png").is_file()


def test_a_conditional_generator_depends_on_the_label():
    from genlab.families.gan.nets import build as build_gan

    for extra in ({"g_condition": "concat", "d_condition": "projection"},
                  {"g_condition": "cbn", "d_condition": "concat"}):  # fmt: skip
        cfg = _params({"v": _variant(extra)}).variant("v")
        nets = build_gan(META, cfg)
        G, D = nets["G"].eval(), nets["D"].eval()
        if extra["g_condition"] == "cbn":  # the default init is gamma ~ 1, beta = 0
            torch.nn.init.normal_(G.inner.net[1].beta.weight)
        z = torch.randn(4, 8)
        a, b = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.ones(4, dtype=torch.long))
        assert (a - b).abs().max() > 1e-4
        x = torch.randn(4, 1, 8, 8)
        with torch.no_grad():
            for p in D.parameters():
                p.normal_(0, 0.3)
        zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
        assert (D(x, zeros) - D(x, ones)).abs().max() > 1e-4


def test_projection_discriminator_is_psi_plus_the_label_projection():
    from genlab.families.gan.nets import build as build_gan

    cfg = _params({"v": _variant({"g_condition": "concat", "d_condition": "projection"})})
    D = build_gan(META, cfg.variant("v"))["D"].eval()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(10, (6,))
    phi = F.leaky_relu(D.inner.net(x).flatten(1), 0.2)
    expected = phi @ D.psi.weight[0] + D.psi.bias + (D.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(D(x, y), expected)


@pytest.mark.slow
def test_conditional_gan_learns_the_label_in_a_short_run(digits_root):
    """After 500 steps the evaluator recognises the requested digit far above chance (10%)."""
    variant = _variant({"g_condition": "embed", "d_condition": "embed"}, steps=500,
                       batch_size=64, width=16, latent_dim=16, checkpoint_every=500)  # fmt: skip
    params = _params({"c_learns": variant}, sample={"n": 500, "grid": 16,
                     "interpolation_steps": 4, "batch_size": 100, "arithmetic": None})  # fmt: skip
    _, metrics = _run(params, "c_learns", digits_root)
    assert metrics["conditional_accuracy"] > 0.5


def test_conditional_vae_bounds_use_the_label_and_iwae_beats_the_elbo(digits_root):
    vae = {"dataset": "digits", "family": "vae", "arch": "conv_vae", "latent_dim": 4, "width": 8}
    params = _params({"cvae": {**vae, "conditional": True, "steps": 30},
                      "bvae": {**vae, "beta": 4.0, "steps": 30}})  # fmt: skip
    for name in ("cvae", "bvae"):
        paths, metrics = _run(params, name, digits_root)
        assert -metrics["test_nll_nats"] >= metrics["test_elbo_nats"] - 0.5
        for fig in ("traversal.png", "editing.png"):
            assert (paths["dir"] / fig).is_file()
        if name == "cvae":
            assert 0 <= metrics["conditional_accuracy"] <= 1
            assert (paths["dir"] / "classes.png").is_file()


def test_the_conditional_vae_bound_is_of_log_p_x_given_y():
    """At k = 1 the cVAE's IWAE bound is log p(x | z, y) + log p(z) - log q(z | x, y) for the
    seeded draw, with the label in the encoder and the decoder; other labels change it."""
    from genlab.nets import VAE_ARCHS
    from genlab.objectives.vae import iwae_bound

    vae_cfg = {"dataset": "digits", "family": "vae", "arch": "conv_vae", "latent_dim": 4,
               "width": 8, "conditional": True}  # fmt: skip
    vae = VAE_ARCHS.build("conv_vae", META, _params({"v": vae_cfg}).variant("v"))["vae"].eval()
    x, y = torch.rand(6, 1, 8, 8) * 2 - 1, torch.randint(10, (6,))
    one = iwae_bound(vae, x, 1, torch.Generator().manual_seed(3), y)
    with torch.no_grad():
        mu, logvar = vae.encode(x, y)
        eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(3))[0]
        z = mu + eps * (0.5 * logvar).exp()
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(1)
        prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        expected = vae.log_likelihood(x, vae.decode(z, y)) + prior - q
    torch.testing.assert_close(one, expected, atol=1e-4, rtol=1e-5)
    other = iwae_bound(vae, x, 1, torch.Generator().manual_seed(3), (y + 1) % 10)
    assert (one - other).abs().max() > 1e-3


def test_the_conditional_vae_decoder_reads_the_label():
    from genlab.nets import VAE_ARCHS

    vae_cfg = {"dataset": "digits", "family": "vae", "arch": "conv_vae", "latent_dim": 4,
               "width": 8, "conditional": True}  # fmt: skip
    cfg = _params({"v": vae_cfg}).variant("v")
    vae = VAE_ARCHS.build("conv_vae", META, cfg)["vae"].eval()
    assert vae.num_classes == 10
    z = torch.randn(3, 4)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.normal_(0, 0.3)
    assert (vae(z, torch.zeros(3, dtype=torch.long)) - vae(z, torch.full((3,), 5))).abs().max() > 0
    with pytest.raises(ValueError, match="needs the labels"):
        vae(z)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"g_condition": "concat"}, "conditions both G and D"),
        ({"g_condition": "cbn", "d_condition": "concat", "info_categorical": 10}, "do not combine"),
        ({"info_weight": 2.0}, "info_weight"),
        ({"info_categorical": 10, "info_weight_continuous": 0.5}, "info_weight_continuous"),
        (
            {"arch": "mlp", "dataset": "ring8", "g_condition": "concat", "d_condition": "concat"},
            "g_condition",
        ),
        ({"g_condition": "film", "d_condition": "concat"}, "allowed"),
    ],
)
def test_bad_conditioning_is_refused_with_the_reason(extra, message):
    with pytest.raises(ConfigError, match=message):
        _params({"v": _variant(extra)})


def test_conditioning_needs_a_labelled_dataset():
    from genlab.families.gan.nets import build as build_gan
    from genlab.nets import ArchitectureError

    cfg = _params({"v": _variant({"g_condition": "concat", "d_condition": "concat"})}).variant("v")
    with pytest.raises(ArchitectureError, match="labelled dataset"):
        build_gan({**META, "num_classes": None}, cfg)


def test_infogan_matched_accuracy_is_invariant_to_relabelling_the_codes():
    from genlab.metrics import METRICS, Context

    class Fixed:  # an evaluator whose prediction is the first pixel
        def __call__(self, x):
            return F.one_hot(x[:, 0, 0, 0].long(), 3).float()

    codes = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    permuted = torch.tensor([2, 0, 1])[codes]  # code 0 -> class 2, 1 -> 0, 2 -> 1
    permuted[-1] = 1  # one sample of code 0 lands in the wrong class
    samples = permuted.float()[:, None, None, None].expand(-1, 1, 2, 2)
    ctx = Context(samples, {}, {"num_classes": 3}, Fixed(), None, codes=codes)
    from unittest import mock

    with mock.patch("genlab.metrics.scores.predict", lambda net, x: net(x).argmax(1)):
        out = METRICS.get("info").fn(ctx)
    assert out == {"info_matched_accuracy": 7 / 8}


def test_arithmetic_decodes_mean_a_minus_mean_b_plus_mean_c(tmp_path):
    """The figure's fourth row starts with G(mean z_a - mean z_b + mean z_c), the means over the
    three samples the evaluator is surest are a, b and c."""
    from unittest import mock

    from genlab.families import latent as figures

    class Net(torch.nn.Module):  # the "image" is the latent itself, 1 x 2 x 2
        latent_dim = 4

        def forward(self, z):
            return z.view(-1, 1, 2, 2)

    class Evaluator:  # logits: the first three latent entries
        def __call__(self, x):
            return 10 * x.flatten(1)[:, :3]

    z = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    params = _params({}, sample={"n": 300, "grid": 16, "interpolation_steps": 4,
                                 "batch_size": 100, "arithmetic": [2, 0, 1]})  # fmt: skip
    cfg = _params({"v": _variant({})}).variant("v")
    (tmp_path / "models" / "evaluator").mkdir(parents=True)
    (tmp_path / "models" / "evaluator" / "digits.pt").touch()
    saved = {}
    with (
        mock.patch("genlab.metrics.load_evaluator", lambda path: (Evaluator(), {})),
        mock.patch.object(figures, "save_grid", lambda x, path, nrow: saved.update(x=x)),
    ):
        figures.arithmetic(Net(), params, cfg, tmp_path, z, Net()(z), tmp_path / "a.png")
    probs = torch.softmax(10 * z[:, :3], 1)
    means = [z[probs[:, c].topk(3).indices].mean(0) for c in (2, 0, 1)]
    expected = (means[0] - means[1] + means[2]).view(1, 2, 2)
    torch.testing.assert_close(saved["x"][12], expected)  # row 4, column 1 (4 per row)
    torch.testing.assert_close(saved["x"][3], means[0].view(1, 2, 2))  # row 1 ends with G(mean a)


@pytest.mark.slow
def test_style_progressive_and_vqvae_variants_run_through_the_pipeline(digits_root):
    """Each new generator family trains, samples (with its figures) and evaluates."""
    style = _variant({}, arch="style", d_norm="none", truncation=0.7, steps=3)
    progressive = _variant({}, arch="progressive", phase_steps=1, attention=8, steps=4)
    vq = {
        "dataset": "digits",
        "family": "vqvae",
        "arch": "vq_vae",
        "latent_dim": 4,
        "width": 8,
        "codebook_size": 8,
        "steps": 4,
        "prior_steps": 2,
        "conditional": True,
    }
    params = _params({"style_v": style, "prog_v": progressive, "vq_v": vq},
                     evaluate={"metrics": ["frechet", "conditional", "vq"], "n": 150,
                               "bootstrap": 10, "kid_subsets": 5, "kid_subset_size": 50,
                               "iwae_samples": 4})  # fmt: skip
    paths, metrics = _run(params, "style_v", digits_root)
    assert {"truncation.png", "mixing.png"} <= {p.name for p in paths["dir"].iterdir()}
    assert math.isfinite(metrics["frechet"])
    paths, metrics = _run(params, "prog_v", digits_root)
    assert math.isfinite(metrics["frechet"])
    paths, metrics = _run(params, "vq_v", digits_root)
    assert (paths["dir"] / "classes.png").is_file()
    assert 0 <= metrics["conditional_accuracy"] <= 1 and 1 <= metrics["codes_used"] <= 8
    assert metrics["test_prior_bits_per_code"] > 0 and metrics["test_recon_mse"] > 0


def test_a_conditional_vae_needs_a_labelled_dataset():
    from genlab.nets import VAE_ARCHS, ArchitectureError

    vae_cfg = {"dataset": "digits", "family": "vae", "arch": "conv_vae", "latent_dim": 4,
               "width": 8, "conditional": True}  # fmt: skip
    with pytest.raises(ArchitectureError, match="labelled dataset"):
        VAE_ARCHS.build(
            "conv_vae", {**META, "num_classes": None}, _params({"v": vae_cfg}).variant("v")
        )


def test_spectral_norm_also_normalises_the_projection_embedding():
    """Miyato & Koyama 2018 normalise the class embedding V of the projection D as well."""
    from genlab.families.gan.nets import build as build_gan
    from genlab.objectives.regularizers import GAN_REGULARIZERS

    cfg = _params({"v": _variant({"g_condition": "concat", "d_condition": "projection"})})
    D = build_gan(META, cfg.variant("v"))["D"]
    GAN_REGULARIZERS.build("spectral_norm").setup(D)
    with torch.no_grad():
        for _ in range(30):  # power iterations run in training-mode forward passes
            D(torch.randn(8, 1, 8, 8), torch.randint(10, (8,)))
    sigma = torch.linalg.matrix_norm(D.embed.weight.detach(), ord=2)
    assert abs(float(sigma) - 1) < 0.05
