"""A small BigGAN (Brock et al. 2019): the class-conditional batch norm by hand, the shared
embedding and the hierarchical latent reaching every block, spectral norm in G and D, the
projection logit, the orthogonal regularisation (by hand, by a loop, its gradient in closed form
and by gradcheck, zero on orthogonal filters), the truncation trick (bounds, the truncated
normal's variance, seeded bits, the default path unchanged), deterministic training with an
exact resume, the params-load rules, and an end-to-end run on tiny CIFAR-10 files."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.families.gan.trainer import gan_terms
from genlab.families.latent import LatentSampler, sample_latents, truncated_normal_
from genlab.nets.base import ArchitectureError
from genlab.nets.biggan import (
    BigGANGenerator,
    ClassConditionalBatchNorm2d,
    build_biggan,
)
from genlab.objectives.orthogonal import (
    OrthogonalRegularization,
    orthogonal_penalty,
    penalised_weights,
)
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, tiny_params_dict, training_snapshot

DIGITS = {"name": "digits", "kind": "image", "shape": [1, 8, 8], "num_classes": 10}
CIFAR = {"name": "cifar10", "kind": "image", "shape": [3, 32, 32], "num_classes": 10}


def variant(**overrides):
    """A tiny biggan variant on digits (8x8: one G block, two D blocks)."""
    raw = tiny_params_dict()
    raw["variants"] = {"bg": {"dataset": "digits", "family": "gan", "arch": "biggan",
                              "loss": "hinge", "latent_dim": 8, "width": 8,
                              "biggan_shared_dim": 4, "orthogonal": 1e-4, "d_steps": 2,
                              "optimizer": {"lr": 1e-4, "betas": [0.0, 0.999]},
                              "optimizer_d": {"lr": 4e-4, "betas": [0.0, 0.999]},
                              **overrides}}  # fmt: skip
    return validate_params(raw).variants["bg"]


def cifar_nets(width: int = 8, latent_dim: int = 12, shared: int = 6):
    torch.manual_seed(0)
    return build_biggan(CIFAR, variant(latent_dim=latent_dim, width=width,
                                       biggan_shared_dim=shared))  # fmt: skip


# ---------------------------------------------------------------- the networks
def test_shapes_range_and_the_cifar_layout():
    nets = cifar_nets()
    G, D = nets["G"], nets["D"]
    assert (G.noise_dim, G.num_classes, len(G.blocks), G.slots) == (12, 10, 3, 4)
    assert D.conditional and D.num_classes == 10
    # D: down 32 -> 16 -> 8, then two blocks at 8x8 (BigGAN table 4, CIFAR)
    assert [b.down for b in D.blocks] == [True, True, False, False]
    z, y = torch.randn(5, 12), torch.arange(5)
    x = G(z, y)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert D(x, y).shape == (5,)
    assert D.features(x).shape == (5, 8)


def test_conditional_batch_norm_by_hand():
    torch.manual_seed(0)
    cbn = ClassConditionalBatchNorm2d(2, 3)
    h = torch.randn(4, 2, 3, 3)
    c = torch.randn(4, 3)
    mean = h.mean(dim=(0, 2, 3), keepdim=True)
    var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    gain = 1 + c @ cbn.gain.weight.t()
    bias = c @ cbn.bias.weight.t()
    expected = (h - mean) / torch.sqrt(var + 1e-5) * gain[:, :, None, None] + bias[..., None, None]
    assert_close(cbn(h, c), expected)


def conditionings(G: BigGANGenerator, z: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The conditioning vector c each G block's batch norms receive."""
    seen: list[torch.Tensor] = []
    hooks = [b.bn1.register_forward_hook(lambda m, args, out: seen.append(args[1]))
             for b in G.blocks]  # fmt: skip
    G(z, y)
    for h in hooks:
        h.remove()
    return seen


def test_the_shared_embedding_is_one_table_that_every_block_reads():
    G = cifar_nets()["G"].eval()
    embeddings = [m for m in G.modules() if isinstance(m, nn.Embedding)]
    assert embeddings == [G.shared]
    z, y = torch.randn(4, 12), torch.tensor([0, 3, 3, 7])
    for c in conditionings(G, z, y):
        assert_close(c[:, -6:], G.shared(y))  # every block sees the same e(y)
    # its gradient reaches exactly the rows of the classes drawn
    G(z, y).sum().backward()
    touched = G.shared.weight.grad.abs().sum(1) > 0
    assert touched.tolist() == [i in (0, 3, 7) for i in range(10)]


