"""Every family trains data-parallel: 2 CPU ranks (gloo) run one variant of each family (and the
GAN variants with second-order regularisers, buffers or labels) through every phase; both ranks
hold the same networks and optimizer states after every run, and a rank resumed from a
mid-run snapshot of its own state continues exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genlab.data import load_prepared
from genlab.train.distributed import World
from genlab.train.loop import build_trainer, training_steps
from tests.conftest import restore_training, training_snapshot
from tests.test_cuda_safety import project  # noqa: F401 - the fixture: defaults on small data

VARIANTS = [
    "vae", "dcgan_ns", "wgan_gp", "r1", "cgan", "infogan", "stylegan", "progan", "vqvae",
    "pix2pix_gan", "cyclegan", "discogan", "srgan", "spade", "vqgan_faces", "handwriting",
    "text2image", "text_wgan", "gumbel_gan", "social_gan", "mocogan",
]  # fmt: skip
HALF, STEPS = 3, 6


def _state(trainer, ema) -> dict[str, torch.Tensor]:
    out = {f"net/{k}/{n}": t.detach().clone() for k, m in trainer.modules.items()
           for n, t in m.state_dict().items()}  # fmt: skip
    for key, opt in trainer.optimizers.items():
        for i, s in opt.state_dict()["state"].items():
            out.update({f"opt/{key}/{i}/{n}": t.clone() for n, t in s.items()
                        if isinstance(t, torch.Tensor)})  # fmt: skip
    if ema is not None:
        out.update({f"ema/{n}": t.clone() for n, t in ema.shadow.state_dict().items()})
    return out


def _rank(rank: int, size: int, rendezvous: str, out: str, raw: dict, root: str) -> None:
    from genlab.config import validate_params

    params = validate_params(raw)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=size)  # fmt: skip
    try:
        world, results = World(rank=rank, size=size), {}
        for name in VARIANTS:
            cfg = params.variant(name)
            if name == "vqvae":  # restart dead codes at steps 2 and 4 (stage 1 is steps 1-4)
                cfg = cfg.model_copy(update={"restart_every": 2})
            train, _, meta = load_prepared(Path(root), cfg.dataset)
            trainer, batches, ema, _ = build_trainer(cfg, train, meta, 0, "cpu", 1, "none", world)
            for module in trainer.modules.values():
                module.train()
            list(training_steps(trainer, batches, ema, 0, HALF, name, 1, world))
            snapshot = training_snapshot(trainer, batches)
            ema_snapshot = ema.shadow.state_dict() if ema is not None else None
            ema_snapshot = {k: v.clone() for k, v in (ema_snapshot or {}).items()}
            list(training_steps(trainer, batches, ema, HALF, STEPS, name, 1, world))
            first = _state(trainer, ema)
            restore_training(snapshot, trainer, batches)
            if ema is not None:
                ema.shadow.load_state_dict(ema_snapshot)
            list(training_steps(trainer, batches, ema, HALF, STEPS, name, 1, world))
            results[name] = {"first": first, "resumed": _state(trainer, ema)}
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_every_family_trains_on_two_ranks_identically_and_resumes_exactly(project, tmp_path):  # noqa: F811
    params, root = project
    raw = params.model_dump(mode="json", exclude_none=True)
    mp.start_processes(_rank, args=(2, str(tmp_path / "rdzv"), str(tmp_path), raw, str(root)),
                       nprocs=2, start_method="spawn")  # fmt: skip
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    problems = []
    for name in VARIANTS:
        a, b = r0[name], r1[name]
        for key, value in a["first"].items():
            if not torch.equal(value, b["first"][key]):
                problems.append(f"{name}: ranks differ in {key}")
                break
        for rank, r in ((0, a), (1, b)):
            for key, value in r["first"].items():
                if not torch.equal(value, r["resumed"][key]):
                    problems.append(f"{name}: rank {rank} resumed differs in {key}")
                    break
    assert not problems, "\n".join(problems)
