"""Tests for genlab.report on a fake project tree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imsave

from genlab.report import training_curves_figure, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_FLOOR = {
    "frechet": 0.5,
    "kid_mean": 0.001,
    "kid_std": 0.0002,
    "classes_covered": 10,
    "class_kl": 0.002,
}
METRICS = {
    "gan_mnist": {
        "frechet": 12.5,
        "kid_mean": 0.03,
        "kid_std": 0.004,
        "classes_covered": 9,
        "class_kl": 0.12,
        "variant": "gan_mnist",
    },
    "ring_gan": {"modes_captured": 7, "high_quality_pct": 81.25, "mode_kl": 0.3},
    "vae_mnist": {
        "frechet": 30.1,
        "kid_mean": 0.05,
        "kid_std": 0.006,
        "classes_covered": 10,
        "class_kl": 0.04,
        "elbo_nats": -95.5,
    },
}
VARIANTS = {  # ring_gan sits between the mnist variants to check grouping by dataset
    "gan_mnist": {
        "dataset": "mnist",
        "family": "gan",
        "loss": "wasserstein",
        "regularizers": {"gradient_penalty": {"weight": 10}},
        "steps": 30,
    },
    "ring_gan": {
        "dataset": "ring8",
        "family": "gan",
        "loss": "minimax",
        "regularizers": {},
        "steps": 20,
    },
    "vae_mnist": {
        "dataset": "mnist",
        "family": "vae",
        "loss": "elbo",
        "regularizers": {},
        "steps": 10,
    },
}
TRAIN_COLUMNS = {
    "gan": ["loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"],
    "vae": ["loss", "recon", "kl", "elbo", "grad_norm"],
}


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _write_train_csv(path: Path, columns: list[str], steps: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"step": np.arange(1, steps + 1), "seconds": 0.25 * np.arange(1, steps + 1)})
    for c in columns:
        df[c] = rng.normal(size=steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def make_project(root: Path) -> Path:
    """A fake project: metrics, evaluator floors, training logs and sample images."""
    for v, cfg in VARIANTS.items():
        _write_json(root / "metrics" / f"{v}.json", METRICS[v])
        _write_train_csv(
            root / "plots" / "train" / f"{v}.csv", TRAIN_COLUMNS[cfg["family"]], cfg["steps"]
        )
        (root / "samples" / v).mkdir(parents=True)
        imsave(root / "samples" / v / "grid.png", np.random.rand(8, 8), cmap="gray")
        imsave(root / "samples" / v / "interpolation.png", np.random.rand(4, 16), cmap="gray")
    ring_floor = {"modes_captured": 8, "high_quality_pct": 99.0, "mode_kl": 0.01}
    _write_json(
        root / "metrics/evaluator/mnist.json",
        {"dataset": "mnist", "test_accuracy": 0.987, "floor": IMAGE_FLOOR},
    )
    _write_json(
        root / "metrics/evaluator/ring8.json",
        {"dataset": "ring8", "test_accuracy": None, "floor": ring_floor},
    )
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh fake project per test (for tests that delete inputs)."""
    return make_project(tmp_path)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """write_report's outputs on the full fake project, rendered once for the read-only tests."""
    return write_report(make_project(tmp_path_factory.mktemp("project")), VARIANTS)


def test_comparison_csv(report: dict[str, Path]) -> None:
    assert set(report) == {"readme", "html", "csv"} and all(p.is_file() for p in report.values())
    df = pd.read_csv(report["csv"])
    assert list(df["variant"]) == [
        "real-vs-real (mnist)",
        "gan_mnist",
        "vae_mnist",
        "real-vs-real (ring8)",
        "ring_gan",
    ]
    assert list(df.columns) == [
        "variant",
        "dataset",
        "family",
        "loss",
        "regularizers",
        "steps",
        "train_seconds",
        "frechet",
        "kid_mean",
        "kid_std",
        "classes_covered",
        "class_kl",
        "elbo_nats",
        "modes_captured",
        "high_quality_pct",
        "mode_kl",
    ]
    rows = df.set_index("variant")
    for v, metrics in METRICS.items():
        for key, value in metrics.items():
            if key != "variant":
                assert rows.loc[v, key] == pytest.approx(value)
        assert rows.loc[v, "train_seconds"] == pytest.approx(0.25 * VARIANTS[v]["steps"])
        assert rows.loc[v, "steps"] == VARIANTS[v]["steps"]
    assert rows.loc["gan_mnist", "regularizers"] == "gradient_penalty(10)"
    assert rows.loc["vae_mnist", "regularizers"] == "none"
    assert pd.isna(rows.loc["gan_mnist", "elbo_nats"])
    floor = rows.loc["real-vs-real (mnist)"]
    assert floor["family"] == "floor" and pd.isna(floor["loss"]) and pd.isna(floor["steps"])
    assert floor["frechet"] == pytest.approx(0.5) and pd.isna(floor["mode_kl"])
    assert rows.loc["real-vs-real (ring8)", "modes_captured"] == 8


