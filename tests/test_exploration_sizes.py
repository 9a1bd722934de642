"""Study 6c (agents.studies.exploration_sizes, exploration_report): variant and size configs, the episode log,
the report's definitions, and a tiny real study of DQN and PPO with and without the bonuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from stable_baselines3 import DQN

import envs
from agents.config import ConfigError
from agents.exploration import wrap_exploration
from agents.report.stats import wilson_interval
from agents.studies.exploration_report import (
    largest_reliable,
    load_runs,
    median_first_success,
    pooled,
    summarize,
)
from agents.studies.exploration_sizes import (
    COUNTS_FILE,
    EPISODES_FILE,
    EpisodeLog,
    check_variant,
    main,
    ordered_specs,
    sizes_configs,
)

ROOT = Path(__file__).resolve().parents[1]
DQN_CONFIG = ROOT / "configs/study_exploration_sizes.yaml"
PPO_CONFIG = ROOT / "configs/study_exploration_sizes_ppo.yaml"


def test_sizes_configs_set_size_budget_and_variant(tmp_path: Path) -> None:
    configs = dict(
        sizes_configs([DQN_CONFIG, PPO_CONFIG], [6, 10], ["plain", "count", "pc-bn"], 50, [f"runs_dir={tmp_path}"])
    )
    assert len(configs) == 12
    config = configs[("DQN", 10, "count")]
    assert config.env_options["env_kwargs"] == {"size": 10}
    assert config.train.total_timesteps == 50 * 10 * 10 and config.eval.freq == 5000 // 8
    assert config.exploration == {"kind": "count", "beta": 0.05}
    assert config.experiment == "count" and Path(config.runs_dir) == tmp_path / "study_exploration_sizes" / "n10"
    assert configs[("PPO", 6, "plain")].exploration is None
    assert configs[("PPO", 6, "pc-bn")].exploration["norm"] == "bn"
    assert configs[("PPO", 6, "pc-bn")].algo == "PPO"
    specs = ordered_specs(list(configs.items()))
    assert [(s.config.env_options["env_kwargs"]["size"], s.seed) for s in specs][:7] == [(6, 0)] * 6 + [(6, 1)]


def test_bad_study_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="plain, count, pc-<norm>"):
        check_variant("rnd")
    with pytest.raises(ConfigError, match="duplicate"):
        sizes_configs([DQN_CONFIG], [6], ["plain", "plain"], 50)
    with pytest.raises(ConfigError, match="--sizes"):
        sizes_configs([DQN_CONFIG], [1], ["plain"], 50)
    with pytest.raises(ConfigError, match="already run"):
        sizes_configs([DQN_CONFIG, DQN_CONFIG], [6], ["plain"], 50)
    with pytest.raises(ConfigError, match=r"exploration\.norm"):
        sizes_configs([DQN_CONFIG], [6], ["pc-batchnorm"], 50)


def test_episode_log_counts_episodes_successes_and_samples_counts(tmp_path: Path) -> None:
    env = envs.make_env("DeepSea-v0", n_envs=1, seed=0, env_kwargs={"size": 2})
    env = wrap_exploration(env, {"kind": "pseudocount", "hidden_channels": 4, "n_layers": 2})
    model = DQN("MlpPolicy", env, learning_starts=200, seed=0, device="cpu")  # acts at random throughout
    model.learn(200, callback=EpisodeLog(tmp_path, sample_every=5))
    record = json.loads((tmp_path / EPISODES_FILE).read_text())
    assert record["episodes"] == 100 and record["bonus"] == "pseudocount"
    # a random policy reaches the corner of a 2x2 sea in a quarter of the episodes
    assert 10 < record["solved_episodes"] < 45 and 1 <= record["first_solved_episode"] <= 20
    samples = pd.read_csv(tmp_path / COUNTS_FILE)
    assert len(samples) == 40 and (samples.visit_count >= 1).all()
    env.close()


def fake_run(root: Path, algo: str, size: int, variant: str, seed: int, greedy: float, first: int | None) -> None:
    run = root / f"n{size}" / variant / "DeepSea-v0" / f"{algo}-none-s{seed}"
    run.mkdir(parents=True)
    steps = 10 * size * size
    config = {
        "algo": algo,
        "train": {"total_timesteps": steps},
        "env_options": {"env_kwargs": {"size": size}},
        "run": {"seed": seed},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    final = {"num_timesteps": steps, "metrics": {"eval/return_clean": greedy}, "wall_time_s": 1.0}
    (run / "final.json").write_text(json.dumps(final))
    episodes = {"episodes": 10 * size, "solved_episodes": int(first is not None), "first_solved_episode": first}
    (run / EPISODES_FILE).write_text(json.dumps(episodes))


def test_report_definitions(tmp_path: Path) -> None:
    for seed in range(3):
        fake_run(tmp_path, "DQN", 4, "count", seed, 0.99, 5 + seed)
        fake_run(tmp_path, "DQN", 6, "count", seed, 0.99 if seed else 0.0, 20)
        fake_run(tmp_path, "DQN", 4, "plain", seed, 0.0, 30 if seed == 0 else None)
    fake_run(tmp_path, "DQN", 8, "count", 0, 0.99, 50)  # one seed: not "reliable"
    runs = load_runs(tmp_path)
    assert len(runs) == 10
    summary = summarize(runs).set_index(["variant", "size"])
    assert summary.loc[("count", 4), "greedy_solved"] == 3 and summary.loc[("count", 6), "greedy_solved"] == 2
    assert summary.loc[("count", 4), "median_first_success_episode"] == 6
    assert np.isinf(summary.loc[("plain", 4), "median_first_success_episode"])
    assert summary.loc[("plain", 4), "reached"] == 1
    fake_run(tmp_path, "DQN", 10, "count", 0, 0.99, 50)
    fake_run(tmp_path, "DQN", 10, "count", 1, 0.99, 50)
    fake_run(tmp_path, "DQN", 10, "count", 2, 0.99, 70)
    reliable = largest_reliable(summarize(load_runs(tmp_path))).set_index("variant")
    # 10 is solved by every seed, 6 is not: the largest reliable size is 10, the sizes all solved end at 4
    assert reliable.largest_size_solved_reliably["count"] == 10 and reliable.every_size_up_to["count"] == 4
    assert reliable.largest_size_solved_reliably["plain"] == "none" and reliable.every_size_up_to["plain"] == "none"
    pool = pooled(summarize(load_runs(tmp_path))).set_index("variant")
    # count over sizes 4, 6, 8, 10: 3 + 2 + 1 + 3 of 10 runs; plain ran only size 4: 0 of 3
    assert pool.loc["count", "sizes"] == "4, 6, 8, 10" and pool.loc["count", "variant_solved"].startswith("9/10 [")
    assert pool.loc["count", "plain_solved"].startswith("0/3 [0.00, ")
    low, high = wilson_interval(3, 3)
    assert 0.4 < low < 0.5 and high == 1.0 and np.isnan(wilson_interval(0, 0)[0])
    assert median_first_success(pd.Series([3.0, np.nan, np.nan])) == np.inf
    assert median_first_success(pd.Series([3.0, 5.0, np.nan])) == 5.0


@pytest.mark.slow
def test_tiny_study_runs_dqn_and_ppo_with_each_bonus_and_reports(tmp_path: Path) -> None:
    args = [
        str(DQN_CONFIG),
        str(PPO_CONFIG),
        "--sizes",
        "3",
        "--variants",
        "plain",
        "count",
        "pc-wn",
        "--episodes-per-size-unit",
        "8",
        "--workers",
        "1",
        "seeds=[0]",
        "exploration.hidden_channels=4",
        "exploration.n_layers=2",
        "hyperparams.default.learning_starts=10",
        f"runs_dir={tmp_path / 'runs'}",
        f"reports_dir={tmp_path / 'reports'}",
    ]
    # PPO's hyperparams differ; the DQN key above would be refused there, so give PPO its own run
    dqn_args = [a for a in args if a != str(PPO_CONFIG)]
    assert main(dqn_args) == 0
    ppo_args = [a for a in args if a not in (str(DQN_CONFIG), "hyperparams.default.learning_starts=10")]
    assert main(ppo_args) == 0
    out = tmp_path / "reports" / "study_exploration_sizes"
    runs = pd.read_csv(out / "per_run.csv")
    assert set(zip(runs.algo, runs.variant)) == {(a, v) for a in ("DQN", "PPO") for v in ("plain", "count", "pc-wn")}
    assert runs.episodes.min() >= 8 * 3 and (runs.steps >= 8 * 9).all()
    pc = runs[runs.variant == "pc-wn"]
    assert pc.count_rank_corr.notna().all() and (pc.pseudo_over_exact > 0).all()
    text = (out / "report.md").read_text()
    assert "## DQN" in text and "## PPO" in text and "largest size solved reliably" in text
    assert (out / "sizes.png").stat().st_size > 10_000
    assert len((out / "run_log.md").read_text().splitlines()) == 4  # title, blank, two invocations
    # finished runs are skipped
    assert main([*dqn_args, "--report-only"]) == 0
