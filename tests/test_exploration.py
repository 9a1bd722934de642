"""Pseudo-count exploration: formula, prediction gain, decay on repeated frames, SB3 integration, logging."""

import numpy as np
import pytest
from stable_baselines3 import DQN, PPO
from tbparse import SummaryReader

import envs
from agents.exploration import (
    INFO_KEY,
    PseudoCountConfig,
    PseudoCountLogger,
    PseudoCountReward,
    pseudo_count,
    pseudo_count_bonus,
    wrap_exploration,
)

MINATAR = "MinAtar/Breakout-v1"
SMALL = {"hidden_channels": 8, "n_layers": 2}


def minatar(n_envs: int = 2, seed: int = 0):
    return envs.make_env(MINATAR, n_envs=n_envs, seed=seed)


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    env = minatar(1, seed)
    env.action_space.seed(seed)
    frames = [env.reset()[0]]
    for _ in range(n - 1):
        obs, _, _, _ = env.step(np.array([env.action_space.sample()]))
        frames.append(obs[0])
    env.close()
    return np.stack(frames)


def test_pseudo_count_formula():
    pg = np.array([0.0, -1.0, 0.5, 2.0])
    count = pseudo_count(pg, n=4, c=0.1)
    assert np.isinf(count[:2]).all()
    np.testing.assert_allclose(count[2:], 1.0 / (np.exp(0.1 / 2 * pg[2:]) - 1.0))
    bonus = pseudo_count_bonus(count, beta=0.05)
    assert (bonus[:2] == 0).all()
    np.testing.assert_allclose(bonus[2:], 0.05 / np.sqrt(count[2:] + 0.01))
    # a larger gain means a smaller count and a larger bonus
    assert count[3] < count[2] and bonus[3] > bonus[2]


@pytest.mark.parametrize("norm", ["wn", "pixel_ln", "bn"])
def test_prediction_gain_is_positive_on_average_for_a_just_seen_frame(norm):
    env = PseudoCountReward(minatar(1), PseudoCountConfig(norm=norm, **SMALL))
    stats = env.observe(random_frames(24))
    assert stats["prediction_gain"].mean() > 0
    assert np.isfinite(stats["bits_per_dim"]).all()
    env.close()


@pytest.mark.parametrize("norm", ["wn", "pixel_ln"])
def test_bonus_of_a_repeated_frame_decays(norm):
    env = PseudoCountReward(minatar(1), PseudoCountConfig(norm=norm, lr=3e-3, **SMALL))
    frame = random_frames(5)[-1:]
    bonuses = np.array([env.observe(frame)["bonus"][0] for _ in range(30)])
    assert bonuses[-5:].mean() < 0.5 * bonuses[:5].mean()
    # once learned, the frame's pseudo-count is large
    assert env.observe(frame)["pseudo_count"][0] > 10
    env.close()


def test_wrapper_adds_bonus_to_the_real_env_rewards():
    raw, wrapped = minatar(2, seed=3), PseudoCountReward(minatar(2, seed=3), PseudoCountConfig(**SMALL))
    raw.reset()
    wrapped.reset()
    rng = np.random.default_rng(0)
    saw_done = False
    for _ in range(60):
        actions = rng.integers(0, raw.action_space.n, size=2)
        _, raw_rew, raw_done, _ = raw.step(actions)
        _, rew, done, infos = wrapped.step(actions)
        bonus = np.array([info[INFO_KEY]["bonus"] for info in infos])
        assert rew.dtype == np.float32 and (bonus >= 0).all()
        np.testing.assert_allclose(rew - bonus, raw_rew, atol=1e-6)
        np.testing.assert_array_equal(done, raw_done)
        saw_done |= bool(done.any())
    assert wrapped.n_updates == 120 and saw_done
    raw.close()
    wrapped.close()


def test_atari_frames_are_modelled_at_42x42_with_8_levels():
    env = PseudoCountReward(envs.make_env("ALE/Pong-v5", n_envs=1, seed=0), PseudoCountConfig(**SMALL))
    assert env.encoder.image_size == (42, 42) and env.encoder.levels == 8
    env.reset()
    _, _, _, infos = env.step(np.array([0]))
    assert 0 < infos[0][INFO_KEY]["bits_per_dim"] < 4
    env.close()


