"""Study experiment 6b (agents.studies.exploration): variant configs, a tiny real grid on Deep Sea, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.config import ConfigError, load_config
from agents.pipeline.runs import grid
from agents.pipeline.tb_layout import RETURN_CLEAN
from agents.pipeline.train import make_train_env
from agents.studies.exploration import exploration_configs, main, per_seed

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/study_exploration.yaml"
TINY = [
    "env_options.env_kwargs.size=4",
    "total_timesteps=256",
    "train.n_envs=2",
    "hyperparams.default.n_steps=64",
    "hyperparams.default.batch_size=64",
    "hyperparams.default.n_epochs=1",
    "eval.freq=64",
    "eval.n_episodes=2",
    "eval.n_envs=2",
    "checkpoint_freq=128",
    "exploration.hidden_channels=4",
    "exploration.n_layers=2",
    "seeds=[0,1]",
]


def test_exploration_configs(tmp_path: Path) -> None:
    configs = dict(exploration_configs(CONFIG, ["wn", "bn"], [f"runs_dir={tmp_path}"]))
    assert list(configs) == ["plain", "pc-wn", "pc-bn"]
    assert configs["plain"].exploration is None
    assert configs["pc-wn"].exploration["norm"] == "wn"
    assert configs["pc-bn"].exploration["norm"] == "bn"
    for name, config in configs.items():
        assert config.experiment == name
        assert Path(config.runs_dir) == tmp_path / "study_exploration"
        assert config.env_options["env_kwargs"] == {"size": 16}


def test_exploration_configs_reject_bad_input() -> None:
    with pytest.raises(ConfigError, match="exploration"):
        exploration_configs(ROOT / "configs/study_noise.yaml")  # no exploration block
    with pytest.raises(ConfigError, match="--density-norms"):
        exploration_configs(CONFIG, ["wn", "wn"])
    with pytest.raises(ConfigError, match=r"exploration\.norm.*wn"):
        exploration_configs(CONFIG, ["batchnorm"])


def test_density_model_takes_the_run_seed(tmp_path: Path) -> None:
    config = load_config(CONFIG, [*TINY, f"runs_dir={tmp_path}"])
    seeds = []
    for spec in grid(config):
        env = make_train_env(spec)
        seeds.append((spec.seed, env.config.seed))
        env.close()
    assert seeds == [(0, 0), (1, 1)]
    pinned = load_config(CONFIG, [*TINY, f"runs_dir={tmp_path}", "exploration.seed=7"])
    env = make_train_env(grid(pinned)[1])
    assert env.config.seed == 7
    env.close()


def test_per_seed_solved_and_first_solving_step() -> None:
    evals = pd.DataFrame(
        {
            "run": ["a"] * 3 + ["b"] * 3,
            "tag": RETURN_CLEAN,
            "variant": ["plain"] * 3 + ["pc-wn"] * 3,
            "env": "DeepSea-v0",
            "seed": 0,
            "step": [10, 20, 30] * 2,
            "value": [0.0, 0.0, -0.01, 0.0, 0.99, 0.99],
        }
    )
    rows = per_seed(evals).set_index("variant")
    assert not rows.loc["plain", "solved"] and np.isnan(rows.loc["plain", "first_solved_step"])
    assert rows.loc["pc-wn", "solved"] and rows.loc["pc-wn", "first_solved_step"] == 20
    assert rows.loc["pc-wn", "final"] == pytest.approx(0.99)


def test_tiny_study_runs_and_reports(tmp_path: Path) -> None:
    overrides = [*TINY, f"runs_dir={tmp_path / 'runs'}", f"reports_dir={tmp_path / 'reports'}"]
    assert main([str(CONFIG), *overrides, "--workers", "0"]) == 0
    out = tmp_path / "reports" / "study_exploration"
    runs = pd.read_csv(out / "per_run.csv")
    assert sorted(runs.variant.unique()) == ["pc-wn", "plain"]
    assert sorted(runs.seed.unique()) == [0, 1]
    assert (out / "curves.png").stat().st_size > 10_000
    text = (out / "report.md").read_text()
    assert "| plain |" in text and "| pc-wn |" in text and "/2 |" in text
    from tbparse import SummaryReader

    study = tmp_path / "runs" / "study_exploration"
    pc_tags = set(SummaryReader(str(study / "pc-wn" / "DeepSea-v0" / "PPO-none-s0")).scalars.tag)
    plain_tags = set(SummaryReader(str(study / "plain" / "DeepSea-v0" / "PPO-none-s0")).scalars.tag)
    assert "exploration/bonus" in pc_tags and "exploration/bonus" not in plain_tags
    assert RETURN_CLEAN in pc_tags and RETURN_CLEAN in plain_tags
    # finished runs are skipped: a second call only redoes the report
    assert main([str(CONFIG), *overrides, "--workers", "0"]) == 0
