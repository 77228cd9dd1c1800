"""Nothing lost, nothing corrupted: a failed rerun keeps the last good run, every failure ends
its MLflow run with a reason, checkpoints are sealed with a checksum and refuse hostile or
damaged files, identical content gives identical bytes, and the thread count is a setting."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from genlab import tracking
from genlab.cli import main
from genlab.config import validate_params
from genlab.errors import CheckpointError, TrainingDiverged
from genlab.families.gan.trainer import GANTrainer
from genlab.io import content_digest, torch_load, torch_save
from genlab.paths import Paths
from genlab.runtime import SMALL_MODEL_PARAMETERS, available_cores, resolve_threads
from genlab.train.loop import train_variant
from tests.conftest import tiny_params_dict, write_params


def snapshot(root: Path) -> dict[str, str]:
    """Every file under models/ and plots/ (a partial run aside) -> its SHA-256."""
    out = {}
    for top in ("models", "plots"):
        for f in sorted((root / top).rglob("*")):
            if f.is_file() and ".partial" not in str(f):
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture
def tracked(tiny_project):
    root, _ = tiny_project
    raw = tiny_params_dict(tracking=True)
    write_params(root, raw)
    return root, validate_params(raw)


def poison_from(step: int, monkeypatch) -> None:
    """GAN steps from ``step`` on report a NaN loss (a diverging run)."""
    real = GANTrainer.step

    def poisoned(self, batches):
        stats = real(self, batches)
        if self.d_updates >= step:
            stats["loss_d"] = float("nan")
        return stats

    monkeypatch.setattr(GANTrainer, "step", poisoned)


# ---------------------------------------------------------------- failed reruns
def test_a_diverging_rerun_leaves_the_finished_run_intact(tracked, monkeypatch):
    root, params = tracked
    first = train_variant(params, "dcgan_ns", root)
    before = snapshot(root)
    poison_from(3, monkeypatch)
    with pytest.raises(TrainingDiverged, match="still holds the last finished run"):
        train_variant(params, "dcgan_ns", root)
    assert snapshot(root) == before  # model.pt, state.pt, run.json and the CSV untouched
    assert not Paths(root).partial("dcgan_ns").exists()  # a diverged run is not resumable
    runs = {r.info.run_id: r for r in tracking.runs(params.tracking, root)}
    assert runs[first["run_id"]].info.status == "FINISHED"
    (failed,) = [r for r in runs.values() if r.info.run_id != first["run_id"]]
    assert failed.info.status == "FAILED"
    assert "diverged at step 3" in failed.data.tags["failure"]


def test_a_full_disk_mid_run_keeps_the_last_run_and_a_resumable_partial(tracked, monkeypatch):
    """An OSError after the first checkpoint: exit 1 without a traceback, the finished run is
    untouched, the partial run resumes to the same bits as an uninterrupted run, and the
    resumed run finishes without the failure tag."""
    root, params = tracked
    assert main(["--params", str(root / "params.yaml"), "train", "dcgan_ns"]) == 0
    straight = torch_load(Paths(root).model("dcgan_ns"), "model")
    before = snapshot(root)

    import genlab.train.loop as loop

    real_save = loop.save_model

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop, "save_model", full_disk)
    assert main(["--params", str(root / "params.yaml"), "train", "dcgan_ns"]) == 1
    assert snapshot(root) == before
    partial = Paths(root).partial("dcgan_ns")
    assert torch_load(partial / "state.pt", "state")["step"] == 4
    (failed,) = [r for r in tracking.runs(params.tracking, root) if r.info.status == "FAILED"]
    assert "No space left on device" in failed.data.tags["failure"]
    assert "--resume" in failed.data.tags["failure"]

    monkeypatch.setattr(loop, "save_model", real_save)
    assert main(["--params", str(root / "params.yaml"), "train", "dcgan_ns", "--resume"]) == 0
    assert not partial.exists()
    resumed = torch_load(Paths(root).model("dcgan_ns"), "model")
    for key, value in straight["modules"]["G"].items():
        assert torch.equal(resumed["modules"]["G"][key], value), key
    (run,) = [
        r for r in tracking.runs(params.tracking, root) if r.info.run_id == failed.info.run_id
    ]
    assert run.info.status == "FINISHED" and "failure" not in run.data.tags


def test_an_interrupt_ends_the_run_killed(tracked, monkeypatch):
    root, params = tracked
    real = GANTrainer.step

    def interrupted(self, batches):
        if self.d_updates >= 3:
            raise KeyboardInterrupt
        return real(self, batches)

    monkeypatch.setattr(GANTrainer, "step", interrupted)
    assert main(["--params", str(root / "params.yaml"), "train", "dcgan_ns"]) == 130
    (run,) = tracking.runs(params.tracking, root)
    assert run.info.status == "KILLED" and "KeyboardInterrupt" in run.data.tags["failure"]
    assert not Paths(root).model_dir("dcgan_ns").exists()  # nothing published
    assert (Paths(root).partial("dcgan_ns") / "state.pt").exists()


def test_a_bogus_tracking_uri_writes_nothing(tracked, capsys):
    root, _ = tracked
    train_variant(validate_params(tiny_params_dict()), "dcgan_ns", root)
    before = snapshot(root)
    code = main(["--params", str(root / "params.yaml"), "-S", "tracking.uri=nope://x",
                 "train", "dcgan_ns"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "tracking.uri" in err and "nope://x" in err and "Traceback" not in err
    assert snapshot(root) == before


def test_resume_refuses_another_seed(tiny_project):
    root, params = tiny_project
    train_variant(params, "dcgan_ns", root)
    other = validate_params({**tiny_params_dict(), "seed": 7})
    with pytest.raises(CheckpointError, match="seed 0 -> 7"):
        train_variant(other, "dcgan_ns", root, resume=True)


# ---------------------------------------------------------------- checkpoint integrity
STATE = {"step": 3, "w": torch.arange(64, dtype=torch.float32), "nested": {"k": (1, 2.5, None)}}


def test_identical_content_gives_identical_bytes(tmp_path):
    a, b = torch_save(STATE, tmp_path / "a.pt"), torch_save(STATE, tmp_path / "other-name.pt")
    assert a.read_bytes() == b.read_bytes()
    loaded = torch_load(a, "state")
    assert loaded.keys() == STATE.keys() and torch.equal(loaded["w"], STATE["w"])


def test_a_flipped_bit_is_caught_by_the_checksum(tmp_path):
    path = torch_save(STATE, tmp_path / "state.pt")
    data = bytearray(path.read_bytes())
    at = data.find(STATE["w"].numpy().tobytes())  # the tensor's raw bytes inside the zip
    assert at > 0
    data[at + 21] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"state\.pt is corrupted"):
        torch_load(path, "training state")


def test_digest_sees_types_and_order():
    assert content_digest({"a": 1}) != content_digest({"a": 1.0})
    assert content_digest({"a": 1, "b": 2}) != content_digest({"b": 2, "a": 1})
    assert content_digest([torch.zeros(2)]) != content_digest([torch.zeros(2, 1)])


class Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "cannot be read"),
        (b"\xff" * 4096, "cannot be read"),
        (pickle.dumps(Hostile(), protocol=2), "refused"),
        ("truncated", "cannot be read"),
        ("hostile_zip", "refused"),
        ("unsealed", "no sha256 checksum"),
    ],
    ids=["empty", "ff-bytes", "hostile-pickle", "truncated", "hostile-zip", "unsealed"],
)
def test_damaged_or_hostile_files_are_refused_by_name(tmp_path, content, expected):
    path = tmp_path / "state.pt"
    if content == "truncated":
        torch_save(STATE, path)
        path.write_bytes(path.read_bytes()[:300])
    elif content == "hostile_zip":
        torch.save({"x": Hostile()}, path)
    elif content == "unsealed":
        torch.save(STATE, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        torch_load(path, "training state")
    message = str(info.value)
    assert expected in message and str(path) in message
    assert "weights_only" not in message


def test_resume_from_a_damaged_state_exits_2_naming_the_file(tiny_project, capsys):
    root, params = tiny_project
    write_params(root, tiny_params_dict())
    train_variant(params, "dcgan_ns", root)
    state = Paths(root).state("dcgan_ns")
    before = snapshot(root)
    for damage in (b"", state.read_bytes()[:1000]):
        state.write_bytes(damage)
        before[str(state.relative_to(root))] = hashlib.sha256(damage).hexdigest()
        assert main(["--params", str(root / "params.yaml"), "train", "dcgan_ns", "--resume"]) == 2
        err = capsys.readouterr().err
        assert "state.pt" in err and "Traceback" not in err
        assert snapshot(root) == before


def test_a_state_of_the_wrong_shape_exits_2(tiny_project, capsys):
    root, params = tiny_project
    write_params(root, tiny_params_dict())
    train_variant(params, "dcgan_ns", root)
    state_path = Paths(root).state("dcgan_ns")
    state = torch_load(state_path, "state")
    key = next(iter(state["nets"]["G"]))
    state["nets"]["G"][key] = torch.zeros(3, 3)
    torch_save(state, state_path)
    assert main(["--params", str(root / "params.yaml"), "train", "dcgan_ns", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this variant" in err and "state.pt" in err


# ---------------------------------------------------------------- threads
def test_threads_auto_is_one_for_small_models_and_a_setting_wins():
    assert resolve_threads("auto", 1_000) == 1
    assert resolve_threads("auto", SMALL_MODEL_PARAMETERS) == available_cores()
    assert resolve_threads(3, 1_000) == 3


def test_training_uses_the_threads_setting_and_records_it(tiny_project):
    root, _ = tiny_project
    previous = torch.get_num_threads()
    try:
        train_variant(validate_params({**tiny_params_dict(), "threads": 2}), "dcgan_ns", root)
        assert torch.get_num_threads() == 2
        assert torch_load(Paths(root).state("dcgan_ns"), "state")["threads"] == 2
        with pytest.raises(CheckpointError, match="threads 2 -> 1"):
            train_variant(validate_params(tiny_params_dict()), "dcgan_ns", root, resume=True)
    finally:
        torch.set_num_threads(previous)
