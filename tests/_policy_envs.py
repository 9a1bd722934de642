"""Small real environments for the policy tests: CartPole (vectors) and MinAtar (small channel-first images)."""

from __future__ import annotations

import ale_py
import gymnasium as gym
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecTransposeImage

from envs.minatar import ChannelFirstBinary, register_minatar

MINATAR_ID = "MinAtar/Breakout-v1"


def minatar_env(n_envs: int = 2, seed: int = 0) -> VecEnv:
    """MinAtar Breakout, channel-first uint8 in {0, 1}, ``n_envs`` copies in a ``DummyVecEnv``."""
    register_minatar()
    return make_vec_env(MINATAR_ID, n_envs=n_envs, seed=seed, wrapper_class=ChannelFirstBinary)


def atari_env(env_id: str = "ALE/Pong-v5", n_envs: int = 1, seed: int = 0) -> VecEnv:
    """A real ALE game with SB3's Atari preprocessing, 4 stacked frames, channel-first ``(4, 84, 84)`` uint8."""
    gym.register_envs(ale_py)
    return VecTransposeImage(VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=seed), n_stack=4))


def cartpole_env(n_envs: int = 2, seed: int = 0) -> VecEnv:
    """CartPole-v1, ``n_envs`` copies in a ``DummyVecEnv``."""
    return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)


def env_for(alias: str, n_envs: int = 2, seed: int = 0) -> VecEnv:
    """MinAtar for ``...CnnPolicy`` aliases, CartPole otherwise."""
    return minatar_env(n_envs, seed) if "Cnn" in alias else cartpole_env(n_envs, seed)
