"""Architecture blocks: SAGAN self-attention, the style-based generator (AdaIN, weight
demodulation, style mixing, truncation), progressive growing; each trains on CPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from genlab.config import VariantCfg
from genlab.data.stream import BatchStream
from genlab.families.gan.trainer import GANTrainer
from genlab.nets import GAN_ARCHS, ArchitectureError
from genlab.nets.attention import SelfAttention
from genlab.nets.dcgan import Discriminator, Generator
from genlab.nets.progressive import ProgressiveDiscriminator, ProgressiveGenerator, growth_state
from genlab.nets.style import StyleGenerator, adain, modulate, modulated_conv2d, truncate
from genlab.runtime import configure_determinism
from genlab.train.ema import EMA

CPU = torch.device("cpu")


def meta(size: int) -> dict:
    return {"name": "x", "kind": "image", "shape": [1, size, size], "num_classes": 10}


def variant(**kw) -> VariantCfg:
    base = {"dataset": "digits", "family": "gan", "latent_dim": 8, "width": 4, "batch_size": 4}
    return VariantCfg.model_validate({**base, **kw})


def make_trainer(cfg: VariantCfg, size: int, seed: int = 0) -> tuple[GANTrainer, BatchStream]:
    configure_determinism(seed)
    trainer = GANTrainer(cfg, meta(size), CPU, seed)
    x = torch.rand(16, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    batches = BatchStream({"x": x, "y": torch.zeros(16, dtype=torch.long)}, 4, seed, CPU)
    return trainer, batches


# ---------------------------------------------------------------- AdaIN and weight demodulation
def test_adain_output_has_the_style_as_mean_and_std():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 6, 6) * 3 + torch.randn(3, 5, 1, 1)
    y_s, y_b = torch.rand(3, 5) + 0.5, torch.randn(3, 5)
    out = adain(x, y_s, y_b)
    assert_close(out.mean(dim=(2, 3)), y_b)
    assert_close(out.std(dim=(2, 3), unbiased=False), y_s)


def test_demodulated_weights_have_unit_norm_and_match_a_plain_conv():
    torch.manual_seed(0)
    weight, styles = torch.randn(6, 4, 3, 3), torch.rand(2, 4) + 0.1
    w = modulate(weight, styles)
    assert w.shape == (2, 6, 4, 3, 3)
    assert_close(w.pow(2).sum(dim=(2, 3, 4)), torch.ones(2, 6))  # every sample, every output
    x = torch.randn(2, 4, 5, 5)
    out = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)
    for b in range(2):
        scaled = weight * styles[b][None, :, None, None]  # w' = s_i w_ijk
        scaled = scaled / scaled.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        assert_close(out[b : b + 1], F.conv2d(x[b : b + 1], scaled, padding=1))
    plain = modulated_conv2d(x, weight, styles, demodulate=False)
    assert_close(plain[1:], F.conv2d(x[1:], weight * styles[1][None, :, None, None]))


# ---------------------------------------------------------------- self-attention
def test_self_attention_matches_the_sagan_formula():
    torch.manual_seed(0)
    block = SelfAttention(16)
    x = torch.randn(2, 16, 3, 4)
    assert torch.equal(block(x), x)  # gamma = 0 at init: the identity
    with torch.no_grad():
        block.gamma.fill_(0.7)
    beta = block.attention_map(x)
    assert beta.shape == (2, 12, 12)
    assert_close(beta.sum(dim=-1), torch.ones(2, 12))  # each row is a distribution over i

    def conv1x1(conv, v):  # v (B, C, N)
        return torch.einsum("oc,bcn->bon", conv.weight[:, :, 0, 0], v) + conv.bias[None, :, None]

    v = x.flatten(2)
    f, g, h = conv1x1(block.f, v), conv1x1(block.g, v), conv1x1(block.h, v)
    assert f.shape[1] == g.shape[1] == 2 and h.shape[1] == 16  # dim // 8, dim
    s = torch.einsum("bci,bcj->bji", f, g)  # s_ij = f(x_i)^T g(x_j), stored as [j, i]
    ref_beta = s.softmax(dim=-1)
    o = torch.einsum("bji,bci->bcj", ref_beta, h)
    assert_close(beta, ref_beta)
    assert_close(block(x), (0.7 * o + v).view_as(x))


def test_self_attention_spreads_a_local_change():
    torch.manual_seed(0)
    block = SelfAttention(4)  # dim // 8 = 0: f and g keep one channel
    x = torch.randn(1, 4, 5, 5)
    x2 = x.clone()
    x2[0, :, 0, 0] += 1.0
    changed = (block(x2) - block(x)).abs().sum(dim=1)[0] > 0
    assert changed.sum() == 1 and changed[0, 0]  # gamma = 0: only the touched position
    with torch.no_grad():
        block.gamma.fill_(1.0)
    changed = (block(x2) - block(x)).abs().sum(dim=1)[0] > 0
    assert changed.all()  # every position attends to the changed one


ATTENTION_ARCHS = [("dcgan", {}), ("style", {}), ("progressive", {"phase_steps": 1})]


@pytest.mark.parametrize(("arch", "extra"), ATTENTION_ARCHS, ids=lambda a: str(a))
@pytest.mark.parametrize("side", [4, 8, 16])
def test_attention_sits_at_the_requested_side(arch, extra, side):
    nets = GAN_ARCHS.build(arch, meta(16), variant(arch=arch, attention=side, **extra))
    seen = []
    for net in nets.values():
        if hasattr(net, "set_step"):
            net.set_step(10**6)  # fully grown, every block in use
        blocks = [m for m in net.modules() if isinstance(m, SelfAttention)]
        assert len(blocks) == 1
        blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))
    nets["D"](nets["G"](torch.randn(2, 8)))
    assert seen == [(side, side), (side, side)]  # once in G, once in D


@pytest.mark.parametrize("arch", ["dcgan", "style", "progressive"])
def test_attention_at_an_impossible_side_is_an_error(arch):
    with pytest.raises(ArchitectureError, match=r"attention = 5 .* allowed: 7, 14, 28"):
        GAN_ARCHS.build(arch, meta(28), variant(arch=arch, attention=5))


def test_dcgan_without_attention_keeps_its_layers():
    """Trained defaults must reproduce: attention = 0 leaves the parameter names and order."""
    G = Generator(latent_dim=4, channels=1, size=8, width=4)
    D = Discriminator(channels=1, size=8, width=4)
    assert [k for k, _ in G.named_parameters()] == [
        "net.0.weight", "net.1.weight", "net.1.bias", "net.3.weight", "net.4.weight",
        "net.4.bias", "net.6.weight", "net.6.bias",
    ]  # fmt: skip
    assert [k for k, _ in D.named_parameters()] == [
        "net.0.weight", "net.0.bias", "net.2.weight", "net.3.weight", "net.3.bias",
        "net.5.weight", "net.5.bias",
    ]  # fmt: skip


# ---------------------------------------------------------------- style generator
def style_g(**kw) -> StyleGenerator:
    torch.manual_seed(0)
    return StyleGenerator(latent_dim=8, channels=1, size=8, width=4, **kw)


def capture_ws(G: StyleGenerator) -> list[torch.Tensor]:
    """Record the ws that forward passes to synthesis."""
    seen, synthesis = [], G.synthesis

    def spy(ws):
        seen.append(ws.detach().clone())
        return synthesis(ws)

    G.synthesis = spy
    return seen


def test_truncate_is_the_formula():
    torch.manual_seed(0)
    w, w_avg = torch.randn(5, 3, 8), torch.randn(8)
    assert_close(truncate(w, w_avg, 0.7), w_avg + 0.7 * (w - w_avg))
    assert_close(truncate(w, w_avg, 0.0), w_avg.expand_as(w))
    assert_close(truncate(w, w_avg, 1.0), w)


@pytest.mark.parametrize("mode", ["adain", "demod"])
def test_truncation_psi_0_gives_w_avg_and_psi_1_leaves_w(mode):
    G = style_g(mode=mode, truncation=0.5).eval()
    with torch.no_grad():
        G.w_avg.copy_(torch.randn(8))
    seen = capture_ws(G)
    z = torch.randn(4, 8)
    x = G(z, psi=0.0)
    assert_close(seen[-1], G.w_avg.expand(4, G.num_layers, 8))
    assert_close(x, x[:1].expand_as(x))  # the same image for every z
    G(z, psi=1.0)
    assert_close(seen[-1], G.mapping(z)[:, None].expand(-1, G.num_layers, -1))
    G(z)  # psi None: the configured truncation in eval mode
    assert_close(seen[-1], truncate(G.mapping(z), G.w_avg, 0.5)[:, None].expand_as(seen[-1]))


def test_style_mixing_uses_w2_from_the_crossover_layer_on():
    G = style_g(style_mixing=1.0).train()
    assert G.num_layers == 3  # one conv at 4x4, two at 8x8
    seen = capture_ws(G)
    z = torch.randn(6, 8)
    torch.manual_seed(1)
    x = G(z)
    torch.manual_seed(1)  # replay the documented draws: coin, crossover, second z
    assert torch.rand(()) < 1
    cutoff = int(torch.randint(1, G.num_layers, ()))
    w, w2 = G.mapping(z), G.mapping(torch.randn_like(z))
    expected = torch.cat([w[:, None].expand(-1, cutoff, -1),
                          w2[:, None].expand(-1, G.num_layers - cutoff, -1)], dim=1)  # fmt: skip
    assert_close(seen[-1], expected)
    assert_close(x, G.synthesis(expected))  # noise strengths start at 0
    # the running average moved from 0 towards the batch's mean w (decay 0.995)
    assert_close(G.w_avg, 0.005 * w.mean(0))


def test_style_noise_is_fresh_in_training_and_fixed_in_eval():
    G = style_g(style_mixing=0.0)
    with torch.no_grad():
        for layer in G.layers:
            layer.noise.strength.fill_(1.0)
    z = torch.randn(2, 8)
    G.eval()
    assert torch.equal(G(z), G(z))
    G.train()
    assert not torch.equal(G(z), G(z))


# ---------------------------------------------------------------- progressive growing
def test_growth_schedule_at_phase_boundaries():
    P, n = 10, 3  # phases: 0 stable s0; 1, 2 fade-in / stable 2 s0; ... 5, 6 for 8 s0
    expected = {0: (0, 1.0), 9: (0, 1.0), 10: (1, 0.0), 15: (1, 0.5), 19: (1, 0.9),
                20: (1, 1.0), 29: (1, 1.0), 30: (2, 0.0), 50: (3, 0.0), 55: (3, 0.5),
                60: (3, 1.0), 70: (3, 1.0), 10**6: (3, 1.0)}  # fmt: skip
    for step, (stage, alpha) in expected.items():
        got = growth_state(step, P, n)
        assert got[0] == stage and got[1] == pytest.approx(alpha), step
    G = ProgressiveGenerator(latent_dim=8, channels=1, size=32, width=4, phase_steps=P)
    for step, res, alpha in [(0, 4, 1.0), (12, 8, 0.2), (25, 8, 1.0), (45, 16, 1.0),
                             (58, 32, 0.8), (61, 32, 1.0), (10**6, 32, 1.0)]:  # fmt: skip
        G.set_step(step)
        assert (G.resolution, G.alpha) == (res, pytest.approx(alpha)), step


def test_progressive_generator_fades_in_the_new_resolution():
    torch.manual_seed(0)
    P = 4
    G = ProgressiveGenerator(latent_dim=8, channels=1, size=16, width=4, phase_steps=P)
    z = torch.randn(3, 8)
    for k in (1, 2):
        G.set_step((2 * k - 1) * P - 1)  # last stable step of stage k - 1
        previous = G(z)
        G.set_step((2 * k - 1) * P)  # first fade-in step of stage k: alpha = 0
        assert G.alpha == 0 and G.resolution == 4 * 2**k
        assert_close(G(z), previous)
        G.set_step(2 * k * P)  # stable stage k: alpha = 1, the new path alone
        new = G(z)
        assert not torch.allclose(new, previous)
        G.set_step((2 * k - 1) * P + 1)  # alpha = 1/4
        assert_close(G(z), 0.75 * previous + 0.25 * new)
        assert new.shape == (3, 1, 16, 16) and new.abs().max() <= 1


def test_progressive_discriminator_blends_its_input_like_the_paper():
    torch.manual_seed(0)
    P = 4
    D = ProgressiveDiscriminator(channels=1, size=16, width=4, phase_steps=P)
    x = torch.randn(3, 1, 16, 16)
    for k in (1, 2):
        D.set_step((2 * k - 1) * P - 1)
        half = D(x)  # scored at the previous resolution
        D.set_step((2 * k - 1) * P)  # alpha = 0
        assert_close(D(x), half)
    D.set_step(3 * P + 1)  # stage 2 (16x16), alpha = 1/4
    down = F.avg_pool2d(x, 2)
    assert_close(D.blend_input(x), 0.25 * x + 0.75 * F.interpolate(down, scale_factor=2))
    D.set_step(P + 2)  # stage 1 (8x8), alpha = 1/2
    assert_close(
        D.blend_input(x), 0.5 * down + 0.5 * F.interpolate(F.avg_pool2d(x, 4), scale_factor=2)
    )


def test_growth_state_survives_state_dict_and_ema():
    G = ProgressiveGenerator(latent_dim=8, channels=1, size=16, width=4, phase_steps=4)
    ema = EMA(G, 0.9)
    G.set_step(13)  # stage 2, fade-in, alpha = 1/4
    G2 = ProgressiveGenerator(latent_dim=8, channels=1, size=16, width=4, phase_steps=4)
    G2.load_state_dict(G.state_dict())
    ema.update(G)
    for net in (G2, ema.shadow):
        assert (net.resolution, net.alpha) == (16, 0.25)
    z = torch.randn(2, 8)
    assert_close(G2(z), G(z))


def test_trainer_drives_the_growth():
    """GANTrainer.step calls set_step(completed G updates) on G and D before updating."""
    trainer, batches = make_trainer(variant(arch="progressive", phase_steps=1), 8)
    for _ in range(3):
        trainer.step(batches)
    for net in (trainer.G, trainer.D):
        assert int(net.growth_step) == 2 and (net.resolution, net.alpha) == (8, 1.0)


# ---------------------------------------------------------------- training
TRAINED = {
    "style_adain": {"arch": "style", "style_mode": "adain", "d_norm": "none"},
    "style_demod": {"arch": "style", "style_mode": "demod", "d_norm": "layer"},
    "progressive": {"arch": "progressive", "phase_steps": 1},
    "dcgan_attention": {"arch": "dcgan", "attention": 8, "d_norm": "none"},
    "style_attention": {"arch": "style", "attention": 8, "d_norm": "none"},
    "progressive_attention": {"arch": "progressive", "attention": 8, "phase_steps": 1},
}


@pytest.mark.parametrize("size", [8, 32])
@pytest.mark.parametrize("name", list(TRAINED))
def test_new_archs_train(name, size):
    kw = TRAINED[name]
    batch_norm_d = kw["arch"] != "progressive" and kw.get("d_norm", "batch") == "batch"
    regularizers = {"spectral_norm": {}}
    if not batch_norm_d:
        regularizers["gradient_penalty"] = {"weight": 10.0}
    trainer, batches = make_trainer(variant(**kw, regularizers=regularizers), size)
    if kw["arch"] == "progressive":  # mid fade-in to full resolution: every layer in use
        n = int(math.log2(size // 4))
        for net in (trainer.G, trainer.D):
            net.phase_steps = 2
            net.set_step((2 * n - 1) * 2 + 1)  # the last fade-in, alpha = 1/2
            net.set_step = lambda step: None  # hold the state whatever the trainer calls
        assert (trainer.G.resolution, trainer.G.alpha) == (size, 0.5)
    for _ in range(2):
        stats = trainer.step(batches)
        assert all(math.isfinite(v) for v in stats.values()), stats
        assert "gp_grad_norm" in stats or batch_norm_d
    assert trainer.G(torch.randn(2, 8)).shape == (2, 1, size, size)


@pytest.mark.parametrize("name", ["style_attention", "progressive"])
def test_same_seed_same_weights(name):
    mixing = {"style_mixing": 0.5} if name.startswith("style") else {}

    def run():
        trainer, batches = make_trainer(variant(**TRAINED[name], **mixing), 8, seed=3)
        for _ in range(3):
            trainer.step(batches)
        return trainer.G.state_dict()

    first, second = run(), run()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
