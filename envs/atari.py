"""Standard DQN/PPO Atari preprocessing on real ALE games, as single gymnasium envs or as ale-py's vector env.

Both paths give channel-first ``uint8`` observations ``(frame_stack, screen_size, screen_size)``:

- :func:`make_atari_env_single` composes SB3's Atari wrappers (no-op reset, frame skip with max-pool, episodic
  life, fire reset, reward clipping) around ``gym.make(..., frameskip=1)``; a ``Monitor`` sits *below* the
  life-loss wrapper so ``info["episode"]`` holds the full game's unclipped score. Frame stacking is done by
  ``VecFrameStack`` on the vectorized env (see :mod:`envs.factory`).
- :class:`AleVecEnv` wraps ``ale_py.vector_env.AtariVectorEnv`` (C++ threads, preprocessing in C++) as an SB3
  ``VecEnv``; rewards are clipped and life losses turned into episode ends in Python so that true game scores
  reach ``info["episode"]`` exactly as with ``Monitor``.

Episode length ``info["episode"]["l"]`` counts agent steps (decisions), in both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ale_py
import cv2
import gymnasium as gym
import numpy as np
from ale_py.vector_env import AtariVectorEnv
from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import (
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
)
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from envs.batched import BatchedVecEnv
from envs.checks import check_bool, check_int, check_probability

# Subprocess workers import this module to build their env, so registration happens there too.
gym.register_envs(ale_py)

ATARI_ENTRY_POINT = "ale_py.env:AtariEnv"


@dataclass(frozen=True)
class AtariConfig:
    """Preprocessing of one Atari game; the defaults are the standard DQN/PPO settings for ``-v5`` ids.

    :param training: clip rewards to their sign and end an episode at each life loss (the score in
        ``info["episode"]`` stays the true game score either way)
    :param noop_max: at most this many no-op actions after each reset (0 disables)
    :param frame_skip: repeat each action this many frames, max-pooling the last two
    :param screen_size: side of the square grayscale observation
    :param frame_stack: number of consecutive frames stacked on the channel axis
    :param sticky_actions: probability that the emulator repeats the previous action each frame
    :param full_action_space: use all 18 actions instead of the game's minimal set
    :param fire_reset: press FIRE after reset in games that need it to start
    :param max_episode_frames: emulator frames after which an episode is truncated
    """

    training: bool = True
    noop_max: int = 30
    frame_skip: int = 4
    screen_size: int = 84
    frame_stack: int = 4
    sticky_actions: float = 0.25
    full_action_space: bool = False
    fire_reset: bool = True
    max_episode_frames: int = 108_000

    def __post_init__(self) -> None:
        check_bool(self.training, "training")
        check_int(self.noop_max, "noop_max", 0)
        check_int(self.frame_skip, "frame_skip", 1)
        check_int(self.screen_size, "screen_size", 8)
        check_int(self.frame_stack, "frame_stack", 1)
        check_probability(self.sticky_actions, "sticky_actions")
        check_bool(self.full_action_space, "full_action_space")
        check_bool(self.fire_reset, "fire_reset")
        check_int(self.max_episode_frames, "max_episode_frames", 1)


ATARI_OPTIONS = tuple(AtariConfig.__dataclass_fields__)


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` is a registered ALE game id (of any version).

    :param env_id: a gymnasium id
    """
    spec = gym.registry.get(env_id)
    return spec is not None and spec.entry_point == ATARI_ENTRY_POINT


def atari_game(env_id: str) -> str:
    """The ROM name (``"pong"``) of an ``ALE/<Game>-v5`` id; other Atari ids are refused.

    :param env_id: a registered ALE id
    """
    if not (env_id.startswith("ALE/") and env_id.endswith("-v5")):
        raise ValueError(
            f"env_id {env_id!r}: Atari games are supported as 'ALE/<Game>-v5' ids (e.g. 'ALE/Pong-v5'); "
            "the preprocessing (frame skip, sticky actions) is set through make_env options"
        )
    return gym.spec(env_id).kwargs["game"]


