"""Small real environments for the policy tests: CartPole (vectors) and MinAtar (small channel-first images)."""

from __future__ import annotations

import ale_py
import gymnasium as gym
import minatar.gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecTransposeImage

MINATAR_ID = "MinAtar/Breakout-v1"


class ChannelFirstUint8(gym.ObservationWrapper):
    """MinAtar's ``(10, 10, C)`` bool frames as ``Box(0, 1, (C, 10, 10), uint8)`` (the project's layout)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = spaces.Box(0, 1, (c, h, w), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (2, 0, 1)), dtype=np.uint8)


def minatar_env(n_envs: int = 2, seed: int = 0) -> VecEnv:
    """MinAtar Breakout, channel-first uint8 in {0, 1}, ``n_envs`` copies in a ``DummyVecEnv``."""
    if MINATAR_ID not in gym.registry:
        minatar.gym.register_envs()
    return make_vec_env(MINATAR_ID, n_envs=n_envs, seed=seed, wrapper_class=ChannelFirstUint8)


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
