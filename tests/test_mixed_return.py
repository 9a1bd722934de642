"""The mixed Monte Carlo return for DQN (agents.mixed_return): the stored returns, the mixed target, beta = 0 as
SB3's DQN, save/load and resume, and the config and study spellings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecEnv

from agents.config import ConfigError, load_config
from agents.mixed_return import MixedReturnDQN, MixedReturnReplayBuffer, discounted_returns
from agents.pipeline.runs import grid
from agents.pipeline.train import train_run
from agents.policies.algos import algo_class

ROOT = Path(__file__).resolve().parents[1]
SIZES_CONFIG = ROOT / "configs" / "study_exploration_sizes.yaml"
PPO_SIZES_CONFIG = ROOT / "configs" / "study_exploration_sizes_ppo.yaml"


def make_buffer(size: int, n_envs: int = 1, gamma: float = 0.5, beta: float = 0.0) -> MixedReturnReplayBuffer:
    # buffer_size counts transitions over all envs (SB3 divides it by n_envs)
    return MixedReturnReplayBuffer(
        size * n_envs, spaces.Box(-1e6, 1e6, (1,)), spaces.Discrete(2), "cpu", n_envs, gamma=gamma, mixed_return=beta
    )


def add_steps(buffer: ReplayBuffer, rewards: list[list[float]], dones: list[list[int]], truncated=()) -> None:
    """One ``add`` per row; the observation of env ``i`` at step ``t`` is ``1000 t + i`` (to find it again)."""
    for t, (reward, done) in enumerate(zip(rewards, dones)):
        n = len(reward)
        obs = np.array([[1000.0 * t + i] for i in range(n)])
        infos = [{"TimeLimit.truncated": (t, i) in truncated} for i in range(n)]
        buffer.add(obs, obs + 0.5, np.zeros((n, 1)), np.array(reward, float), np.array(done, float), infos)


def by_hand(rewards: list[float], gamma: float) -> list[float]:
    return [sum(gamma**k * r for k, r in enumerate(rewards[t:])) for t in range(len(rewards))]


def test_discounted_returns_is_the_discounted_sum() -> None:
    rewards = [1.0, -2.0, 0.5, 3.0]
    np.testing.assert_allclose(discounted_returns(np.array(rewards), 0.9), by_hand(rewards, 0.9), rtol=1e-12)
    assert discounted_returns(np.array([]), 0.9).shape == (0,)


def test_returns_of_finished_episodes_and_none_for_the_unfinished_one() -> None:
    buffer = make_buffer(10, gamma=0.5)
    add_steps(buffer, [[1], [2], [4], [8], [16]], [[0], [0], [1], [0], [0]])
    assert buffer.has_return[:5, 0].tolist() == [True, True, True, False, False]
    np.testing.assert_allclose(buffer.mc_returns[:3, 0], by_hand([1, 2, 4], 0.5))
    add_steps(buffer, [[32]], [[1]])  # the second episode ends: 8, 16, 32
    np.testing.assert_allclose(buffer.mc_returns[3:6, 0], by_hand([8, 16, 32], 0.5))
    assert buffer.return_fraction() == 1.0


def test_several_envs_end_their_episodes_independently() -> None:
    buffer = make_buffer(8, n_envs=3, gamma=0.9)
    rewards = [[1, 10, 100], [2, 20, 200], [3, 30, 300], [4, 40, 400]]
    dones = [[0, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 0]]
    add_steps(buffer, rewards, dones)
    np.testing.assert_allclose(buffer.mc_returns[:4, 0], [*by_hand([1, 2], 0.9), *by_hand([3, 4], 0.9)], rtol=1e-6)
    np.testing.assert_allclose(buffer.mc_returns[:4, 1], [10, *by_hand([20, 30, 40], 0.9)], rtol=1e-6)
    assert not buffer.has_return[:4, 2].any()  # env 2 is still in its first episode
    assert buffer.has_return[:4, :2].all()


def test_wrap_around_keeps_the_returns_of_what_is_still_stored() -> None:
    buffer = make_buffer(3, gamma=0.5)
    # one episode of 5 steps in a buffer of 3: its first two transitions are overwritten by its last two
    add_steps(buffer, [[1], [2], [4], [8], [16]], [[0], [0], [0], [0], [1]])
    # positions: step 3 (r=4) at 2, step 4 (r=8) at 0, step 5 (r=16) at 1
    expected = by_hand([1, 2, 4, 8, 16], 0.5)[2:]
    np.testing.assert_allclose(buffer.mc_returns[[2, 0, 1], 0], expected)
    assert buffer.has_return.all()
    # a new, unfinished episode overwrites position 2 (and only it loses its return)
    add_steps(buffer, [[100]], [[0]])
    assert buffer.has_return[:, 0].tolist() == [True, True, False]


def test_truncated_episodes_and_episodes_cut_by_a_reset_get_no_return() -> None:
    buffer = make_buffer(10, n_envs=2, gamma=0.5)
    add_steps(buffer, [[1, 1], [2, 2]], [[0, 0], [1, 1]], truncated={(1, 0)})
    assert buffer.has_return[:2].tolist() == [[False, True], [False, True]]
    add_steps(buffer, [[5, 5]], [[0, 0]])
    buffer.drop_unfinished()  # the env was reset: step 3 never gets a return
    add_steps(buffer, [[7, 7]], [[1, 1]])
    assert buffer.has_return[2:4].tolist() == [[False, False], [True, True]]
    np.testing.assert_allclose(buffer.mc_returns[3], [7, 7])


def test_samples_carry_the_mixed_target() -> None:
    """``r' + (1 - done) gamma' Q`` of a sample is ``(1 - beta)(r + (1 - done) gamma Q) + beta R_MC``."""
    gamma, beta = 0.9, 0.25
    buffer = make_buffer(16, n_envs=2, gamma=gamma, beta=beta)
    rewards = [[float(t + 1), float(-t)] for t in range(8)]
    dones = [[int(t in (2, 5)), int(t == 3)] for t in range(8)]
    add_steps(buffer, rewards, dones)
    np.random.seed(0)
    data = buffer.sample(64)
    q_next = torch.linspace(-1, 1, 64).reshape(-1, 1)
    target = data.rewards + (1 - data.dones) * data.discounts * q_next
    for k in range(64):
        t, env = divmod(int(data.observations[k, 0]), 1000)
        td = rewards[t][env] + (1 - dones[t][env]) * gamma * float(q_next[k])
        mc = float(buffer.mc_returns[t, env])
        expected = (1 - beta) * td + beta * mc if buffer.has_return[t, env] else td
        assert float(target[k]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    known = torch.as_tensor(
        buffer.has_return[data.observations[:, 0].long() // 1000, data.observations[:, 0].long() % 1000]
    )
    assert known.any() and not known.all()  # both kinds were sampled


def test_beta_zero_samples_what_replay_buffer_samples() -> None:
    plain = ReplayBuffer(20, spaces.Box(-1e6, 1e6, (1,)), spaces.Discrete(2), "cpu", 2)
    mixed = make_buffer(10, n_envs=2, gamma=0.99, beta=0.0)
    steps = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]
    for buffer in (plain, mixed):
        add_steps(buffer, steps, [[0, 1], [1, 0], [0, 0], [1, 1]])
    samples = []
    for buffer in (plain, mixed):
        np.random.seed(3)
        samples.append(buffer.sample(32))
    for field in ("observations", "actions", "next_observations", "dones", "rewards"):
        assert torch.equal(getattr(samples[0], field), getattr(samples[1], field)), field
    assert torch.all(samples[1].discounts == torch.tensor(0.99, dtype=torch.float32))


def deep_sea(size: int = 4) -> VecEnv:
    from envs import make_env

    return make_env("DeepSea-v0", 2, seed=0, env_kwargs={"size": size})


def params(model: DQN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def one_update(cls: type[DQN], beta: float | None, source: DQN) -> list[torch.Tensor]:
    """A model with ``source``'s weights and replay transitions, after one gradient step from a fixed seed."""
    kwargs = {} if beta is None else {"mixed_return": beta}
    model = cls("MlpPolicy", deep_sea(), learning_starts=0, batch_size=16, seed=0, device="cpu", **kwargs)
    model.policy.load_state_dict(source.policy.state_dict())
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        getattr(model.replay_buffer, name)[:] = getattr(source.replay_buffer, name)
    model.replay_buffer.pos, model.replay_buffer.full = source.replay_buffer.pos, source.replay_buffer.full
    if isinstance(model.replay_buffer, MixedReturnReplayBuffer):
        model.replay_buffer.mc_returns[:] = source.replay_buffer.mc_returns
        model.replay_buffer.has_return[:] = source.replay_buffer.has_return
    model.set_logger(source.logger)
    np.random.seed(7)
    torch.manual_seed(7)
    model.train(gradient_steps=1, batch_size=16)
    return params(model)


