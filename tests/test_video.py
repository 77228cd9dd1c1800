"""moving_digits (Moving MNIST in miniature), the video_gan family (MoCoGAN, Tulyakov et al.
2018) and the video evaluator kind and metric: the bounce by hand, glyphs in the frames, the
disjoint glyph split, the content / motion codes, what each discriminator sees, the loss terms
by hand, deterministic steps with an exact resume, the sampler and figures, and the metric's
values by hand on a fake evaluator, with its bootstrap views."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data.base import DATASETS
from genlab.data.video import bounce, glyph_split, moving_clips, moving_digits, render
from genlab.families import FAMILIES
from genlab.families.video_gan import ClipSampler
from genlab.families.video_gan.figures import decomposition, video_figures
from genlab.families.video_gan.nets import (
    ImageDiscriminator,
    MoCoGANGenerator,
    Noise,
    VideoDiscriminator,
)
from genlab.families.video_gan.trainer import (
    VIDEO_LOSSES,
    MoCoGANTrainer,
    discriminator_loss,
    frame_times,
    generator_loss,
    pick,
    window_times,
)
from genlab.metrics.frechet import frechet_from_features
from genlab.metrics.scores import Context, score
from genlab.metrics.video import agreement, clip_frames, consistent, frame_outputs, motion
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, tiny_params_dict, training_snapshot

FRAMES, SIZE = 6, 16
FIELDS = {"x": {"kind": "video"}, "y": {"kind": "class"}}


def tiny_cfg(**overrides) -> dict:
    cfg = DATASETS.get("moving_digits").options().model_dump()
    return {**cfg, "n_train": 24, "n_test": 12, "frames": FRAMES, "size": SIZE, "digit_size": 8,
            **overrides}  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    """(train, test, meta) of a tiny moving_digits, with the schema prepare adds."""
    train, test, meta = moving_digits(tiny_cfg(), None, 0)
    return train, test, {**meta, "fields": FIELDS}


def variant(**overrides):
    cfg = {"dataset": "moving_digits", "family": "video_gan", "arch": "mocogan", "latent_dim": 4,
           "width": 4, "video_motion_dim": 3, "steps": 4, "batch_size": 4, **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


# ---------------------------------------------------------------- data
def test_bounce_reflects_at_the_walls_by_hand():
    """Row: 1 -> -2 reflects to 2 (velocity -3 becomes +3), then 5, 8, 11 -> 9 (back to -3), 6.
    Column: 5, 7, 9, 11 -> 9, 13 -> 7, 15 -> 5. A step longer than the box bounces twice."""
    positions = bounce(torch.tensor([1.0, 5.0]), torch.tensor([-3.0, 2.0]), 6, 10.0)
    expected = torch.tensor([[1, 5], [2, 7], [5, 9], [8, 9], [9, 7], [6, 5]]).double()
    assert_close(positions.double(), expected)
    steps = positions[1:, 0] - positions[:-1, 0]
    assert (steps[2:4] > 0).all() and (steps[4:] < 0).all()  # moving down, then up after 10
    fast = bounce(torch.tensor([[0.0, 0.0]]), torch.tensor([[25.0, 7.5]]), 3, 10.0)
    assert_close(fast[0], torch.tensor([[0.0, 0.0], [5.0, 7.5], [10.0, 5.0]]))


def hand_glyphs() -> tuple[torch.Tensor, torch.Tensor]:
    """Three 4 x 4 glyphs in [0, 1]: a cross, a square ring, a diagonal; classes 7, 3, 5."""
    cross, ring, diag = torch.zeros(4, 4), torch.ones(4, 4), torch.eye(4) * 0.5
    cross[1:3, :] = cross[:, 1:3] = 1.0
    ring[1:3, 1:3] = 0.0
    return torch.stack([cross, ring, diag]), torch.tensor([7, 3, 5])


def test_positions_stay_inside_and_every_frame_is_the_glyph_at_its_rounded_position():
    glyphs, classes = hand_glyphs()
    clips = moving_clips(glyphs, classes, 5, 12, 12, 1, 3.3, torch.Generator().manual_seed(0))
    assert clips.x.shape == (5, 12, 1, 12, 12) and clips.x.dtype == torch.float32
    assert clips.positions.min() >= 0 and clips.positions.max() <= 12 - 4
    assert torch.equal(clips.y, classes[clips.glyph[:, 0]])
    steps = (clips.positions[:, 0, 1:] - clips.positions[:, 0, :-1]).norm(dim=-1)
    assert (steps <= 3.3 + 1e-9).all() and (steps > 3.3 - 1e-9).float().mean() > 0.5
    for i in range(5):
        for t in range(12):
            r, c = clips.positions[i, 0, t].round().long().tolist()
            frame = clips.x[i, t, 0]
            assert_close(frame[r : r + 4, c : c + 4], glyphs[clips.glyph[i, 0]] * 2 - 1)
            outside = torch.ones(12, 12, dtype=torch.bool)
            outside[r : r + 4, c : c + 4] = False
            assert (frame[outside] == -1).all()


def test_overlapping_digits_combine_by_their_maximum():
    glyphs, _ = hand_glyphs()
    positions = torch.tensor([[[[0.0, 0.0]], [[1.0, 1.0]]]]).double()  # (1 clip, 2 digits, 1 t)
    x = render(glyphs, torch.tensor([[0, 2]]), positions, 6)[0, 0, 0]
    expected = torch.zeros(6, 6)
    expected[0:4, 0:4] = glyphs[0]
    expected[1:5, 1:5] = torch.maximum(expected[1:5, 1:5], glyphs[2])
    assert_close(x, expected * 2 - 1)


def test_the_dataset_draws_train_and_test_clips_from_disjoint_glyphs(tiny):
    train, test, meta = tiny
    assert train["x"].shape == (24, FRAMES, 1, SIZE, SIZE) and test["x"].shape[0] == 12
    assert train["y"].dtype == torch.int64 and train["x"].dtype == torch.float32
    assert train["x"].min() == -1 and train["x"].max() <= 1
    assert meta["shape"] == [FRAMES, 1, SIZE, SIZE] and meta["frames"] == FRAMES
    assert meta["kind"] == "video" and meta["num_classes"] == 10 and meta["n_train"] == 24
    # the builder's own steps, replayed: which glyph image each clip shows
    cfg = tiny_cfg()
    glyphs, classes, tr, te = glyph_split(8, cfg["glyph_test_fraction"], 0)
    gen = torch.Generator().manual_seed(0)
    a = moving_clips(glyphs[tr], classes[tr], 24, FRAMES, SIZE, 1, cfg["speed"], gen)
    b = moving_clips(glyphs[te], classes[te], 12, FRAMES, SIZE, 1, cfg["speed"], gen)
    assert torch.equal(a.x, train["x"]) and torch.equal(b.x, test["x"])
    assert set(tr.tolist()).isdisjoint(te.tolist())
    assert set(tr[a.glyph[:, 0]].tolist()).isdisjoint(te[b.glyph[:, 0]].tolist())
    assert meta["glyphs"]["train"] + meta["glyphs"]["test"] == 1797


def test_the_dataset_is_deterministic_and_the_seed_matters(tiny):
    again, _, _ = moving_digits(tiny_cfg(), None, 0)
    other, _, _ = moving_digits(tiny_cfg(), None, 1)
    assert torch.equal(again["x"], tiny[0]["x"]) and torch.equal(again["y"], tiny[0]["y"])
    assert not torch.equal(other["x"], tiny[0]["x"])


def test_two_digits_label_the_first_one():
    train, _, meta = moving_digits(tiny_cfg(digits=2), None, 0)
    assert meta["digits"] == 2
    ink = (train["x"] > -1).flatten(2).sum(2).float()  # two glyphs: more ink than one
    one, _, _ = moving_digits(tiny_cfg(), None, 0)
    assert ink.mean() > (one["x"] > -1).flatten(2).sum(2).float().mean()


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [("digit_size", 16, "digit_size = 16 does not fit.*size = 16"),
     ("digits", 3, "digits"), ("speed", 0, "speed"), ("frames", 1, "frames")],
)  # fmt: skip
def test_bad_options_are_refused_at_params_load(option, value, match):
    raw = {"data": {"moving_digits": {"size": 16, "digit_size": 8, option: value}}}
    with pytest.raises(ConfigError, match=match):
        validate_params(raw)


# ---------------------------------------------------------------- networks
def small_generator(frames: int = FRAMES) -> MoCoGANGenerator:
    torch.manual_seed(0)
    return MoCoGANGenerator(content_dim=4, motion_dim=3, frames=frames, channels=1, size=SIZE,
                            width=4)  # fmt: skip


def test_content_code_is_constant_across_frames_and_motion_codes_differ():
    G = small_generator()
    z_c, eps, h0 = torch.randn(2, 4), torch.randn(2, FRAMES, 3), torch.randn(2, 3)
    codes = G.codes(z_c, eps, h0)
    assert codes.shape == (2, FRAMES, 7)
    assert_close(codes[:, :, :4], z_c[:, None].expand(-1, FRAMES, -1))
    assert (codes[:, 1:, 4:] - codes[:, :-1, 4:]).abs().amax(-1).min() > 0
    h = h0  # the GRU cell by hand: z_M^(t) = R_M(eps^(t), z_M^(t-1))
    for t in range(FRAMES):
        h = G.rnn(eps[:, t], h)
        assert_close(codes[:, t, 4:], h)


def test_generator_decodes_each_frame_from_its_code():
    G = small_generator().eval()
    z_c, eps, h0 = torch.randn(3, 4), torch.randn(3, FRAMES, 3), torch.randn(3, 3)
    clips = G(z_c, eps, h0)
    assert clips.shape == (3, FRAMES, 1, SIZE, SIZE) and clips.abs().max() <= 1
    codes = G.codes(z_c, eps, h0)
    assert_close(clips[1, 2], G.image(codes[1, 2][None])[0])
    assert_close(G.decode(codes[:, [4]]), clips[:, [4]])


def test_d_i_takes_frames_and_d_v_takes_clips_of_any_length():
    torch.manual_seed(0)
    D_I = ImageDiscriminator(channels=1, size=SIZE, width=4)
    D_V = VideoDiscriminator(channels=1, size=SIZE, width=4)
    assert D_I(torch.randn(5, 1, SIZE, SIZE)).shape == (5,)
    for length in (1, 2, 5, 16):
        assert D_V(torch.randn(3, length, 1, SIZE, SIZE)).shape == (3,)
    with pytest.raises(ValueError, match="D_I takes frames"):
        D_I(torch.randn(2, 3, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="D_V takes clips"):
        D_V(torch.randn(2, 1, SIZE, SIZE))
    D_V.eval()  # frame order matters to D_V (3-D convolutions)
    clip = torch.randn(2, 6, 1, SIZE, SIZE)
    assert (D_V(clip) - D_V(clip.flip(1))).abs().max() > 0


def test_discriminator_noise_is_gaussian_in_training_and_off_in_eval():
    noise = Noise(0.5)
    torch.manual_seed(0)
    x = torch.zeros(200_000)
    added = noise(x)
    assert abs(float(added.std()) - 0.5) < 0.01 and abs(float(added.mean())) < 0.01
    assert torch.equal(noise.eval()(x), x) and torch.equal(Noise(0.0)(x), x)
    torch.manual_seed(0)
    D_I = ImageDiscriminator(channels=1, size=SIZE, width=4, sigma=0.1)
    frames = torch.randn(4, 1, SIZE, SIZE)
    assert not torch.equal(D_I(frames), D_I(frames))  # training: fresh noise each call
    D_I.eval()
    assert torch.equal(D_I(frames), D_I(frames))


def test_the_arch_needs_clips_of_a_side_it_can_halve():
    from genlab.errors import ArchitectureError
    from genlab.families.video_gan.nets import build

    with pytest.raises(ArchitectureError, match="needs clips.*shape \\[1, 8, 8\\]"):
        build({"name": "digits", "shape": [1, 8, 8]}, variant())
    with pytest.raises(ArchitectureError, match="got 36"):
        build({"name": "clips", "shape": [4, 1, 36, 36]}, variant())
    nets = build({"name": "clips", "shape": [4, 1, 24, 24]}, variant())
    nets["G"].eval()
    z = (torch.randn(2, 4), torch.randn(2, 4, 3), torch.randn(2, 3))
    assert nets["G"](*z).shape == (2, 4, 1, 24, 24)
    assert nets["D_V"](nets["G"](*z)).shape == (2,)


# ---------------------------------------------------------------- losses
def test_loss_terms_by_hand_on_fixed_logits():
    """D: sum over D_I and D_V of -mean log sigmoid(real) - mean log(1 - sigmoid(fake)); G
    (non-saturating): -mean log sigmoid(fake) of each; minimax G: mean log(1 - sigmoid)."""
    ns = VIDEO_LOSSES.build("nonsaturating")
    i_real, i_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    v_real, v_fake = torch.tensor([0.0, 1.0]), torch.tensor([-0.5, 4.0])

    def log_sig(x: float) -> float:
        return -math.log1p(math.exp(-x))

    def log_one_minus(x: float) -> float:
        return -math.log1p(math.exp(x))

    d_i = -(log_sig(2) + log_sig(-1)) / 2 - (log_one_minus(0.5) + log_one_minus(-3)) / 2
    d_v = -(log_sig(0) + log_sig(1)) / 2 - (log_one_minus(-0.5) + log_one_minus(4)) / 2
    loss_d, stats = discriminator_loss(ns, (i_real, i_fake), (v_real, v_fake))
    assert_close(loss_d, torch.tensor(d_i + d_v))
    assert stats["loss_d_image"] == pytest.approx(d_i) and stats["loss_d_video"] == pytest.approx(
        d_v
    )
    assert stats["d_real_image"] == pytest.approx((1 / (1 + math.exp(-2)) + 1 / (1 + math.e)) / 2)
    g_i, g_v = -(log_sig(0.5) + log_sig(-3)) / 2, -(log_sig(-0.5) + log_sig(4)) / 2
    loss_g, g_stats = generator_loss(ns, i_fake, v_fake)
    assert_close(loss_g, torch.tensor(g_i + g_v))
    assert g_stats == pytest.approx({"loss_g_image": g_i, "loss_g_video": g_v})
    mm, _ = generator_loss(VIDEO_LOSSES.build("minimax"), i_fake, v_fake)
    expected = (log_one_minus(0.5) + log_one_minus(-3)) / 2 + (
        log_one_minus(-0.5) + log_one_minus(4)
    ) / 2
    assert_close(mm, torch.tensor(expected))


# ---------------------------------------------------------------- training
class Recorder:
    """A batch stream that remembers the last batch it gave."""

    def __init__(self, batches):
        self.batches, self.last = batches, None

    def next(self):
        self.last = self.batches.next()
        return self.last


def test_d_i_sees_single_frames_and_d_v_windows_of_the_clips(tiny):
    train, _, meta = tiny
    cfg = variant(video_d_frames=3, video_image_frames=2)
    trainer, batches, _, _ = build_trainer(cfg, train, meta, 0, "cpu", 1)
    seen: dict[str, list[torch.Tensor]] = {"D_I": [], "D_V": []}
    for key in seen:
        trainer.modules[key].register_forward_hook(
            lambda m, args, out, key=key: seen[key].append(args[0].detach().clone())
        )
    recorder = Recorder(batches)
    trainer.step(recorder)
    real = recorder.last["x"]
    assert [x.shape for x in seen["D_I"]] == [(8, 1, SIZE, SIZE)] * 3  # real, fake, G's fake
    assert [x.shape for x in seen["D_V"]] == [(4, 3, 1, SIZE, SIZE)] * 3
    for i in range(4):  # the real inputs: 2 distinct frames of clip i, 3 consecutive frames
        times = [
            [t for t in range(FRAMES) if torch.equal(seen["D_I"][0][2 * i + j], real[i, t])]
            for j in range(2)
        ]
        assert times[0] and times[1] and set(times[0]).isdisjoint(times[1])
        window = seen["D_V"][0][i]
        assert any(torch.equal(window, real[i, s : s + 3]) for s in range(FRAMES - 2))
    assert torch.equal(seen["D_I"][1], seen["D_I"][2])  # G's step judges the same fakes
    assert torch.equal(seen["D_V"][1], seen["D_V"][2])
    assert not any(
        torch.equal(seen["D_I"][1][j], real[i, t])
        for i in range(4)
        for j in range(8)
        for t in range(FRAMES)
    )


def test_frame_times_are_distinct_and_uniform():
    times = frame_times(3000, 4, 2, torch.Generator().manual_seed(0))
    assert times.shape == (3000, 2) and (times[:, 0] != times[:, 1]).all()
    share = torch.bincount(times.flatten(), minlength=4).double() / 6000
    assert_close(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02, rtol=0)


def test_pick_and_window_times():
    clips = torch.arange(2 * 5).view(2, 5)
    assert torch.equal(pick(clips, torch.tensor([3, 0])), torch.tensor([3, 5]))
    assert torch.equal(pick(clips, torch.tensor([[1, 2], [3, 4]])), torch.tensor([[1, 2], [8, 9]]))
    times = window_times(200, 5, 3, torch.Generator().manual_seed(0))
    assert torch.equal(times[:, 1:] - times[:, :-1], torch.ones(200, 2, dtype=torch.long))
    assert set(times[:, 0].tolist()) == {0, 1, 2}


def steps(cfg, train, meta, n: int, state: dict | None = None):
    trainer, batches, _, _ = build_trainer(cfg, train, meta, 0, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    stats = [trainer.step(batches) for _ in range(n)]
    return trainer, batches, stats


def test_training_steps_are_deterministic_and_resume_exactly(tiny):
    train, _, meta = tiny
    cfg = variant(video_d_frames=4)
    a, _, stats_a = steps(cfg, train, meta, 4)
    _, _, stats_b = steps(cfg, train, meta, 4)
    assert stats_a == stats_b
    keys = ("loss_d", "loss_g", "loss_d_image", "loss_d_video", "loss_g_image", "loss_g_video",
            "d_real_image", "d_fake_video", "grad_norm_d", "grad_norm_g")  # fmt: skip
    assert all(k in stats_a[0] for k in keys)
    assert stats_a[0]["loss_d"] == pytest.approx(
        stats_a[0]["loss_d_image"] + stats_a[0]["loss_d_video"]
    )
    first, batches, _ = steps(cfg, train, meta, 2)
    resumed, _, _ = steps(cfg, train, meta, 2, state=training_snapshot(first, batches))
    for key in ("G", "D_I", "D_V"):
        after = resumed.modules[key].state_dict()
        for name, p in a.modules[key].state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_trainer_options_reach_the_networks_and_optimizers(tiny):
    _, _, meta = tiny
    cfg = variant(video_d_width=2, video_d_noise=0.5, optimizer_d={"lr": 1e-4, "betas": [0.0, 0.9]})
    trainer = MoCoGANTrainer(cfg, meta, torch.device("cpu"), 0)
    assert trainer.window == FRAMES  # video_d_frames: None = the whole clip
    assert trainer.image_frames == 1  # one frame per clip, as the paper
    assert trainer.G.motion_dim == 3 and trainer.G.content_dim == 4 and trainer.G.frames == FRAMES
    assert trainer.D_V.net[1].out_channels == 2 and trainer.D_I.net[1].out_channels == 2
    noise = [
        m.sigma for D in (trainer.D_I, trainer.D_V) for m in D.modules() if isinstance(m, Noise)
    ]
    assert noise == [0.5] * 6  # before each of the 3 convolutions of D_I and of D_V (16 px)
    assert trainer.opt_d.param_groups[0]["lr"] == 1e-4
    n_d = sum(p.numel() for m in (trainer.D_I, trainer.D_V) for p in m.parameters())
    assert sum(p.numel() for g in trainer.opt_d.param_groups for p in g["params"]) == n_d


def test_a_window_or_image_frames_longer_than_the_clips_are_refused(tiny):
    _, _, meta = tiny
    with pytest.raises(ConfigError, match=f"video_d_frames = 7 exceeds.*allowed: 1 to {FRAMES}"):
        MoCoGANTrainer(variant(video_d_frames=7), meta, torch.device("cpu"), 0)
    with pytest.raises(ConfigError, match=f"video_image_frames = 7 exceeds.*1 to {FRAMES}"):
        MoCoGANTrainer(variant(video_image_frames=7), meta, torch.device("cpu"), 0)


def test_a_dataset_without_clips_is_refused_at_params_load():
    with pytest.raises(ConfigError, match="dataset = 'digits' lacks.*x \\(video\\).*moving_digits"):
        variant(dataset="digits")


def test_family_declarations():
    family = FAMILIES.get("video_gan")
    assert family.default_loss == "nonsaturating" and family.saved_modules == ("G",)
    assert variant().loss == "nonsaturating" and variant().video_motion_dim == 3
    assert "Video" in family.sections and family.caption("content_motion") is not None


# ---------------------------------------------------------------- sampling and figures
def test_sampler_is_seeded_and_capped_at_the_training_clips():
    G = small_generator().eval()
    sampler = ClipSampler(G, {"n_train": 5})
    inputs = sampler.inputs(3, 8, "cpu")
    assert inputs["z_content"].shape == (5, 4) and inputs["eps"].shape == (5, FRAMES, 3)
    x = sampler.generate(inputs, batch_size=FRAMES * 2)  # two clips per chunk
    assert x.shape == (5, FRAMES, 1, SIZE, SIZE) and x.dtype == torch.float32
    assert_close(x, G(inputs["z_content"], inputs["eps"], inputs["h0"]))
    assert torch.equal(x, sampler.generate(sampler.inputs(3, 8, "cpu"), 1))
    assert not torch.equal(x, sampler.generate(sampler.inputs(4, 8, "cpu"), 100))
    assert set(sampler.saved(inputs)) == {"z_content", "eps", "h0"}
    assert sampler.interpolation(inputs, 2, 3, 10) is None


def test_content_motion_figure_swaps_one_code_at_a_time(tmp_path):
    from genlab.families.base import FigureContext

    G = small_generator().eval()
    sampler = ClipSampler(G, {"n_train": 10})
    inputs = sampler.inputs(0, 6, "cpu")
    x = sampler.generate(inputs, 100)
    same_content, same_motion = decomposition(G, inputs, 4)
    z_c, eps, h0 = inputs["z_content"], inputs["eps"], inputs["h0"]
    assert_close(same_content[0], x[0]) and assert_close(same_motion[0], x[0])
    assert_close(same_content[2], G(z_c[:1], eps[2:3], h0[2:3])[0])
    assert_close(same_motion[3], G(z_c[3:4], eps[:1], h0[:1])[0])
    ctx = FigureContext({"G": G}, None, None, tmp_path, tmp_path, inputs, x, sampler, "cpu")
    paths = video_figures(ctx)
    assert [p.name for p in paths] == ["grid.png", "content_motion.png"]
    assert all(p.stat().st_size > 0 for p in paths)


# ---------------------------------------------------------------- evaluator and metric
def test_clip_frames_labels_each_frame_with_its_clip():
    x = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1, 1, 1)
    split = {"x": x, "y": torch.tensor([7, 1, 2])}
    every = clip_frames(split, None, 0)
    assert torch.equal(every["x"].flatten(), torch.arange(12.0))
    assert torch.equal(every["y"], torch.tensor([7] * 4 + [1] * 4 + [2] * 4))
    some = clip_frames(split, 2, 0)
    assert some["x"].shape == (6, 1, 1, 1)
    assert torch.equal(some["y"], torch.tensor([7, 7, 1, 1, 2, 2]))
    frames = some["x"].flatten().long()
    assert torch.equal(frames // 4, torch.tensor([0, 0, 1, 1, 2, 2]))  # from its own clip
    assert (frames[::2] != frames[1::2]).all()  # two distinct frames


class FakeEvaluator(nn.Module):
    """Features: a frame's first 3 pixels; the class head the identity, so a frame whose first
    pixels are one-hot for class k is read as k. Counts its feature passes."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(3))
        self.calls = 0

    def features(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.calls += 1
        return x.flatten(1)[:, :3].clone()


def clips_of(classes: list[list[int]], noise: float, seed: int) -> torch.Tensor:
    """Clips (N, T, 1, 2, 2) whose frame t shows class classes[n][t] (one-hot in its first 3
    pixels, plus ``noise``-scaled Gaussian noise that keeps the argmax)."""
    gen = torch.Generator().manual_seed(seed)
    one_hot = F.one_hot(torch.tensor(classes), 3).float()
    x = torch.cat([one_hot, torch.zeros(*one_hot.shape[:2], 1)], dim=-1)
    x = x + noise * torch.rand(x.shape, generator=gen)
    return x.view(*x.shape[:2], 1, 2, 2)


def video_context(samples: torch.Tensor, test: torch.Tensor, evaluator) -> Context:
    params = validate_params({})
    meta = {"num_classes": 3, "fields": FIELDS}
    return Context(samples, {"x": test, "y": torch.zeros(len(test), dtype=torch.long)}, meta,
                   evaluator, params)  # fmt: skip


def test_the_video_metric_by_hand_on_a_fake_evaluator():
    from genlab.metrics.scores import METRICS

    samples = clips_of([[1, 1, 1], [0, 2, 0], [1, 1, 1], [0, 0, 1]] * 4, 0.1, 0)
    test = clips_of([[0, 0, 0], [1, 1, 1], [2, 2, 2]] * 6, 0.1, 1)
    evaluator = FakeEvaluator()
    values = METRICS.get("video").fn(video_context(samples, test, evaluator))
    assert values["class_consistency"] == 0.5  # clips 1 and 3 of each 4 change class
    assert values["frame_class_agreement"] == pytest.approx((1 + 2 / 3 + 1 + 2 / 3) / 4)
    p = torch.tensor([4, 7, 1]).double() / 12  # sample frames per class 0, 1, 2; test: 1/3 each
    assert values["frame_class_kl"] == pytest.approx(float((p * (p * 3).log()).sum()))
    expected = frechet_from_features(samples.flatten(0, 1).flatten(1)[:, :3],
                                     test.flatten(0, 1).flatten(1)[:, :3])  # fmt: skip
    assert values["frame_frechet"] == pytest.approx(expected)
    change = (samples[:, 1:] - samples[:, :-1]).abs().flatten(1).mean(1)
    assert values["frame_motion"] == pytest.approx(float(change.double().mean()))
    assert values["frame_feature_dim"] == 3
    features, predictions = frame_outputs(evaluator, samples)
    assert features.shape == (16, 3, 3)
    assert torch.equal(predictions[:4], torch.tensor([[1, 1, 1], [0, 2, 0], [1, 1, 1], [0, 0, 1]]))
    assert torch.equal(consistent(predictions[:4]), torch.tensor([1.0, 0, 1, 0]).double())
    tie = torch.tensor([[3, 1, 3, 1], [2, 2, 2, 0], [0, 1, 2, 3]])
    assert_close(agreement(tie), torch.tensor([0.5, 0.75, 0.25]).double())
    assert_close(motion(samples), change.double())


def test_bootstrap_views_pick_clip_rows_and_reuse_the_features():
    from genlab.metrics.scores import METRICS

    samples = clips_of([[1, 1, 1], [0, 2, 0], [2, 2, 2], [0, 0, 1]] * 4, 0.3, 0)
    test = clips_of([[0, 0, 0], [1, 1, 1], [2, 2, 2]] * 6, 0.3, 1)
    evaluator = FakeEvaluator()
    fn, ctx = METRICS.get("video").fn, video_context(samples, test, evaluator)
    fn(ctx)
    rows, test_rows = torch.tensor([0, 0, 2, 5, 6, 9]), torch.tensor([1, 1, 4, 7, 8, 9, 16])
    view = fn(ctx.resample(rows, test_rows))
    direct = fn(video_context(samples[rows], test[test_rows], FakeEvaluator()))
    assert view == pytest.approx(direct)
    assert view["class_consistency"] == pytest.approx(4 / 6)  # rows 0, 0, 2, 6 are consistent
    assert evaluator.calls == 2  # samples and test, once each, for the base and its views
    out = score(ctx, ["video"], replicates=30, seed=0)
    assert 0 <= out["class_consistency_ci_low"] <= out["class_consistency_ci_high"] <= 1
    assert "frame_frechet_ci_low" in out and "frame_feature_dim_ci_low" not in out
    assert evaluator.calls == 2


def test_no_frechet_distance_when_the_frames_are_too_few():
    from genlab.metrics.scores import METRICS

    samples = clips_of([[1, 1], [0, 2]], 0.1, 0)  # 4 frames for 3 feature dimensions: fine
    assert "frame_frechet" in METRICS.get("video").fn(
        video_context(samples, samples, FakeEvaluator())
    )
    one = clips_of([[1, 1, 1]], 0.1, 0)  # 3 frames: not more than 3 dimensions
    assert "frame_frechet" not in METRICS.get("video").fn(
        video_context(one, samples, FakeEvaluator())
    )
    assert METRICS.get("video").fn(video_context(one, samples, None)) == {}


def test_the_video_evaluator_fits_on_frames_and_reloads(tiny, tmp_path):
    from genlab.metrics.kinds import EVALUATOR_KINDS, load_any, save_any

    train, test, meta = tiny
    kind = EVALUATOR_KINDS.get("video")
    settings = {"seed": 0, "device": "cpu", "epochs": 1, "batch_size": 32, "lr": 1e-3,
                "downsample": 2}  # fmt: skip
    net, stats = kind.fit(train, test, meta, settings)
    assert stats["train_frames"] == 24 * 4 and 0 <= stats["test_accuracy"] <= 1
    save_any("video", net, tmp_path / "ev.pt", {"test_accuracy": stats["test_accuracy"]}, meta)
    assert torch.load(tmp_path / "ev.pt", weights_only=True)["kind"] == "video"
    loaded = load_any(tmp_path / "ev.pt")
    frames = test["x"][:2].flatten(0, 1)
    assert_close(loaded.features(frames), net.features(frames))
    assert not loaded.training and kind.floor


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_prepare_fit_train_sample_evaluate_a_tiny_video_project(tmp_path):
    from genlab.config import load_params
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.paths import Paths
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant
    from tests.conftest import write_params

    raw = tiny_params_dict()
    raw["data"] = {"moving_digits": {"n_train": 64, "n_test": 24, "frames": 8, "size": 16,
                                     "digit_size": 8}}  # fmt: skip
    raw["evaluator"] = {"epochs": 1, "batch_size": 64, "lr": 0.001}
    raw["variants"] = {
        "clips": {
            "dataset": "moving_digits",
            "family": "video_gan",
            "arch": "mocogan",
            "latent_dim": 4,
            "width": 4,
            "video_motion_dim": 3,
            "video_d_frames": 4,
            "batch_size": 8,
        }
    }
    raw["evaluate"] = {"metrics": ["video"], "n": 150, "bootstrap": 20}  # fmt: skip
    params = load_params(write_params(tmp_path, raw))
    prepare_dataset("moving_digits", params.dataset_cfg("moving_digits"), tmp_path, 0)
    fitted = fit_evaluator_stage(params, "moving_digits", tmp_path)
    assert 0 <= fitted["test_accuracy"] <= 1
    assert 0 <= fitted["floor"]["class_consistency"] <= 1 and fitted["floor"]["n_samples"] == 64
    assert math.isfinite(fitted["floor"]["frame_frechet"])
    assert train_variant(params, "clips", tmp_path)["steps"] == 4
    out = sample_variant(params, "clips", tmp_path)
    saved = torch.load(out["samples"], weights_only=True)
    assert saved["x"].shape == (64, 8, 1, 16, 16)  # sample.n = 200, capped at n_train
    for name in ("grid.png", "content_motion.png"):
        assert (out["dir"] / name).is_file()
    metrics = evaluate_variant(params, "clips", tmp_path)
    assert metrics == pytest.approx(json.loads(Paths(tmp_path).metrics("clips").read_text()))
    assert metrics["n_samples"] == 64 and metrics["n_reference"] == 24
    for key in ("frame_frechet", "class_consistency", "frame_class_kl", "frame_motion"):
        assert math.isfinite(metrics[key]) and metrics[f"{key}_ci_low"] <= metrics[f"{key}_ci_high"]
    assert 0 <= metrics["class_consistency_ci_low"] <= metrics["class_consistency_ci_high"] <= 1
