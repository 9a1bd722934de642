"""Noise wrappers: statistics of each perturbation, validation, seeding, logging, use on a trained model's env."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from envs import add_noise, make_env, noise_config
from envs.noise import PerturbObservation, RepeatActionNoise, VecPerturbObservation
from envs.perturbations import Flicker, FrameDrop, GaussianNoise, SaltAndPepper, make_perturbations

IMAGE = spaces.Box(0, 255, (4, 84, 84), np.uint8)


def _bound(perturbation, space=IMAGE):
    perturbation.bind(space)
    return perturbation


def test_gaussian_noise_is_scaled_by_the_range_and_stays_in_the_space():
    rng = np.random.default_rng(0)
    obs = np.full((8, 4, 84, 84), 128, np.uint8)
    out = _bound(GaussianNoise(0.1))(obs, rng, np.zeros(8, bool))
    assert out.dtype == np.uint8 and out.shape == obs.shape
    assert abs(out.astype(float).std() - 25.5) < 0.5
    assert abs(out.astype(float).mean() - 128) < 0.5
    saturated = _bound(GaussianNoise(1.0))(np.full((2, 4, 84, 84), 250, np.uint8), rng, np.zeros(2, bool))
    assert saturated.max() == 255 and saturated.min() == 0


def test_gaussian_noise_is_absolute_where_the_range_is_infinite():
    space = spaces.Box(np.array([-1, -np.inf], np.float32), np.array([1, np.inf], np.float32), dtype=np.float32)
    out = _bound(GaussianNoise(0.05), space)(np.zeros((20_000, 2), np.float32), np.random.default_rng(1), None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.std(axis=0), [0.1, 0.05], rtol=0.05)


def test_salt_and_pepper_replaces_the_expected_fraction_with_bounds():
    obs = np.full((8, 4, 84, 84), 100, np.uint8)
    out = _bound(SaltAndPepper(0.2))(obs, np.random.default_rng(0), np.zeros(8, bool))
    assert set(np.unique(out)) == {0, 100, 255}
    assert abs((out == 0).mean() - 0.1) < 0.005 and abs((out == 255).mean() - 0.1) < 0.005
    with pytest.raises(ValueError, match="salt_pepper_p needs finite observation bounds"):
        _bound(SaltAndPepper(0.1), spaces.Box(-np.inf, np.inf, (2,), np.float32))


def test_flicker_blanks_whole_observations():
    obs = np.ones((4000, 3, 10, 10), np.uint8)
    flicker = _bound(Flicker(0.3), spaces.Box(0, 1, (3, 10, 10), np.uint8))
    out = flicker(obs, np.random.default_rng(0), np.zeros(4000, bool))
    per_obs = out.reshape(4000, -1)
    assert ((per_obs == 0).all(axis=1) | (per_obs == 1).all(axis=1)).all()
    assert abs((per_obs == 0).all(axis=1).mean() - 0.3) < 0.03


def test_frame_drop_repeats_the_previous_frame_but_never_the_first_of_an_episode():
    drop = _bound(FrameDrop(0.5))
    rng = np.random.default_rng(0)
    first = np.zeros((64, 1, 2, 2), np.uint8)
    np.testing.assert_array_equal(drop(first, rng, np.ones(64, bool)), first)
    shown = drop(np.ones_like(first), rng, np.zeros(64, bool))
    dropped = (shown == 0).all(axis=(1, 2, 3))
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_array_equal(drop(np.full_like(first, 2), rng, np.ones(64, bool)), np.full_like(first, 2))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("obs_noise_std", -0.1, r"obs_noise_std: must be a finite number >= 0"),
        ("obs_noise_std", float("nan"), r"obs_noise_std: must be a finite number >= 0"),
        ("salt_pepper_p", 1.5, r"salt_pepper_p: must be a probability in \[0, 1\]"),
        ("flicker_p", -0.2, r"flicker_p: must be a probability in \[0, 1\]"),
        ("frame_drop_p", 2, r"frame_drop_p: must be a probability in \[0, 1\]"),
        ("action_repeat_p", "high", r"action_repeat_p: must be a probability in \[0, 1\]"),
    ],
)
def test_bad_noise_parameters_fail_naming_the_option(option, value, message):
    with pytest.raises(ValueError, match=message):
        make_env("CartPole-v1", **{option: value})


def test_unknown_noise_option_lists_allowed():
    venv = make_env("CartPole-v1")
    with pytest.raises(ValueError, match=r"unknown noise option\(s\) \['gauss'\]; allowed: .*obs_noise_std"):
        add_noise(venv, gauss=0.1)
    with pytest.raises(ValueError, match="allowed"):
        make_perturbations(action_repeat_p=0.1)


def test_noise_config_reports_every_setting_for_logging():
    venv = make_env("MinAtar/Breakout-v1", n_envs=2, seed=0, flicker_p=0.2, action_repeat_p=0.1, obs_noise_std=0.3)
    assert noise_config(venv) == {
        "frame_drop_p": 0.0,
        "flicker_p": 0.2,
        "salt_pepper_p": 0.0,
        "obs_noise_std": 0.3,
        "action_repeat_p": 0.1,
    }
    assert noise_config(make_env("MinAtar/Breakout-v1"))["obs_noise_std"] == 0.0
    # The settings are make_env options: a logged config rebuilds the same env.
    assert noise_config(make_env("MinAtar/Breakout-v1", **noise_config(venv))) == noise_config(venv)


def test_noise_on_an_existing_env_for_evaluation_is_seeded():
    def noisy_obs(noise_seed: int) -> np.ndarray:
        venv = add_noise(make_env("ALE/Pong-v5", n_envs=2, seed=0), seed=noise_seed, obs_noise_std=0.1)
        frames = [venv.reset()] + [venv.step(np.zeros(2, np.int64))[0] for _ in range(3)]
        venv.close()
        return np.stack(frames)

    clean = make_env("ALE/Pong-v5", n_envs=2, seed=0)
    clean_frames = np.stack([clean.reset()] + [clean.step(np.zeros(2, np.int64))[0] for _ in range(3)])
    noisy = noisy_obs(7)
    np.testing.assert_array_equal(noisy, noisy_obs(7))
    assert (noisy != noisy_obs(8)).any()
    diff = noisy.astype(float) - clean_frames
    assert 20 < diff.std() < 30, "σ = 0.1 of the 0..255 range, minus clipping at black"


def test_terminal_observations_are_perturbed_too():
    venv = make_env("CartPole-v1", n_envs=1, seed=0, flicker_p=1.0)
    assert not venv.reset().any()
    for _ in range(500):
        obs, _, dones, infos = venv.step(np.ones(1, np.int64))
        assert not obs.any()
        if dones[0]:
            assert not infos[0]["terminal_observation"].any()
            return
    pytest.fail("CartPole pushed right should fall within 500 steps")


class _RecordActions(gym.Wrapper):
    """Keeps the actions the real env executed, to see what the noise wrapper sent."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.executed: list[float] = []

    def step(self, action):
        self.executed.append(float(action[0]))
        return super().step(action)


