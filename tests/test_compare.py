"""The report aggregates seeds with IQM + bootstrap CIs, human-normalizes Atari scores, and draws its figures; it
aggregates only finished runs unless asked, marks the others, and states the steps of each aggregate.

Event files are written here with TensorBoard's own writer and known values, so the expected IQMs can be computed
independently (``scipy.stats.trim_mean``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import trim_mean
from torch.utils.tensorboard import SummaryWriter

from agents.pipeline.tb_layout import env_slug, write_layout
from agents.report.compare import compare, main
from agents.report.stats import atari_game, human_normalized, iqm, iqm_interval

ENVS = ["ALE/Pong-v5", "MinAtar/Breakout-v1"]
NORMS = ["none", "wn"]
SEEDS = [0, 1, 2, 3]
STEPS = [1000, 2000, 3000, 4000]


def _final(env: str, norm: str, seed: int) -> float:
    base = {"ALE/Pong-v5": -10.0, "MinAtar/Breakout-v1": 5.0}[env]
    return base + (3.0 if norm == "wn" else 0.0) + [0.0, 1.0, 2.0, 10.0][seed]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "exp"
    for env in ENVS:
        for norm in NORMS:
            for seed in SEEDS:
                run_dir = root / env_slug(env) / f"PPO-{norm}-s{seed}"
                (run_dir / "tb").mkdir(parents=True)
                doc = {
                    "algo": "PPO",
                    "train": {"total_timesteps": STEPS[-1]},
                    "run": {"env": env, "norm": norm, "seed": seed},
                }
                (run_dir / "config.yaml").write_text(yaml.safe_dump(doc))
                (run_dir / "final.json").write_text(json.dumps({"num_timesteps": STEPS[-1]}))
                writer = SummaryWriter(str(run_dir / "tb"))
                final = _final(env, norm, seed)
                for i, step in enumerate(STEPS):
                    writer.add_scalar("rollout/ep_rew_mean", final * (i + 1) / len(STEPS), step)
                writer.add_scalar("eval/return_clean", final - 100.0, 2000)  # superseded by the last step
                writer.add_scalar("eval/return_clean", final, STEPS[-1])
                writer.add_scalar("eval/return_noise_gaussian_0.1", final - 1.0, STEPS[-1])
                writer.add_scalar("eval/return_noise_gaussian_0.3", final - 4.0, STEPS[-1])
                writer.close()
    write_layout(root, ENVS)
    return root


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 13])
def test_iqm_matches_rliable(n: int) -> None:
    from rliable.metrics import aggregate_iqm

    scores = np.random.default_rng(n).normal(size=(n, 3)) * 10
    assert iqm(scores) == pytest.approx(aggregate_iqm(scores))
    assert iqm(scores, axis=0) == pytest.approx([aggregate_iqm(scores[:, j]) for j in range(3)])


def test_iqm_interval_brackets_the_trimmed_mean() -> None:
    scores = np.array([[1.0, 7.0], [2.0, 9.0], [3.0, 1.0], [50.0, 4.0]])
    interval = iqm_interval(scores, reps=200)
    assert interval.value == pytest.approx(trim_mean(scores.ravel(), 0.25))
    assert interval.low <= interval.value <= interval.high


def test_human_normalized_scores() -> None:
    assert atari_game("ALE/Pong-v5") == "Pong"
    assert atari_game("SpaceInvadersNoFrameskip-v4") == "SpaceInvaders"
    assert atari_game("MinAtar/Breakout-v1") is None
    assert human_normalized("ALE/Pong-v5", 14.6) == pytest.approx(1.0)
    assert human_normalized("ALE/Pong-v5", -20.7) == pytest.approx(0.0)
    assert human_normalized("CartPole-v1", 100.0) is None


def _row(md: str, first_cell: str, section: str) -> list[str]:
    body = md.split(section, 1)[1]
    for line in body.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip("|").split("|")][1:]
    raise AssertionError(f"no row {first_cell!r} under {section!r}")


def test_report_tables(experiment: Path, tmp_path: Path) -> None:
    md = compare(experiment, tmp_path).read_text()
    # the intervals are labelled for the sample size they have, not as 95 % confidence intervals
    assert f"n = {len(SEEDS)} per env and norm" in md and "confidence interval" not in md
    section = "## Final evaluation return"
    for env in ENVS:
        cells = _row(md, env, section)
        for norm, cell in zip(NORMS, cells):
            expected = trim_mean([_final(env, norm, s) for s in SEEDS], 0.25)
            value, low, high = map(float, re.findall(r"-?\d+\.\d+", cell))
            assert value == pytest.approx(expected, abs=0.005)
            assert low <= value <= high
    # aggregate over envs: Pong human-normalized, MinAtar raw
    agg = _row(md, "**all envs (IQM, human-normalized)**", section)
    for norm, cell in zip(NORMS, agg):
        values = [human_normalized("ALE/Pong-v5", _final("ALE/Pong-v5", norm, s)) for s in SEEDS]
        values += [_final("MinAtar/Breakout-v1", norm, s) for s in SEEDS]
        assert float(cell.split()[0]) == pytest.approx(trim_mean(values, 0.25), abs=0.005)
    noise = md.split("## Evaluation return under gaussian noise", 1)[1]
    assert "| MinAtar/Breakout-v1 | 0.3 |" in noise
    for name in ("learning_curves.png", "final_scores.png", "noise_sensitivity.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        assert f"![{name}]({name})" in md


def test_cli_on_runs_root_reports_every_experiment(experiment: Path, tmp_path: Path) -> None:
    assert main([str(experiment.parent), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "exp" / "report.md").exists()
    assert main([str(tmp_path / "missing")]) == 2


def _mixed_run(root: Path, seed: int, value: float, steps: int, how: str) -> None:
    """A run of 4000 configured steps that is ``finished``, ``unfinished`` (checkpoint only) or ``failed``."""
    run_dir = root / "MinAtar-Breakout-v1" / f"PPO-none-s{seed}"
    (run_dir / "tb").mkdir(parents=True)
    doc = {"algo": "PPO", "train": {"total_timesteps": 4000}, "run": {"env": "MinAtar/Breakout-v1", "norm": "none"}}
    doc["run"]["seed"] = seed
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc))
    writer = SummaryWriter(str(run_dir / "tb"))
    for step in range(1000, steps + 1, 1000):
        writer.add_scalar("rollout/ep_rew_mean", value, step)
    writer.add_scalar("eval/return_clean", value, steps)
    writer.close()
    state = run_dir / "checkpoints" / f"step-{steps:012d}"
    state.mkdir(parents=True)
    (state / "state.json").write_text(json.dumps({"num_timesteps": steps}))
    if how == "finished":
        (run_dir / "final.json").write_text(json.dumps({"num_timesteps": steps}))
    elif how == "failed":
        (run_dir / "failed.json").write_text(json.dumps({"message": "non-finite values after 1000 steps"}))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished runs (4000 of 4000 steps), one interrupted at 2000, one failed at 1000."""
    root = tmp_path_factory.mktemp("mixed") / "mixed"
    runs = [(0, 10.0, 4000, "finished"), (1, 20.0, 4000, "finished"), (2, 100.0, 2000, "unfinished")]
    for seed, value, steps, how in [*runs, (3, -50.0, 1000, "failed")]:
        _mixed_run(root, seed, value, steps, how)
    write_layout(root, ["MinAtar/Breakout-v1"])
    return root


