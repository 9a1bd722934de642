"""Small environments for the policy tests: CartPole (vectors), MinAtar (small channel-first images), Atari, and a
one-step bandit every algorithm learns quickly (discrete or continuous actions, vector/image/dict observations)."""

from __future__ import annotations

import ale_py
import gymnasium as gym
import numpy as np
from gymnasium import spaces
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


class BanditEnv(gym.Env):
    """A one-step task every algorithm learns in a few hundred steps: the best action does not depend on the
    observation (discrete: action 1 pays 1, others 0; continuous: reward ``-(a - 0.5)^2``).

    Observations come from a narrow part of the space (vectors in [-0.1, 0.1], pixels below 16), so that a
    small network learns to ignore them quickly; tests can still feed any sample of the space.

    :param continuous: ``Box(-1, 1, (1,))`` actions instead of ``Discrete(3)``
    :param observation: ``"vector"`` (``Box(-1, 1, (4,))``), ``"image"`` (uint8 ``(2, 12, 12)``, an SB3 image
        space) or ``"dict"`` (``{"vec": vector, "img": image}``)
    :param masked: offer ``action_masks()`` (MaskablePPO); action 2 is never valid
    """

    BEST_DISCRETE, BEST_CONTINUOUS = 1, 0.5

    def __init__(self, continuous: bool = False, observation: str = "vector", masked: bool = False) -> None:
        super().__init__()
        vector = spaces.Box(-1, 1, (4,), np.float32)
        image = spaces.Box(0, 255, (2, 12, 12), np.uint8)
        self.observation_space = {
            "vector": vector,
            "image": image,
            "dict": spaces.Dict({"vec": vector, "img": image}),
        }[observation]
        self.action_space = spaces.Box(-1, 1, (1,), np.float32) if continuous else spaces.Discrete(3)
        self.continuous, self.masked = continuous, masked

    def observe(self) -> np.ndarray | dict[str, np.ndarray]:
        """One observation of the narrow distribution the env emits."""

        def draw(space: spaces.Box) -> np.ndarray:
            if space.dtype == np.uint8:
                return self.np_random.integers(0, 16, space.shape, dtype=np.uint8)
            return self.np_random.uniform(-0.1, 0.1, space.shape).astype(np.float32)

        if isinstance(self.observation_space, spaces.Dict):
            return {key: draw(space) for key, space in self.observation_space.spaces.items()}
        return draw(self.observation_space)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        return self.observe(), {}

    def step(self, action) -> tuple:
        if self.continuous:
            reward = -((float(np.asarray(action).reshape(-1)[0]) - self.BEST_CONTINUOUS) ** 2)
        else:
            reward = float(int(action) == self.BEST_DISCRETE)
        return self.observe(), reward, True, False, {}

    def action_masks(self) -> np.ndarray:
        return np.array([True, True, not self.masked])


def bandit_env(continuous: bool = False, observation: str = "vector", masked: bool = False, seed: int = 0) -> VecEnv:
    """One :class:`BanditEnv` in a ``DummyVecEnv``, seeded."""
    return make_vec_env(lambda: BanditEnv(continuous, observation, masked), n_envs=1, seed=seed)
