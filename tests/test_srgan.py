"""SRResNet / SRGAN (Ledig et al. 2017) and the frozen feature net of the content loss: pixel
shuffle, residual blocks, D's shape, eq. 3 by hand, the SRResNet that never touches D, seeded
training through the one driver, an exact resume with the fitted feature net, and the params
rules (scale a power of 2, a super-resolution dataset)."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data.base import DATASETS, dataset, prepare_dataset
from genlab.families import FAMILIES
from genlab.families.features import FeatureNet, feature_loss, fit_feature_net
from genlab.families.srgan import trainer as srgan_trainer
from genlab.families.srgan.trainer import SRGANTrainer, generator_loss, psnr
from genlab.families.translation import TRANSLATION_LOSSES
from genlab.metrics.evaluator import fit_evaluator
from genlab.nets.base import ArchitectureError
from genlab.nets.srresnet import (
    ResidualBlock,
    SRDiscriminator,
    SRResNet,
    build_srresnet,
    upsample_block,
    upsampling_steps,
)
from genlab.options import Options
from genlab.paths import Paths
from genlab.train.loop import build_trainer, train_variant

CPU = torch.device("cpu")
N, CLASSES, SCALE = 32, 4, 4
FIELDS = {"source": {"kind": "image"}, "x": {"kind": "image"}, "y": {"kind": "class"}}
DIRECTION = {"name": "", "source": "source", "target": "x", "labels": "y", "paired": True}


def toy_split(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Smooth 3x32x32 images (bilinear from 4x4 noise, a class-coloured offset) and their 4x
    average-pooled 3x8x8 sources."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=gen)
    coarse = torch.rand(n, 3, 4, 4, generator=gen) - 0.5
    colour = torch.eye(3)[y % 3][:, :, None, None] - 0.3
    x = F.interpolate(coarse, size=32, mode="bilinear", align_corners=False) + colour
    x = x.clamp(-1, 1)
    return {"source": F.avg_pool2d(x, SCALE), "x": x, "y": y}


def toy_meta() -> dict:
    return {"name": "sr_toy", "kind": "image", "shape": [3, 32, 32], "source_shape": [3, 8, 8],
            "num_classes": CLASSES, "scale": SCALE,
            "translation": {"task": "super_resolution", "directions": [DIRECTION]}}  # fmt: skip


class NoOptions(Options):
    pass


@pytest.fixture(scope="module", autouse=True)
def toy_dataset():
    """A super-resolution toy dataset, registered for this module's tests."""

    def build(cfg, raw, seed):
        return toy_split(N, seed), toy_split(16, seed + 1), toy_meta()

    dataset("sr_toy", options=NoOptions, fields=FIELDS, task="super_resolution")(build)
    yield
    DATASETS.unregister("sr_toy")


def variant(**overrides):
    """A validated tiny srgan variant on the toy set (the feature classifier: 1 epoch)."""
    cfg = {"dataset": "sr_toy", "family": "srgan", "arch": "srresnet", "width": 8,
           "residual_blocks": 1, "steps": 4, "batch_size": 8, **overrides}  # fmt: skip
    if cfg.get("content", "features") == "features":
        cfg.setdefault("feature_epochs", 1)
    return validate_params({"variants": {"v": cfg}}).variant("v")


