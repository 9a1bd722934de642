"""make_env: errors, MinAtar and masked-velocity families, seeding, and SB3 models reading the episode scores."""

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs import POMDP_ENVS, MinAtarConfig, make_env, make_minatar_env_single
from rlnorm.validation import ConfigError


def test_unknown_id_suggests_close_matches():
    expected = r"'ALE/Pongg-v5' is not a registered gymnasium id; did you mean 'ALE/Pong-v5'"
    with pytest.raises(ValueError, match=expected):
        make_env("ALE/Pongg-v5")
    with pytest.raises(ValueError, match=r"did you mean 'CartPoleNoVel-v1'"):
        make_env("CartPoleNoVell-v1")
    with pytest.raises(ValueError, match=r"did you mean 'MinAtar/Breakout-v1'"):
        make_env("MinAtar/Breakout-v2")


@pytest.mark.parametrize(
    ("env_id", "option", "allowed"),
    [
        ("ALE/Pong-v5", "sticky_action", "sticky_actions"),
        ("MinAtar/Breakout-v1", "noop_max", "difficulty_ramping"),
        ("CartPole-v1", "frame_stack", "max_episode_steps"),
    ],
)
def test_unknown_option_is_named_with_the_allowed_ones(env_id, option, allowed):
    expected = rf"unknown option\(s\) \['{option}'\] for env_id .*allowed options: .*{allowed}"
    with pytest.raises(ValueError, match=expected):
        make_env(env_id, **{option: 1})


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match=r"^n_envs: must be an integer >= 1, got 0$"):
        make_env("CartPole-v1", n_envs=0)
    with pytest.raises(ConfigError, match=r"^backend: must be one of batched, dummy, subproc; got 'ale'$"):
        make_env("MinAtar/Breakout-v1", backend="ale")
    with pytest.raises(ConfigError, match="sticky_actions: must be a probability"):
        make_env("MinAtar/Breakout-v1", sticky_actions=-0.1)
    with pytest.raises(ConfigError, match="training: must be true or false"):
        make_env("CartPole-v1", training="yes")
    with pytest.raises(ConfigError, match="env_kwargs: must be a dict"):
        make_env("CartPole-v1", env_kwargs=["x"])


def test_whole_number_floats_are_accepted_as_counts():
    venv = make_env("CartPole-v1", n_envs=2.0, seed=1e1)
    assert venv.num_envs == 2
    with pytest.raises(ConfigError, match=r"^n_envs: must be an integer >= 1, got 2\.5 \(not a whole number\)$"):
        make_env("CartPole-v1", n_envs=2.5)


def test_missing_minatar_extra_names_the_pip_extra(monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "minatar", None)
    monkeypatch.setitem(sys.modules, "minatar.gym", None)
    with pytest.raises(ImportError, match=r"pip install rlnorm\[minatar\]"):
        make_env("MinAtar/Breakout-v1")


@pytest.mark.parametrize("game", ["Breakout", "SpaceInvaders", "Freeway", "Asterix", "Seaquest"])
def test_minatar_is_channel_first_binary(game):
    venv = make_env(f"MinAtar/{game}-v1", n_envs=2, seed=0)
    space = venv.observation_space
    assert space.dtype == np.uint8 and space.shape[1:] == (10, 10) and space.high.max() == 1
    obs = venv.reset()
    assert obs.shape == (2, *space.shape) and obs.dtype == np.uint8 and obs.max() == 1
    obs, *_ = venv.step(np.zeros(2, np.int64))
    assert set(np.unique(obs)) <= {0, 1}


