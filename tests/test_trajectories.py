"""Trajectories (Gupta et al. 2018, Social GAN): the social-force data (Helbing & Molnar 1995) by
hand and by its properties, minADE / minFDE and the constant-velocity baseline by hand, the
variety loss by hand, the pooling's symmetry, the seeded sampler, deterministic training with an
exact resume, the family's dataset rule, and a tiny end-to-end run through the library API."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data.trajectories import (
    DT,
    RANGE,
    TAU,
    TrajectoriesCfg,
    driving_force,
    repulsion_force,
    trajectories,
)
from genlab.families import FAMILIES
from genlab.families.trajectory_gan import TrajectorySampler, variety_loss
from genlab.families.trajectory_gan.nets import (
    SocialPooling,
    TrajectoryDiscriminator,
    TrajectoryGenerator,
    displacements,
)
from genlab.metrics.scores import Context, score
from genlab.metrics.trajectory import (
    _constant_velocity_baseline,
    constant_velocity,
    min_displacements,
)
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, step_rows, tiny_params_dict, training_snapshot


def data(seed: int = 0, **options):
    cfg = {**TrajectoriesCfg().model_dump(), "n_train": 40, "n_test": 20, **options}
    return trajectories(cfg, None, seed)


def min_distance(paths: torch.Tensor) -> torch.Tensor:
    """Per scene, the least distance between two of its agents over all frames."""
    d = (paths[:, :, None] - paths[:, None]).norm(dim=-1)  # (N, A, A, T)
    eye = torch.eye(paths.shape[1], dtype=torch.bool)[None, :, :, None]
    return d.masked_fill(eye, math.inf).amin(dim=(1, 2, 3))


# ---------------------------------------------------------------- the data
def test_fields_shapes_and_meta():
    train, test, meta = data(agents=3)
    assert train["x"].shape == (40, 3, 12, 2) and train["observed"].shape == (40, 3, 8, 2)
    assert test["x"].shape == (20, 3, 12, 2) and train["x"].dtype == torch.float32
    assert torch.equal(train["future"], train["x"]) and torch.equal(test["future"], test["x"])
    assert meta["source_fields"] == ["observed", "future"] and meta["kind"] == "trajectory"
    assert meta["shape"] == [3, 12, 2] and (meta["obs_len"], meta["pred_len"]) == (8, 12)
    assert meta["dt"] == 0.4 and meta["agents"] == 3
    assert (meta["n_train"], meta["n_test"]) == (40, 20)


def test_the_observed_path_continues_into_the_future_at_the_preferred_speed():
    train, _, _ = data(n_train=200)
    paths = torch.cat([train["observed"], train["x"]], dim=2)
    steps = paths.diff(dim=2).norm(dim=-1)
    assert float(steps.mean()) == pytest.approx(1.3 * DT, rel=0.2)
    # the step from the last observed to the first future position is like its neighbours
    # (the agents slow down there: the crossing near the centre), no jump between the parts
    join = (train["x"][:, :, 0] - train["observed"][:, :, -1]).norm(dim=-1)
    assert torch.equal(join, steps[:, :, 7])
    assert float(join.mean()) == pytest.approx(float(steps[:, :, [6, 8]].mean()), rel=0.15)
    assert steps.max() <= 1.3 * 1.2 * 1.3 * DT + 1e-4  # the speed cap: 1.3 v0, v0 <= 1.2 speed


def test_a_lone_agent_without_noise_walks_straight_at_its_preferred_speed():
    train, _, _ = data(agents=1, noise=0.0, speed=1.0)
    paths = torch.cat([train["observed"], train["x"]], dim=2)[:, 0].double()  # (N, T, 2)
    steps = paths.diff(dim=1)
    lengths = steps.norm(dim=-1)
    assert_close(lengths, lengths[:, :1].expand_as(lengths), atol=1e-5, rtol=0)
    assert ((lengths[:, 0] >= 0.8 * DT - 1e-5) & (lengths[:, 0] <= 1.2 * DT + 1e-5)).all()
    cross = steps[:, 1:, 0] * steps[:, :1, 1] - steps[:, 1:, 1] * steps[:, :1, 0]
    assert cross.abs().max() < 1e-5  # every step in the first one's direction


def test_repulsion_keeps_agents_apart():
    """Scenes with the same starts, goals and noise: with the social force fewer of them bring
    two agents within 0.5 m than without it."""
    with_force, _, _ = data(n_train=200)
    without, _, _ = data(n_train=200, repulsion=0.0)
    close = lambda s: (min_distance(torch.cat([s["observed"], s["x"]], 2)) < 0.5).float().mean()  # noqa: E731
    assert close(with_force) < 0.05 and close(without) > 0.5
    assert torch.equal(with_force["observed"][:, :, 0], without["observed"][:, :, 0])


def test_repulsion_force_by_hand():
    """Agents 0 at (0, 0) and 1 at (1, 0), both heading +x: 1 is in 0's view (weight 1), 0 is
    behind 1 (weight c = 0.5); each is pushed away from the other by A exp(-d / B)."""
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    f = repulsion_force(pos, e, strength=4.0)
    push = 4.0 * math.exp(-1.0 / RANGE)
    assert_close(f, torch.tensor([[-push, 0.0], [0.5 * push, 0.0]], dtype=torch.float64))
    # a third agent 3 m above agent 0 (at 90 degrees to e, within the 100-degree view) adds
    pos3 = torch.cat([pos, torch.tensor([[0.0, 3.0]], dtype=torch.float64)])
    e3 = torch.cat([e, torch.tensor([[1.0, 0.0]], dtype=torch.float64)])
    f3 = repulsion_force(pos3, e3, strength=4.0)
    assert_close(f3[0], f[0] + torch.tensor([0.0, -4.0 * math.exp(-3.0 / RANGE)],
                                            dtype=torch.float64))  # fmt: skip
    assert_close(repulsion_force(pos, e, strength=0.0), torch.zeros(2, 2, dtype=torch.float64))


def test_driving_force_by_hand():
    """(v0 e - v) / tau toward the goal; within v0 tau of it the desired speed is dist / tau."""
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    goal = torch.tensor([[3.0, 4.0], [0.2, 0.0]])
    vel = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    force, e = driving_force(pos, vel, goal, torch.tensor([1.0, 1.0]))
    assert_close(e, torch.tensor([[0.6, 0.8], [1.0, 0.0]]))
    assert_close(force, torch.tensor([[(0.6 - 1.0) / TAU, 0.8 / TAU], [0.2 / TAU / TAU, 0.0]]))


def test_scenes_are_deterministic_and_seeded():
    a, at, _ = data(0)
    b, bt, _ = data(0)
    c, _, _ = data(1)
    assert all(torch.equal(a[k], b[k]) and torch.equal(at[k], bt[k]) for k in a)
    assert not torch.equal(a["x"], c["x"])
    assert not torch.equal(a["observed"][:20], at["observed"])  # train and test differ


@pytest.mark.parametrize(
    "key, value",
    [("agents", 0), ("n_train", 5), ("speed", 0.0), ("repulsion", -1.0), ("noise", -0.1),
     ("agents", "four"), ("wind", 1.0)],
)  # fmt: skip
def test_bad_options_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"trajectories.*{key}"):
        validate_params({"data": {"trajectories": {key: value}}})


# ---------------------------------------------------------------- minADE / minFDE
def hand_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """2 agents, k = 2, 3 steps. Agent 0: prediction 0 is 1 m off at every step (ADE 1, FDE 1),
    prediction 1 only at the end, by (3, 4) (ADE 5/3, FDE 5). Agent 1: prediction 0 is exact but
    3 m off at the end (ADE 1, FDE 3), prediction 1 is 2 m off throughout (ADE 2, FDE 2): its
    best ADE and best FDE come from different predictions."""
    t = torch.arange(1.0, 4.0)
    future = torch.stack([torch.stack([t, 0 * t], -1), torch.stack([0 * t, t], -1)])  # (2, 3, 2)
    off = torch.zeros(2, 2, 3, 2)  # (k, A, T, 2)
    off[0, 0] = torch.tensor([0.0, 1.0])
    off[1, 0, -1] = torch.tensor([3.0, 4.0])
    off[0, 1, -1] = torch.tensor([0.0, 3.0])
    off[1, 1] = torch.tensor([2.0, 0.0])
    return future[None] + off[None], future[None]


def test_min_ade_and_min_fde_by_hand():
    pred, future = hand_scene()
    ade, fde = min_displacements(pred, future)
    assert_close(ade, torch.tensor([(1.0 + 1.0) / 2], dtype=torch.float64))
    assert_close(fde, torch.tensor([(1.0 + 2.0) / 2], dtype=torch.float64))
    single_ade, single_fde = min_displacements(pred[:, 1], future)  # k = 1: plain ADE / FDE
    assert_close(single_ade, torch.tensor([(5 / 3 + 2.0) / 2], dtype=torch.float64))
    assert_close(single_fde, torch.tensor([(5.0 + 2.0) / 2], dtype=torch.float64))


def test_the_metric_averages_scenes_and_its_bootstrap_resamples_them():
    pred, future = hand_scene()
    pred = torch.cat([pred, pred + 0.0, future[:, None].expand(-1, 2, -1, -1, -1)])
    future = future.expand(3, -1, -1, -1)
    params = validate_params(tiny_params_dict())
    ctx = Context(pred, {"x": future}, {"kind": "trajectory"}, None, params,
                  source={"future": future})  # fmt: skip
    out = score(ctx, ["displacement"], replicates=50, seed=0)
    assert out["min_ade"] == pytest.approx((1 + 1 + 0) / 3)
    assert out["min_fde"] == pytest.approx((1.5 + 1.5 + 0) / 3)
    assert out["k"] == 2 and "k_ci_low" not in out
    assert 0 <= out["min_ade_ci_low"] <= out["min_ade"] <= out["min_ade_ci_high"]
    view = ctx.resample(torch.tensor([2, 2, 0]), torch.tensor([0, 1, 2]))
    values = score(view, ["displacement"])
    assert values["min_ade"] == pytest.approx(1 / 3) and values["min_fde"] == pytest.approx(0.5)


def test_constant_velocity_by_hand():
    observed = torch.tensor([[[[0.0, 0.0], [1.0, 0.0], [2.0, 1.0]]]])  # last step (1, 1)
    pred = constant_velocity(observed, 3)
    assert_close(pred, torch.tensor([[[[3.0, 2.0], [4.0, 3.0], [5.0, 4.0]]]]))


def test_the_constant_velocity_baseline_answers_the_first_test_scenes():
    _, test, meta = data()
    name, saved = _constant_velocity_baseline({}, test, meta, sample_n=7, seed=0)
    assert name == "constant velocity" and saved["x"].shape == (7, 1, 4, 12, 2)
    assert torch.equal(saved["source"]["future"], test["future"][:7])
    assert torch.equal(saved["source"]["observed"], test["observed"][:7])
    last = test["observed"][:7, :, -1]
    assert_close(saved["x"][:, 0, :, 0], 2 * last - test["observed"][:7, :, -2])
    _, all_rows = _constant_velocity_baseline({}, test, meta, sample_n=1000, seed=0)
    assert len(all_rows["x"]) == 20  # at most the test split


# ---------------------------------------------------------------- the model
def test_variety_loss_by_hand():
    """One scene, k = 2, 2 agents, 2 steps. Squared errors averaged over the steps: agent 0 has
    1 (k=0) and 4 (k=1), agent 1 has 9 and 0. Per agent: (1 + 0) / 2; per scene: the sums are
    10 and 4, so the best is k = 1, 4 / 2 agents."""
    future = torch.zeros(1, 2, 2, 2)
    pred = torch.zeros(1, 2, 2, 2, 2)
    pred[0, 0, 0] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # squared errors 1, 1
    pred[0, 1, 0] = torch.tensor([[2.0, 0.0], [0.0, 2.0]])  # 4, 4
    pred[0, 0, 1] = torch.tensor([[3.0, 0.0], [0.0, 3.0]])  # 9, 9
    assert_close(variety_loss(pred, future, "agent"), torch.tensor(0.5))
    assert_close(variety_loss(pred, future, "scene"), torch.tensor(2.0))
    pred.requires_grad_(True)
    variety_loss(pred, future, "agent").backward()
    assert pred.grad[0, 1, 0].abs().sum() == 0 and pred.grad[0, 0, 1].abs().sum() == 0  # not best


def test_pooling_is_the_max_over_the_other_agents_in_any_order():
    torch.manual_seed(0)
    pool = SocialPooling(hidden=5, embed=3, out=4)
    h, pos = torch.randn(2, 4, 5), torch.randn(2, 4, 2)
    out = pool(h, pos)
    for s in range(2):
        for i in range(4):
            others = [pool.mlp(torch.cat([pool.embed(pos[s, j] - pos[s, i]), h[s, j]]))
                      for j in range(4) if j != i]  # fmt: skip
            assert_close(out[s, i], torch.stack(others).amax(0))
    perm = torch.tensor([2, 0, 3, 1])
    assert_close(pool(h[:, perm], pos[:, perm]), out[:, perm])
    assert torch.equal(pool(h[:, :1], pos[:, :1]), torch.zeros(2, 1, 4))  # a lone agent


def test_generator_and_discriminator_read_relative_motion_only():
    """Shapes; a scene moved as a whole is predicted moved alike and judged alike; other agents
    change an agent's prediction (the pooling), its noise changes it too."""
    torch.manual_seed(0)
    G, D = TrajectoryGenerator(12, 3, 4, 8), TrajectoryDiscriminator(4, 8)
    observed, z = torch.randn(2, 3, 8, 2).cumsum(2), torch.randn(2, 5, 3, 3)
    fake = G(observed, z)
    assert fake.shape == (2, 5, 3, 12, 2) and D(observed, fake[:, 0]).shape == (2, 3)
    shift = torch.tensor([5.0, -2.0])
    assert_close(G(observed + shift, z), fake + shift, atol=1e-5, rtol=0)
    assert_close(D(observed + shift, fake[:, 0] + shift), D(observed, fake[:, 0]))
    moved = observed.clone()
    moved[:, 2] += 1.0
    assert not torch.allclose(G(moved, z)[:, :, 0], fake[:, :, 0])
    assert not torch.allclose(fake[:, 0], fake[:, 1])
    assert_close(displacements(torch.tensor([[0.0, 0.0], [1.0, 2.0], [4.0, 2.0]])),
                 torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 0.0]]))  # fmt: skip


