"""Collect metrics, training curves and samples of every variant into `reports/`."""

from __future__ import annotations

import html
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genlab.drawing import training_curves_figure
from genlab.families import FAMILIES
from genlab.io import atomic_path, write_text
from genlab.paths import Paths
from genlab.report_stats import (
    baseline_name,
    headline,
    headline_figure,
    headline_table,
    seeds_table,
)

DESCRIPTIVE = ["variant", "dataset", "family", "loss", "regularizers", "steps", "train_seconds"]
LEGEND = {
    "steps": "training steps (generator/decoder updates)",
    "train_seconds": "wall-clock training time in seconds (last row of the training log)",
    "frechet": "Fréchet distance on the evaluator's penultimate features vs the test split "
    "(lower is better)",
    "kid": "kernel inception distance: unbiased MMD^2 with a cubic kernel on the same features "
    "(lower is better; can be negative when the sets are alike)",
    "precision": "share of samples inside the k-NN manifold of the test features (k = pr_k; "
    "Kynkaanniemi et al. 2019; higher is better)",
    "recall": "share of test images inside the k-NN manifold of the samples (higher is better)",
    "density": "samples per real k-NN ball, divided by k (k = dc_k; Naeem et al. 2020; about 1 "
    "for a perfect generator)",
    "coverage": "share of real k-NN balls holding a sample (higher is better)",
    "n_samples": "samples scored (evaluate.n, or the training split when smaller; the floor "
    "uses the same n)",
    "n_reference": "test images every statistic compares with",
    "intra_kid": "conditional models: KID per class, averaged over classes (lower is better)",
    "classes_covered": "classes the evaluator predicts for at least one sample (higher is better)",
    "class_kl": "KL(sample class histogram || real class histogram) (lower is better)",
    "test_elbo_nats": "ELBO on the test split in nats per image, one sample (higher is better)",
    "test_nll_nats": "test negative log-likelihood in nats per image, importance-sampled IWAE "
    "bound with iwae_samples samples (lower is better)",
    "iwae_samples": "importance samples k of test_nll_nats",
    "conditional_accuracy": "conditional models: share of samples the evaluator assigns to the "
    "class they were generated for (higher is better)",
    "intra_frechet": "conditional models: Fréchet distance per class, averaged over classes, "
    "only when every class has more test images than feature dimensions (lower is better)",
    "info_matched_accuracy": "InfoGAN: categorical code vs the evaluator's class after the best "
    "one-to-one matching (higher is better)",
    "test_recon_mse": "VQ-VAE: test reconstruction MSE per pixel on [-1, 1] (lower is better)",
    "test_prior_bits_per_code": "VQ-VAE: the prior's test NLL of the code grids, bits per code "
    "(lower is better)",
    "codes_used": "VQ-VAE: codebook entries the test split uses",
    "psnr": "translation: peak signal-to-noise ratio of each output against its paired target, "
    "dB, mean over test images (scikit-image, data range 2 on [-1, 1]; higher is better)",
    "ssim": "translation: structural similarity against the paired target (scikit-image, 7x7 "
    "window, channel mean; higher is better)",
    "l1": "translation: mean absolute pixel error against the paired target on [-1, 1] (lower "
    "is better)",
    "class_preservation": "translation: share of outputs the evaluator assigns to the class of "
    "their source (higher is better)",
    "cycle_l1": "unpaired translation: mean |F(G(a)) - a| on [-1, 1] (lower is better)",
    "modes_captured": "mixture modes with enough high-quality samples, as in VEEGAN/PacGAN "
    "(higher is better)",
    "high_quality_pct": "% of samples within 3 std of their nearest mode (higher is better)",
    "mode_kl": "KL(mode histogram of high-quality samples || uniform) (lower is better)",
}


def legend_entries() -> dict[str, str]:
    """``LEGEND`` plus the descriptions the registered metrics declare."""
    from genlab.metrics import METRICS

    out = dict(LEGEND)
    for name in METRICS.registered():
        out.update({k: v for k, v in METRICS.get(name).descriptions.items() if k not in out})
    return out


CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
img.pixel { image-rendering: pixelated; image-rendering: crisp-edges; }
img.grid { width: 256px; }
img.interp { width: 512px; max-width: 100%; }
img.curves { max-width: 100%; }
figure { display: inline-block; vertical-align: top; margin: 0.5em 1em 0.5em 0; }
"""


def _copy(src: Path, dst: Path) -> Path:
    """Atomically copy a file."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def _read_json(path: Path) -> dict[str, Any]:
    """Load a JSON object from a file."""
    return json.loads(path.read_text(encoding="utf-8"))


def _numeric(d: dict[str, Any]) -> dict[str, float | int | None]:
    """Keep the numeric (or null) entries of a flat metrics dict; bools and strings are dropped."""
    return {
        k: v
        for k, v in d.items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }


def _regularizers(regs: dict[str, Any] | None) -> str:
    """Render {"gradient_penalty": {"weight": 10}} as "gradient_penalty(10)", joined by "+"."""
    shown = {"weight_clip": "clip", "spectral_norm": None}  # the setting that matters, if any
    parts = []
    for name, cfg in (regs or {}).items():
        key = shown.get(name, "weight")
        value = cfg.get(key) if isinstance(cfg, dict) and key else None
        parts.append(f"{name}({value:g})" if isinstance(value, int | float) else name)
    return "+".join(parts) or "none"


def _train_seconds(csv_path: Path) -> float:
    """Training wall time: the last row's `seconds`, NaN if the log is missing or empty."""
    if not csv_path.is_file():
        return math.nan
    seconds = pd.read_csv(csv_path, usecols=lambda c: c == "seconds").get("seconds")
    return float(seconds.iloc[-1]) if seconds is not None and len(seconds) else math.nan


def _fmt(x: Any) -> str:
    """Format a table cell: 4 significant digits, integers as is, missing as empty."""
    if x is None or (not isinstance(x, str) and pd.isna(x)):
        return ""
    if isinstance(x, float):
        return f"{x:.0f}" if abs(x) >= 1e4 else f"{x:.4g}"
    return str(x)


def _markdown_table(df: pd.DataFrame) -> str:
    """Render a DataFrame of strings as a GitHub markdown table (no tabulate dependency)."""
    align = ["---" if c in DESCRIPTIVE[:5] else "---:" for c in df.columns]
    rows = [list(df.columns), align, *df.to_numpy().tolist()]
    return "\n".join("| " + " | ".join(str(c).replace("|", r"\|") for c in r) + " |" for r in rows)


def _comparison(
    root: Path, variants: dict[str, dict]
) -> tuple[pd.DataFrame, dict[str, float | None]]:
    """One row per variant plus a floor row per dataset; also returns evaluator accuracies."""
    accuracy: dict[str, float | None] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for v, cfg in variants.items():
        metrics_path = Paths(root).metrics(v)
        if not metrics_path.is_file():
            raise FileNotFoundError(
                f"no metrics for variant {v!r}: {metrics_path} is missing; "
                f"run `genlab evaluate {v}` first"
            )
        ds = cfg["dataset"]
        if ds not in groups:
            ev_path = Paths(root).evaluator_metrics(ds)
            ev = _read_json(ev_path) if ev_path.is_file() else {}
            accuracy[ds] = ev.get("test_accuracy")
            floor = {"variant": f"real-vs-real ({ds})", "dataset": ds, "family": "floor"}
            # no floor for a kind that has none (trajectories: their baseline is the reference)
            has_floor = "floor" in ev or not ev
            groups[ds] = [{**_numeric(ev.get("floor", {})), **floor}] if has_floor else []
            if ev.get("baseline"):  # e.g. bicubic upsampling for super-resolution
                groups[ds].append({**_numeric(ev["baseline"]), "variant": baseline_name(ev),
                                   "dataset": ds, "family": "baseline"})  # fmt: skip
        groups[ds].append(
            {
                **_numeric(_read_json(metrics_path)),
                "variant": v,
                "dataset": ds,
                "family": cfg["family"],
                "loss": cfg["loss"],
                "regularizers": _regularizers(cfg.get("regularizers")),
                "steps": cfg["steps"],
                "train_seconds": _train_seconds(Paths(root).train_csv(v)),
            }
        )
    rows = [row for group in groups.values() for row in group]
    metric_cols = list(dict.fromkeys(k for row in rows for k in row if k not in DESCRIPTIVE))
    df = pd.DataFrame(rows, columns=DESCRIPTIVE + metric_cols)
    df["steps"] = df["steps"].astype("Int64")
    for c in metric_cols:  # keep counts such as classes_covered integral despite missing cells
        values = [row[c] for row in rows if row.get(c) is not None]
        if values and all(isinstance(val, int) for val in values):
            df[c] = df[c].astype("Int64")
    return df, accuracy


