"""Endless, seeded mini-batch streams over a prepared split.

A dataset's fields are drawn together unless its meta declares domains (``meta["fields"]``
entries with a ``domain``): each domain is then shuffled by its own seeded permutation, so two
unpaired domains of different sizes are streamed side by side. The first domain uses the run's
seed itself, so a single-domain dataset draws exactly the batches it always drew.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.errors import ConfigError


class _Shuffled:
    """One domain: a fresh seeded permutation each epoch, last partial batch dropped. The
    permutation is drawn on the CPU (the same bits on every device) and copied to the device
    once per epoch, so a step transfers nothing."""

    def __init__(
        self,
        data: dict[str, Tensor],
        batch_size: int,
        seed: int,
        device,
        what: str,
        shard: tuple[int, int] | None = None,  # [lo, hi) of each global batch this rank takes
    ):
        n = len(next(iter(data.values())))
        if batch_size > n:
            raise ConfigError(f"batch_size = {batch_size} exceeds the {n} training {what}")
        self.data, self.batch_size, self.n, self.device = data, batch_size, n, device
        self.lo, self.hi = shard if shard is not None else (0, batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self._set_perm(torch.randperm(n, generator=self.generator), 0)

    def _set_perm(self, perm: Tensor, pos: int) -> None:
        self.perm, self.pos = perm, pos
        self.on_device = perm.to(self.device)

    def next(self) -> dict[str, Tensor]:
        if self.pos + self.batch_size > self.n:
            self._set_perm(torch.randperm(self.n, generator=self.generator), 0)
        idx = self.on_device[self.pos + self.lo : self.pos + self.hi]
        self.pos += self.batch_size
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._set_perm(state["perm"].cpu(), state["pos"])


def field_domains(meta: dict | None, fields: list[str]) -> dict[str, list[str]]:
    """domain -> its fields, in the order the meta declares them; fields without a declared
    domain form the domain "main"."""
    declared = (meta or {}).get("fields", {})
    out: dict[str, list[str]] = {}
    for name in fields:
        domain = declared.get(name, {}).get("domain", "main")
        out.setdefault(domain, []).append(name)
    return out


class BatchStream:
    """Endless shuffled mini-batches of every field of ``split``; its state (each domain's
    generator, permutation and position) is part of the checkpoint. In data-parallel training
    every rank walks the same permutation and takes its ``shard`` of each global batch
    (``genlab.train.distributed``)."""

    def __init__(
        self,
        split: dict[str, Tensor],  # field -> tensor, first dimension the examples
        batch_size: int,
        seed: int,  # the first domain's permutation seed; domain i uses seed + i
        device: torch.device,
        meta: dict | None = None,  # the dataset's meta.json: its "fields" may declare domains
        shard: tuple[int, int] | None = None,  # data-parallel: [lo, hi) of each global batch
    ):
        data = {k: v.to(device) for k, v in split.items() if v is not None}
        domains = field_domains(meta, list(data))
        self.domains = {
            domain: _Shuffled({k: data[k] for k in names}, batch_size, seed + i, device,
                              "examples" if len(domains) == 1 else f"examples of domain {domain}",
                              shard)
            for i, (domain, names) in enumerate(domains.items())
        }  # fmt: skip
        self.batch_size, self.device = batch_size, device

    @property
    def split(self) -> dict[str, Tensor]:
        """Every field of the whole split, on the device (what a trainer fits a frozen feature
        network on, before its first step)."""
        return {k: v for stream in self.domains.values() for k, v in stream.data.items()}

    def next(self) -> dict[str, Tensor]:
        batch: dict[str, Tensor] = {}
        for stream in self.domains.values():
            batch.update(stream.next())
        return batch

    def state_dict(self) -> dict[str, Any]:
        if len(self.domains) == 1:  # the single-domain state keeps its historical form
            return next(iter(self.domains.values())).state_dict()
        return {"domains": {d: s.state_dict() for d, s in self.domains.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "domains" not in state:
            next(iter(self.domains.values())).load_state_dict(state)
            return
        for domain, stream in self.domains.items():
            stream.load_state_dict(state["domains"][domain])