# ---------------------------------------------------------------- the networks
def test_pixel_shuffle_upsamples_8_to_32_for_scale_4():
    G = SRResNet(in_channels=3, out_channels=3, scale=4, width=8, residual_blocks=1)
    shuffles = [m for m in G.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert len(shuffles) == upsampling_steps(4) == 2
    out = G(torch.rand(2, 3, 8, 8) * 2 - 1)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    # one block: conv to 4C channels, then channel 4c + 2i + j goes to pixel (2y + i, 2x + j)
    block = torch.nn.Sequential(*upsample_block(2))
    with torch.no_grad():
        block[0].weight.zero_()
        block[0].bias.zero_()
        block[0].weight[:, :, 1, 1] = torch.ones(8, 2) * torch.arange(1.0, 9.0)[:, None]
        block[2].weight.fill_(1.0)  # PReLU slope 1 on the negative side: the identity
    h = torch.ones(1, 2, 3, 3)
    up = block(h)
    assert up.shape == (1, 2, 6, 6)
    expected = 2 * torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat(3, 3)
    assert_close(up[0, 0], expected)
    assert_close(up[0, 1], expected + 8)


def test_residual_block_is_the_identity_at_zero_weights():
    block = ResidualBlock(4)
    for m in block.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            torch.nn.init.zeros_(m.weight)
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.zeros_(m.bias)
    x = torch.randn(3, 4, 5, 5)
    assert_close(block(x), x)
    block.eval()
    assert_close(block(x), x)


def test_discriminator_gives_one_logit_per_image():
    for size, convs in ((32, 6), (64, 8), (8, 2)):
        D = SRDiscriminator(channels=3, size=size, width=4)
        assert D(torch.randn(5, 3, size, size)).shape == (5,)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in D.modules()) == convs
        strides = [m.stride[0] for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
        assert strides == [1, 2] * (convs // 2)  # k3n64s1, k3n64s2, k3n128s1, ...


def test_scale_3_is_refused():
    with pytest.raises(ArchitectureError, match="scale = 3.*power of 2"):
        upsampling_steps(3)
    meta = {**toy_meta(), "scale": 3, "source_shape": [3, 8, 8], "shape": [3, 24, 24]}
    with pytest.raises(ArchitectureError, match="power of 2"):
        build_srresnet(meta, variant())
    with pytest.raises(ArchitectureError, match="power of 2"):
        SRGANTrainer(variant(), meta, CPU, seed=0)
    with pytest.raises(ArchitectureError, match="must be the square target"):
        build_srresnet({**toy_meta(), "shape": [3, 16, 16]}, variant())


# ---------------------------------------------------------------- the feature net
def _images(n: int = 24, seed: int = 0):
    split = toy_split(n, seed)
    return split["x"], split["y"]


def test_feature_net_is_the_seeded_classifiers_third_block():
    x, y = _images()
    net = fit_feature_net(x, y, CLASSES, seed=5, epochs=1)
    clf, _ = fit_evaluator({"x": x, "y": y}, {"x": x, "y": y}, epochs=1, seed=5,
                           num_classes=CLASSES)  # fmt: skip
    with torch.no_grad():
        expected = clf.body[:10](x)  # conv-BN-ReLU, conv-BN-ReLU, max-pool, conv-BN-ReLU
    assert_close(net(x), expected)
    assert net(x).shape == (24, 128, 16, 16)
    again = fit_feature_net(x, y, CLASSES, seed=5, epochs=1)
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    other = fit_feature_net(x, y, CLASSES, seed=6, epochs=1)
    assert not torch.equal(net.layers[0].weight, other.layers[0].weight)


def test_feature_net_is_frozen():
    x, y = _images()
    net = fit_feature_net(x, y, CLASSES, seed=1, epochs=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    fake = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_()
    loss = feature_loss(net, fake, x[:6])
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # the gradient reaches G
    assert all(p.grad is None for p in net.parameters())
    for key, value in net.state_dict().items():  # BatchNorm kept its running statistics
        assert torch.equal(value, before[key]), key
    assert bool(net.fitted) and not bool(FeatureNet(3, CLASSES).fitted)


def test_feature_loss_is_the_mean_squared_feature_difference():
    x, y = _images()
    net = fit_feature_net(x, y, CLASSES, seed=2, epochs=1)
    assert feature_loss(net, x[:3], x[:3]).item() == 0.0
    small = FeatureNet(3, CLASSES, block=1)  # 32 channels at full resolution
    a, b = torch.rand(2, 3, 4, 4) * 2 - 1, torch.rand(2, 3, 4, 4) * 2 - 1
    with torch.no_grad():
        fa, fb = small(a).tolist(), small(b).tolist()
    n, c, h, w = 2, 32, 4, 4
    by_hand = sum(
        (fa[i][k][r][s] - fb[i][k][r][s]) ** 2
        for i in range(n)
        for k in range(c)
        for r in range(h)
        for s in range(w)
    )
    assert by_hand > 0
    assert_close(feature_loss(small, a, b).item(), by_hand / (n * c * h * w), rtol=1e-5, atol=0)


# ---------------------------------------------------------------- the loss and the trainer
def test_generator_loss_is_content_plus_1e_3_adversarial():
    d_fake = torch.tensor([0.5, -1.0, 2.0])
    content = torch.tensor(0.2)
    loss = TRANSLATION_LOSSES.build("nonsaturating")
    total, stats = generator_loss(content, d_fake, loss, 1e-3)
    adversarial = -torch.log(torch.sigmoid(d_fake)).mean()  # -log D(G(I^LR)), eq. 6
    assert_close(total, content + 1e-3 * adversarial)
    assert_close(float(stats["loss_adversarial"]), adversarial.item())
    assert stats["loss_content"] == pytest.approx(0.2)
    assert generator_loss(content, None, loss, 1e-3)[0] is content


def test_the_trainers_g_loss_is_eq_3_on_its_batch():
    """One SRGAN step (content mse): G's loss = MSE(G(source), x) + 1e-3 * softplus(-D(G))."""
    cfg = variant(content="mse")
    trainer, batches, _, _ = build_trainer(cfg, toy_split(N, 0), toy_meta(), 0, "cpu", 1)
    seen = {}
    real_loss = generator_loss

    def spy(content, d_fake, loss, weight):
        seen.update(content=content.detach(), d_fake=d_fake.detach(), weight=weight)
        return real_loss(content, d_fake, loss, weight)

    srgan_trainer.generator_loss, original = spy, srgan_trainer.generator_loss
    try:
        stats = trainer.step(batches)
    finally:
        srgan_trainer.generator_loss = original
    expected = seen["content"] + 1e-3 * F.softplus(-seen["d_fake"]).mean()
    assert_close(torch.tensor(stats["loss"]), expected)
    assert stats["loss_content"] == pytest.approx(stats["mse"])
    assert stats["psnr"] == pytest.approx(psnr(stats["mse"]))
    assert seen["weight"] == 1e-3


def test_the_srresnet_variant_never_touches_d(monkeypatch):
    def no_d(self, x):
        raise AssertionError("D was called")

    monkeypatch.setattr(SRDiscriminator, "forward", no_d)
    cfg = variant(adversarial_weight=0, content="mse")
    trainer, batches, _, _ = build_trainer(cfg, toy_split(N, 0), toy_meta(), 0, "cpu", 1)
    assert set(trainer.modules) == {"G"} and set(trainer.optimizers) == {"G"}
    for _ in range(2):
        stats = trainer.step(batches)
    assert set(stats) == {"loss", "loss_content", "mse", "psnr", "grad_norm_g", "phase"}
    assert stats["loss"] == stats["mse"]


def test_bf16_runs_srgan_with_the_feature_loss():
    cfg = variant(precision="bf16", pretrain_steps=1)
    trainer, batches, _, _ = build_trainer(cfg, toy_split(N, 0), toy_meta(), 0, "cpu", 1)
    stats = [trainer.step(batches) for _ in range(2)]
    assert all(v == v for s in stats for k, v in s.items() if k.startswith("loss"))
    assert stats[1]["phase"] == 2 and stats[1]["loss_content"] > 0


def _run(cfg, steps: int, seed: int = 0):
    trainer, batches, _, _ = build_trainer(cfg, toy_split(N, 0), toy_meta(), seed, "cpu", 1)
    return trainer, [trainer.step(batches) for _ in range(steps)]


def test_training_steps_are_seeded_and_pretrain_on_the_pixel_mse():
    cfg = variant(pretrain_steps=1, steps=3)
    a, stats_a = _run(cfg, 3)
    b, stats_b = _run(cfg, 3)
    assert stats_a == stats_b
    for key, module in a.modules.items():
        for name, value in module.state_dict().items():
            assert torch.equal(value, b.modules[key].state_dict()[name]), (key, name)
    assert set(a.modules) == {"G", "D", "features"}
    assert [s["phase"] for s in stats_a] == [1, 2, 2]
    first = stats_a[0]  # pretraining: the pixel MSE alone, D untouched
    assert first["loss"] == first["mse"] and first["loss_d"] == 0.0
    assert first["d_real"] != first["d_real"]  # nan: D was not evaluated
    assert all(list(s) == list(first) for s in stats_a)  # one CSV header for both phases
    later = stats_a[-1]
    assert later["loss"] == pytest.approx(later["loss_content"] + 1e-3 * later["loss_adversarial"])
    assert later["loss_content"] != pytest.approx(later["mse"])  # the feature loss
    c, _ = _run(cfg, 3, seed=1)
    assert not torch.equal(a.G.tail[0].weight, c.G.tail[0].weight)


def test_the_fitted_feature_net_survives_a_resume(tmp_path, monkeypatch):
    """4 steps straight == 2 steps, a crash, a resume from the step-2 state (the feature net is
    fitted at step 1 and restored from state.pt, never refitted)."""
    raw = {"seed": 0, "device": "cpu", "threads": 1, "tracking": {"enabled": False},
           "train": {"log_every": 1, "checkpoint_every": 2},
           "variants": {"sr": {"dataset": "sr_toy", "family": "srgan", "arch": "srresnet",
                               "width": 8, "residual_blocks": 1, "steps": 4,
                               "batch_size": 8, "feature_epochs": 1}}}  # fmt: skip
    params = validate_params(raw)
    prepare_dataset("sr_toy", {}, tmp_path, 0)
    paths = Paths(tmp_path)
    train_variant(params, "sr", tmp_path)
    straight = torch.load(paths.state("sr"), weights_only=True)
    straight_csv = paths.train_csv("sr").read_text()

    class Interrupt(Exception):
        pass

    real_step = SRGANTrainer.step

    def crash_at_3(self, batches):
        if self.steps == 2:
            raise Interrupt
        return real_step(self, batches)

    monkeypatch.setattr(SRGANTrainer, "step", crash_at_3)
    with pytest.raises(Interrupt):
        train_variant(params, "sr", tmp_path)
    monkeypatch.setattr(SRGANTrainer, "step", real_step)
    fits = []
    monkeypatch.setattr(FeatureNet, "fit_", lambda *a, **k: fits.append(1))
    train_variant(params, "sr", tmp_path, resume=True)
    assert fits == []
    resumed = torch.load(paths.state("sr"), weights_only=True)
    assert bool(resumed["nets"]["features"]["fitted"])
    for part in ("nets", "optimizers", "trainer", "batches"):
        _assert_identical(straight[part], resumed[part])
    model = torch.load(paths.model("sr"), weights_only=True)
    assert set(model["modules"]) == {"G"}
    rows = [{k: v for k, v in r.items() if k != "seconds"}
            for r in csv.DictReader(paths.train_csv("sr").read_text().splitlines())]  # fmt: skip
    expected = [{k: v for k, v in r.items() if k != "seconds"}
                for r in csv.DictReader(straight_csv.splitlines())]  # fmt: skip
    assert rows == expected


def _assert_identical(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_identical(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_identical(u, v)
    else:
        assert a == b


def test_family_declares_what_the_pipeline_needs():
    family = FAMILIES.get("srgan")
    assert family.saved_modules == ("G",) and family.generator == "G"
    assert family.metrics == ("translation",) and "Super-resolution" in family.sections
    assert family.default_loss == "nonsaturating"
    nets = family.build(toy_meta(), variant())
    assert set(nets) == {"G", "D"}


def test_sampler_upsamples_the_test_sources_with_g():
    G = SRResNet(in_channels=3, out_channels=3, scale=4, width=8, residual_blocks=1).eval()
    sampler = FAMILIES.get("srgan").sampler({"G": G}, variant(), toy_meta())
    test = toy_split(16, 1)
    inputs = sampler.inputs(0, 10, "cpu", data=test)
    out = sampler.generate(inputs, batch_size=4)
    with torch.no_grad():
        assert_close(out, G(test["source"][:10]))
    assert torch.equal(inputs["targets"][""], test["x"][:10])


# ---------------------------------------------------------------- params rules
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset": "digits"}, "dataset = 'digits'.*super.resolution"),
        ({"adversarial_weight": 0, "loss": "hinge"}, "loss = 'hinge' has no effect"),
        ({"adversarial_weight": 0, "content": "mse", "pretrain_steps": 2}, "pretrain_steps = 2"),
        ({"pretrain_steps": 4}, "leaves none of the 4 steps"),
        ({"content": "vgg"}, "content"),
        ({"adversarial_weight": -1}, "adversarial_weight"),
        ({"content": "mse", "feature_epochs": 2}, "feature_epochs = 2 has no effect.*content"),
    ],
)
def test_params_refuse_what_srgan_cannot_train(overrides, message):
    with pytest.raises(ConfigError, match=message):
        variant(**overrides)


def test_params_accept_srresnet_and_srgan():
    srresnet = variant(adversarial_weight=0, content="mse")
    srgan = variant(pretrain_steps=2, loss="least_squares")
    assert (srresnet.content, srgan.content, srgan.adversarial_weight) == ("mse", "features", 1e-3)
    assert variant().loss == "nonsaturating" and variant().residual_blocks == 1
    assert variant(feature_epochs=3).feature_epochs == 3


def test_the_bicubic_skip_starts_at_the_bicubic_baseline_and_learns_a_residual():
    import torch.nn.functional as F

    from genlab.metrics.translation import bicubic
    from genlab.nets.srresnet import SRResNet

    torch.manual_seed(0)
    net = SRResNet(in_channels=3, out_channels=3, scale=4, width=8, residual_blocks=1,
                   bicubic_skip=True).eval()  # fmt: skip
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(net(x), bicubic(x, 32))  # the last conv starts at zero
    torch.nn.init.constant_(net.tail[0].bias, 0.1)
    up = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False)
    torch.testing.assert_close(net(x), (up + 0.1).clamp(-1, 1))