FIGURES = {"curves": "training curves", "grid": "samples", "interpolation": "interpolation"}


def _caption_of(family: str | None, stem: str) -> tuple[int, str]:
    """(position, caption) of samples/<variant>/<stem>.png: the stage's own figures first, then
    the family's (genlab.families.*.captions), then any other by name."""
    if stem in FIGURES:
        return list(FIGURES).index(stem), FIGURES[stem]
    found = FAMILIES.get(family).caption(stem) if family in FAMILIES else None
    return (len(FIGURES) + found[0], found[1]) if found else (99, stem)


def sections() -> dict[str, str]:
    """Report section -> what its figures and columns show, as each family declares them (in the
    order the families are registered)."""
    out: dict[str, str] = {}
    for name in FAMILIES.registered():
        out.update(FAMILIES.get(name).sections)
    return out


def section_of(cfg: dict) -> str:
    """The report section of a variant: its family decides (the lecture notes' grouping)."""
    return FAMILIES.get(cfg["family"]).section_of(cfg)


def _figures(root: Path, variants: dict[str, dict]) -> dict[str, dict[str, str]]:
    """Render curves and copy samples into reports/figures; returns relative paths per variant."""
    out_dir = Paths(root).report_figures
    figures: dict[str, dict[str, str]] = {}
    for v in variants:
        figures[v] = {}
        csv_path = Paths(root).train_csv(v)
        if csv_path.is_file():
            training_curves_figure(csv_path, out_dir / f"{v}_curves.png", title=v)
            figures[v]["curves"] = f"figures/{v}_curves.png"
        pngs = sorted(Paths(root).samples_dir(v).glob("*.png"))
        family = variants[v].get("family")
        for src in sorted(pngs, key=lambda p: (_caption_of(family, p.stem)[0], p.stem)):
            _copy(src, out_dir / f"{v}_{src.name}")
            figures[v][src.stem] = f"figures/{v}_{src.name}"
    return figures


def _caption(kind: str, family: str | None) -> str:
    return _caption_of(family, kind)[1]


ANSWER_NOTE = (
    "Every value is the estimate on the scored samples with its {level:.0%} basic bootstrap "
    "interval over the samples and the test set ({replicates} replicates; "
    "`genlab.metrics.bootstrap`). **Bold**: the best; ≈: not distinguishable from the best "
    "(the paired bootstrap interval of the difference holds 0). The Fréchet distance is biased "
    "upwards at these sizes, so its interval, which corrects the bias, can lie below the "
    "estimate. The floor scores as many real training images as each model's samples."
)


def _answer(answer: dict, seeds: pd.DataFrame, note: str) -> list[str]:
    lines = ["## The answer: which variant, and how sure", "", note]
    for ds, frames in answer.items():
        if not frames:
            continue
        lines += ["", f"### {ds}", "", _markdown_table(headline_table(frames)), "",
                  f"![{ds}](figures/headline_{ds}.png)"]  # fmt: skip
    if len(seeds):
        lines += ["", "### Over seeds", "",
                  "The same variants trained on more seeds (params `seeds`): the value on each "
                  "seed, the mean over seeds with its Student-t interval, and the project "
                  "seed's bootstrap interval, which covers sampling and test set only.", "",
                  _markdown_table(seeds)]  # fmt: skip
    return lines + [""]