@pytest.mark.parametrize("algo", [PPO, DQN])
def test_sb3_algorithms_train_with_the_wrapper_and_log_to_tensorboard(algo, tmp_path):
    env = wrap_exploration(minatar(2), {"kind": "pseudocount", **SMALL})
    kwargs = {"n_steps": 32, "batch_size": 32, "n_epochs": 1} if algo is PPO else {"learning_starts": 16}
    model = algo("MlpPolicy", env, tensorboard_log=str(tmp_path), seed=0, device="cpu", verbose=0, **kwargs)
    model.learn(128, callback=PseudoCountLogger(), log_interval=1)
    scalars = SummaryReader(str(tmp_path)).scalars
    tags = set(scalars["tag"])
    assert {"exploration/bonus", "exploration/prediction_gain", "exploration/density_bits_per_dim"} <= tags
    bonus = scalars[scalars["tag"] == "exploration/bonus"]["value"]
    assert (bonus > 0).all()
    env.close()


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match=r"exploration\.kind.*pseudocount"):
        wrap_exploration(minatar(1), {"kind": "rnd"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['betta'\]"):
        PseudoCountConfig.from_dict({"kind": "pseudocount", "betta": 0.1})
    with pytest.raises(
        ValueError, match=r"exploration\.norm: must be one of none, wn, bn, pixel_ln, pixel_gn; got 'in'"
    ):
        PseudoCountConfig(norm="in")
    with pytest.raises(ValueError, match=r"exploration\.beta"):
        PseudoCountConfig(beta=-1.0)
    with pytest.raises(ValueError, match=r"exploration\.kernel_size.*odd"):
        PseudoCountConfig(kernel_size=4)
    with pytest.raises(ValueError, match=r"exploration\.device"):
        PseudoCountConfig(device="gpu")
    with pytest.raises(ValueError, match="channel-first uint8 image"):
        PseudoCountReward(envs.make_env("CartPole-v1", n_envs=1))


@pytest.mark.parametrize("name", ["pseudocount.yaml", "pseudocount_minatar.yaml"])
def test_shipped_pseudocount_configs_are_valid(name):
    from pathlib import Path

    from agents.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / name)
    settings = PseudoCountConfig.from_dict(config.exploration)
    assert config.exploration["kind"] == "pseudocount" and settings.norm in ("wn", "pixel_ln")
    if name == "pseudocount_minatar.yaml":
        env = wrap_exploration(envs.make_env(config.envs[0], n_envs=1), config.exploration)
        assert isinstance(env, PseudoCountReward) and env.encoder.levels == 16
        env.close()
    else:
        assert all(env_id.startswith("ALE/") for env_id in config.envs)


def test_errors_are_config_errors_naming_the_field_and_whole_floats_are_counts():
    from agents.config import ConfigError

    with pytest.raises(ConfigError) as info:
        PseudoCountConfig(n_layers=2.5)
    assert info.value.field == "exploration.n_layers" and "got 2.5 (not a whole number)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        PseudoCountConfig.from_dict({"kind": "pseudocount", "betta": 0.1})
    assert info.value.field == "exploration.betta"
    config = PseudoCountConfig(hidden_channels=8.0, seed=1e1, device="mps")
    assert (config.hidden_channels, config.seed, config.device) == (8, 10, "mps")
    assert type(config.hidden_channels) is int


@pytest.mark.parametrize(("old", "new"), [("ln", "pixel_ln"), ("gn", "pixel_gn")])
def test_former_density_norm_names_still_work_with_a_warning(old, new):
    with pytest.warns(DeprecationWarning, match=rf"exploration\.norm: '{old}' is the former name of '{new}'"):
        config = PseudoCountConfig.from_dict({"kind": "pseudocount", "norm": old})
    assert config.norm == new


def test_state_dict_restores_the_density_model_and_count():
    config = PseudoCountConfig(**SMALL)
    frames = random_frames(6)
    first = PseudoCountReward(minatar(1), config)
    first.observe(frames[:4])
    resumed = PseudoCountReward(minatar(1), config)
    resumed.load_state_dict(first.state_dict())
    assert resumed.n_updates == 4
    a, b = first.observe(frames[4:]), resumed.observe(frames[4:])
    np.testing.assert_allclose(a["prediction_gain"], b["prediction_gain"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["bonus"], b["bonus"], rtol=1e-5, atol=1e-9)
    first.close()
    resumed.close()
