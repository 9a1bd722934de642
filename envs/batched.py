"""Base of the VecEnvs that step all their games in one object (no per-env gymnasium wrappers).

Such a VecEnv records episode statistics itself, in the format of SB3's ``Monitor``, so ``info["episode"]``
reaches ``ep_info_buffer`` (``rollout/ep_rew_mean``) and ``evaluate_policy`` exactly as with ``Monitor``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices


class EpisodeStats:
    """Running return and length per env; ``finish(i)`` gives ``Monitor``'s ``{"r", "l", "t"}`` and restarts.

    :param n_envs: number of envs
    """

    def __init__(self, n_envs: int) -> None:
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        self.t_start = time.time()

    def add(self, rewards: np.ndarray) -> None:
        """Count one step with these (unclipped) rewards for every env.

        :param rewards: ``(n_envs,)`` rewards
        """
        self.returns += rewards
        self.lengths += 1

    def finish(self, i: int) -> dict[str, float | int]:
        """End env ``i``'s episode.

        :param i: the env index
        :return: the episode statistics
        """
        episode = {
            "r": round(float(self.returns[i]), 6),
            "l": int(self.lengths[i]),
            "t": round(time.time() - self.t_start, 6),
        }
        self.returns[i] = 0.0
        self.lengths[i] = 0
        return episode

    def restart(self) -> None:
        """Forget all running episodes (after a full reset)."""
        self.returns[:] = 0.0
        self.lengths[:] = 0


class BatchedVecEnv(VecEnv):
    """A ``VecEnv`` whose games are stepped by this object; per-game attributes and methods are not exposed.

    :param num_envs: number of games
    :param observation_space: single-game observation space
    :param action_space: single-game action space
    """

    def __init__(self, num_envs: int, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.render_mode = None
        super().__init__(num_envs, observation_space, action_space)
        self.episode_stats = EpisodeStats(num_envs)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes of this object, shared by all games.

        :param attr_name: attribute name (e.g. ``"render_mode"``, ``"config"``)
        :param indices: which envs to report for
        """
        value = None if attr_name == "render_mode" else getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Not supported: the games are not gymnasium envs.

        :param attr_name: the attribute
        :param value: its value
        :param indices: which envs
        """
        raise NotImplementedError(f"{type(self).__name__}: cannot set {attr_name!r} on its games")

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        """Not supported: the games are not gymnasium envs.

        :param method_name: the method
        :param indices: which envs
        """
        raise NotImplementedError(f"{type(self).__name__}: cannot call {method_name!r} on its games")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """``True`` for ``Monitor`` only: episode statistics are recorded as ``Monitor`` does.

        :param wrapper_class: the wrapper asked about
        :param indices: which envs
        """
        return [wrapper_class is Monitor for _ in self._get_indices(indices)]