def test_the_hierarchical_latent_gives_one_chunk_to_each_block():
    G = cifar_nets()["G"].eval()
    z, y = torch.randn(3, 12), torch.tensor([1, 2, 3])
    base = conditionings(G, z, y)
    chunks = [range(0, 3), range(3, 6), range(6, 9), range(9, 12)]  # 12 = 4 slots of 3
    for k, chunk in enumerate(chunks):
        moved = z.clone()
        moved[:, list(chunk)] += 1.0
        after = conditionings(G, moved, y)
        changed = [not torch.equal(a, b) for a, b in zip(base, after, strict=True)]
        assert changed == [k == j + 1 for j in range(3)], f"chunk {k}"
        if k > 0:  # block k-1 reads exactly this chunk, beside e(y)
            assert_close(after[k - 1][:, :3], moved[:, list(chunk)])
    z.requires_grad_(True)
    G(z, y).sum().backward()
    for chunk in chunks:  # every chunk moves the image
        assert z.grad[:, list(chunk)].abs().sum() > 0


def test_spectral_norm_wraps_every_layer_of_g_and_d_but_the_shared_embedding():
    nets = cifar_nets()
    layers = (nn.Conv2d, nn.Linear, nn.Embedding)
    for key, net in nets.items():
        for name, m in net.named_modules():
            if isinstance(m, layers) and name != "shared":
                assert parametrize.is_parametrized(m, "weight"), f"{key}.{name}"
    assert not parametrize.is_parametrized(nets["G"].shared)
    # after enough power iterations each weight's largest singular value is 1
    D = nets["D"]
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    with torch.no_grad():
        for _ in range(60):
            D(x, y)
    D.eval()
    assert_close(torch.linalg.matrix_norm(D.psi.weight, 2), torch.tensor(1.0), atol=1e-3, rtol=0)
    conv = D.blocks[1].conv1.weight.flatten(1)
    assert_close(torch.linalg.matrix_norm(conv, 2), torch.tensor(1.0), atol=1e-3, rtol=0)


def test_the_projection_logit_by_hand():
    D = cifar_nets()["D"].eval()
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    phi = torch.relu(D.blocks(x)).sum(dim=(2, 3))
    expected = phi @ D.psi.weight[0] + D.psi.bias[0] + (D.embed.weight[y] * phi).sum(1)
    assert_close(D(x, y), expected)


def test_sizes_the_arch_cannot_build_are_refused():
    with pytest.raises(ArchitectureError, match=r"4 \* 2\*\*n .* got 28"):
        build_biggan({**CIFAR, "shape": [1, 28, 28]}, variant())
    with pytest.raises(ArchitectureError, match="latent_dim = 3 .* >= 4"):
        build_biggan(CIFAR, variant(latent_dim=3))
    with pytest.raises(ArchitectureError, match="num_classes"):
        build_biggan({**CIFAR, "num_classes": 0}, variant())


# ---------------------------------------------------------------- orthogonal regularisation
def loop_penalty(matrices: list[torch.Tensor]) -> float:
    """sum over matrices and pairs i != j of <w_i, w_j>^2, in python floats."""
    total = 0.0
    for w in matrices:
        rows = w.tolist()
        for i, a in enumerate(rows):
            for j, b in enumerate(rows):
                if i != j:
                    total += sum(p * q for p, q in zip(a, b, strict=True)) ** 2
    return total


def test_orthogonal_penalty_by_hand_and_by_a_loop():
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # W W^T = [[1, 1], [1, 2]]: off-diagonal 1, 1
    assert_close(orthogonal_penalty([(w, False)]), torch.tensor(2.0))
    torch.manual_seed(0)
    conv = torch.randn(3, 2, 2, 2)  # 3 filters of 8 weights
    transposed = torch.randn(2, 4, 3, 3)  # ConvTranspose2d(2, 4): 4 filters along dim 1
    got = orthogonal_penalty([(w, False), (conv, False), (transposed, True)])
    filters_t = [transposed[:, o].flatten() for o in range(4)]
    expected = loop_penalty([w, conv.flatten(1), torch.stack(filters_t)])
    assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_orthogonal_gradient_in_closed_form_and_by_gradcheck():
    torch.manual_seed(0)
    beta = 1e-4
    w = torch.randn(4, 6, requires_grad=True)
    (beta * orthogonal_penalty([(w, False)])).backward()
    gram = w.detach() @ w.detach().t()
    off = gram - torch.diag(gram.diagonal())
    assert_close(w.grad, 4 * beta * off @ w.detach())
    w64 = torch.randn(3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p: orthogonal_penalty([(p, False)]).to(torch.float64), (w64,)
    )


