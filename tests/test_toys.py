"""Toys as pipeline stages: params validation, `genlab toy NAME`, and the modes2d study."""

from __future__ import annotations

import pandas as pd
import pytest

from genlab.cli import main
from genlab.config import ConfigError, validate_params
from genlab.toys import TOYS, toy_cfg
from tests.conftest import tiny_params_dict, write_params

TINY_MODES2D = {
    "methods": {"nonsaturating": {"loss": "nonsaturating"},
                "wgan_gp": {"loss": "wasserstein", "d_steps": 2,
                            "regularizers": {"gradient_penalty": {"weight": 0.1}}}},
    "seeds": 2, "steps": 5, "batch_size": 32, "n_train": 256, "n_samples": 250, "width": 16,
}  # fmt: skip


def test_toy_settings_are_validated_with_the_toys_schema():
    raw = tiny_params_dict()
    raw["toys"] = {"modes2d": {"seeds": 0}}
    params = validate_params(raw)  # train does not read toys: they are validated when run
    with pytest.raises(ConfigError, match=r"toys\.modes2d.*seeds = 0.*greater than or equal to 1"):
        toy_cfg(params, "modes2d")
    with pytest.raises(ConfigError, match=r"unknown toy 'mode2d' \(toys.mode2d\); allowed: .*mode"):
        toy_cfg(params, "mode2d")
    assert toy_cfg(validate_params(tiny_params_dict()), "modes2d").seeds == 3  # the default


def test_modes2d_through_the_cli(tmp_path, capsys):
    raw = tiny_params_dict()
    raw["toys"] = {"modes2d": TINY_MODES2D}
    write_params(tmp_path, raw)
    assert main(["--params", str(tmp_path / "params.yaml"), "toy", "modes2d"]) == 0
    table = pd.read_csv(tmp_path / "reports/toys/modes2d.csv")
    assert (tmp_path / "reports/toys/modes2d.png").read_bytes()[:4] == b"\x89PNG"
    assert list(zip(table.dataset, table.method, strict=True)) == [
        ("ring8", "nonsaturating"), ("ring8", "wgan_gp"),
        ("grid25", "nonsaturating"), ("grid25", "wgan_gp"),
    ]  # fmt: skip
    for _, row in table.iterrows():
        by_seed = [float(v) for v in row.modes_by_seed.split(";")]
        assert len(by_seed) == row.seeds == 2
        assert row.modes_mean == pytest.approx(sum(by_seed) / 2)
        assert 0 <= row.hq_pct_mean <= 100 and row.mode_kl_mean >= 0
    first = table.drop(columns="seconds")
    assert main(["--params", str(tmp_path / "params.yaml"), "toy", "modes2d"]) == 0
    again = pd.read_csv(tmp_path / "reports/toys/modes2d.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(first, again)  # seeded: the same table twice


def test_unknown_toy_exits_2(tmp_path, capsys):
    write_params(tmp_path, tiny_params_dict())
    assert main(["--params", str(tmp_path / "params.yaml"), "toy", "nope"]) == 2
    assert "unknown toy 'nope'" in capsys.readouterr().err


def test_every_toy_is_registered():
    assert {"dirac", "parallel-lines", "fgan-gaussian", "modes2d"} <= set(TOYS.names())
