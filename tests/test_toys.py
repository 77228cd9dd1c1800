"""Toys as pipeline stages: params validation, `genlab toy NAME`, and the modes2d study."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from genlab.cli import main
from genlab.config import ConfigError, validate_params
from genlab.metrics import mode_metrics
from genlab.toys import TOYS, toy_cfg
from genlab.toys.modes2d import Modes2dConfig, mixture, thresholds
from genlab.toys.modes2d import run as run_modes2d
from tests.conftest import tiny_params_dict, write_params

TINY_MODES2D = {
    "methods": {"nonsaturating": {"loss": "nonsaturating"},
                "wgan_gp": {"loss": "wasserstein", "d_steps": 2,
                            "regularizers": {"gradient_penalty": {"weight": 0.1}}}},
    "seeds": 2, "steps": 5, "batch_size": 32, "n_train": 256, "n_samples": 250, "width": 16,
    "budgets": {"grid25": {"steps": 3, "width": 8}},  # not the default 5000 steps at width 128
    "workers": 1,
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


@pytest.mark.parametrize(
    ("budgets", "expect"),
    [
        ({"grid52": {"steps": 9}}, r"toys\.modes2d\.budgets = .*unknown dataset 'grid52'"),
        ({"grid25": {"epochs": 9}}, r"budgets\.grid25\.epochs = 9: unknown key; allowed keys: "
                                    r"batch_size, lr, steps, width"),
        ({"grid25": {"steps": 0}}, r"budgets\.grid25\.steps = 0: .*greater than or equal to 1"),
        ({"ring8": {"lr": 0.0}}, r"budgets\.ring8\.lr = 0\.0: .*greater than 0"),
        ({"ring8": {"batch_size": 1}}, r"ring8\.batch_size = 1: .*greater than or equal to 2"),
        ({"ring8": {"width": True}}, r"budgets\.ring8\.width = 'true'"),
    ],
)  # fmt: skip
def test_modes2d_budgets_are_validated(budgets, expect):
    raw = tiny_params_dict()
    raw["toys"] = {"modes2d": {"budgets": budgets}}
    with pytest.raises(ConfigError, match=expect):
        toy_cfg(validate_params(raw), "modes2d")


def test_modes2d_budget_of_a_dataset_over_the_shared_settings():
    cfg = Modes2dConfig()
    shared = {"steps": 1000, "width": 64, "lr": 1e-3, "batch_size": 128}
    assert cfg.budget("ring8") == shared  # ring8 runs as before the budgets
    assert cfg.budget("grid25") == {**shared, "steps": 5000, "width": 128}  # the default budget
    cfg = Modes2dConfig(lr=3e-4, budgets={"grid25": {"steps": 9}})
    assert cfg.budget("grid25") == {**shared, "lr": 3e-4, "steps": 9}  # a left-out key: shared
    assert Modes2dConfig(budgets={}).budget("grid25") == shared


def test_modes2d_states_the_thresholds_that_mode_metrics_uses():
    cfg = Modes2dConfig(n_samples=250)
    meta = mixture(cfg, "grid25", 0)[1]
    stated = thresholds(cfg, meta)
    assert stated == {"hq_radius": 0.15, "min_count": 2}  # 3 std of 0.05; round(0.008 * 250)
    assert thresholds(Modes2dConfig(), meta)["min_count"] == 20  # PacGAN's 20 of 2500
    r, k = stated["hq_radius"], stated["min_count"]
    centers = torch.tensor(meta["modes"], dtype=torch.float64)
    step = torch.tensor([0.6, 0.8], dtype=torch.float64)  # a unit vector
    x = torch.cat([
        centers[0] + 0.999 * r * step.expand(k, 2),  # k high-quality samples: captured
        centers[1] + 0.999 * r * step.expand(k - 1, 2),  # one too few: not captured
        centers[2] + 1.001 * r * step.expand(k, 2),  # just outside the radius: not high quality
        torch.full((250 - 3 * k + 1, 2), 100.0),
    ])  # fmt: skip
    scores = mode_metrics(x, centers, meta["mode_std"])  # its own default min_count
    assert scores["modes_captured"] == 1
    assert scores["high_quality_pct"] == pytest.approx(100 * (2 * k - 1) / 250)


def test_modes2d_table_is_the_same_on_one_or_two_processes(tmp_path):
    cfg = Modes2dConfig.model_validate({**TINY_MODES2D, "steps": 20})
    one = run_modes2d(cfg.model_copy(update={"workers": 1}), 3, tmp_path / "one")
    two = run_modes2d(cfg.model_copy(update={"workers": 2}), 3, tmp_path / "two")
    pd.testing.assert_frame_equal(one.drop(columns="seconds"), two.drop(columns="seconds"))
    png = [(tmp_path / d / "modes2d.png").read_bytes() for d in ("one", "two")]
    assert png[0] == png[1]  # the first seed's samples, bit for bit


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
    # the budget and thresholds each dataset ran with: grid25 its own, ring8 the shared ones
    stated = ["steps", "width", "lr", "batch_size", "hq_radius", "min_count"]
    assert table[["dataset", *stated]].drop_duplicates().values.tolist() == [
        ["ring8", 5, 16, 1e-3, 32, 0.06, 2], ["grid25", 3, 8, 1e-3, 32, 0.15, 2],
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
