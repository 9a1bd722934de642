"""Deep Sea (Osband et al., 2019, "Behaviour Suite for RL"): a hard-exploration task with image observations.

The agent starts in the top-left cell of an ``N x N`` grid and descends one row per step, moving one column
left or right, so every episode lasts ``N`` steps. Only the bottom-right cell pays: ``+1`` for the action
"right" taken in the last column. Every "right" costs ``move_cost / N``, "left" is free, so the locally best
policy goes left; the one path to the treasure takes "right" ``N`` times in a row, which a uniformly random
policy does once in ``2^N`` episodes. Which action index means "right" is drawn per cell (fixed by
``mapping_seed``), so no single action index solves the task. The optimal return is ``1 - move_cost``.

Observations are ``Box(0, 1, (1, N, N), uint8)``: a one-hot image of the agent's cell (all zeros after the
last step), the same channel-first binary format as MinAtar, so the CNN policies and the PixelCNN
pseudo-count bonus (:mod:`agents.exploration`) take it unchanged.

``import envs`` registers ``DeepSea-v0`` (default ``size=10``); ``make_env("DeepSea-v0", env_kwargs={"size": 14})``
picks another size. ``info["solved"]`` is ``True`` on the step that collects the treasure.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlnorm.validation import check_int, check_non_negative

DEEP_SEA_ID = "DeepSea-v0"


class DeepSeaEnv(gym.Env):
    """Deterministic Deep Sea of side ``size``.

    :param size: grid side ``N`` (>= 2); episodes last ``N`` steps
    :param move_cost: total cost of ``N`` right moves (each costs ``move_cost / N``), >= 0
    :param mapping_seed: seed of the per-cell action mapping (the same for every reset; not the reset seed)
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, size: int = 10, move_cost: float = 0.01, mapping_seed: int = 0) -> None:
        self.size = size = check_int(size, "size", 2)
        self.move_cost = check_non_negative(move_cost, "move_cost")
        mapping_seed = check_int(mapping_seed, "mapping_seed", 0)
        # right_action[row, col]: the action index that moves right in that cell
        self.right_action = np.random.default_rng(mapping_seed).integers(0, 2, size=(size, size))
        self.observation_space = spaces.Box(0, 1, (1, size, size), dtype=np.uint8)
        self.action_space = spaces.Discrete(2)
        self._row = 0
        self._col = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros((1, self.size, self.size), dtype=np.uint8)
        if self._row < self.size:
            obs[0, self._row, self._col] = 1
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Back to the top-left cell (the task is deterministic; ``seed`` only seeds ``np_random``).

        :param seed: reset seed
        :param options: unused
        """
        super().reset(seed=seed)
        self._row = self._col = 0
        return self._obs(), {}

    def step(self, action: int):
        """Descend one row, moving right or left.

        :param action: 0 or 1; which one means "right" depends on the cell
        """
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 or 1, got {action!r}")
        if self._row >= self.size:
            raise RuntimeError("step() called after the episode ended; call reset()")
        right = int(action) == int(self.right_action[self._row, self._col])
        reward = 0.0
        solved = right and self._col == self.size - 1
        if solved:
            reward += 1.0
        if right:
            reward -= self.move_cost / self.size
            self._col = min(self._col + 1, self.size - 1)
        else:
            self._col = max(self._col - 1, 0)
        self._row += 1
        terminated = self._row == self.size
        return self._obs(), reward, terminated, False, {"solved": solved}


def register_deep_sea() -> None:
    """Register :data:`DEEP_SEA_ID` with gymnasium (idempotent)."""
    if DEEP_SEA_ID not in gym.registry:
        gym.register(id=DEEP_SEA_ID, entry_point=f"{__name__}:DeepSeaEnv")