def variant(**overrides):
    cfg = {"dataset": "trajectories", "family": "trajectory_gan", "arch": "social_lstm",
           "latent_dim": 4, "width": 8, "steps": 4, "batch_size": 8, "variety_k": 3,
           "d_steps": 2, "optimizer": {"lr": 1e-3, "betas": [0.9, 0.999]}, **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


def steps(cfg, n: int, state: dict | None = None):
    train, _, meta = data(agents=3)
    trainer, batches, _, _ = build_trainer(cfg, train, meta, 0, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    return trainer, batches, step_rows(trainer, batches, n)


def test_training_steps_are_deterministic_and_resume_exactly():
    cfg = variant()
    a, _, stats_a = steps(cfg, 4)
    _, _, stats_b = steps(cfg, 4)
    assert stats_a == stats_b
    assert {"loss_d", "loss_g", "loss_g_adversarial", "loss_variety", "d_real"} <= set(stats_a[0])
    assert stats_a[0]["loss_g"] == pytest.approx(
        stats_a[0]["loss_g_adversarial"] + stats_a[0]["loss_variety"], rel=1e-6
    )
    first, batches, _ = steps(cfg, 2)
    resumed, _, _ = steps(cfg, 2, state=training_snapshot(first, batches))
    for key in ("G", "D"):
        after = resumed.modules[key].state_dict()
        for name, p in a.modules[key].state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_the_generator_learns_the_training_futures():
    """With the variety loss weighted 10, 40 steps cut it to under half."""
    cfg = variant(variety_weight=10.0, width=16, optimizer={"lr": 1e-2, "betas": [0.9, 0.999]})
    _, _, stats = steps(cfg, 40)
    first = sum(s["loss_variety"] for s in stats[:3]) / 3
    last = sum(s["loss_variety"] for s in stats[-5:]) / 5
    assert last < 0.5 * first


def test_sampler_answers_the_first_test_scenes_with_seeded_noise():
    torch.manual_seed(0)
    G = TrajectoryGenerator(12, 3, 4, 8).eval()
    _, test, _ = data(agents=3)
    sampler = TrajectorySampler(G, k=4)

    def run(seed: int, n: int = 6):
        inputs = sampler.inputs(seed, n, "cpu", data=test)
        return inputs, sampler.generate(inputs, batch_size=4)

    inputs, x = run(5)
    assert x.shape == (6, 4, 3, 12, 2)
    assert torch.equal(x, run(5)[1]) and not torch.equal(x, run(6)[1])
    saved = sampler.saved(inputs)
    assert torch.equal(saved["source"]["future"], test["future"][:6])
    assert torch.equal(saved["source"]["observed"], test["observed"][:6])
    assert len(run(5, n=1000)[1]) == 20  # at most the test split
    assert sampler.interpolation(inputs, 2, 3, 4) is None
    with pytest.raises(ConfigError, match="test split"):
        sampler.inputs(0, 4, "cpu", data=None)


def test_family_declarations_and_defaults():
    family = FAMILIES.get("trajectory_gan")
    assert family.generator == "G" and family.saved_modules == ("G",)
    cfg = variant()
    assert (cfg.loss, cfg.variety_k, cfg.eval_k, cfg.variety_min) == ("nonsaturating", 3, 20,
                                                                      "agent")  # fmt: skip
    assert cfg.variety_weight == 1.0 and "Trajectories" in family.sections


def test_a_dataset_without_trajectories_is_refused_at_params_load():
    with pytest.raises(ConfigError, match="dataset = 'digits'.*allowed.*trajectories"):
        variant(dataset="digits")
    with pytest.raises(ConfigError, match="variety_k"):
        variant(variety_k=0)


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_prepare_fit_evaluator_train_sample_evaluate(tmp_path):
    """A tiny project through the library API: the evaluator stage writes the constant-velocity
    baseline and no floor; the variant's min_ade comes with its interval."""
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.paths import Paths
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    raw = tiny_params_dict()
    raw["data"] = {"trajectories": {"n_train": 48, "n_test": 24, "agents": 3}}
    raw["variants"] = {"traj": {"dataset": "trajectories", "family": "trajectory_gan",
                                "arch": "social_lstm", "latent_dim": 4, "width": 8,
                                "variety_k": 3, "eval_k": 5}}  # fmt: skip
    raw["sample"]["n"] = 40
    raw["evaluate"]["metrics"] = ["displacement"]
    params = validate_params(raw)
    prepare_dataset("trajectories", params.dataset_cfg("trajectories"), tmp_path, params.seed)
    ev = fit_evaluator_stage(params, "trajectories", tmp_path)
    assert "floor" not in ev and ev["baseline_name"] == "constant velocity"
    assert ev["baseline"]["k"] == 1 and ev["baseline"]["n_samples"] == 24
    assert ev["baseline"]["min_ade_ci_low"] <= ev["baseline"]["min_ade"]
    paths = Paths(tmp_path)
    assert torch.load(paths.evaluator("trajectories"), weights_only=True)["kind"] == "trajectory"

    train_variant(params, "traj", tmp_path)
    out = sample_variant(params, "traj", tmp_path)
    saved = torch.load(paths.samples("traj"), weights_only=True)
    assert saved["x"].shape == (24, 5, 3, 12, 2)
    assert set(saved["source"]) == {"observed", "future"}
    assert (out["dir"] / "grid.png").is_file() and (out["dir"] / "best_of_k.png").is_file()
    metrics = evaluate_variant(params, "traj", tmp_path)
    assert json.loads(paths.metrics("traj").read_text()) == pytest.approx(metrics)
    assert metrics["k"] == 5 and metrics["n_samples"] == 24
    assert metrics["min_ade_ci_low"] <= metrics["min_ade"] <= metrics["min_ade_ci_high"]
    assert metrics["min_fde"] > 0
