"""Atari on real ALE ROMs: preprocessing, the ale/dummy backends against each other, true episode scores."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs import AtariConfig, make_atari_env_single, make_env

# Deterministic emulation: no random no-ops, no sticky actions, no scripted FIRE (ale-py fires one frame,
# SB3's FireResetEnv two steps), so both backends must produce the same frames for the same actions.
EXACT = {"noop_max": 0, "sticky_actions": 0.0, "fire_reset": False}


def _run_in_lockstep(a, b, n_steps: int, seed: int = 0):
    """Step two VecEnvs with the same random actions; yield each step's pair of results."""
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        actions = rng.integers(0, a.action_space.n, a.num_envs)
        yield a.step(actions), b.step(actions)


@pytest.mark.parametrize("backend", ["ale", "dummy"])
def test_observation_contract(backend):
    venv = make_env("ALE/Pong-v5", n_envs=2, seed=0, backend=backend)
    assert venv.observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    obs = venv.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    obs, rewards, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
    assert obs.shape == (2, 4, 84, 84) and rewards.dtype == np.float32 and dones.shape == (2,)
    assert len(infos) == 2
    venv.close()


@pytest.mark.parametrize("game", ["ALE/Breakout-v5", "ALE/Pong-v5"])
def test_ale_backend_matches_sb3_wrappers_exactly(game):
    """Same seed and actions: identical frames, rewards, dones and terminal observations (game overs included)."""
    a = make_env(game, n_envs=2, seed=3, backend="ale", training=False, **EXACT)
    b = make_env(game, n_envs=2, seed=3, backend="dummy", training=False, **EXACT)
    np.testing.assert_array_equal(a.reset(), b.reset())
    n_game_overs = 0
    for (obs_a, rew_a, done_a, info_a), (obs_b, rew_b, done_b, info_b) in _run_in_lockstep(a, b, 300):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        for i in np.flatnonzero(done_a):
            final_a, final_b = info_a[i]["terminal_observation"], info_b[i]["terminal_observation"]
            np.testing.assert_array_equal(final_a[:-1], final_b[:-1])
            # When a game ends inside the 4-frame skip, SB3's MaxAndSkipEnv max-pools with a stale frame from
            # the previous step (ale-py pools the last two emulated frames): a few pixels of the last frame differ.
            assert (final_a[-1] != final_b[-1]).mean() < 0.01
            assert info_a[i]["episode"]["r"] == info_b[i]["episode"]["r"]
            assert info_a[i]["episode"]["l"] == info_b[i]["episode"]["l"]
            n_game_overs += 1
    if game == "ALE/Breakout-v5":
        assert n_game_overs >= 1, "random Breakout play should lose all lives within 300 steps"
    a.close()
    b.close()


def test_life_loss_ends_training_episode_identically_in_both_backends():
    """Up to the first life loss the training-mode backends agree, and both report it as done."""
    a = make_env("ALE/Breakout-v5", n_envs=2, seed=5, backend="ale", **EXACT)
    b = make_env("ALE/Breakout-v5", n_envs=2, seed=5, backend="dummy", **EXACT)
    np.testing.assert_array_equal(a.reset(), b.reset())
    for (obs_a, rew_a, done_a, info_a), (obs_b, rew_b, done_b, info_b) in _run_in_lockstep(a, b, 200):
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        if done_a.any():
            i = int(np.flatnonzero(done_a)[0])
            np.testing.assert_array_equal(info_a[i]["terminal_observation"], info_b[i]["terminal_observation"])
            assert "episode" not in info_a[i] and "episode" not in info_b[i], "a life loss is not a game over"
            break
        np.testing.assert_array_equal(obs_a, obs_b)
    else:
        pytest.fail("no life lost in 200 random Breakout steps")


def test_training_mode_clips_rewards_but_reports_true_game_score():
    """ale backend: a training run and an evaluation run of the same game stay in lockstep (a life loss does
    not reset the game); training rewards are the signs of the true ones, and the game score is unclipped."""
    train = make_env("ALE/SpaceInvaders-v5", n_envs=1, seed=1, backend="ale", training=True, **EXACT)
    evaluate = make_env("ALE/SpaceInvaders-v5", n_envs=1, seed=1, backend="ale", training=False, **EXACT)
    train.reset()
    evaluate.reset()
    clipped_sum, n_life_losses = 0.0, 0
    for (_, rew_t, done_t, info_t), (_, rew_e, done_e, info_e) in _run_in_lockstep(train, evaluate, 3000):
        np.testing.assert_array_equal(rew_t, np.sign(rew_e))
        assert not (done_e & ~done_t).any()
        clipped_sum += float(rew_t[0])
        if done_t[0] and not done_e[0]:
            n_life_losses += 1
        if done_e[0]:
            assert info_t[0]["episode"] == {**info_e[0]["episode"], "t": info_t[0]["episode"]["t"]}
            assert info_e[0]["episode"]["r"] > clipped_sum, "Space Invaders scores 5-30 points per alien"
            assert n_life_losses >= 2
            break
    else:
        pytest.fail("no Space Invaders game over in 3000 random steps")


