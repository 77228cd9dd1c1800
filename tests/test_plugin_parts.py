"""The parts a new family plugs into: batch streams over the dataset's declared domains, the
list of training terms, and declared options."""

from __future__ import annotations

import pytest
import torch

from genlab.config import ConfigError, validate_params
from genlab.data.stream import BatchStream, field_domains
from genlab.families.gan.trainer import gan_terms
from genlab.objectives.info import MutualInformation
from genlab.objectives.terms import Regularized, Step, Term, total
from tests.conftest import tiny_params_dict

CPU = torch.device("cpu")


def test_a_single_domain_stream_draws_the_seeded_permutations_it_always_drew():
    split = {"x": torch.arange(10.0)[:, None], "y": torch.arange(10)}
    stream = BatchStream(split, 4, seed=3, device=CPU)
    gen = torch.Generator().manual_seed(3)
    perm = torch.randperm(10, generator=gen)
    assert torch.equal(stream.next()["y"], perm[:4])
    assert torch.equal(stream.next()["y"], perm[4:8])
    assert torch.equal(stream.next()["y"], torch.randperm(10, generator=gen)[:4])  # new epoch
    assert set(stream.state_dict()) == {"generator", "perm", "pos"}  # the historical form


def test_unpaired_domains_of_different_sizes_are_shuffled_independently():
    meta = {"fields": {"x_a": {"kind": "image", "domain": "a"}, "y_a": {"kind": "class",
            "domain": "a"}, "x_b": {"kind": "image", "domain": "b"}}}  # fmt: skip
    split = {"x_a": torch.arange(6.0), "y_a": torch.arange(6), "x_b": 100 + torch.arange(9.0)}
    assert field_domains(meta, list(split)) == {"a": ["x_a", "y_a"], "b": ["x_b"]}
    stream = BatchStream(split, 3, seed=0, device=CPU, meta=meta)
    batches = [stream.next() for _ in range(5)]  # domain a wraps after 2 batches, b after 3
    for b in batches:
        assert torch.equal(b["x_a"], b["y_a"].float())  # a's fields stay paired
        assert (b["x_b"] >= 100).all()
    seen_a = torch.cat([b["y_a"] for b in batches[:2]])
    seen_b = torch.cat([b["x_b"] for b in batches[:3]])
    assert sorted(seen_a.tolist()) == list(range(6))  # one epoch of each domain, no repeats
    assert sorted(seen_b.tolist()) == [100.0 + i for i in range(9)]
    resumed = BatchStream(split, 3, seed=0, device=CPU, meta=meta)
    state = BatchStream(split, 3, seed=0, device=CPU, meta=meta)
    for _ in range(4):
        state.next()
    resumed.load_state_dict(state.state_dict())
    assert all(torch.equal(resumed.next()[k], state.next()[k]) for k in ("x_a", "x_b"))


def test_a_domain_smaller_than_the_batch_is_a_clear_error():
    meta = {"fields": {"x": {"kind": "image", "domain": "a"}, "z": {"kind": "image",
            "domain": "b"}}}  # fmt: skip
    split = {"x": torch.zeros(8), "z": torch.zeros(2)}
    with pytest.raises(ConfigError, match="batch_size = 4 exceeds the 2 training examples of "
                                          "domain b"):  # fmt: skip
        BatchStream(split, 4, seed=0, device=CPU, meta=meta)


class Constant(Term):
    def __init__(self, value: float, side: str) -> None:
        self.value, self.side = torch.tensor(value), side

    def discriminator(self, s):
        return (self.value, {"d": float(self.value)}) if self.side == "d" else (None, {})

    def generator(self, s):
        return (self.value, {"g": float(self.value)}) if self.side == "g" else (None, {})


def test_terms_sum_in_order_per_side():
    s = Step({}, None, None, torch.zeros(1), torch.zeros(1), None, None, torch.zeros(1), None)
    terms = [Constant(1.5, "d"), Constant(2.0, "g"), Constant(0.25, "d")]
    loss, stats = total(terms, "discriminator", s)
    assert float(loss) == 1.75 and stats == {"d": 0.25}
    loss, stats = total(terms, "generator", s)
    assert float(loss) == 2.0 and stats == {"g": 2.0}
    with pytest.raises(ValueError, match="no term contributes to the generator"):
        total([Constant(1.0, "d")], "generator", s)


def _variant(**keys):
    raw = tiny_params_dict()
    base = {"dataset": "digits", "family": "gan", "arch": "dcgan", "latent_dim": 8, "width": 8}
    raw["variants"] = {"v": {**base, **keys}}
    return validate_params(raw).variant("v")


def test_the_gan_terms_are_the_adversarial_loss_info_then_regularisers():
    plain = gan_terms(_variant())
    assert len(plain) == 1
    r1 = {"r1": {"weight": 5}}
    info = gan_terms(_variant(info_categorical=10, d_norm="none", regularizers=r1))
    assert isinstance(info[1], MutualInformation) and isinstance(info[2], Regularized)
    assert (info[2].weight, info[2].every) == (5.0, 1)


def test_a_key_is_checked_against_the_components_that_declare_it():
    with pytest.raises(ConfigError, match=r"phase_steps = 7 has no effect here; it is read by "
                                          r"arch: progressive"):  # fmt: skip
        _variant(phase_steps=7)
    with pytest.raises(ConfigError, match=r"attention = 4 has no effect here; it is read by "
                                          r"arch: dcgan, progressive, style"):  # fmt: skip
        _variant(arch="mlp", attention=4)
    assert _variant(arch="progressive", phase_steps=7).phase_steps == 7
