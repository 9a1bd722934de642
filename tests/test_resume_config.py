"""Issue 21.1: a run's recorded configuration is the one it ran with. Resuming (or skipping a finished run) with a
different configuration is refused in one line naming the keys, before anything is written; what may change
(e.g. ``train.total_timesteps``, to extend a run) is an explicit list, and the change goes into the run's history.
Runs written by rlnorm 0.1.0 (no history, one ``last.zip`` checkpoint) still skip, resume and compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from stable_baselines3 import PPO

from agents.commands import main
from agents.config import ConfigError, load_config
from agents.pipeline.resume import RESUMABLE_KEYS, read_history
from agents.pipeline.runs import grid
from agents.pipeline.train import train_run
from agents.report.compare import compare
from tests._resume_helpers import SMOKE

TINY = ["norms=[none]", "eval.freq=0", "diagnostics.freq=0", "checkpoint_freq=512"]
LEGACY = Path(__file__).resolve().parent / "data" / "legacy_0_1_0" / "runs" / "legacy_smoke"


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _assert_config_matches_model(run_dir: Path) -> None:
    """config.yaml's hyperparameters are those of the final model."""
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    model = PPO.load(run_dir / "final_model.zip", device="cpu")
    hyper = recorded["hyperparams"]["default"]
    assert model.n_steps == hyper["n_steps"] and model.batch_size == hyper["batch_size"]
    assert model.n_epochs == hyper["n_epochs"] and model.ent_coef == hyper.get("ent_coef", 0.0)
    assert model.n_envs == recorded["train"]["n_envs"]


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    """A finished 1024-step run."""
    result = train_run(grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "total_timesteps=1024"]))[0])
    assert result.status == "finished"
    return Path(result.run_dir)


def test_resume_with_other_hyperparameters_is_refused_and_writes_nothing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _snapshot(finished)
    changed = ["total_timesteps=2048", "hyperparams.default.ent_coef=0.05", "hyperparams.default.n_steps=64"]
    status = main([str(SMOKE), f"runs_dir={tmp_path}", *TINY, *changed, "--no-compare"])
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {finished / 'config.yaml'}: hyperparams.ent_coef, hyperparams.n_steps: ")
    assert "(unset) -> 0.05, 128 -> 64" in lines[0]
    assert _snapshot(finished) == before  # nothing written: not the config, not the history, not a checkpoint
    # the same refusal from the function the backends call
    with pytest.raises(ConfigError, match=r"hyperparams\.ent_coef"):
        train_run(grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, *changed]))[0])
    assert _snapshot(finished) == before


def test_finished_run_is_not_skipped_under_another_config(finished: Path, tmp_path: Path) -> None:
    before = _snapshot(finished)
    with pytest.raises(ConfigError, match=r"hyperparams\.n_epochs: .*2 -> 3"):
        train_run(grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "hyperparams.default.n_epochs=3"]))[0])
    assert _snapshot(finished) == before


def test_extending_a_run_is_allowed_and_recorded(finished: Path, tmp_path: Path) -> None:
    assert "train.total_timesteps" in RESUMABLE_KEYS
    result = train_run(grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "total_timesteps=2048"]))[0])
    assert result.status == "finished" and result.num_timesteps == 2048
    events = read_history(finished)
    assert [e["event"] for e in events] == ["start", "finished", "resume", "finished"]
    assert events[2]["step"] == 1024 and events[2]["changed"] == {"train.total_timesteps": [1024, 2048]}
    assert yaml.safe_load((finished / "config.yaml").read_text())["train"]["total_timesteps"] == 2048
    _assert_config_matches_model(finished)


def test_runs_of_the_previous_version_skip_resume_and_compare(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(LEGACY, runs / "legacy_smoke")
    run_dir = runs / "legacy_smoke" / "CartPole-v1" / "PPO-wn-s0"
    overrides = [
        f"runs_dir={runs}",
        "experiment=legacy_smoke",
        "norms=[wn]",
        "checkpoint_freq=512",
        "eval.freq=0",
        "diagnostics.freq=512",
    ]
    assert train_run(grid(load_config(SMOKE, [*overrides, "total_timesteps=512"]))[0]).status == "skipped"
    md = compare(runs / "legacy_smoke", tmp_path / "report").read_text()
    assert "1 run: 1 finished." in md and "| CartPole-v1/PPO-wn-s0 |" in md

    result = train_run(grid(load_config(SMOKE, [*overrides, "total_timesteps=1024"]))[0])
    assert result.status == "finished" and result.num_timesteps == 1024, result.message
    assert json.loads((run_dir / "final.json").read_text())["resumed_from"] == 512
    resume = read_history(run_dir)[0]
    assert resume["event"] == "resume" and resume["checkpoint"] == "checkpoints" and resume["step"] == 512