def test_subproc_backend_monitor_below_life_loss():
    """SB3-wrapper path: episode stats span all lives and hold the unclipped score."""
    venv = make_env("ALE/SpaceInvaders-v5", n_envs=1, seed=2, backend="dummy", frame_skip=4)
    venv.reset()
    clipped_sum, n_dones = 0.0, 0
    rng = np.random.default_rng(0)
    for _ in range(3000):
        _, rewards, dones, infos = venv.step(rng.integers(0, venv.action_space.n, 1))
        assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
        clipped_sum += float(rewards[0])
        n_dones += int(dones[0])
        if "episode" in infos[0]:
            assert infos[0]["episode"]["r"] > clipped_sum
            assert n_dones >= 3, "Space Invaders has 3 lives; each life loss ends a training episode"
            break
    else:
        pytest.fail("no Space Invaders game over in 3000 random steps")


def test_subproc_backend_runs_in_worker_processes():
    venv = make_env("ALE/Breakout-v5", n_envs=2, seed=0, backend="subproc")
    obs = venv.reset()
    assert obs.shape == (2, 4, 84, 84)
    for _ in range(5):
        obs, _, _, _ = venv.step(np.ones(2, dtype=np.int64))
    assert obs.shape == (2, 4, 84, 84) and obs.any()
    venv.close()


@pytest.mark.parametrize("backend", ["ale", "dummy"])
def test_seeding_is_reproducible(backend):
    """Default (random no-ops, sticky actions) runs repeat exactly under one seed, across game overs (auto-reset)
    and a second reset, and differ under another seed."""

    def frames(seed: int) -> np.ndarray:
        venv = make_env("ALE/Breakout-v5", n_envs=2, seed=seed, backend=backend)
        out, n_games = [], 0
        for n_steps in (250, 20):
            out.append(venv.reset())
            rng = np.random.default_rng(0)
            for _ in range(n_steps):
                obs, _, _, infos = venv.step(rng.integers(0, 4, 2))
                out.append(obs)
                n_games += sum("episode" in info for info in infos)
        venv.close()
        assert n_games >= 1, "random Breakout games end within 250 steps"
        return np.stack(out)

    first = frames(11)
    np.testing.assert_array_equal(first, frames(11))
    assert (first != frames(12)).any()


def test_options_reach_the_emulator():
    venv = make_env("ALE/Pong-v5", n_envs=1, seed=0, full_action_space=True, frame_stack=2, screen_size=64)
    assert venv.action_space.n == 18
    assert venv.observation_space.shape == (2, 64, 64)
    venv = make_env("ALE/Pong-v5", n_envs=1, seed=0, backend="dummy", frame_stack=2, screen_size=64)
    assert venv.observation_space.shape == (2, 64, 64)


@pytest.mark.parametrize("training", [True, False])
def test_single_env_passes_env_checkers(training):
    env = make_atari_env_single("ALE/Breakout-v5", AtariConfig(training=training))
    # SB3's Atari wrappers do not record their constructor arguments, so gymnasium cannot re-make the env
    # from its spec for the close check.
    gym_check_env(env, skip_render_check=True, skip_close_check=True)
    sb3_check_env(make_atari_env_single("ALE/Breakout-v5", AtariConfig(training=training)), warn=True)


def test_bad_atari_options_are_named():
    with pytest.raises(ValueError, match="sticky_actions"):
        make_env("ALE/Pong-v5", sticky_actions=1.5)
    with pytest.raises(ValueError, match="frame_skip"):
        make_env("ALE/Pong-v5", frame_skip=0)
    with pytest.raises(ValueError, match="backend: must be one of ale, subproc, dummy; got 'threads'"):
        make_env("ALE/Pong-v5", backend="threads")
    with pytest.raises(ValueError, match=r"'ALE/<Game>-v5'"):
        make_env("PongNoFrameskip-v4")


def _random_games(backend: str, n_games: int) -> np.ndarray:
    """(score, length) of ``n_games`` random-play Breakout games with the default preprocessing."""
    venv = make_env("ALE/Breakout-v5", n_envs=8, seed=0, backend=backend, training=False)
    venv.reset()
    rng = np.random.default_rng(0)
    games: list[tuple[float, int]] = []
    while len(games) < n_games:
        _, _, _, infos = venv.step(rng.integers(0, 4, 8))
        games += [(info["episode"]["r"], info["episode"]["l"]) for info in infos if "episode" in info]
    venv.close()
    return np.array(games[:n_games])


@pytest.mark.slow
def test_default_backends_have_the_same_game_statistics():
    """With random no-ops, sticky actions and fire reset the RNG streams differ, so compare distributions."""
    ale, dummy = _random_games("ale", 160), _random_games("dummy", 160)
    for column, name in enumerate(("score", "length")):
        a, b = ale[:, column], dummy[:, column]
        stderr = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 4 * stderr, f"{name}: ale {a.mean():.2f}, dummy {b.mean():.2f}"