def test_orthogonal_penalty_is_zero_on_orthogonal_filters():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 5))  # 5 orthonormal columns
    filters = q.t() * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5])[:, None]  # free norms
    assert_close(orthogonal_penalty([(filters, False)]), torch.tensor(0.0), atol=1e-10, rtol=0)
    assert orthogonal_penalty([(filters + 0.1, False)]) > 1e-3


def test_the_term_reads_g_raw_weights_and_only_when_enabled():
    G = cifar_nets()["G"]
    weights = penalised_weights(G)
    ids = {id(p) for p, _ in weights}
    assert id(G.linear.parametrizations.weight.original) in ids  # the raw, pre-SN weight
    assert id(G.shared.weight) not in ids and not any(p.dim() < 2 for p, _ in weights)
    # linear, 3 blocks x (2 convs + skip + 2 x (gain, bias)), the output conv
    assert len(weights) == 1 + 3 * 7 + 1
    assert not any(
        isinstance(t, OrthogonalRegularization) for t in gan_terms(variant(orthogonal=0))
    )
    term = gan_terms(variant(orthogonal=1e-4))[-1]
    assert isinstance(term, OrthogonalRegularization)
    term.setup({"G": G, "D": None})
    value, stats = term.generator(None)
    expected = orthogonal_penalty([(p.detach(), t) for p, t in weights])
    assert_close(stats["orthogonal"], expected)
    assert not stats["orthogonal"].requires_grad
    assert_close(value, 1e-4 * expected)


# ---------------------------------------------------------------- truncation at sampling
def truncated_variance(t: float) -> float:
    """Var of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1)."""
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return 1 - 2 * t * phi / math.erf(t / math.sqrt(2))


def test_truncated_latents_lie_inside_and_follow_the_truncated_normal():
    t = 1.0
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(4000, 100, generator=gen)
    z = truncated_normal_(z0.clone(), t, torch.Generator().manual_seed(1))
    assert z.abs().max() <= t
    inside = z0.abs() <= t
    assert torch.equal(z[inside], z0[inside])  # only the entries outside are redrawn
    assert_close(z.var().item(), truncated_variance(t), atol=3e-3, rtol=0)  # 0.2911
    assert abs(z.mean().item()) < 3e-3


def test_the_sampler_truncates_with_seeded_bits_and_leaves_the_default_alone():
    G = cifar_nets()["G"].eval()
    plain = LatentSampler(G, 12, 10)
    z_ref, _ = sample_latents(7, 50, 12, "cpu")
    first = plain.inputs(7, 50, "cpu")
    assert torch.equal(first["z"], z_ref)  # truncation 0: the bits drawn before the option
    ends = torch.randn(2, 3, 12, generator=first["generator"])
    path = plain.interpolation(plain.inputs(7, 50, "cpu"), rows=3, steps=4, batch_size=8)
    y = torch.arange(3).repeat_interleave(4)
    t = torch.linspace(0, 1, 4)[None, :, None]
    expected_z = ((1 - t) * ends[0][:, None] + t * ends[1][:, None]).flatten(0, 1)
    assert_close(path, G(expected_z, y))
    cut = LatentSampler(G, 12, 10, truncation=0.5)
    a, b = cut.inputs(7, 50, "cpu"), cut.inputs(7, 50, "cpu")
    assert torch.equal(a["z"], b["z"]) and a["z"].abs().max() <= 0.5
    assert not torch.equal(a["z"], cut.inputs(8, 50, "cpu")["z"])
    kept = z_ref.abs() <= 0.5
    assert torch.equal(a["z"][kept], z_ref[kept])
    assert torch.equal(cut.generate(a, 16), cut.generate(b, 16))


def test_the_gan_family_passes_the_threshold_to_its_sampler():
    from genlab.families import FAMILIES

    nets = cifar_nets()
    sampler = FAMILIES.get("gan").sampler(nets, variant(z_truncation=0.7), CIFAR)
    assert sampler.truncation == 0.7 and sampler.label_kind == "class"
    assert sampler.inputs(0, 100, "cpu")["z"].abs().max() <= 0.7


