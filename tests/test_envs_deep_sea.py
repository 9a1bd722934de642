"""Deep Sea: dynamics, rewards, the hard-exploration property, and its use through ``make_env`` and the bonus."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.deep_sea import DEEP_SEA_ID, DeepSeaEnv


def _play(env: DeepSeaEnv, go_right: bool) -> tuple[float, dict, np.ndarray]:
    env.reset(seed=0)
    total, info, obs = 0.0, {}, None
    for _ in range(env.size):
        row, col = env._row, env._col
        right = int(env.right_action[row, col])
        obs, reward, terminated, truncated, info = env.step(right if go_right else 1 - right)
        total += reward
        assert not truncated
    assert terminated
    return total, info, obs


def test_passes_gymnasium_checker() -> None:
    check_env(gym.make(DEEP_SEA_ID).unwrapped)


def test_always_right_collects_the_treasure_minus_the_move_cost() -> None:
    total, info, obs = _play(DeepSeaEnv(size=8, move_cost=0.01), go_right=True)
    assert total == pytest.approx(1.0 - 0.01)
    assert info["solved"] and obs.sum() == 0  # the last observation is empty


def test_always_left_is_free_and_finds_nothing() -> None:
    total, info, _ = _play(DeepSeaEnv(size=8), go_right=False)
    assert total == 0.0 and not info["solved"]


def test_observation_is_a_one_hot_of_the_cell() -> None:
    env = DeepSeaEnv(size=5)
    obs, _ = env.reset()
    assert obs.shape == (1, 5, 5) and obs.dtype == np.uint8 and obs[0, 0, 0] == 1 and obs.sum() == 1
    obs, *_ = env.step(int(env.right_action[0, 0]))
    assert obs[0, 1, 1] == 1 and obs.sum() == 1


def test_action_mapping_is_per_cell_and_fixed_by_its_seed() -> None:
    a, b, c = DeepSeaEnv(12, mapping_seed=3), DeepSeaEnv(12, mapping_seed=3), DeepSeaEnv(12, mapping_seed=4)
    np.testing.assert_array_equal(a.right_action, b.right_action)
    assert not np.array_equal(a.right_action, c.right_action)
    assert 0 < a.right_action.mean() < 1  # neither action index alone is "right"


def test_random_policy_finds_the_treasure_once_in_2_to_the_n_episodes() -> None:
    env, rng, hits, episodes = DeepSeaEnv(size=6), np.random.default_rng(0), 0, 6400
    for _ in range(episodes):
        env.reset()
        for _ in range(6):
            *_, info = env.step(int(rng.integers(2)))
        hits += info["solved"]
    assert hits / episodes == pytest.approx(2**-6, rel=0.35)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"size": 1}, "size"), ({"move_cost": -1.0}, "move_cost"), ({"mapping_seed": -1}, "mapping_seed")],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DeepSeaEnv(**kwargs)


def test_bad_arguments_are_config_errors_and_whole_floats_are_sizes() -> None:
    from rlnorm.validation import ConfigError

    with pytest.raises(ConfigError, match=r"^size: must be an integer >= 2, got 2\.5 \(not a whole number\)$"):
        DeepSeaEnv(size=2.5)
    env = DeepSeaEnv(size=4.0, mapping_seed=1e0)
    assert env.size == 4 and type(env.size) is int and env.observation_space.shape == (1, 4, 4)


def test_stepping_after_the_end_fails() -> None:
    env = DeepSeaEnv(size=2)
    env.reset()
    env.step(0)
    env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_make_env_with_size_and_the_pseudo_count_bonus() -> None:
    from agents.exploration import PseudoCountConfig, PseudoCountReward

    venv = envs.make_env(DEEP_SEA_ID, n_envs=2, seed=0, env_kwargs={"size": 6})
    assert venv.observation_space.shape == (1, 6, 6)
    wrapped = PseudoCountReward(venv, PseudoCountConfig(hidden_channels=4, n_layers=2))
    wrapped.reset()
    _, rewards, _, infos = wrapped.step(np.array([0, 1]))
    assert all(info["pseudo_count"]["bonus"] >= 0 for info in infos) and rewards.shape == (2,)
    wrapped.close()