def test_mixed_return_zero_is_sb3_dqn_exactly() -> None:
    source = MixedReturnDQN("MlpPolicy", deep_sea(), mixed_return=0.5, learning_starts=50, seed=1, device="cpu")
    source.learn(120)
    assert source.replay_buffer.return_fraction() > 0.5
    reference = one_update(DQN, None, source)
    same = one_update(MixedReturnDQN, 0.0, source)
    assert all(torch.equal(a, b) for a, b in zip(reference, same))
    mixed = one_update(MixedReturnDQN, 0.5, source)
    assert not all(torch.equal(a, b) for a, b in zip(reference, mixed))


def test_learn_save_load_and_replay_buffer_round_trip(tmp_path: Path) -> None:
    model = MixedReturnDQN("MlpPolicy", deep_sea(), mixed_return=0.3, learning_starts=20, seed=0, device="cpu")
    model.learn(80)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = MixedReturnDQN.load(tmp_path / "model.zip", env=deep_sea(), device="cpu")
    assert loaded.mixed_return == 0.3 and isinstance(loaded.replay_buffer, MixedReturnReplayBuffer)
    assert loaded.replay_buffer.mixed_return == 0.3 and loaded.replay_buffer.gamma == model.gamma
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    np.testing.assert_array_equal(loaded.replay_buffer.mc_returns, model.replay_buffer.mc_returns)
    np.testing.assert_array_equal(loaded.replay_buffer.has_return, model.replay_buffer.has_return)
    assert loaded.replay_buffer.has_return.any()
    loaded.learn(40, reset_num_timesteps=False)  # a loaded model has no last observation: the env is reset
    assert loaded.num_timesteps == 120

    plain = DQN("MlpPolicy", deep_sea(), learning_starts=20, seed=0, device="cpu")
    plain.save_replay_buffer(tmp_path / "plain.pkl")
    with pytest.raises(TypeError, match="not a MixedReturnReplayBuffer"):
        loaded.load_replay_buffer(tmp_path / "plain.pkl")


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.1x", True, float("nan")])
def test_model_refuses_a_bad_coefficient(bad: object) -> None:
    with pytest.raises(ValueError, match="mixed_return"):
        MixedReturnDQN("MlpPolicy", deep_sea(), mixed_return=bad, device="cpu")