def test_vec_action_repeat_repeats_previous_actions_at_the_given_rate():
    # Continuous random actions: a repeat is visible as an executed action equal to the previous one.
    base = DummyVecEnv([lambda: _RecordActions(gym.make("Pendulum-v1"))])
    venv = add_noise(base, seed=0, action_repeat_p=0.3)
    venv.reset()
    chosen = np.random.default_rng(0).uniform(-2, 2, (2000, 1, 1)).astype(np.float32)
    first_of_episode = np.zeros(2000, bool)
    first_of_episode[0] = True
    for t, action in enumerate(chosen):
        _, _, dones, _ = venv.step(action)
        if dones[0] and t + 1 < 2000:
            first_of_episode[t + 1] = True
    executed = np.array(base.envs[0].executed)
    repeated = np.r_[False, executed[1:] == executed[:-1]]
    np.testing.assert_array_equal(executed[~repeated], chosen[~repeated, 0, 0])
    assert not repeated[first_of_episode].any()
    assert 0.25 < repeated.mean() < 0.35
    assert noise_config(venv)["action_repeat_p"] == 0.3


def test_single_env_wrappers_pass_env_checkers():
    env = PerturbObservation(
        gym.make("CartPoleNoVel-v1"),
        make_perturbations(obs_noise_std=0.1, frame_drop_p=0.2),
        seed=0,
    )
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    image = PerturbObservation(gym.make("MinAtar/Breakout-v1"), [Flicker(0.5)], seed=0)
    assert image.observation_space == gym.make("MinAtar/Breakout-v1").observation_space
    repeat = RepeatActionNoise(gym.make("CartPole-v1"), 0.2, seed=0)
    gym_check_env(repeat, skip_render_check=True)
    assert repeat.noise_config() == {"action_repeat_p": 0.2}


def test_vec_perturbation_needs_a_box_space():
    venv = DummyVecEnv([lambda: gym.make("Blackjack-v1")])
    with pytest.raises(ValueError, match="needs a Box observation space"):
        VecPerturbObservation(venv, [Flicker(0.1)])


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from([np.uint8, np.float32]),
    low=st.integers(0, 100),
    span=st.integers(1, 155),
    std=st.floats(0, 3),
    p=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_perturbed_observations_stay_in_the_space(dtype, low, span, std, p, seed):
    space = spaces.Box(low, low + span, (3, 5, 5), dtype)
    rng = np.random.default_rng(seed)
    obs = np.stack([space.sample() for _ in range(6)])
    new_episode = rng.random(6) < 0.5
    for perturbation in make_perturbations(obs_noise_std=std, salt_pepper_p=p, flicker_p=p, frame_drop_p=p):
        perturbation.bind(space)
        out = perturbation(obs, rng, new_episode)
        assert out.shape == obs.shape and out.dtype == obs.dtype
        assert all(o in space for o in out)


def test_every_noise_kind_maps_to_an_observation_noise_option():
    from envs.noise import NOISE_KIND_OPTIONS, NOISE_OPTIONS
    from envs.perturbations import OBS_NOISE_OPTIONS

    assert set(NOISE_KIND_OPTIONS.values()) <= set(OBS_NOISE_OPTIONS) <= set(NOISE_OPTIONS)
    assert len(set(NOISE_KIND_OPTIONS.values())) == len(NOISE_KIND_OPTIONS)
