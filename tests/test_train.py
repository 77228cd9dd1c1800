"""Training: deterministic, resumable bit-exactly, stops clearly on NaN, EMA, statistics CSV."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch

from genlab.config import validate_params
from genlab.errors import TrainingDiverged
from genlab.paths import Paths
from genlab.train.checkpoint import CheckpointError, load_model
from genlab.train.loop import train_variant
from tests.conftest import tiny_params_dict


def tensors(obj, prefix=""):
    """Every tensor in a nested checkpoint, by path."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}/{i}")


def assert_identical(a, b):
    ta, tb = dict(tensors(a)), dict(tensors(b))
    assert ta.keys() == tb.keys() and len(ta) > 5
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def load_state(root, name):
    return torch.load(Paths(root).state(name), weights_only=True)


def params_with(**variant_overrides):
    """Tiny params with the overrides on every variant they apply to (d_steps: GANs only)."""
    raw = tiny_params_dict()
    for cfg in raw["variants"].values():
        cfg.update({k: v for k, v in variant_overrides.items()
                    if not (k == "d_steps" and cfg["family"] == "vae")})  # fmt: skip
    return validate_params(raw)


def read_csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", ["dcgan_ns", "vae", "ring_gan"])
def test_same_params_give_identical_state(tiny_project, name):
    root, params = tiny_project
    train_variant(params, name, root)
    first = load_state(root, name)
    shutil.rmtree(root / "models" / name)
    train_variant(params, name, root)
    assert_identical(first, load_state(root, name))
    assert first["step"] == 4


@pytest.mark.parametrize("name", ["dcgan_ns", "vae"])
def test_resume_is_bit_exact(tiny_project, name):
    """2 steps, then --resume to 4 == 4 steps straight (weights, optimizers, RNG, batches)."""
    root, _ = tiny_project
    params = params_with(ema=0.9, d_steps=2)
    train_variant(params, name, root)
    straight = load_state(root, name)
    straight_rows = read_csv(Paths(root).train_csv(name))
    straight_model = torch.load(Paths(root).model(name), weights_only=True)
    shutil.rmtree(root / "models" / name)

    train_variant(params_with(ema=0.9, d_steps=2, steps=2), name, root)
    assert load_state(root, name)["step"] == 2
    train_variant(params, name, root, resume=True)
    resumed = load_state(root, name)
    assert_identical(straight, resumed)
    assert_identical(
        straight_model["modules"],
        torch.load(Paths(root).model(name), weights_only=True)["modules"],
    )
    rows = read_csv(Paths(root).train_csv(name))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    for a, b in zip(rows, straight_rows, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }


def test_resume_refuses_changed_params_and_missing_state(tiny_project):
    root, params = tiny_project
    with pytest.raises(CheckpointError, match="does not exist"):
        train_variant(params, "dcgan_ns", root, resume=True)
    train_variant(params, "dcgan_ns", root)
    changed = params_with(optimizer={"lr": 0.1})
    with pytest.raises(CheckpointError, match=r"params changed since it was written \(optimizer\)"):
        train_variant(changed, "dcgan_ns", root, resume=True)


def test_a_state_written_before_an_option_existed_resumes(tiny_project):
    """Keys a newer genlab declares (here pix2pix's l1_weight and SRGAN's bicubic_skip) are
    missing from an older state.pt's config; at their defaults they are no change."""
    from genlab.io import torch_load, torch_save

    root, _ = tiny_project
    train_variant(params_with(steps=2), "dcgan_ns", root)
    path = Paths(root).state("dcgan_ns")
    state = torch_load(path, "training state")
    for key in ("l1_weight", "bicubic_skip"):
        del state["config"][key]
    torch_save(state, path)
    train_variant(params_with(steps=4), "dcgan_ns", root, resume=True)
    assert load_state(root, "dcgan_ns")["step"] == 4
    state = torch_load(path, "training state")
    state["config"]["l1_weight"] = 5.0  # not the default: a change
    torch_save(state, path)
    with pytest.raises(CheckpointError, match=r"params changed since it was written \(l1_weight"):
        train_variant(params_with(steps=6), "dcgan_ns", root, resume=True)


def test_ema_weights_go_into_model_pt(tiny_project):
    root, _ = tiny_project
    train_variant(params_with(ema=0.5), "dcgan_ns", root)
    state = load_state(root, "dcgan_ns")
    model = torch.load(Paths(root).model("dcgan_ns"), weights_only=True)
    assert_identical(model["modules"]["G"], state["ema"])
    assert any(not torch.equal(state["ema"][k], v) for k, v in state["nets"]["G"].items())
    net, ckpt = load_model(Paths(root).model("dcgan_ns"))
    assert ckpt["config"]["ema"] == 0.5 and not net.training


def test_statistics_csv_has_every_step_and_column(tiny_project):
    root, params = tiny_project
    train_variant(params, "dcgan_ns", root)
    rows = read_csv(Paths(root).train_csv("dcgan_ns"))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == ["step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d",
                             "grad_norm_g", "seconds"]  # fmt: skip
    assert all(0 <= float(r["d_real"]) <= 1 for r in rows)
    assert float(rows[-1]["seconds"]) >= float(rows[0]["seconds"]) > 0


