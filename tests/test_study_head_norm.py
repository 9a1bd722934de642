"""Normalized-heads study (agents.studies.head_norm): variant configs, the measures, a tiny real grid read back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.config import ConfigError, load_config
from agents.studies.head_norm import (
    entropy,
    head_norm_configs,
    main,
    mean_interval,
    run_measures,
    variant_name,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/study_head_norm.yaml"
TINY = [
    "env_options.max_episode_steps=100",
    "total_timesteps=256",
    "train.n_envs=2",
    "hyperparams.default.n_steps=64",
    "hyperparams.default.batch_size=64",
    "hyperparams.default.n_epochs=1",
    "diagnostics.freq=64",
    "eval.n_episodes=2",
    "eval.n_envs=2",
    "checkpoint_freq=256",
    "seeds=[0]",
]


def test_study_configs_validate() -> None:
    for name in ("study_head_norm", "study_head_norm_dqn"):
        config = load_config(ROOT / f"configs/{name}.yaml")
        assert config.experiment == name and config.envs == ("MinAtar/Freeway-v1",)
        assert config.diagnostics.freq > 0


def test_head_norm_configs(tmp_path: Path) -> None:
    configs = dict(head_norm_configs(CONFIG, ["none", "wn", "cosine"], [f"runs_dir={tmp_path}"]))
    assert list(configs) == ["none", "wn", "cosine"]
    for head, config in configs.items():
        assert config.policy_kwargs["head_norm"] == head
        assert config.experiment == variant_name(head) == f"head-{head}"
        assert Path(config.runs_dir) == tmp_path / "study_head_norm"
        assert config.norms == ("none",)  # only the heads differ


def test_head_norm_configs_reject_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"--heads.*none, wn, cosine"):
        head_norm_configs(CONFIG, ["layer"])
    with pytest.raises(ConfigError, match="duplicate"):
        head_norm_configs(CONFIG, ["wn", "wn"])
    with pytest.raises(ConfigError, match=r"diagnostics\.freq"):
        head_norm_configs(CONFIG, ["wn"], ["diagnostics.freq=0"])


def _scalars(norms: list[list[float]], freqs: list[list[float]], steps: list[int]) -> pd.DataFrame:
    rows = []
    for step, n, f in zip(steps, norms, freqs):
        for a, (na, fa) in enumerate(zip(n, f)):
            rows.append({"tag": f"heads/weight_norm/a{a}", "step": step, "value": na})
            rows.append({"tag": f"heads/action_freq/a{a}", "step": step, "value": fa})
    rows.append({"tag": "train/entropy_loss", "step": steps[-1], "value": -0.5})
    rows.append({"tag": "eval/return_clean", "step": steps[-1], "value": 7.0})
    ident = {"head": "none", "env": "E", "algo": "PPO", "norm": "none", "seed": 0, "status": "finished"}
    return pd.DataFrame(rows).assign(**ident)


def test_run_measures_uses_final_norms_and_last_quarter_frequencies() -> None:
    steps = [100, 200, 300, 400]
    norms = [[9.0, 9.0, 1.0], [9.0, 1.0, 9.0], [1.0, 9.0, 9.0], [1.0, 2.0, 3.0]]
    # only the last logged window (step 400 > 0.75 * 400) counts: frequencies 0.2, 0.3, 0.5
    freqs = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]]
    per_run, per_action = run_measures(_scalars(norms, freqs, steps))
    row = per_run.iloc[0]
    assert row.corr_final == pytest.approx(np.corrcoef([1.0, 2.0, 3.0], [0.2, 0.3, 0.5])[0, 1])
    assert row.top_action == 2 and row.top_share == pytest.approx(0.5)
    assert row.action_entropy == pytest.approx(entropy(np.array([0.2, 0.3, 0.5])))
    assert row.policy_entropy == pytest.approx(0.5) and row.return_eval == pytest.approx(7.0)
    assert per_action.norm.tolist() == [1.0, 2.0, 3.0]
    # a longer final share averages the last two windows
    per_run, per_action = run_measures(_scalars(norms, freqs, steps), final_share=0.5)
    assert per_action.freq.tolist() == pytest.approx([0.1, 0.15, 0.75])


def test_equal_norms_give_no_correlation() -> None:
    per_run, _ = run_measures(_scalars([[2.0, 2.0, 2.0]], [[0.1, 0.1, 0.8]], [100]))
    assert math.isnan(per_run.iloc[0].corr_final)


def test_entropy_and_mean_interval() -> None:
    assert entropy(np.array([1, 1, 1])) == pytest.approx(math.log(3))
    assert entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    interval = mean_interval(np.array([0.1, 0.5, 0.9, np.nan]))
    assert interval.value == pytest.approx(0.5)
    assert 0.1 <= interval.low < 0.5 < interval.high <= 0.9
    assert math.isnan(mean_interval(np.array([np.nan])).value)


def test_tiny_study_runs_and_reports(tmp_path: Path) -> None:
    overrides = [*TINY, f"runs_dir={tmp_path / 'runs'}", f"reports_dir={tmp_path / 'reports'}"]
    argv = [str(CONFIG), *overrides, "--heads", "none", "wn", "cosine", "--workers", "0"]
    assert main(argv) == 0
    study = tmp_path / "runs" / "study_head_norm"
    for head in ("none", "wn", "cosine"):
        assert (study / f"head-{head}" / "MinAtar-Freeway-v1" / "PPO-none-s0" / "final.json").is_file()
    out = tmp_path / "reports" / "study_head_norm"
    per_run = pd.read_csv(out / "per_run.csv")
    assert sorted(per_run["head"].unique()) == ["cosine", "none", "wn"]
    assert per_run.seed.tolist() == [0, 0, 0] and set(per_run.status) == {"finished"}
    plain = per_run[per_run["head"] != "cosine"]
    assert plain.corr_final.between(-1, 1).all()
    assert per_run[per_run["head"] == "cosine"].corr_final.isna().all()  # equal norms by construction
    per_action = pd.read_csv(out / "norms.csv")
    assert sorted(per_action.action.unique()) == [0, 1, 2]  # Freeway's minimal action set
    sums = per_action.groupby(["head", "seed"]).freq.sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-6)
    assert (out / "head_norm.png").stat().st_size > 10_000
    text = (out / "report.md").read_text()
    assert "| measure | head_norm=none | head_norm=wn | head_norm=cosine |" in text
    assert "256 steps per run; this invocation took" in text
    # finished runs are skipped; --report-only leaves the wall time out of the note
    assert main([*argv, "--report-only"]) == 0
    assert "invocation took" not in (out / "report.md").read_text()
