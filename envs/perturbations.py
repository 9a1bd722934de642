"""Random perturbations of a batch of observations ``(N, *obs_shape)``, the building blocks of :mod:`envs.noise`.

Each perturbation has an ``option`` name (its ``make_env`` keyword) and a ``value``. ``obs_noise_std`` is a
fraction of each entry's range ``high - low`` where that range is finite (so 0.1 means 25.5 gray levels on
Atari frames) and an absolute standard deviation where it is not (velocities of classic control). Perturbed
observations are clipped to the space and keep its dtype (integers are rounded).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from envs.checks import check_non_negative, check_probability

OBS_NOISE_OPTIONS = ("frame_drop_p", "flicker_p", "salt_pepper_p", "obs_noise_std")


class Perturbation(ABC):
    """A random change of a batch of observations; ``option`` is its ``make_env`` keyword."""

    option: ClassVar[str]
    #: whether the output depends on earlier observations (then it is not applied to terminal observations)
    stateful: ClassVar[bool] = False

    def __init__(self, value: float) -> None:
        self.value = value

    @abstractmethod
    def __call__(self, obs: np.ndarray, rng: np.random.Generator, new_episode: np.ndarray) -> np.ndarray:
        """Return the perturbed batch (a new array).

        :param obs: observations ``(N, *shape)``
        :param rng: the wrapper's generator
        :param new_episode: ``(N,)`` bool, true where ``obs`` is the first observation of an episode
        """

    def bind(self, space: spaces.Box) -> None:  # noqa: B027 (optional hook)
        """Learn the observation space (bounds, dtype) before the first call.

        :param space: the single-env observation space
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.option}={self.value})"


class _SpaceAware(Perturbation):
    """Keeps the bounds and dtype to clip and cast perturbed observations back into the space."""

    def bind(self, space: spaces.Box) -> None:
        self.low = space.low.astype(np.float32)
        self.high = space.high.astype(np.float32)
        self.dtype = space.dtype
        span = self.high - self.low
        self.scale = np.where(np.isfinite(span), span, 1.0).astype(np.float32)

    def _back_to_space(self, values: np.ndarray) -> np.ndarray:
        values = np.clip(values, self.low, self.high)
        if np.issubdtype(self.dtype, np.integer):
            values = np.rint(values)
        return values.astype(self.dtype)


class GaussianNoise(_SpaceAware):
    """Add ``N(0, (std · range)²)`` to every entry.

    :param std: standard deviation as a fraction of the entry's range (absolute where the range is infinite)
    """

    option = "obs_noise_std"

    def __init__(self, std: float) -> None:
        super().__init__(check_non_negative(std, self.option))

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, new_episode: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal(obs.shape, dtype=np.float32)
        noise *= self.value * self.scale
        return self._back_to_space(obs.astype(np.float32) + noise)


class SaltAndPepper(_SpaceAware):
    """Set each entry to its lower or upper bound (equally likely) with probability ``p``.

    :param p: probability that an entry is replaced
    """

    option = "salt_pepper_p"

    def __init__(self, p: float) -> None:
        super().__init__(check_probability(p, self.option))

    def bind(self, space: spaces.Box) -> None:
        super().bind(space)
        if not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise ValueError(f"{self.option} needs finite observation bounds, got low={space.low}, high={space.high}")

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, new_episode: np.ndarray) -> np.ndarray:
        draws = rng.random(obs.shape, dtype=np.float32)
        out = obs.copy()
        pepper = draws < self.value / 2
        salt = (draws >= self.value / 2) & (draws < self.value)
        out[pepper] = np.broadcast_to(self.low, obs.shape)[pepper].astype(obs.dtype)
        out[salt] = np.broadcast_to(self.high, obs.shape)[salt].astype(obs.dtype)
        return out


class Flicker(_SpaceAware):
    """Blank each whole observation with probability ``p``: flickering Atari/MinAtar as a POMDP.

    A blank observation is all zeros (clipped into the space where 0 lies outside its bounds).

    :param p: probability that an observation is blanked
    """

    option = "flicker_p"

    def __init__(self, p: float) -> None:
        super().__init__(check_probability(p, self.option))

    def bind(self, space: spaces.Box) -> None:
        super().bind(space)
        self.blank = self._back_to_space(np.zeros(space.shape, np.float32))

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, new_episode: np.ndarray) -> np.ndarray:
        blank = rng.random(len(obs)) < self.value
        out = obs.copy()
        out[blank] = self.blank
        return out


class FrameDrop(Perturbation):
    """With probability ``p`` show the previous (perturbed) observation again instead of the new one.

    The first observation of an episode is never dropped.

    :param p: probability that a frame is dropped
    """

    option = "frame_drop_p"
    stateful = True

    def __init__(self, p: float) -> None:
        super().__init__(check_probability(p, self.option))
        self._last: np.ndarray | None = None

    def __call__(self, obs: np.ndarray, rng: np.random.Generator, new_episode: np.ndarray) -> np.ndarray:
        drop = rng.random(len(obs)) < self.value
        if self._last is None or self._last.shape != obs.shape:
            drop[:] = False
        drop &= ~new_episode
        out = obs.copy()
        if drop.any():
            out[drop] = self._last[drop]
        self._last = out.copy()
        return out


_OBS_PERTURBATIONS: dict[str, type[Perturbation]] = {
    cls.option: cls for cls in (FrameDrop, Flicker, SaltAndPepper, GaussianNoise)
}


def make_perturbations(**options: float) -> list[Perturbation]:
    """The observation perturbations for the non-zero options, in a fixed order (drop, flicker, salt, noise).

    :param options: any of ``frame_drop_p``, ``flicker_p``, ``salt_pepper_p``, ``obs_noise_std``
    :return: the perturbations to apply in order (empty if all are zero)
    """
    unknown = sorted(set(options) - set(_OBS_PERTURBATIONS))
    if unknown:
        raise ValueError(f"unknown observation noise option(s) {unknown}; allowed: {list(OBS_NOISE_OPTIONS)}")
    built = [cls(options.get(name, 0.0)) for name, cls in _OBS_PERTURBATIONS.items() if name in options]
    return [p for p in built if p.value > 0]
