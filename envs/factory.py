"""``make_env``: one entry point from an env id and options to a seeded SB3 ``VecEnv``."""

from __future__ import annotations

import difflib
import functools
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecFrameStack

from envs.atari import (
    ATARI_OPTIONS,
    AleVecEnv,
    AtariConfig,
    ale_threads,
    atari_game,
    is_atari_id,
    make_atari_env_single,
)
from envs.minatar import (
    MINATAR_OPTIONS,
    MinAtarConfig,
    MinAtarVecEnv,
    is_minatar_id,
    make_minatar_env_single,
    register_minatar,
)
from envs.noise import NOISE_OPTIONS, add_noise
from rlnorm.validation import ConfigError, check_bool, check_choice, check_int

# Per family; the first is the default.
ATARI_BACKENDS = ("ale", "subproc", "dummy")
MINATAR_BACKENDS = ("batched", "dummy", "subproc")
GYM_BACKENDS = ("dummy", "subproc")
BACKENDS = ("ale", "batched", "subproc", "dummy")
COMMON_OPTIONS = ("backend", "training", "noise_seed", *NOISE_OPTIONS)
GYM_OPTIONS = ("max_episode_steps", "env_kwargs")
#: ale-py's threads: how many, and which cores they are pinned to (see :func:`envs.atari.ale_threads`)
ALE_THREAD_OPTIONS = ("num_threads", "thread_affinity")


def _unknown_id_error(env_id: str) -> ConfigError:
    known = list(gym.registry)
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return ConfigError("", "env_id", f"{env_id!r} is not a registered gymnasium id{hint}")