def test_model_refuses_n_step_and_other_buffers() -> None:
    with pytest.raises(ValueError, match="n_steps"):
        MixedReturnDQN("MlpPolicy", deep_sea(), mixed_return=0.1, n_steps=3, device="cpu")
    with pytest.raises(ValueError, match="replay_buffer_class"):
        MixedReturnDQN("MlpPolicy", deep_sea(), replay_buffer_class=ReplayBuffer, device="cpu")


def test_config_spelling_selects_the_class() -> None:
    config = load_config(SIZES_CONFIG, ["hyperparams.default.mixed_return=0.1"])
    hyperparams = config.env_hyperparams("DeepSea-v0")
    assert hyperparams["mixed_return"] == 0.1
    assert algo_class("DQN", hyperparams) is MixedReturnDQN
    assert algo_class("DQN", load_config(SIZES_CONFIG).env_hyperparams("DeepSea-v0")) is DQN


@pytest.mark.parametrize("bad", ["1.5", "-0.2", "abc", "true"])
def test_config_refuses_a_bad_coefficient_by_field(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"hyperparams\.default\.mixed_return"):
        load_config(SIZES_CONFIG, [f"hyperparams.default.mixed_return={bad}"])


def test_config_refuses_it_for_other_algorithms() -> None:
    with pytest.raises(ConfigError, match=r"hyperparams\.default\.mixed_return: not an argument of PPO"):
        load_config(PPO_SIZES_CONFIG, ["hyperparams.default.mixed_return=0.1"])


