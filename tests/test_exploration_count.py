"""The exact visit-count bonus (agents.exploration.CountReward): counts, bonus, config dispatch, DQN end to end."""

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import DQN

import envs
from agents.config import ConfigError, load_config
from agents.exploration import (
    COUNT_INFO_KEY,
    INFO_KEY,
    CountConfig,
    CountReward,
    ExplorationLogger,
    PseudoCountConfig,
    PseudoCountReward,
    VisitCounter,
    exploration_config,
    pseudo_count_bonus,
    wrap_exploration,
)

ROOT = Path(__file__).resolve().parents[1]


def deep_sea(size: int = 4, n_envs: int = 1, seed: int = 0):
    return envs.make_env("DeepSea-v0", n_envs=n_envs, seed=seed, env_kwargs={"size": size})


def test_visit_counter_counts_by_content():
    counter = VisitCounter()
    a, b = np.zeros((1, 3, 3), np.uint8), np.eye(3, dtype=np.uint8)[None]
    assert [counter.visit(a), counter.visit(b), counter.visit(a.copy()), counter.visit(a)] == [1, 1, 2, 3]
    assert len(counter) == 2


def test_count_bonus_is_beta_over_sqrt_count_and_counts_the_terminal_frame():
    size = 4
    raw, wrapped = deep_sea(size), CountReward(deep_sea(size), CountConfig(beta=0.5))
    raw.reset()
    wrapped.reset()
    counts = []
    for _ in range(3 * size):  # three episodes, always action 0
        _, raw_rew, raw_done, _ = raw.step(np.array([0]))
        _, rew, done, infos = wrapped.step(np.array([0]))
        stats = infos[0][COUNT_INFO_KEY]
        counts.append(stats["visit_count"])
        assert stats["bonus"] == pytest.approx(0.5 / np.sqrt(stats["visit_count"] + 0.01))
        np.testing.assert_allclose(rew - stats["bonus"], raw_rew, atol=1e-6)
        assert rew.dtype == np.float32 and done[0] == raw_done[0]
    # the same path each episode: every frame, the all-zero terminal one included, is seen once per episode
    assert counts == [1] * size + [2] * size + [3] * size
    assert len(wrapped.counter) == size
    wrapped.close()
    raw.close()


def test_count_state_dict_round_trip():
    first = CountReward(deep_sea(), CountConfig())
    frames = np.zeros((3, 1, 4, 4), np.uint8)
    first.observe(frames)
    resumed = CountReward(deep_sea(), CountConfig())
    resumed.load_state_dict(first.state_dict())
    assert resumed.observe(frames[:1])["visit_count"][0] == 4


def test_pseudo_count_wrapper_keeps_the_exact_count_beside_the_pseudo_count():
    env = PseudoCountReward(deep_sea(), PseudoCountConfig(hidden_channels=4, n_layers=2))
    frame = np.zeros((1, 1, 4, 4), np.uint8)
    frame[0, 0, 0, 0] = 1
    stats = [env.observe(frame) for _ in range(3)]
    assert [s["visit_count"][0] for s in stats] == [1, 2, 3]
    resumed = PseudoCountReward(deep_sea(), PseudoCountConfig(hidden_channels=4, n_layers=2))
    resumed.load_state_dict(env.state_dict())
    assert resumed.observe(frame)["visit_count"][0] == 4


def test_exploration_config_dispatches_on_kind_and_names_bad_keys():
    assert exploration_config({"kind": "count", "beta": 0.2}) == CountConfig(beta=0.2)
    assert isinstance(exploration_config({"kind": "pseudocount"}), PseudoCountConfig)
    with pytest.raises(ConfigError, match=r"exploration\.kind: must be one of count, pseudocount; got 'rnd'"):
        exploration_config({"kind": "rnd"})
    with pytest.raises(ConfigError) as info:
        exploration_config({"kind": "count", "norm": "wn"})
    assert info.value.field == "exploration.norm" and "allowed keys: kind, beta, seed" in str(info.value)
    with pytest.raises(ConfigError, match=r"exploration\.beta"):
        exploration_config({"kind": "count", "beta": 0})
    assert isinstance(wrap_exploration(deep_sea(), {"kind": "count"}), CountReward)


def test_config_loader_accepts_the_count_kind_and_rejects_unknown_ones():
    path = ROOT / "configs/study_exploration_sizes.yaml"
    config = load_config(path, ["exploration={kind: count, beta: 0.1}"])
    assert config.exploration == {"kind": "count", "beta": 0.1}
    with pytest.raises(ConfigError, match=r"exploration\.kind.*count, pseudocount"):
        load_config(path, ["exploration.kind=counts"])


def test_dqn_learns_with_the_count_bonus_in_its_replay(tmp_path):
    env = wrap_exploration(deep_sea(4), {"kind": "count", "beta": 0.05})
    model = DQN("MlpPolicy", env, learning_starts=8, seed=0, device="cpu", tensorboard_log=str(tmp_path))
    model.learn(64, callback=ExplorationLogger(), log_interval=1)
    stored = model.replay_buffer.rewards[: model.replay_buffer.pos, 0]
    # every stored reward carries a positive bonus (Deep Sea's own rewards are <= 0 off the treasure)
    assert (stored > 0).mean() > 0.5
    from tbparse import SummaryReader

    assert {"exploration/bonus", "exploration/visit_count"} <= set(SummaryReader(str(tmp_path)).scalars.tag)
    assert INFO_KEY != COUNT_INFO_KEY
    env.close()


def test_count_bonus_formula_matches_the_pseudo_count_one():
    counts = np.array([1.0, 4.0, 100.0])
    np.testing.assert_allclose(pseudo_count_bonus(counts, 0.05), 0.05 / np.sqrt(counts + 0.01))