def _check_options(env_id: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        problem = f"unknown option(s) {unknown} for env_id {env_id!r}; allowed options: {sorted(allowed)}"
        raise ConfigError("", unknown[0], problem)


def _single_env(kind: str, env_id: str, config: Any) -> gym.Env:
    # Module-level so SubprocVecEnv can pickle it; the import of envs in the worker registers the ids.
    if kind == "atari":
        return make_atari_env_single(env_id, config)
    if kind == "minatar":
        return Monitor(make_minatar_env_single(env_id, config))
    max_episode_steps, env_kwargs = config
    return Monitor(gym.make(env_id, max_episode_steps=max_episode_steps, **env_kwargs))


def _vectorize(kind: str, env_id: str, config: Any, n_envs: int, backend: str) -> VecEnv:
    thunks = [functools.partial(_single_env, kind, env_id, config) for _ in range(n_envs)]
    if backend == "subproc":
        return SubprocVecEnv(thunks)
    return DummyVecEnv(thunks)


def _make_atari(env_id: str, n_envs: int, training: bool, options: dict[str, Any]) -> VecEnv:
    atari_game(env_id)
    game_options = tuple(name for name in ATARI_OPTIONS if name != "training")
    _check_options(env_id, options, game_options + COMMON_OPTIONS + ALE_THREAD_OPTIONS)
    backend = check_choice(options.pop("backend", ATARI_BACKENDS[0]), "backend", ATARI_BACKENDS)
    num_threads = check_int(options.pop("num_threads", 0), "num_threads", 0)
    affinity = options.pop("thread_affinity", "auto")
    config = AtariConfig(training=training, **options)
    if backend == "ale":
        try:
            threads, offset = ale_threads(n_envs, num_threads, affinity)
        except ValueError as err:
            raise ConfigError("", "thread_affinity", str(err).removeprefix("thread_affinity ")) from None
        return AleVecEnv(env_id, n_envs, config, num_threads=threads, thread_affinity_offset=offset)
    if num_threads or affinity != "auto":
        raise ConfigError("", "num_threads" if num_threads else "thread_affinity", "applies to backend='ale' only")
    venv = _vectorize("atari", env_id, config, n_envs, backend)
    return VecFrameStack(venv, config.frame_stack, channels_order="first")


def _make_minatar(env_id: str, n_envs: int, options: dict[str, Any]) -> VecEnv:
    _check_options(env_id, options, MINATAR_OPTIONS + COMMON_OPTIONS)
    backend = check_choice(options.pop("backend", MINATAR_BACKENDS[0]), "backend", MINATAR_BACKENDS)
    config = MinAtarConfig(**options)
    if backend == "batched":
        return MinAtarVecEnv(env_id, n_envs, config)
    return _vectorize("minatar", env_id, config, n_envs, backend)


def _make_gym(env_id: str, n_envs: int, options: dict[str, Any]) -> VecEnv:
    _check_options(env_id, options, GYM_OPTIONS + COMMON_OPTIONS)
    backend = check_choice(options.pop("backend", GYM_BACKENDS[0]), "backend", GYM_BACKENDS)
    max_steps = options.get("max_episode_steps")
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_episode_steps", 1)
    env_kwargs = options.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise ConfigError("", "env_kwargs", f"must be a dict of keyword arguments, got {env_kwargs!r}")
    return _vectorize("gym", env_id, (max_steps, env_kwargs), n_envs, backend)


def make_env(env_id: str, n_envs: int = 1, seed: int = 0, **options: Any) -> VecEnv:
    """Build ``n_envs`` copies of ``env_id`` as one seeded SB3 ``VecEnv``.

    Families and their options (every family also takes the common ones):

    - Atari (``ALE/<Game>-v5``): channel-first ``uint8`` ``(frame_stack, 84, 84)`` frames; options
      ``noop_max, frame_skip, screen_size, frame_stack, sticky_actions, full_action_space, fire_reset,
      max_episode_frames`` (see :class:`envs.atari.AtariConfig`), ``num_threads`` and ``thread_affinity``
      (``"auto"``: pin ale-py's threads to the cores the process claimed, :func:`envs.atari.ale_threads`);
      ``backend`` ``"ale"`` (default, ale-py's C++ vector env), ``"subproc"`` or ``"dummy"`` (SB3's Atari
      wrappers per env).
    - MinAtar (``MinAtar/<Game>-v1``, extra ``rlnorm[minatar]``): ``uint8`` ``(C, 10, 10)`` in ``{0, 1}``;
      options ``sticky_actions, difficulty_ramping, max_episode_steps``; ``backend`` ``"batched"`` (default,
      all games in one loop), ``"dummy"`` or ``"subproc"``.
    - Any other gymnasium id (classic control, the ``...NoVel`` POMDPs): options ``max_episode_steps,
      env_kwargs``; ``backend`` ``"dummy"`` (default) or ``"subproc"``.

    Common options: ``training`` (Atari: clip rewards and end episodes at life losses; default ``True``; other
    families ignore it), ``obs_noise_std``, ``salt_pepper_p``, ``flicker_p``, ``frame_drop_p``,
    ``action_repeat_p`` (see :mod:`envs.noise`; default 0) and ``noise_seed`` (default derived from ``seed``).

    Episode statistics with the true (unclipped) game score reach ``info["episode"]`` (SB3's ``Monitor``
    format) so ``rollout/ep_rew_mean`` reports game scores.

    :param env_id: a gymnasium id, e.g. ``"ALE/Pong-v5"``, ``"MinAtar/Breakout-v1"``, ``"CartPoleNoVel-v1"``
    :param n_envs: number of parallel envs
    :param seed: env ``i`` is seeded with ``seed + i`` at the first reset
    :param options: the family's options above
    :return: the vectorized env
    """
    n_envs = check_int(n_envs, "n_envs", 1)
    seed = check_int(seed, "seed", 0)
    if is_minatar_id(env_id):
        register_minatar()
    if env_id not in gym.registry:
        raise _unknown_id_error(env_id)

    noise = {name: options.pop(name) for name in NOISE_OPTIONS if name in options}
    noise_seed = options.pop("noise_seed", None)
    noise_seed = seed + 1_000_003 if noise_seed is None else check_int(noise_seed, "noise_seed", 0)
    training = check_bool(options.pop("training", True), "training")

    if is_atari_id(env_id):
        venv = _make_atari(env_id, n_envs, training, options)
    elif is_minatar_id(env_id):
        venv = _make_minatar(env_id, n_envs, options)
    else:
        venv = _make_gym(env_id, n_envs, options)
    venv.seed(seed)
    venv.action_space.seed(seed)
    return add_noise(venv, seed=noise_seed, **noise)
