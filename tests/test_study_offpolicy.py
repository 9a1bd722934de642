"""The off-policy study arm (agents.studies.offpolicy): arm names, the BN train/eval gap, the joint report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sb3_contrib import CrossQ
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

import agents  # noqa: F401  (registers the policy names)
from agents.pipeline.evaluation import has_batch_statistics
from agents.studies.offpolicy import arm_name, difference_interval, main, within_rows
from agents.studies.offpolicy_gap import ActorInMode, batch_statistics, critic_mode_gap

ROOT = Path(__file__).resolve().parents[1]


def test_arm_names() -> None:
    assert arm_name("SAC", "ln", {"actor_norm": "none"}) == "SAC ln"
    assert arm_name("CrossQ", "none", {"batch_norm": True}) == "CrossQ BRN"
    assert arm_name("CrossQ", "wn", {"batch_norm": True}) == "CrossQ BRN+WN"
    assert arm_name("CrossQ", "ln", {"batch_norm": False}) == "CrossQ ln"


def test_batch_statistics_restores_buffers_and_mode() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with batch_statistics(net, train=True):
        assert net[1].training
        net(torch.randn(16, 3) * 5 + 3)
        assert not torch.equal(net[1].running_mean, before["1.running_mean"])  # the forward moved them
    assert not net.training and not net[1].training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_difference_interval() -> None:
    same = np.array([10.0, 20.0, 30.0])
    diff, low, high = difference_interval(same, same)
    assert diff == 0.0 and low < 0.0 < high
    diff, low, high = difference_interval(same + 100.0, same)
    assert diff == pytest.approx(100.0) and low > 0.0


def test_within_rows_compare_arms_of_one_experiment() -> None:
    values = {"SAC none": [1.0, 2.0, 3.0], "CrossQ BRN": [10.0, 11.0, 12.0], "CrossQ BRN+WN": [20.0, 21.0, 22.0]}
    per_run = pd.DataFrame(
        [
            {"arm": arm, "experiment": "sac" if arm.startswith("SAC") else "crossq", "seed": seed, "value": v}
            for arm, vs in values.items()
            for seed, v in enumerate(vs)
        ]
    )
    rows = within_rows(per_run, ["SAC none", "CrossQ BRN", "CrossQ BRN+WN"])
    assert [r[:2] for r in rows] == [["CrossQ BRN+WN", "CrossQ BRN"]]
    assert rows[0][2].startswith("10.0 [")


def _sac(actor_norm: str, critic_norm: str) -> SAC:
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    kwargs = dict(actor_norm=actor_norm, critic_norm=critic_norm, net_arch=[16, 16])
    model = SAC("NormMlpPolicy", env, policy_kwargs=kwargs, learning_starts=50, batch_size=32, seed=0)
    return model.learn(120)


def test_mode_gap_is_in_the_critics_of_a_plain_actor() -> None:
    model = _sac("none", "bn")
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=1)
    buffers = {k: v.clone() for k, v in model.policy.state_dict().items()}
    gap = critic_mode_gap(model.policy, env, n_episodes=2, batch_size=32, max_states=64)
    assert gap.return_train_mode is None  # the actor has no batch statistics: it acts the same in both modes
    assert gap.states == 64
    assert gap.q_gap > 0.0 and gap.q_train_mode != gap.q_eval_mode
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, buffers[key]), key  # the measurement moved no running statistic


def test_plain_critics_have_no_mode_gap() -> None:
    model = _sac("none", "ln")
    gap = critic_mode_gap(model.policy, make_vec_env("Pendulum-v1", n_envs=2, seed=1), n_episodes=2, max_states=40)
    assert gap.q_gap == 0.0 and gap.q_train_mode == gap.q_eval_mode


def test_bn_actor_acts_with_its_batch_statistics() -> None:
    model = _sac("bn", "none")
    obs = make_vec_env("Pendulum-v1", n_envs=4, seed=2).reset()
    train_actions, _ = ActorInMode(model.policy, train=True).predict(obs)
    eval_actions, _ = ActorInMode(model.policy, train=False).predict(obs)
    expected, _ = model.policy.predict(obs, deterministic=True)
    np.testing.assert_allclose(eval_actions, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(train_actions, eval_actions)
    gap = critic_mode_gap(model.policy, make_vec_env("Pendulum-v1", n_envs=2, seed=1), n_episodes=2, max_states=40)
    assert gap.return_train_mode is not None


def test_crossq_gap_restores_its_batch_renorm() -> None:
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    kwargs = dict(batch_norm=True, net_arch=dict(pi=[16, 16], qf=[16, 16]))
    model = CrossQ("NormMlpPolicy", env, policy_kwargs=kwargs, learning_starts=50, batch_size=32, seed=0).learn(120)
    buffers = {k: v.clone() for k, v in model.policy.state_dict().items()}
    gap = critic_mode_gap(model.policy, make_vec_env("Pendulum-v1", n_envs=2, seed=1), n_episodes=2, max_states=40)
    assert gap.return_train_mode is not None and gap.q_gap > 0.0
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, buffers[key]), key


def test_sb3_contrib_batch_renorm_counts_as_batch_statistics() -> None:
    # sb3-contrib's BatchRenorm keeps ra_mean, not running_mean: eval.bn_modes must still see CrossQ's critics
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    arch = dict(net_arch=dict(pi=[16], qf=[16]))
    assert has_batch_statistics(CrossQ("MlpPolicy", env, policy_kwargs=arch).policy)
    assert not has_batch_statistics(SAC("MlpPolicy", env, policy_kwargs=arch).policy)


def _tiny_config(source: str, tmp_path: Path, norms: list[str]) -> Path:
    data = yaml.safe_load((ROOT / "configs" / source).read_text())
    data.update(envs=["Pendulum-v1"], norms=norms, seeds=[0, 1])
    data["train"].update(total_timesteps=160, checkpoint_freq=160)
    data["hyperparams"]["default"].update(learning_starts=100, batch_size=32, buffer_size=1000)
    data["eval"].update(freq=80, n_episodes=2)
    data["policy_kwargs"]["net_arch"] = {"pi": [16, 16], "qf": [16, 16]}
    data.update(runs_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports"))
    path = tmp_path / source
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_tiny_study_runs_and_reports(tmp_path: Path) -> None:
    configs = [
        _tiny_config("study_offpolicy_hopper.yaml", tmp_path, ["none", "bn"]),
        _tiny_config("study_offpolicy_hopper_crossq.yaml", tmp_path, ["none"]),
    ]
    assert main([*map(str, configs), "--workers", "1", "--episodes", "2"]) == 0
    out = tmp_path / "reports" / "study_offpolicy_hopper"
    runs = pd.read_csv(out / "offpolicy_runs.csv")
    assert sorted(runs.arm.unique()) == ["CrossQ BRN", "SAC bn", "SAC none"]
    assert len(runs) == 6 and set(runs.step) == {160} and (runs.wall_time_s > 0).all()
    gaps = pd.read_csv(out / "offpolicy_bn_gap.csv")
    assert sorted(gaps.arm) == ["CrossQ BRN", "CrossQ BRN", "SAC bn", "SAC bn"]
    assert gaps[gaps.arm == "SAC bn"].return_train_mode.isna().all()
    assert gaps[gaps.arm == "CrossQ BRN"].return_train_mode.notna().all()
    text = (out / "offpolicy.md").read_text()
    assert "| SAC none | 2 | 160 |" in text and "| SAC bn | 2 | 160 |" in text and "| CrossQ BRN | 2 | 160 |" in text
    assert "= eval (plain actor)" in text and "not a 95 % confidence interval" in text
    assert (out / "offpolicy_curves.png").stat().st_size > 10_000
    assert (tmp_path / "reports" / "study_offpolicy_hopper_crossq" / "report.md").exists()
