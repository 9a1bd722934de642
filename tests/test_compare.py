"""The report aggregates seeds with IQM + bootstrap CIs, human-normalizes Atari scores, and draws its figures.

Event files are written here with TensorBoard's own writer and known values, so the expected IQMs can be computed
independently (``scipy.stats.trim_mean``)."""

from __future__ import annotations

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
                doc = {"algo": "PPO", "run": {"env": env, "norm": norm, "seed": seed}}
                (run_dir / "config.yaml").write_text(yaml.safe_dump(doc))
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