def _per_dataset(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The comparison per dataset, point values only: the columns that dataset has."""
    out = []
    points = [c for c in table.columns if not c.endswith(("_ci_low", "_ci_high"))]
    for ds, group in table[points].groupby("dataset", sort=False):
        keep = [c for c in group.columns if (group[c].astype(str) != "").any()]
        out.append((ds, group[[c for c in keep if c != "dataset"]]))
    return out


def _readme(
    table: pd.DataFrame,
    accuracy: dict[str, float | None],
    figures: dict[str, dict[str, str]],
    variants: dict[str, dict],
    answer: list[str] = (),
    comparisons: list[Comparison] = (),  # figures setting several variants side by side
) -> str:
    """Markdown report: provenance, the answer, evaluator accuracy, tables, legend, then a
    section per family section with its variants' table and figures."""
    shown: set[str] = set()
    lines = [
        "# genlab report",
        "",
        "Produced by `dvc repro` (stage `report`) or `genlab report`; do not edit by hand.",
        "",
        *answer,
        "## Evaluator test accuracy",
        "",
    ]
    for ds, acc in accuracy.items():
        lines.append(f"- {ds}: " + ("n/a" if acc is None else f"{100 * acc:.2f} %"))
    lines += ["", "## All metrics", "",
              "Point values per dataset; `comparison.csv` holds every interval too."]  # fmt: skip
    for ds, group in _per_dataset(table):
        lines += ["", f"### {ds}", "", _markdown_table(group)]
    lines += ["", "### Legend", ""]
    lines.append("- real-vs-real rows: the same metrics for training images vs the test split.")
    legend = legend_entries()
    lines += [f"- `{c}`: {legend[c]}" for c in table.columns if c in legend]
    directions = sorted({c.split("_", 1)[0] for c in table.columns
                         if c.startswith(("a2b_", "b2a_"))})  # fmt: skip
    if directions:
        names = "_`, `".join(directions)
        lines.append(f"- `{names}_` prefixes: the unpaired translation's direction (A -> B, "
                     "B -> A), each scored against its target domain")  # fmt: skip
    for section, blurb in sections().items():
        members = [v for v, cfg in variants.items() if section_of(cfg) == section]
        if not members:
            continue
        lines += ["", f"## {section}", "", blurb, "", _markdown_table(_section_table(table,
                  members))]  # fmt: skip
        for figure in _shown_here(comparisons, members, shown):
            lines += ["", f"![{figure.caption}]({figure.path})", "", figure.caption]
        for v in members:
            cfg = variants[v]
            arch = f", arch {cfg['arch']}" if cfg.get("arch") else ""
            lines += ["", f"### {v}", "", f"{cfg['family']} on {cfg['dataset']}{arch}, "
                      f"loss {cfg['loss']}."]  # fmt: skip
            lines += [""] + [
                f"- [{_caption(k, cfg['family'])}]({p})" for k, p in figures[v].items()
            ]
    return "\n".join(lines) + "\n"


def _section_table(table: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    """The section's variants with the reference rows (floor, baseline) of their datasets, point
    values only, the columns they fill."""
    datasets = set(table.loc[table["variant"].isin(members), "dataset"])
    keep = table["variant"].isin(members) | (
        table["family"].isin(["floor", "baseline"]) & table["dataset"].isin(datasets)
    )
    rows = table.loc[keep, [c for c in table.columns if not c.endswith(("_ci_low", "_ci_high"))]]
    return rows[[c for c in rows.columns if (rows[c].astype(str) != "").any()]]


@dataclass(frozen=True)
class Comparison:
    """A report figure setting several variants side by side, shown in the first section that
    holds one of them."""

    variants: tuple[str, ...]
    path: str  # relative to reports/
    caption: str


def _shown_here(comparisons, members: list[str], shown: set[str]) -> list[Comparison]:
    """The comparisons not shown yet that hold one of the section's ``members``."""
    here = [c for c in comparisons if c.path not in shown and set(c.variants) & set(members)]
    shown.update(c.path for c in here)
    return here


def _vq_comparisons(root: Path, variants: dict[str, dict], rows: int = 8) -> list[Comparison]:
    """Per dataset with two or more codebook models: test images, one per row, beside every
    model's reconstruction (``reconstructions.pt`` of the sample stage): VQ-GAN's beside the
    VQ-VAE's (Esser et al. 2021, Fig. 3)."""
    from genlab.families.translation import rows_figure
    from genlab.io import torch_load

    paths, by_dataset = Paths(root), {}
    for v, cfg in variants.items():
        file = paths.samples_dir(v) / "reconstructions.pt"
        if file.is_file():
            by_dataset.setdefault(cfg["dataset"], []).append((v, torch_load(file, "samples")))
    out = []
    for ds, items in by_dataset.items():
        if len(items) < 2:
            continue
        columns = [items[0][1]["x"]] + [saved["reconstructions"] for _, saved in items]
        name = f"reconstructions_{ds}.png"
        rows_figure(columns, paths.report_figures / name, rows=rows)
        names = " | ".join(["test image", *(v for v, _ in items)])
        out.append(Comparison(tuple(v for v, _ in items), f"figures/{name}",
                              f"{ds}, reconstructions through the codebook, one test image "
                              f"per row: {names}"))  # fmt: skip
    return out


def _translation_comparisons(
    root: Path, variants: dict[str, dict], rows: int = 6
) -> list[Comparison]:
    """Per paired translation dataset: the first test examples, one per row: source, the
    baseline (bicubic) where the dataset has one, every variant's output, target (as Isola et
    al.'s Figure 4 and Ledig et al.'s Figure 2 compare methods side by side)."""
    from genlab.families.translation import rows_figure
    from genlab.io import torch_load
    from genlab.metrics.translation import bicubic

    paths, by_dataset = Paths(root), {}
    for v, cfg in variants.items():
        file = paths.samples(v)
        saved = torch_load(file, "samples") if file.is_file() else {}
        if "" in saved.get("outputs", {}) and "" in saved.get("targets", {}):
            by_dataset.setdefault(cfg["dataset"], []).append((v, saved))
    out = []
    for ds, items in by_dataset.items():
        first = items[0][1]
        source, target = first["sources"][""][:rows], first["targets"][""][:rows]
        columns, names = [source], ["source"]
        if _read_json(paths.evaluator_metrics(ds)).get("baseline_name") == "bicubic":
            columns.append(bicubic(source, target.shape[-1]))
            names.append("bicubic")
        for v, saved in items:
            columns.append(saved["outputs"][""][:rows])
            names.append(v)
        columns.append(target)
        names.append("target")
        rows_figure(columns, paths.report_figures / f"translation_{ds}.png", rows=rows)
        caption = f"{ds}, test examples, one per row: {' | '.join(names)}"
        out.append(Comparison(tuple(v for v, _ in items), f"figures/translation_{ds}.png", caption))
    return out


def _html(
    table: pd.DataFrame,
    accuracy: dict[str, float | None],
    figures: dict[str, dict[str, str]],
    variants: dict[str, dict],
    comparisons: list[Comparison] = (),  # figures setting several variants side by side
) -> str:
    """Self-contained offline HTML page with the table and every variant's figures."""
    shown: set[str] = set()
    esc = html.escape
    acc = ", ".join(
        f"{esc(ds)}: " + ("n/a" if a is None else f"{100 * a:.2f} %") for ds, a in accuracy.items()
    )
    classes = {"interpolation": "pixel interp", "curves": "curves"}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>genlab report</title>',
        f"<style>{CSS}</style></head><body>",
        "<h1>genlab report</h1>",
        "<p>Produced by <code>dvc repro</code> or <code>genlab report</code>.</p>",
        f"<p>Evaluator test accuracy: {acc}</p>",
        table.to_html(index=False, border=0, classes="comparison"),
    ]
    for section, blurb in sections().items():
        members = [v for v, cfg in variants.items() if section_of(cfg) == section]
        if members:
            parts += [f"<h2>{esc(section)}</h2>", f"<p>{esc(blurb)}</p>",
                      _section_table(table, members).to_html(index=False, border=0)]  # fmt: skip
        for figure in _shown_here(comparisons, members, shown):
            image = f'<img class="pixel interp" src="{esc(figure.path)}" alt="{esc(figure.path)}">'
            parts.append(f"<figure>{image}<figcaption>{esc(figure.caption)}</figcaption></figure>")
        for v in members:
            parts.append(f"<h3>{esc(v)}</h3>")
            for kind, path in figures[v].items():
                css = classes.get(kind, "pixel grid")
                parts.append(
                    f'<figure><img class="{css}" src="{esc(path)}" alt="{esc(v)} {kind}">'
                    f"<figcaption>{esc(_caption(kind, variants[v]['family']))}</figcaption>"
                    "</figure>"
                )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


Section = list[tuple[str, list[tuple[str, pd.DataFrame]], str | None]]  # name, tables, png


def _toys(root: Path) -> Section:
    """(name, [table], relative png path or None) of every reports/toys/<name>.csv."""
    toys = []
    for csv_path in sorted(Paths(root).toys.glob("*.csv")):
        png = csv_path.with_suffix(".png")
        table = pd.read_csv(csv_path).map(_fmt)
        toys.append((csv_path.stem, [("", table)], f"toys/{png.name}" if png.exists() else None))
    return toys


def _sweeps(root: Path, names: list[str]) -> Section:
    """Per study with tables: the per-arm table and the parameter importances."""
    out = []
    for name in names:
        d = Paths(root).study_dir(name)
        if not (d / "table.csv").is_file():
            continue
        tables = [
            (
                "Per arm (loss x regulariser); seed_* and ci_* are the arm's best "
                "configuration retrained over the study's seeds",
                pd.read_csv(d / "table.csv"),
            )
        ]
        if (d / "importances.csv").is_file():
            tables.append(("Parameter importances (fANOVA)", pd.read_csv(d / "importances.csv")))
        png = d / "expected_best.png"
        out.append((name, [(c, t.map(_fmt)) for c, t in tables],
                    f"sweeps/{name}/{png.name}" if png.exists() else None))  # fmt: skip
    return out


def _section_markdown(title: str, items: Section) -> str:
    lines = ["", f"## {title}"] if items else []
    for name, tables, png in items:
        lines += ["", f"### {name}"]
        for caption, table in tables:
            lines += [""] + ([caption, ""] if caption else []) + [_markdown_table(table)]
        if png:
            lines += ["", f"![{name}]({png})"]
    return "\n".join(lines) + ("\n" if items else "")


def _section_html(title: str, items: Section) -> str:
    esc = html.escape
    parts = [f"<h2>{esc(title)}</h2>"] if items else []
    for name, tables, png in items:
        parts.append(f"<h3>{esc(name)}</h3>")
        for caption, table in tables:
            parts += [f"<p>{esc(caption)}</p>"] if caption else []
            parts.append(table.to_html(index=False, border=0))
        if png:
            parts.append(f'<img class="curves" src="{esc(png)}" alt="{esc(name)}">')
    return "\n".join(parts)


SWEEPS_NOTE = (
    "Trials, tables and `best_params.yaml` of each study are in `reports/sweeps/<study>/`; the "
    "figure shows the best score among k trials (median and 95% band, drawn with replacement from "
    "the arm's complete and failed trials) as in Lucic et al. 2018."
)


def write_report(
    root: Path,
    variants: dict[str, dict],
    sweeps: list[str] = (),
    seeds: dict | None = None,  # params seeds: {variants, seeds}
    seed: int = 0,  # the project seed
    level: float = 0.95,  # the evaluation's confidence
    replicates: int = 0,  # the evaluation's bootstrap replicates (for the note)
) -> dict[str, Path]:
    """Write reports/comparison.csv, README.md, index.html and figures/ under `root`; the answer
    (headline metrics with intervals, per dataset) first; the toys' tables in reports/toys/ and
    the sweeps' in reports/sweeps/ get sections of their own."""
    root = Path(root)
    reports = Paths(root).reports
    df, accuracy = _comparison(root, variants)
    figures = _figures(root, variants)
    comparisons = _translation_comparisons(root, variants) + _vq_comparisons(root, variants)
    answer = headline(root, variants, level)
    for ds, frames in answer.items():
        if frames:
            headline_figure(ds, frames, Paths(root).report_figures / f"headline_{ds}.png")
    seeds_df = seeds_table(root, seeds or {}, seed, level)
    answer_md = _answer(answer, seeds_df, ANSWER_NOTE.format(level=level, replicates=replicates))
    table = df.map(_fmt)
    toys, studies = _toys(root), _sweeps(root, list(sweeps))
    extra_md = _section_markdown("Paper reproductions (`genlab toy NAME`)", toys)
    extra_html = _section_html("Paper reproductions", toys)
    if studies:
        extra_md += _section_markdown("Sweeps (`genlab sweep STUDY`)", studies)
        extra_md += "\n" + SWEEPS_NOTE + "\n"
        extra_html += _section_html("Sweeps", studies) + f"<p>{html.escape(SWEEPS_NOTE)}</p>"
    page = _html(table, accuracy, figures, variants, comparisons)
    page = page.replace("</body>", extra_html + "\n</body>")
    return {
        "readme": write_text(
            reports / "README.md",
            _readme(table, accuracy, figures, variants, answer_md, comparisons) + extra_md,
        ),
        "html": write_text(reports / "index.html", page),
        "csv": write_text(reports / "comparison.csv", df.to_csv(index=False)),
    }
