"""A shared DVC remote: results travel from one clone (machine) to another.

Clone A runs the pipeline on tiny params and commits; one command configures the shared remote
(``dvc remote add -d shared DIR``, a local directory standing for shared storage, recorded in
``.dvc/config`` so every clone inherits it) and ``dvc push`` uploads the cache. Clone B (``git
clone``) runs ``dvc pull`` and then holds every output ``dvc.lock`` records, byte for byte; its
``dvc status`` is clean and its ``dvc repro`` runs no stage.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.test_readme_commands import sh, tiny_project

UP_TO_DATE = "Data and pipelines are up to date."
VARIANTS = {"ring_gan", "vae"}  # one per dataset: every stage kind on the smallest data


def locked_outputs(root: Path) -> dict[str, str]:
    """Every file under every output ``dvc.lock`` records (cached or ``cache: false``), by path
    relative to ``root``, with its SHA-256."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    files: dict[str, str] = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = root / out["path"]
            found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for p in found:
                files[p.relative_to(root).as_posix()] = (
                    hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "missing"
                )
    return files


@pytest.mark.slow
def test_push_from_one_clone_and_pull_in_another_gives_every_output(tmp_path: Path) -> None:
    t0 = time.monotonic()
    a = tiny_project(tmp_path / "a", VARIANTS)
    built = time.monotonic() - t0
    assert UP_TO_DATE in sh(a, ["dvc", "status"])

    # the one documented command, committed so that every clone has the remote
    shared = tmp_path / "shared-storage"
    sh(a, ["dvc", "remote", "add", "-d", "shared", str(shared)])
    sh(a, ["git", "commit", "-q", "-m", "shared DVC remote", ".dvc/config"])
    t1 = time.monotonic()
    pushed = sh(a, ["dvc", "push"])
    pushed_n = int(re.search(r"(\d+) files? pushed", pushed).group(1))
    push_s = time.monotonic() - t1

    b = tmp_path / "b"
    sh(tmp_path, ["git", "clone", "-q", str(a), str(b)])
    assert f"url = {shared}" in (b / ".dvc" / "config").read_text()
    t2 = time.monotonic()
    pulled = sh(b, ["dvc", "pull"])
    pull_s = time.monotonic() - t2

    want, got = locked_outputs(a), locked_outputs(b)
    kinds = {k: sum(p.startswith(f"{k}/") for p in want) for k in
             ("data", "models", "samples", "metrics", "plots", "reports")}  # fmt: skip
    numbers = {"outputs_files": len(want), **kinds, "files_pushed": pushed_n,
               "build_s": round(built, 1), "push_s": round(push_s, 1),
               "pull_s": round(pull_s, 1)}  # fmt: skip
    print("dvc remote:", numbers)
    assert all(kinds.values()), kinds  # every kind of output is there to compare
    for v in VARIANTS:
        for f in (f"models/{v}/model.pt", f"samples/{v}/samples.pt", f"metrics/{v}.json",
                  f"plots/train/{v}.csv"):  # fmt: skip
            assert f in want, f
    assert "reports/README.md" in want and "reports/comparison.csv" in want
    assert "missing" not in want.values()
    differ = sorted(k for k in want if got.get(k) != want[k])
    ignored = subprocess.run(["git", "check-ignore", *differ], cwd=a, capture_output=True,
                             text=True).stdout.split()  # fmt: skip
    assert not differ, (  # a `cache: false` output travels through git, or not at all
        f"differ or missing in the clone: {differ}; of these, git ignores {ignored}\n{pulled}"
    )

    assert UP_TO_DATE in sh(b, ["dvc", "status"])
    repro = sh(b, ["dvc", "repro"])
    assert "Running stage" not in repro, repro
    stages = set(yaml.safe_load((b / "dvc.lock").read_text())["stages"])
    skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", repro))
    assert skipped == stages, repro
    assert not (b / "mlflow.db").exists()  # tracking is not part of the pipeline's outputs