@pytest.mark.parametrize("max_episode_steps", [10_000, 15])
def test_batched_minatar_matches_dummy_vec_env_exactly(max_episode_steps):
    """Same seeds (sticky actions included) and actions: same frames, rewards, dones, terminal frames, episodes."""
    kwargs = {"n_envs": 3, "seed": 7, "max_episode_steps": max_episode_steps}
    batched = make_env("MinAtar/Breakout-v1", backend="batched", **kwargs)
    dummy = make_env("MinAtar/Breakout-v1", backend="dummy", **kwargs)
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    n_episodes = 0
    for _ in range(300):
        actions = rng.integers(0, batched.action_space.n, 3)
        obs_b, rew_b, done_b, info_b = batched.step(actions)
        obs_d, rew_d, done_d, info_d = dummy.step(actions)
        np.testing.assert_array_equal(obs_b, obs_d)
        np.testing.assert_array_equal(rew_b, rew_d)
        np.testing.assert_array_equal(done_b, done_d)
        for i in np.flatnonzero(done_b):
            np.testing.assert_array_equal(info_b[i]["terminal_observation"], info_d[i]["terminal_observation"])
            assert info_b[i]["TimeLimit.truncated"] == info_d[i]["TimeLimit.truncated"]
            assert (info_b[i]["episode"]["r"], info_b[i]["episode"]["l"]) == (
                info_d[i]["episode"]["r"],
                info_d[i]["episode"]["l"],
            )
            n_episodes += 1
    assert n_episodes >= 10


def test_minatar_single_env_passes_env_checkers():
    gym_check_env(make_minatar_env_single("MinAtar/Breakout-v1", MinAtarConfig()), skip_render_check=True)
    sb3_check_env(make_minatar_env_single("MinAtar/SpaceInvaders-v1", MinAtarConfig()), warn=True)


@pytest.mark.parametrize("env_id", ["MinAtar/Breakout-v1", "CartPoleNoVel-v1"])
def test_seeding_is_reproducible(env_id):
    def rollout(seed: int) -> np.ndarray:
        venv = make_env(env_id, n_envs=3, seed=seed, obs_noise_std=0.05)
        rng = np.random.default_rng(0)
        frames = [venv.reset()] + [venv.step(rng.integers(0, 2, 3))[0] for _ in range(100)]
        return np.stack(frames)

    first = rollout(4)
    np.testing.assert_array_equal(first, rollout(4))
    assert (first != rollout(5)).any()


@pytest.mark.parametrize("env_id", sorted(POMDP_ENVS))
def test_masked_velocity_envs(env_id):
    env = gym.make(env_id)
    full = gym.make(POMDP_ENVS[env_id][1])
    kept = POMDP_ENVS[env_id][0].KEPT
    assert env.observation_space.shape == (len(kept),)
    assert env.spec.max_episode_steps == full.spec.max_episode_steps
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(gym.make(env_id), warn=True)
    # Same seed, same actions: the masked observation is the full one without the velocities.
    obs, _ = env.reset(seed=3)
    full_obs, _ = full.reset(seed=3)
    np.testing.assert_allclose(obs, full_obs[list(kept)])
    for _ in range(5):
        action = full.action_space.sample()
        obs, *_ = env.step(action)
        full_obs, *_ = full.step(action)
    np.testing.assert_allclose(obs, full_obs[list(kept)])


def test_ppo_reads_true_minatar_episode_returns():
    venv = make_env("MinAtar/Breakout-v1", n_envs=4, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert len(model.ep_info_buffer) > 0
    assert all(info["r"] >= 0 and info["l"] > 0 for info in model.ep_info_buffer)


def test_ppo_on_atari_logs_unclipped_game_scores():
    """The learner sees clipped rewards; ep_info_buffer (rollout/ep_rew_mean) gets the game score over all lives."""
    venv = make_env("ALE/Breakout-v5", n_envs=2, seed=0, screen_size=84)
    model = PPO("CnnPolicy", venv, n_steps=256, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert len(model.ep_info_buffer) > 0
    # A random Breakout game lasts 5 lives (≥ 100 agent steps); a single life would be far shorter.
    assert all(info["l"] >= 100 for info in model.ep_info_buffer)