def test_readme_table_and_links(report: dict[str, Path]) -> None:
    readme = report["readme"]
    text = readme.read_text()
    assert "dvc repro" in text and "genlab report" in text and "98.70 %" in text
    assert "| variant | family |" in text and "| gan_mnist | gan | wasserstein |" in text
    assert "elbo_nats" in text and "mode_kl" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    headline = [link for link in links if link.startswith("figures/headline_")]
    assert len(links) == 3 * len(VARIANTS) + len(headline) and headline
    assert all((readme.parent / link).is_file() for link in links)


def test_html_is_offline_and_relative(report: dict[str, Path]) -> None:
    page = report["html"]
    text = page.read_text()
    assert "http" not in text and "<table" in text and "image-rendering: pixelated" in text
    sources = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert len(sources) == 3 * len(VARIANTS)
    assert all(not s.startswith("/") and (page.parent / s).is_file() for s in sources)


def test_missing_optional_inputs_are_tolerated(project: Path) -> None:
    (project / "plots/train/vae_mnist.csv").unlink()
    (project / "samples/vae_mnist/grid.png").unlink()
    out = write_report(project, VARIANTS)
    df = pd.read_csv(out["csv"]).set_index("variant")
    assert pd.isna(df.loc["vae_mnist", "train_seconds"])
    assert "vae_mnist_grid.png" not in out["html"].read_text()


def test_missing_metrics_raises(project: Path) -> None:
    (project / "metrics/vae_mnist.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"vae_mnist.*genlab evaluate vae_mnist"):
        write_report(project, VARIANTS)


def test_curves_figure_single_row(tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    _write_train_csv(csv, TRAIN_COLUMNS["vae"], steps=1)
    png = training_curves_figure(csv, tmp_path / "out" / "curves.png", title="one row")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert list((tmp_path / "out").iterdir()) == [png]  # no temp file left behind


def test_toy_tables_get_a_section(project: Path) -> None:
    toys = project / "reports" / "toys"
    toys.mkdir(parents=True)
    pd.DataFrame({"method": ["gan", "r1"], "final_distance": [3.354, 1e-19]}).to_csv(
        toys / "dirac.csv", index=False
    )
    (toys / "dirac.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = write_report(project, VARIANTS)
    readme = out["readme"].read_text()
    assert "### dirac" in readme and "| gan | 3.354 |" in readme and "(toys/dirac.png)" in readme
    page = out["html"].read_text()
    assert 'src="toys/dirac.png"' in page and "<h3>dirac</h3>" in page


def _scored(root: Path, name: str, value: float, reps: list[float]) -> None:
    """metrics/<name>.json with a Frechet distance, its interval and its replicates."""
    (root / "metrics" / "bootstrap").mkdir(parents=True, exist_ok=True)
    q = sorted(reps)
    low, high = 2 * value - q[-1], 2 * value - q[0]
    (root / "metrics" / f"{name}.json").write_text(json.dumps(
        {"frechet": value, "frechet_ci_low": low, "frechet_ci_high": high}))  # fmt: skip
    pd.DataFrame({"frechet": reps}).to_csv(root / "metrics" / "bootstrap" / f"{name}.csv")


def test_the_answer_ranks_variants_and_marks_those_not_told_from_the_best(tmp_path: Path) -> None:
    from genlab.report_stats import headline, headline_table, seeds_table

    shared = [0.1 * i for i in range(-10, 11)]  # the reference resamples move all alike
    _scored(tmp_path, "best", 1.0, [1.0 + s for s in shared])
    _scored(tmp_path, "close", 1.05, [1.05 + s + 0.1 * (-1) ** i for i, s in enumerate(shared)])
    _scored(tmp_path, "far", 2.0, [2.0 + s for s in shared])
    (tmp_path / "metrics/evaluator").mkdir()
    (tmp_path / "metrics/evaluator/d.json").write_text(json.dumps({"floor": {"frechet": 0.3}}))
    variants = {v: {"dataset": "d"} for v in ("far", "close", "best")}
    frame = headline(tmp_path, variants, 0.95)["d"]["frechet"]
    assert list(frame["variant"]) == ["best", "close", "far"]  # lower is better
    # unpaired, the intervals overlap ([0, 2] vs [0.05, 2.05]); paired, only "close" is alike
    assert list(frame["same_as_best"]) == [True, True, False]
    assert frame.attrs["floor"] == 0.3
    table = headline_table({"frechet": frame})
    assert table["frechet"].iloc[0].startswith("**1 [") and table["frechet"].iloc[1].startswith("≈")
    assert list(table["variant"]) == ["best", "close", "far", "real-vs-real floor"]
    for s, value in ((1, 1.2), (2, 0.8)):
        (tmp_path / f"metrics/best-seed{s}.json").write_text(json.dumps({"frechet": value}))
    seeds = seeds_table(tmp_path, {"variants": ["best"], "seeds": [1, 2]}, 0, 0.95)
    row = seeds.iloc[0]
    assert (row["seed 0"], row["seed 1"], row["seed 2"]) == ("1", "1.2", "0.8")
    half = 4.302652729911275 * 0.2 / 3**0.5
    assert row["mean over seeds [t interval]"] == f"1 [{1 - half:.3g}, {1 + half:.3g}]"