# ---------------------------------------------------------------- training
def toy_split(n: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(10, (n,), generator=gen)
    x = torch.tanh(torch.randn(n, 1, 8, 8, generator=gen) + (y[:, None, None, None] - 5) / 3)
    return {"x": x, "y": y}


def steps(cfg, n: int, state: dict | None = None):
    trainer, batches, _, _ = build_trainer(cfg, toy_split(64, 0), DIGITS, 0, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    stats = [{k: float(v) for k, v in trainer.step(batches).items()} for _ in range(n)]
    return trainer, batches, stats


def test_training_steps_are_deterministic_and_resume_exactly():
    cfg = variant()
    a, _, stats_a = steps(cfg, 4)
    b, _, stats_b = steps(cfg, 4)
    assert stats_a == stats_b
    assert all(k in stats_a[0] for k in ("loss_d", "loss_g", "orthogonal", "grad_norm_g"))
    assert a.d_labels and a.d_updates == 8  # D(x, y), two D updates per step
    first, batches, _ = steps(cfg, 2)
    resumed, _, _ = steps(cfg, 2, state=training_snapshot(first, batches))
    for key in ("G", "D"):
        after = resumed.modules[key].state_dict()
        for name, p in a.modules[key].state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_a_bf16_step_is_finite():
    _, _, stats = steps(variant(precision="bf16"), 1)
    assert all(math.isfinite(v) for v in stats[0].values()), stats


def test_the_discriminator_is_fed_the_real_labels():
    cfg = variant()
    trainer, batches, _, _ = build_trainer(cfg, toy_split(64, 0), DIGITS, 0, "cpu", 1)
    seen: list[torch.Tensor] = []
    trainer.D.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    state = batches.state_dict()
    trainer.step(batches)
    batches.load_state_dict(state)
    assert torch.equal(seen[0], batches.next()["y"])  # D's first call: the real batch, its y


# ---------------------------------------------------------------- params-load rules
def test_a_dataset_without_class_labels_is_refused_at_params_load():
    with pytest.raises(ConfigError, match="dataset = 'text' lacks images.*allowed datasets:.*"
                                          "digits"):  # fmt: skip
        variant(dataset="text")


def test_spectral_norm_asked_twice_is_refused():
    with pytest.raises(ConfigError, match="spectral_norm.*normalised already"):
        variant(regularizers={"spectral_norm": {}})


def test_the_new_keys_are_checked():
    with pytest.raises(ConfigError, match="z_truncation"):
        variant(z_truncation=-1.0)
    with pytest.raises(ConfigError, match=r"z_truncation = 0.01: allowed 0 \(off\) or .* >= 0.1"):
        variant(z_truncation=0.01)
    assert variant(z_truncation=0.1).z_truncation == 0.1
    with pytest.raises(ConfigError, match="biggan_shared_dim.*has no effect"):
        raw = tiny_params_dict()
        raw["variants"]["dcgan_ns"]["biggan_shared_dim"] = 8
        validate_params(raw)


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_biggan_end_to_end_on_tiny_cifar10_files(tmp_path):
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.paths import Paths
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant
    from tests.rawfiles import write_cifar10

    write_cifar10(Paths(tmp_path).raw, n_per_batch=40, n_test=60, seed=0)
    raw = tiny_params_dict()
    raw["data"] = {"cifar10": {}}
    raw["evaluator"]["epochs"] = 1
    raw["variants"] = {"biggan_cifar10": {
        "dataset": "cifar10", "family": "gan", "arch": "biggan", "loss": "hinge",
        "latent_dim": 8, "width": 8, "biggan_shared_dim": 8, "batch_size": 8, "steps": 2,
        "d_steps": 2, "orthogonal": 1e-4, "z_truncation": 1.0,
        "optimizer": {"lr": 1e-4, "betas": [0.0, 0.999]},
        "optimizer_d": {"lr": 4e-4, "betas": [0.0, 0.999]}}}  # fmt: skip
    raw["sample"] = {"n": 60, "grid": 10, "interpolation_steps": 3, "batch_size": 30}
    raw["evaluate"].update(metrics=["kid", "coverage", "conditional"], n=50,
                           kid_subsets=2, kid_subset_size=20)  # fmt: skip
    params = validate_params(raw)
    prepare_dataset("cifar10", params.dataset_cfg("cifar10"), tmp_path, params.seed)
    fit_evaluator_stage(params, "cifar10", tmp_path)
    trained = train_variant(params, "biggan_cifar10", tmp_path)
    assert trained["steps"] == 2
    paths = sample_variant(params, "biggan_cifar10", tmp_path)
    saved = torch.load(paths["samples"], weights_only=True)
    assert saved["x"].shape == (60, 3, 32, 32) and saved["z"].abs().max() <= 1.0
    assert saved["y_kind"] == "class" and saved["y"].tolist() == [i % 10 for i in range(60)]
    assert (paths["dir"] / "classes.png").is_file()
    metrics = evaluate_variant(params, "biggan_cifar10", tmp_path)
    # (no frechet: 50 samples are fewer than the evaluator's 64 feature dimensions)
    for key in ("kid", "classes_covered", "conditional_accuracy", "intra_kid"):
        assert math.isfinite(metrics[key]), key
