"""Controlled perturbations of observations and actions, for training or for evaluating a trained model.

The observation perturbations of :mod:`envs.perturbations` work on batches, so the same objects serve the
single-env gymnasium wrappers (:class:`PerturbObservation`, :class:`RepeatActionNoise`) and the SB3 ``VecEnv``
wrappers (:class:`VecPerturbObservation`, :class:`VecRepeatActionNoise`). Every wrapper reports its settings with
``noise_config()`` as ``make_env`` options, so they can be logged next to the results. :func:`add_noise`
perturbs an existing ``VecEnv``, e.g. the evaluation env of an already-trained model.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from envs.perturbations import OBS_NOISE_OPTIONS, Perturbation, make_perturbations
from rlnorm.validation import ConfigError, check_probability

ACTION_NOISE_OPTIONS = ("action_repeat_p",)
#: Every ``make_env`` option that perturbs observations or actions.
NOISE_OPTIONS = OBS_NOISE_OPTIONS + ACTION_NOISE_OPTIONS
#: Noise kind (as an experiment's ``eval.noise[].kind`` names it) -> the ``make_env`` option that applies it.
NOISE_KIND_OPTIONS: dict[str, str] = {
    "gaussian": "obs_noise_std",
    "salt_pepper": "salt_pepper_p",
    "flicker": "flicker_p",
    "frame_drop": "frame_drop_p",
}


def _box(space: spaces.Space, what: str) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise ValueError(f"{what} needs a Box observation space, got {space}")
    return space


def _check_action_repeat(p: float) -> float:
    return check_probability(p, "action_repeat_p")


class PerturbObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Apply perturbations to a single env's observations; ``reset(seed=...)`` reseeds them.

    :param env: env with a Box observation space
    :param perturbations: applied in order
    :param seed: seed of the perturbation generator
    """

    def __init__(self, env: gym.Env, perturbations: list[Perturbation], seed: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, perturbations=perturbations, seed=seed)
        super().__init__(env)
        space = _box(env.observation_space, "PerturbObservation")
        self.perturbations = perturbations
        for perturbation in perturbations:
            perturbation.bind(space)
        self._rng = np.random.default_rng(seed)
        self._new_episode = np.ones(1, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env (and the perturbation generator when ``seed`` is given).

        :param seed: the reset seed
        :param options: reset options of the env
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._new_episode = np.ones(1, dtype=bool)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """:param observation: one observation"""
        batch = observation[None]
        for perturbation in self.perturbations:
            batch = perturbation(batch, self._rng, self._new_episode)
        self._new_episode = np.zeros(1, dtype=bool)
        return batch[0]

    def noise_config(self) -> dict[str, float]:
        """The perturbation settings as ``make_env`` options."""
        return {p.option: p.value for p in self.perturbations}


class RepeatActionNoise(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """With probability ``p`` the env executes the previous action instead of the chosen one.

    :param env: any env
    :param p: repeat probability
    :param seed: seed of the noise generator
    """

    def __init__(self, env: gym.Env, p: float, seed: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, p=p, seed=seed)
        super().__init__(env)
        self.p = _check_action_repeat(p)
        self._rng = np.random.default_rng(seed)
        self._last_action: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env and forget the previous action.

        :param seed: the reset seed (also reseeds the noise)
        :param options: reset options of the env
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._last_action = None
        return super().reset(seed=seed, options=options)

    def step(self, action):
        """:param action: the chosen action"""
        if self._last_action is not None and self._rng.random() < self.p:
            action = self._last_action
        self._last_action = action
        return super().step(action)

    def noise_config(self) -> dict[str, float]:
        """The setting as a ``make_env`` option."""
        return {"action_repeat_p": self.p}


class VecPerturbObservation(VecEnvWrapper):
    """Apply perturbations to the observations of every env of a ``VecEnv`` (terminal ones included, except
    for stateful perturbations such as frame drop).

    :param venv: env with a Box observation space
    :param perturbations: applied in order
    :param seed: seed of the perturbation generator
    """

    def __init__(self, venv: VecEnv, perturbations: list[Perturbation], seed: int | None = None) -> None:
        super().__init__(venv)
        space = _box(venv.observation_space, "VecPerturbObservation")
        self.perturbations = perturbations
        for perturbation in perturbations:
            perturbation.bind(space)
        self._rng = np.random.default_rng(seed)

    def _apply(self, obs: np.ndarray, new_episode: np.ndarray, stateless_only: bool = False) -> np.ndarray:
        for perturbation in self.perturbations:
            if not (stateless_only and perturbation.stateful):
                obs = perturbation(obs, self._rng, new_episode)
        return obs

    def reset(self) -> VecEnvObs:
        """Reset every env; the first observations are perturbed too."""
        obs = self.venv.reset()
        return self._apply(obs, np.ones(self.num_envs, dtype=bool))

    def step_wait(self) -> VecEnvStepReturn:
        """Step and perturb the observations (and ``terminal_observation`` entries)."""
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                terminal = info["terminal_observation"][None]
                info["terminal_observation"] = self._apply(terminal, np.zeros(1, bool), stateless_only=True)[0]
        return self._apply(obs, np.asarray(dones, dtype=bool)), rewards, dones, infos

    def noise_config(self) -> dict[str, float]:
        """The perturbation settings as ``make_env`` options, merged with those of inner noise wrappers."""
        inner = _inner_noise_config(self.venv)
        return {**inner, **{p.option: p.value for p in self.perturbations}}


class VecRepeatActionNoise(VecEnvWrapper):
    """With probability ``p`` each env executes its previous action instead of the chosen one (never on the
    first step of an episode).

    :param venv: any ``VecEnv``
    :param p: repeat probability
    :param seed: seed of the noise generator
    """

    def __init__(self, venv: VecEnv, p: float, seed: int | None = None) -> None:
        super().__init__(venv)
        self.p = _check_action_repeat(p)
        self._rng = np.random.default_rng(seed)
        self._last_actions: np.ndarray | None = None
        self._has_last = np.zeros(self.num_envs, dtype=bool)

    def reset(self) -> VecEnvObs:
        """Reset every env and forget the previous actions."""
        self._has_last[:] = False
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        """:param actions: the chosen actions, one per env"""
        actions = np.array(actions, copy=True)
        repeat = self._has_last & (self._rng.random(self.num_envs) < self.p)
        if repeat.any():
            actions[repeat] = self._last_actions[repeat]
        self._last_actions = actions
        self._has_last[:] = True
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step; envs that ended start their next episode without a previous action."""
        obs, rewards, dones, infos = self.venv.step_wait()
        self._has_last &= ~np.asarray(dones, dtype=bool)
        return obs, rewards, dones, infos

    def noise_config(self) -> dict[str, float]:
        """The setting as a ``make_env`` option, merged with those of inner noise wrappers."""
        return {**_inner_noise_config(self.venv), "action_repeat_p": self.p}


def _inner_noise_config(venv: VecEnv) -> dict[str, float]:
    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, (VecPerturbObservation, VecRepeatActionNoise)):
            return venv.noise_config()
        venv = venv.venv
    return {}


def noise_config(venv: VecEnv) -> dict[str, float]:
    """All noise settings of a (wrapped) ``VecEnv`` as ``make_env`` options; zero for those not applied.

    :param venv: the env, e.g. from :func:`envs.make_env`
    :return: ``{"frame_drop_p": ..., "flicker_p": ..., "salt_pepper_p": ..., "obs_noise_std": ...,
        "action_repeat_p": ...}``
    """
    return {**dict.fromkeys(NOISE_OPTIONS, 0.0), **_inner_noise_config(venv)}


def add_noise(venv: VecEnv, seed: int | None = None, **options: float) -> VecEnv:
    """Wrap ``venv`` with the requested noise (no wrapper for zero settings), e.g. to evaluate a trained model.

    :param venv: the env to perturb
    :param seed: seed of the noise generators (``None``: fresh entropy)
    :param options: any of ``frame_drop_p``, ``flicker_p``, ``salt_pepper_p``, ``obs_noise_std``,
        ``action_repeat_p``
    :return: the wrapped env
    """
    unknown = sorted(set(options) - set(NOISE_OPTIONS))
    if unknown:
        raise ConfigError("", unknown[0], f"unknown noise option(s) {unknown}; allowed: {list(NOISE_OPTIONS)}")
    action_p = _check_action_repeat(options.pop("action_repeat_p", 0.0))
    perturbations = make_perturbations(**options)
    seeds = np.random.SeedSequence(seed).spawn(2)
    if perturbations:
        venv = VecPerturbObservation(venv, perturbations, seed=seeds[0])
    if action_p > 0:
        venv = VecRepeatActionNoise(venv, action_p, seed=seeds[1])
    return venv