def test_report_aggregates_only_finished_runs_and_lists_the_others(mixed: Path, tmp_path: Path) -> None:
    md = compare(mixed, tmp_path).read_text()
    runs = md.split("## Runs", 1)[1].split("\n## ", 1)[0]
    assert "4 runs: 2 finished, 1 unfinished, 1 failed." in runs
    assert "| MinAtar-Breakout-v1/PPO-none-s2 | unfinished | 2000 | 4000 |" in runs
    assert "| MinAtar-Breakout-v1/PPO-none-s3 | failed | 1000 | 4000 | non-finite values after 1000 steps |" in runs
    cells = _row(md, "MinAtar/Breakout-v1", "## Final evaluation return")
    assert float(cells[0].split()[0]) == pytest.approx(15.0)  # the finished runs only: IQM of 10 and 20
    assert cells[-1] == "4000" and "†" not in cells[0]
    per_run = md.split("## Per run", 1)[1]
    assert "PPO-none-s2" not in per_run and "PPO-none-s3" not in per_run


def test_report_includes_unfinished_runs_on_request_marked(mixed: Path, tmp_path: Path) -> None:
    assert main([str(mixed), "--out", str(tmp_path), "--include-unfinished"]) == 0
    md = (tmp_path / "mixed" / "report.md").read_text()
    cells = _row(md, "MinAtar/Breakout-v1", "## Final evaluation return")
    assert float(cells[0].split()[0]) == pytest.approx(trim_mean([10.0, 20.0, 100.0, -50.0], 0.25))
    assert cells[0].endswith("†") and cells[-1] == "1000–4000"
    per_run = md.split("## Per run", 1)[1]
    assert "| MinAtar-Breakout-v1/PPO-none-s2 | MinAtar/Breakout-v1 | none | 2 | 2000 |" in per_run
    assert per_run.count("| unfinished |") == 1 and per_run.count("| failed |") == 1


def test_report_without_finished_runs_says_so(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "stopped"
    _mixed_run(root, 0, 1.0, 2000, "unfinished")
    write_layout(root, ["MinAtar/Breakout-v1"])
    md = compare(root, tmp_path / "report").read_text()
    assert "1 run: 1 unfinished." in md and "No finished run yet" in md
    assert "## Final evaluation return" not in md
