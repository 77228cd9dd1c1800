"""WGAN Example 1 (Arjovsky, Chintala & Bottou 2017), learning parallel lines: exact distances
and what a trained WGAN-GP critic / GAN discriminator estimate from samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from genlab.toys import TOYS
from genlab.toys.parallel_lines import ParallelLinesConfig, exact, run

LOG2 = math.log(2.0)
THETAS = (-1.0, -0.5, 0.0, 0.5, 1.0)
# Small but sufficient: for seeds 0..7 the critic was off by <= 0.09 (value and gradient), the
# discriminator within 0.002 of log 2 / 0 with |gradient| <= 0.018; ~2 s.
TINY = ParallelLinesConfig(thetas=THETAS, critic_steps=100, n_samples=2048)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("parallel-lines")
    return run(TINY, 0, out), out


def test_registered() -> None:
    toy = TOYS.get("parallel-lines")
    assert toy.config is ParallelLinesConfig and toy.run is run


@pytest.mark.parametrize("theta", [-1.0, -0.3, -1e-6, 0.0, 1e-6, 0.5, 2.0])
def test_exact_values(theta: float) -> None:
    values = exact(theta)
    assert values["w1_exact"] == abs(theta)
    if theta == 0.0:
        assert values == {"w1_exact": 0.0, "js_exact": 0.0, "kl_exact": 0.0, "tv_exact": 0.0}
    else:  # JS jumps to its maximum log 2, KL to +inf, however close the lines are
        assert values["js_exact"] == LOG2
        assert values["kl_exact"] == math.inf
        assert values["tv_exact"] == 1.0


def test_table_exact_columns(tiny: tuple[pd.DataFrame, Path]) -> None:
    df, _ = tiny
    assert df["theta"].tolist() == list(THETAS)
    apart = df["theta"] != 0
    np.testing.assert_array_equal(df["w1_exact"], df["theta"].abs())
    np.testing.assert_array_equal(df["js_exact"], np.where(apart, LOG2, 0.0))
    np.testing.assert_array_equal(df["kl_exact"], np.where(apart, np.inf, 0.0))


def test_critic_estimates_w1_and_its_gradient(tiny: tuple[pd.DataFrame, Path]) -> None:
    df, _ = tiny
    np.testing.assert_allclose(df["w1_critic"], df["theta"].abs(), atol=0.15)
    apart = df[df["theta"] != 0]  # W1 = |theta| has gradient sign(theta) away from 0
    np.testing.assert_allclose(apart["w1_critic_grad"], np.sign(apart["theta"]), atol=0.15)


def test_discriminator_saturates_at_log2(tiny: tuple[pd.DataFrame, Path]) -> None:
    df, _ = tiny
    at_zero = df["theta"] == 0
    np.testing.assert_allclose(df.loc[~at_zero, "js_discriminator"], LOG2, atol=0.02)
    np.testing.assert_allclose(df.loc[at_zero, "js_discriminator"], 0.0, atol=0.01)
    # ... so it gives (almost) no gradient, where the critic's has magnitude ~1
    assert df["js_discriminator_grad"].abs().max() < 0.05


def test_outputs_written_atomically(tiny: tuple[pd.DataFrame, Path]) -> None:
    df, out = tiny
    assert sorted(p.name for p in out.iterdir()) == ["parallel-lines.csv", "parallel-lines.png"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "parallel-lines.csv"), df)  # inf survives
    assert (out / "parallel-lines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_table(tmp_path: Path) -> None:
    cfg = ParallelLinesConfig(thetas=(-0.5, 0.5), critic_steps=20, n_samples=256, clip=0.01)
    first = run(cfg, 3, tmp_path / "a")
    pd.testing.assert_frame_equal(first, run(cfg, 3, tmp_path / "b"), check_exact=True)
    assert not first.equals(run(cfg, 4, tmp_path / "c"))


def test_clipped_critic_underestimates_w1(tmp_path: Path) -> None:
    """WGAN's clipping (c = 0.01) gives only ~K * W with K ~ 0.003 for this critic (and K
    itself drifts with theta: clip[2] / clip[1] was 2.0-3.5 over seeds 0..5)."""
    cfg = ParallelLinesConfig(thetas=(0.0, 0.5, 1.0), critic_steps=100, n_samples=2048, clip=0.01)
    clip = run(cfg, 0, tmp_path)["w1_critic_clip"].to_numpy()
    assert abs(clip[0]) < 1e-4 < clip[1] < clip[2] < 0.01


def test_config() -> None:
    default = ParallelLinesConfig()
    assert len(default.thetas) == 21 and 0.0 in default.thetas
    assert (min(default.thetas), max(default.thetas)) == (-1.0, 1.0)
    assert default.gp_weight == 10.0 and default.clip is None
    with pytest.raises(ValidationError):
        ParallelLinesConfig(thetas=())
    with pytest.raises(ValidationError):
        ParallelLinesConfig(critic_steps=0)
    with pytest.raises(ValidationError):
        ParallelLinesConfig(unknown=1)