class GrayResizeChannelFirst(gym.ObservationWrapper):
    """Resize a grayscale ``(H, W)`` frame with area interpolation and add a leading channel axis.

    Area interpolation on ALE's own grayscale screen is what ale-py's vector env computes in C++, so the two
    backends see identical pixels.

    :param env: env with ``obs_type="grayscale"`` observations
    :param screen_size: side of the output frame
    """

    def __init__(self, env: gym.Env, screen_size: int = 84) -> None:
        super().__init__(env)
        self.screen_size = screen_size
        self.observation_space = spaces.Box(0, 255, (1, screen_size, screen_size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """:param observation: ``(H, W)`` uint8 frame"""
        size = (self.screen_size, self.screen_size)
        return cv2.resize(observation, size, interpolation=cv2.INTER_AREA)[None]


class SeededEpisodicLifeEnv(EpisodicLifeEnv):
    """SB3's ``EpisodicLifeEnv`` that starts a new game when ``reset`` gets a seed.

    SB3's wrapper continues the current game after a life loss whatever the reset arguments, so a seeded
    reset would be ignored and runs would not be reproducible from their seed.

    :param env: the env to wrap
    """

    def reset(self, **kwargs: Any):
        """:param kwargs: reset arguments; a ``seed`` forces a real reset"""
        if kwargs.get("seed") is not None:
            self.was_real_done = True
        return super().reset(**kwargs)


def make_atari_env_single(env_id: str, config: AtariConfig) -> gym.Env:
    """One preprocessed Atari env without frame stacking (``(1, 84, 84)`` observations).

    :param env_id: an ``ALE/<Game>-v5`` id
    :param config: the preprocessing
    :return: the wrapped env; seed it through ``reset(seed=...)``
    """
    atari_game(env_id)
    env = gym.make(
        env_id,
        frameskip=1,
        obs_type="grayscale",
        repeat_action_probability=config.sticky_actions,
        full_action_space=config.full_action_space,
        max_num_frames_per_episode=config.max_episode_frames,
    )
    if config.noop_max > 0:
        env = NoopResetEnv(env, noop_max=config.noop_max)
    if config.frame_skip > 1:
        env = MaxAndSkipEnv(env, skip=config.frame_skip)
    # Below the life-loss wrapper: the episode statistics cover the whole game with unclipped rewards.
    env = Monitor(env)
    if config.training:
        env = SeededEpisodicLifeEnv(env)
    if config.fire_reset and "FIRE" in env.unwrapped.get_action_meanings():
        env = FireResetEnv(env)
    env = GrayResizeChannelFirst(env, config.screen_size)
    if config.training:
        env = ClipRewardEnv(env)
    return env


#: values of the ``thread_affinity`` option besides a core number
THREAD_AFFINITY_MODES = ("auto", "none")


def ale_threads(n_envs: int, num_threads: int = 0, thread_affinity: int | str = "auto") -> tuple[int, int]:
    """``(num_threads, thread_affinity_offset)`` for ale-py's vector env in this process.

    Unpinned, ale-py's threads run at full speed in most processes and at half speed in some (two threads
    share a core); pinned, every process is fast. Pinning is safe only on cores this process owns
    (:mod:`envs.cores`), so ``"auto"`` pins when the process has claimed cores (a sweep's run does) and leaves
    placement to the OS otherwise.

    :param n_envs: games in the vector env
    :param num_threads: threads asked for (0: one per owned core, at most one per game, when pinning;
        ale-py's default otherwise)
    :param thread_affinity: ``"auto"``, ``"none"`` (never pin) or the first core to pin to (thread ``i`` goes
        to core ``offset + i``)
    :return: what to pass to ``AtariVectorEnv``
    """
    if thread_affinity == "none":
        return num_threads, -1
    if thread_affinity == "auto":
        from envs.cores import owned_cores

        owned = owned_cores()
        if owned is None:
            return num_threads, -1
        threads = num_threads or min(n_envs, len(owned))
        # more threads than owned cores: pinning would leave the range; the affinity mask still keeps them in it
        return (threads, owned[0]) if threads <= len(owned) else (threads, -1)
    if isinstance(thread_affinity, bool) or not isinstance(thread_affinity, int) or thread_affinity < 0:
        raise ValueError(
            f"thread_affinity must be one of {', '.join(THREAD_AFFINITY_MODES)} or a core number >= 0; "
            f"got {thread_affinity!r}"
        )
    return num_threads or n_envs, thread_affinity


class AleVecEnv(BatchedVecEnv):
    """ale-py's multithreaded vector env as an SB3 ``VecEnv`` (auto-reset, ``terminal_observation``, episodes).

    The C++ env runs with unclipped rewards and without life-loss terminations; both are applied here so the
    true game score and length land in ``info["episode"] = {"r", "l", "t"}`` at game over, as SB3's ``Monitor``
    reports them. A life loss during training ends the episode for the learner (``done`` with the current frame
    as ``terminal_observation``) while the game goes on; unlike SB3's wrappers, no no-op step is inserted, the
    frame stack is kept, and FIRE is pressed only at the start of a game.

    :param env_id: an ``ALE/<Game>-v5`` id
    :param n_envs: number of games run in parallel
    :param config: the preprocessing
    :param num_threads: C++ worker threads (0: ale-py's default)
    :param thread_affinity_offset: pin thread ``i`` to core ``offset + i`` (-1: no pinning); see
        :func:`ale_threads`
    """

    def __init__(
        self, env_id: str, n_envs: int, config: AtariConfig, num_threads: int = 0, thread_affinity_offset: int = -1
    ) -> None:
        self.config = config
        self.env_id = env_id
        self.num_threads = num_threads
        self.thread_affinity_offset = thread_affinity_offset
        self.ale = AtariVectorEnv(
            atari_game(env_id),
            n_envs,
            num_threads=num_threads,
            thread_affinity_offset=thread_affinity_offset,
            autoreset_mode="SameStep",
            max_num_frames_per_episode=config.max_episode_frames,
            repeat_action_probability=config.sticky_actions,
            full_action_space=config.full_action_space,
            img_height=config.screen_size,
            img_width=config.screen_size,
            stack_num=config.frame_stack,
            frameskip=config.frame_skip,
            noop_max=config.noop_max,
            use_fire_reset=config.fire_reset,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
        )
        super().__init__(n_envs, self.ale.single_observation_space, self.ale.single_action_space)
        self._actions = np.zeros(n_envs, dtype=np.int32)
        self._lives = np.zeros(n_envs, dtype=np.int32)

    def reset(self) -> VecEnvObs:
        """Reset every game, using the seeds set by :meth:`seed` (consecutive seeds, one per env) once."""
        if all(s is None for s in self._seeds):
            obs, info = self.ale.reset()
        else:
            # ale-py reads -1 as "draw a random seed".
            seeds = np.array([-1 if s is None else s for s in self._seeds], dtype=np.int64)
            obs, info = self.ale.reset(seed=seeds)
        self._reset_seeds()
        self.episode_stats.restart()
        self._lives[:] = info["lives"]
        self.reset_infos = [{"lives": int(lives)} for lives in info["lives"]]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """:param actions: one discrete action per env"""
        self._actions = np.asarray(actions, dtype=np.int32).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every game; ended games are already reset in the returned observations."""
        obs, rewards, terminated, truncated, info = self.ale.step(self._actions)
        rewards = rewards.astype(np.float32)
        self.episode_stats.add(rewards)
        lives = info["lives"]
        game_over = terminated | truncated
        dones = game_over.copy()
        if self.config.training:
            dones |= ~game_over & (lives > 0) & (lives < self._lives)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            info_i = infos[i]
            info_i["terminal_observation"] = info["final_obs"][i] if game_over[i] else obs[i].copy()
            info_i["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            if game_over[i]:
                info_i["episode"] = self.episode_stats.finish(i)
        self._lives = lives.copy()
        if self.config.training:
            rewards = np.sign(rewards)
        return obs, rewards, dones, infos

    def close(self) -> None:
        """Stop the C++ worker threads."""
        self.ale.close()
