"""A pipeline run written by rlnorm 0.1 (``tests/data/legacy_0_1_0/runs/legacy_smoke``) still counts as finished.

``python -m agents train`` with the config that run was made with skips it without touching it, and
``python -m agents compare`` reads its TensorBoard events into a report. The run is copied to a temporary
``runs_dir`` first: the test data stays as 0.1 wrote it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from agents.__main__ import main

LEGACY_RUNS = Path(__file__).resolve().parent / "data" / "legacy_0_1_0" / "runs"
EXPERIMENT = "legacy_smoke"
RUN = Path("CartPole-v1") / "PPO-wn-s0"


def fingerprint(run_dir: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file the 0.1 run holds."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def legacy_runs(tmp_path: Path) -> Path:
    """A copy of the 0.1 runs folder under ``tmp_path/runs``."""
    runs = tmp_path / "runs"
    shutil.copytree(LEGACY_RUNS, runs)
    return runs


def matching_config(runs: Path, tmp_path: Path) -> Path:
    """The experiment config the 0.1 run was made with (its resolved ``config.yaml`` less the ``run`` entry),
    pointed at the copied ``runs`` folder."""
    saved = yaml.safe_load((runs / EXPERIMENT / RUN / "config.yaml").read_text())
    saved.pop("run")
    saved.update(runs_dir=str(runs), reports_dir=str(tmp_path / "reports"))
    path = tmp_path / "legacy_smoke.yaml"
    path.write_text(yaml.safe_dump(saved, sort_keys=False))
    return path


def test_train_skips_the_finished_0_1_run(legacy_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = legacy_runs / EXPERIMENT / RUN
    before = fingerprint(run_dir)
    status = main(["train", str(matching_config(legacy_runs, tmp_path)), "--no-compare"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert f"skipped {run_dir}" in out.out, out.out
    after = fingerprint(run_dir)
    # the 0.1 files are untouched (bookkeeping files added next to them are allowed)
    assert {name: after.get(name) for name in before} == before
    assert not [name for name in after if name not in before and "tfevents" in name], "the run trained again"


def test_compare_reads_the_0_1_run(legacy_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = tmp_path / "reports"
    status = main(["compare", str(legacy_runs / EXPERIMENT), "--out", str(out_dir)])
    out = capsys.readouterr()
    assert status == 0, out.err
    report = out_dir / EXPERIMENT / "report.md"
    assert report.is_file(), out.out
    text = report.read_text()
    assert "CartPole-v1" in text and "wn" in text