def test_study_mmc_variants() -> None:
    from agents.studies.exploration_sizes import check_variant, sizes_configs

    for name in ("plain-mmc", "count-mmc", "pc-wn-mmc"):
        assert check_variant(name) == name
    with pytest.raises(ConfigError, match="--variants"):
        check_variant("pc-wn-mc")
    configs = dict(sizes_configs([SIZES_CONFIG], [6], ["pc-wn", "pc-wn-mmc", "count-mmc"], 50))
    assert "mixed_return" not in configs[("DQN", 6, "pc-wn")].env_hyperparams("DeepSea-v0")
    mmc = configs[("DQN", 6, "pc-wn-mmc")]
    assert mmc.env_hyperparams("DeepSea-v0")["mixed_return"] == 0.1 and mmc.exploration["norm"] == "wn"
    assert configs[("DQN", 6, "count-mmc")].exploration["kind"] == "count"
    with pytest.raises(ConfigError, match="mixed_return"):
        sizes_configs([PPO_SIZES_CONFIG], [6], ["plain-mmc"], 50)


def test_pipeline_run_resumes_with_its_replay_buffer(tmp_path: Path) -> None:
    """A finished run given more steps resumes as MixedReturnDQN, with the returns of its saved buffer."""
    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        f"reports_dir={tmp_path / 'reports'}",
        "seeds=[0]",
        "env_options.env_kwargs.size=4",
        "exploration=null",
        "hyperparams.default.mixed_return=0.1",
        "train.total_timesteps=96",
        "train.checkpoint_freq=48",
        "train.save_replay_buffer=true",
        "eval.freq=0",
    ]
    (spec,) = grid(load_config(SIZES_CONFIG, overrides))
    assert train_run(spec).status == "finished"
    (longer,) = grid(load_config(SIZES_CONFIG, [*overrides, "train.total_timesteps=160"]))
    result = train_run(longer)
    assert result.status == "finished" and result.num_timesteps == 160
    history = [json.loads(line) for line in (spec.run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["event"] for h in history][-2:] == ["resume", "finished"]
    model = MixedReturnDQN.load(spec.run_dir / "final_model.zip", device="cpu")
    assert model.mixed_return == 0.1
    from agents.pipeline.checkpoints import REPLAY_FILE, list_checkpoints

    newest = list_checkpoints(spec.run_dir)[0].path / REPLAY_FILE
    model.load_replay_buffer(newest)
    # 96 steps from the first buffer (size-4 episodes end every 4 steps), then 64 after the resume
    assert model.replay_buffer.pos == 160 and model.replay_buffer.has_return[:160].all()


def test_report_pairs_each_mmc_variant_with_its_twin() -> None:
    import pandas as pd

    from agents.studies.exploration_mmc import paired_with_twin

    rows = []
    for variant, solved in (("pc-wn", [1, 0, 0, 1]), ("pc-wn-mmc", [1, 1, 0, 0]), ("plain", [0, 0, 0, 0])):
        for seed, ok in enumerate(solved):
            rows.append({"algo": "DQN", "variant": variant, "size": 6 + 2 * (seed // 2), "seed": seed % 2,
                         "greedy_solved": bool(ok), "reached": bool(ok)})  # fmt: skip
    table = paired_with_twin(pd.DataFrame(rows))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["variant"], row["sizes"], row["pairs"]) == ("pc-wn-mmc", "6, 8", 4)
    assert row["with"] == "2/4 [0.15, 0.85]" and row["without"] == "2/4 [0.15, 0.85]"
    assert (row["only_with"], row["only_without"], row["reached"]) == (1, 1, "2 / 2")


def test_learn_from_a_reset_env_leaves_the_cut_episodes_without_return() -> None:
    model = MixedReturnDQN(
        "MlpPolicy", deep_sea(4), mixed_return=0.1, learning_starts=100, train_freq=1, seed=0, device="cpu"
    )
    model.learn(6)  # 3 steps per env into episodes of 4
    assert not model.replay_buffer.has_return[:3].any()
    model.learn(8)  # reset_num_timesteps=True resets the envs: the cut episodes never end
    assert not model.replay_buffer.has_return[:3].any() and model.replay_buffer.has_return[3:7].all()