def test_nan_stops_the_run_and_marks_mlflow_failed(tiny_project, monkeypatch):
    from genlab import tracking
    from genlab.families.gan.trainer import GANTrainer

    root, _ = tiny_project
    raw = tiny_params_dict(tracking=True)
    params = validate_params(raw)
    real_step = GANTrainer.step

    def poisoned(self, batches):
        stats = real_step(self, batches)
        if self.d_updates >= 3:
            stats["loss_d"] = float("nan")
        return stats

    monkeypatch.setattr(GANTrainer, "step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"'dcgan_ns' diverged at step 3: loss_d = nan"):
        train_variant(params, "dcgan_ns", root)
    (run,) = tracking.runs(params.tracking, root)
    assert run.info.status == "FAILED"
    assert "diverged at step 3" in run.data.tags["failure"]
    assert not Paths(root).model("dcgan_ns").exists()


def test_read_stats_gives_what_item_gives_with_one_copy():
    from genlab.train.loop import read_stats

    values = {"f32": torch.tensor(0.1), "bf16": torch.tensor(1 / 3, dtype=torch.bfloat16),
              "f64": torch.tensor(2 / 3, dtype=torch.float64), "int": torch.tensor(7),
              "nan": torch.tensor(float("nan")), "plain": 0.25}  # fmt: skip
    rows = [dict(values), {"f32": torch.tensor(-2.5)}]
    read_stats(rows)
    for k, v in values.items():
        expected = v.item() if isinstance(v, torch.Tensor) else v
        assert type(rows[0][k]) is type(expected), k
        assert rows[0][k] == expected or (expected != expected and rows[0][k] != rows[0][k]), k
    assert rows[1] == {"f32": -2.5}


def test_statistics_read_every_log_every_equal_the_per_step_reads(tiny_project, monkeypatch):
    """Stats stay on the device between reads; the CSV and the state are as if read every step."""
    from genlab.train import loop

    root, _ = tiny_project
    reads = []
    real = loop.read_stats
    monkeypatch.setattr(
        loop, "read_stats", lambda rows, *a: (reads.append(len(rows)), real(rows, *a))
    )
    train_variant(params_with(steps=8, log_every=1, checkpoint_every=8), "dcgan_ns", root)
    every_step = read_csv(Paths(root).train_csv("dcgan_ns"))
    state = load_state(root, "dcgan_ns")
    assert reads == [1] * 8
    reads.clear()
    train_variant(params_with(steps=8, log_every=4, checkpoint_every=8), "dcgan_ns", root)
    assert reads == [4, 4]  # one device-to-host copy per log_every steps
    batched = read_csv(Paths(root).train_csv("dcgan_ns"))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(batched) == drop(every_step) and len(batched) == 8
    assert_identical(load_state(root, "dcgan_ns")["nets"], state["nets"])


def test_a_nan_read_late_names_its_own_step(tiny_project, monkeypatch):
    """A NaN in a tensor statistic is found when the steps are read (step 4 here) and named by
    the step that produced it; the run stops before the checkpoint of that read."""
    from genlab.families.gan.trainer import GANTrainer

    root, _ = tiny_project
    real_step = GANTrainer.step

    def poisoned(self, batches):
        stats = real_step(self, batches)
        if self.g_updates == 2:
            stats["loss_g"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setattr(GANTrainer, "step", poisoned)
    params = params_with(steps=8, log_every=4, checkpoint_every=4)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 2: loss_g = nan"):
        train_variant(params, "dcgan_ns", root)
    assert not Paths(root).partial("dcgan_ns").exists()


def test_the_checkpoint_records_device_and_compile_mode(tiny_project):
    root, params = tiny_project
    train_variant(params, "dcgan_ns", root)
    state = load_state(root, "dcgan_ns")
    assert (state["device"], state["compile"]) == ("cpu", "none")


@pytest.mark.slow
def test_a_compiled_run_trains_and_resumes_only_compiled(tiny_project):
    """compile: default (torch.compile, inductor on CPU) trains with the same state layout;
    resuming it uncompiled is refused (the bits depend on it)."""
    root, _ = tiny_project
    raw = tiny_params_dict()
    raw["compile"] = "default"
    compiled = validate_params(raw)
    train_variant(compiled, "dcgan_ns", root)
    state = load_state(root, "dcgan_ns")
    rows = read_csv(Paths(root).train_csv("dcgan_ns"))
    assert len(rows) == 4 and all(float(r["loss_d"]) == float(r["loss_d"]) for r in rows)
    eager_root = root / "eager"
    shutil.copytree(root / "data", eager_root / "data")
    train_variant(params_with(), "dcgan_ns", eager_root)
    eager = load_state(eager_root, "dcgan_ns")
    assert state["nets"]["G"].keys() == eager["nets"]["G"].keys()
    raw["variants"]["dcgan_ns"]["steps"] = 6
    with pytest.raises(CheckpointError, match="compile default -> none"):
        train_variant(params_with(steps=6), "dcgan_ns", root, resume=True)
    train_variant(validate_params(raw), "dcgan_ns", root, resume=True)
    assert load_state(root, "dcgan_ns")["step"] == 6


@pytest.mark.slow
def test_compile_leaves_d_eager_under_a_gradient_penalty(tiny_project):
    """torch.compile's autograd has no double backward: with R1 (or R2, the gradient penalty)
    only G is compiled, and the run trains."""
    from genlab.train.loop import build_training, compiled_modules

    root, _ = tiny_project
    raw = tiny_params_dict()
    raw["compile"] = "default"
    raw["variants"]["dcgan_ns"].update(d_norm="none", regularizers={"r1": {"weight": 1.0}})
    params = validate_params(raw)
    cfg = params.variant("dcgan_ns")
    trainer, *_ = build_training(cfg, 0, root, "cpu", 1)
    assert compiled_modules(cfg, trainer, "G", "default") == [trainer.modules["G"]]
    assert len(compiled_modules(params_with().variant("dcgan_ns"), trainer, "G", "default")) == 2
    train_variant(params, "dcgan_ns", root)
    rows = read_csv(Paths(root).train_csv("dcgan_ns"))
    assert len(rows) == 4 and all(float(r["r1_grad_norm"]) > 0 for r in rows)
