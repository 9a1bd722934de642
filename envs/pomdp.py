"""Partially observable classic control: the velocity entries of the observation are removed.

``import envs`` registers ``CartPoleNoVel-v1``, ``PendulumNoVel-v1``, ``AcrobotNoVel-v1``, ``MountainCarNoVel-v0``
and ``MountainCarContinuousNoVel-v0`` (same dynamics, rewards and time limits as the full-state ids). A policy
must integrate positions over time to act well, which is what the recurrent policies are tested on.
Flickering image observations (the other POMDP family) are an observation perturbation:
:class:`envs.perturbations.Flicker`, i.e. ``make_env(..., flicker_p=p)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import (
    AcrobotEnv,
    CartPoleEnv,
    Continuous_MountainCarEnv,
    MountainCarEnv,
    PendulumEnv,
)


class MaskedVelocityMixin:
    """Keep only the observation entries listed in ``KEPT`` (positions and angles, not velocities)."""

    KEPT: ClassVar[tuple[int, ...]] = ()

    def _mask_space(self) -> None:
        full = self.observation_space
        kept = list(self.KEPT)
        self.observation_space = spaces.Box(full.low[kept], full.high[kept], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the underlying task and mask its observation.

        :param seed: the reset seed
        :param options: reset options of the underlying task
        """
        obs, info = super().reset(seed=seed, options=options)
        return self._mask(obs), info

    def step(self, action):
        """Step the underlying task and mask its observation.

        :param action: the action
        """
        obs, reward, terminated, truncated, info = super().step(action)
        return self._mask(obs), reward, terminated, truncated, info

    def _mask(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32)[list(self.KEPT)]


class CartPoleNoVelEnv(MaskedVelocityMixin, CartPoleEnv):
    """CartPole observing cart position and pole angle only."""

    KEPT = (0, 2)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mask_space()


class PendulumNoVelEnv(MaskedVelocityMixin, PendulumEnv):
    """Pendulum observing ``cos θ, sin θ`` only."""

    KEPT = (0, 1)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mask_space()


class AcrobotNoVelEnv(MaskedVelocityMixin, AcrobotEnv):
    """Acrobot observing the cosines and sines of both joint angles only."""

    KEPT = (0, 1, 2, 3)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mask_space()


class MountainCarNoVelEnv(MaskedVelocityMixin, MountainCarEnv):
    """MountainCar observing the car position only."""

    KEPT = (0,)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mask_space()


class MountainCarContinuousNoVelEnv(MaskedVelocityMixin, Continuous_MountainCarEnv):
    """MountainCarContinuous observing the car position only."""

    KEPT = (0,)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mask_space()


# id -> (class, the full-state id whose time limit and reward threshold are reused)
POMDP_ENVS: dict[str, tuple[type[gym.Env], str]] = {
    "CartPoleNoVel-v1": (CartPoleNoVelEnv, "CartPole-v1"),
    "PendulumNoVel-v1": (PendulumNoVelEnv, "Pendulum-v1"),
    "AcrobotNoVel-v1": (AcrobotNoVelEnv, "Acrobot-v1"),
    "MountainCarNoVel-v0": (MountainCarNoVelEnv, "MountainCar-v0"),
    "MountainCarContinuousNoVel-v0": (MountainCarContinuousNoVelEnv, "MountainCarContinuous-v0"),
}


def register_pomdp_envs() -> None:
    """Register the masked-velocity ids with gymnasium (idempotent)."""
    for env_id, (cls, full_id) in POMDP_ENVS.items():
        if env_id in gym.registry:
            continue
        full = gym.spec(full_id)
        gym.register(
            id=env_id,
            entry_point=f"{cls.__module__}:{cls.__name__}",
            max_episode_steps=full.max_episode_steps,
            reward_threshold=full.reward_threshold,
        )
