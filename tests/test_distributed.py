"""Data-parallel training (genlab.train.distributed): the gradient average against the full
batch's gradient, and ``genlab train V --nproc 2`` on 2 CPU processes with gloo: rank 0 alone
writes, the same world size and seed give the same bits, resume is exact, bad input is exit 2."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from genlab.train.distributed import World, rank_seed
from tests.conftest import tiny_params_dict, write_params

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
       "DVC_NO_ANALYTICS": "1"}  # fmt: skip


# ---------------------------------------------------------------- the collectives, 2 processes
def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)


def _rank(rank: int, size: int, rendezvous: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=size)  # fmt: skip
    try:
        world = World(rank=rank, size=size)
        net = _net()
        if rank:  # another init on rank 1: synchronize must replace it by rank 0's
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(1.0)
        world.synchronize([net])
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        world.average_gradients_before_step(opt)
        x, y = _data()
        lo, hi = world.shard(len(x))
        net.eval()  # batch norm off: the shards' mean gradient is the full batch's gradient
        loss = ((net(x[lo:hi]) - y[lo:hi]) ** 2).mean()
        loss.backward()
        opt.step()
        net.train()
        net(x[lo:hi])  # batch-norm statistics of this rank's shard ...
        world.share_state([net], [opt])  # ... replaced by rank 0's
        stats = torch.tensor([float(rank), loss.item()], dtype=torch.float64)
        world.average([stats])
        torch.save({"state": net.state_dict(), "stats": stats, "gathered": world.gather(rank)},
                   f"{out}/rank{rank}.pt")  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_two_ranks_apply_the_full_batch_update_and_share_rank0s_buffers(tmp_path: Path):
    mp.start_processes(_rank, args=(2, str(tmp_path / "rdzv"), str(tmp_path)), nprocs=2,
                       start_method="spawn")  # fmt: skip
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    # reference: one process, the whole batch of 8
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = _data()
    net.eval()
    losses = [((net(x[a:b]) - y[a:b]) ** 2).mean().item() for a, b in ((0, 4), (4, 8))]
    ((net(x) - y) ** 2).mean().backward()
    opt.step()
    net.train()
    net(x[:4])  # rank 0's shard: its batch-norm statistics are the ones every rank keeps
    for key, value in net.state_dict().items():
        torch.testing.assert_close(r0["state"][key], value, msg=key)
        assert torch.equal(r0["state"][key], r1["state"][key]), key  # identical on the ranks
    torch.testing.assert_close(r0["stats"], torch.tensor([0.5, sum(losses) / 2],
                                                         dtype=torch.float64))  # fmt: skip
    assert torch.equal(r0["stats"], r1["stats"])
    assert r0["gathered"] == r1["gathered"] == [0, 1]


def test_world_shards_and_seeds():
    assert [World(rank=r, size=4).shard(16) for r in range(4)] == [(0, 4), (4, 8), (8, 12),
                                                                   (12, 16)]  # fmt: skip
    assert World().shard(16) == (0, 16) and not World().active and World().main
    assert rank_seed(7, 0) == 7 and len({rank_seed(7, r) for r in range(8)}) == 8
    from genlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"batch_size = 16 does not split into 3 processes"):
        World(rank=0, size=3).shard(16)
    with pytest.raises(ConfigError, match=r"of at least 2 examples; allowed: a multiple of 16 "):
        World(rank=0, size=16).shard(16)  # one example a process: batch norm cannot run


def _peer_dies(rank: int, size: int, rendezvous: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=size)  # fmt: skip
    if rank == 1:
        os._exit(3)  # a rank that crashes
    from genlab.train.distributed import RankStopped

    try:
        World(rank=0, size=size).average([torch.ones(3)])
        result = "no error"
    except RankStopped as e:
        result = f"RankStopped: {e}"
    except Exception as e:  # noqa: BLE001 - recorded for the assertion
        result = f"{type(e).__name__}: {e}"
    Path(out, "rank0.txt").write_text(result)
    os._exit(0)


def test_a_collective_whose_peer_died_is_rank_stopped_not_a_backend_traceback(tmp_path: Path):
    context = mp.start_processes(_peer_dies, args=(2, str(tmp_path / "rdzv"), str(tmp_path)),
                                 nprocs=2, start_method="spawn", join=False)  # fmt: skip
    try:
        for _ in range(300):  # rank 0 notices rank 1's death within seconds
            if (tmp_path / "rank0.txt").exists():
                break
            time.sleep(0.2)
    finally:
        for process in context.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    result = (tmp_path / "rank0.txt").read_text()
    assert result.startswith("RankStopped: another process of this run stopped"), result


# ---------------------------------------------------------------- genlab train --nproc 2
def _genlab(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _snapshot(root: Path, name: str) -> dict:
    """Every tensor of state.pt and model.pt, and the statistics without the seconds."""
    from genlab.io import torch_load

    def flat(obj, prefix=""):
        if isinstance(obj, torch.Tensor):
            return {prefix: obj}
        if isinstance(obj, dict):
            return {
                k: v for key, val in obj.items() for k, v in flat(val, f"{prefix}/{key}").items()
            }
        if isinstance(obj, list | tuple):
            return {
                k: v for i, val in enumerate(obj) for k, v in flat(val, f"{prefix}/{i}").items()
            }
        return {prefix: obj}

    state = torch_load(root / "models" / name / "state.pt", "state")
    model = torch_load(root / "models" / name / "model.pt", "model")
    drop = {"seconds", "run_id", "step"}
    with (root / "plots" / "train" / f"{name}.csv").open() as f:
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
    state = {k: v for k, v in state.items() if k not in drop}
    return {"state": flat(state), "model": flat(model), "rows": rows}


def _assert_same(a: dict, b: dict) -> None:
    assert a["rows"] == b["rows"]
    for part in ("state", "model"):
        assert a[part].keys() == b[part].keys(), part
        for k, v in a[part].items():
            w = b[part][k]
            same = torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w
            assert same, f"{part} {k} differs"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    raw = tiny_params_dict(tracking=True)
    raw["train"].update(steps=6, checkpoint_every=2, log_every=1)
    write_params(root, raw)
    out = _genlab(root, "prepare", "digits")
    assert out.returncode == 0, out.stderr
    return root


@pytest.mark.slow
def test_nproc2_rank0_writes_same_bits_and_exact_resume(project: Path):
    first = _genlab(project, "train", "dcgan_ns", "--nproc", "2")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("trained dcgan_ns:") == 1  # rank 1 says nothing
    a = _snapshot(project, "dcgan_ns")
    assert a["state"]["/world_size"] == 2
    assert len([k for k in a["state"] if k.startswith("/ranks/0/rng/torch")]) == 1  # rank 1's
    assert [int(r["step"]) for r in a["rows"]] == list(range(1, 7))  # one writer, every step
    # the ranks drew different noise: rank 1's RNG state is not rank 0's
    assert not torch.equal(a["state"]["/rng/torch"], a["state"]["/ranks/0/rng/torch"])

    # a second run of 4 steps, resumed to 6, ends bit for bit where the first run ended: the
    # same world size and seed give the same bits, and resume is exact
    short = _genlab(project, "-S", "train.steps=4", "train", "dcgan_ns", "--nproc", "2")
    assert short.returncode == 0, short.stderr
    assert _snapshot(project, "dcgan_ns")["rows"] == a["rows"][:4]
    resumed = _genlab(project, "train", "dcgan_ns", "--nproc", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same(a, _snapshot(project, "dcgan_ns"))  # 4 + 2 steps == 6 steps

    # one MLflow run per training, written by rank 0 only, finished, with its world size
    db = sqlite3.connect(project / "mlflow.db")
    runs = db.execute("select run_uuid, status from runs").fetchall()
    db.close()
    assert len(runs) == 2 and {s for _, s in runs} == {"FINISHED"}

    single = _genlab(project, "train", "dcgan_ns", "--resume")  # another world size
    assert single.returncode == 2
    assert "world_size 2 -> 1: resume with --nproc 2" in single.stderr
    assert "Traceback" not in single.stderr
    _assert_same(a, _snapshot(project, "dcgan_ns"))  # nothing damaged

    # bad input found inside the processes (every rank): exit 2, its message, no traceback
    nothing = _genlab(project, "train", "vae", "--nproc", "2", "--resume")
    assert nothing.returncode == 2, nothing.stderr
    assert "does not exist; run `genlab train` first" in nothing.stderr
    assert "Traceback" not in nothing.stderr


@pytest.mark.slow
def test_nproc_bad_input_is_exit_2(project: Path, capsys):
    from genlab.cli import main

    params = str(project / "params.yaml")
    for args, message in [
        (["dcgan_ns", "--nproc", "0"], "--nproc = 0; allowed: an integer >= 1"),
        (["dcgan_ns", "--nproc", "3"], "batch_size = 16 does not split into 3 processes"),
        (["nope", "--nproc", "2"], "nope"),
    ]:
        assert main(["--params", params, "train", *args]) == 2
        assert message in capsys.readouterr().err
