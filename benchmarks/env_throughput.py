"""Env throughput of rlnorm's fast backends against SB3's standard pipelines, in one run.

Atari: rlnorm's ``ale`` backend (ale-py's C++ vector env) against what SB3 users run: ``make_atari_env``
(``AtariWrapper``: no-op reset, frame skip 4 with max-pool, episodic life, fire reset, 84×84 gray, reward
clipping, ``Monitor``) in a ``SubprocVecEnv``, then ``VecFrameStack(4)``; rlnorm's ``subproc`` backend (the same
SB3 wrappers) is timed as well. All pipelines use the same game, number of envs, sticky actions (0.25) and
random actions. Prints steps/s (env steps, i.e. agent decisions summed over envs) and the ratio to the baseline.

MinAtar (the default CPU experiment: 8 envs): rlnorm's ``batched`` backend against SB3's ``make_vec_env``
(``Monitor`` + ``DummyVecEnv``) over the same channel-first MinAtar env.

Usage: ``python benchmarks/env_throughput.py [--env ALE/Breakout-v5] [--n-envs 4] [--steps 4000]
[--minatar-env MinAtar/Breakout-v1] [--minatar-n-envs 8] [--minatar-steps 40000]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecFrameStack

from envs import MinAtarConfig, make_env, make_minatar_env_single


def steps_per_second(make: Callable[[], VecEnv], n_steps: int, warmup: int = 50) -> float:
    """Env steps per second of random play, excluding construction and a short warm-up.

    :param make: builds the vectorized env
    :param n_steps: env steps to time (summed over the envs)
    :param warmup: vector steps run before timing
    """
    venv = make()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, venv.action_space.n, (n_steps // venv.num_envs + warmup, venv.num_envs))
    venv.reset()
    for step_actions in actions[:warmup]:
        venv.step(step_actions)
    start = time.perf_counter()
    for step_actions in actions[warmup:]:
        venv.step(step_actions)
    elapsed = time.perf_counter() - start
    venv.close()
    return len(actions[warmup:]) * venv.num_envs / elapsed


def report(title: str, pipelines: dict[str, Callable[[], VecEnv]], n_steps: int) -> None:
    """Time every pipeline and print its rate and ratio to the first (the baseline).

    :param title: heading line
    :param pipelines: name -> env builder; the first is the baseline
    :param n_steps: env steps timed per pipeline
    """
    print(f"{title}, {n_steps} env steps per pipeline")
    results = {name: steps_per_second(make, n_steps) for name, make in pipelines.items()}
    baseline = next(iter(results.values()))
    for name, rate in results.items():
        print(f"  {name:<48} {rate:>9,.0f} steps/s   {rate / baseline:5.2f}x baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5", help="an ALE/<Game>-v5 id")
    parser.add_argument("--n-envs", type=int, default=4, help="parallel envs in every Atari pipeline")
    parser.add_argument("--steps", type=int, default=4000, help="env steps timed per Atari pipeline")
    parser.add_argument("--minatar-env", default="MinAtar/Breakout-v1", help="a MinAtar id ('' to skip)")
    parser.add_argument("--minatar-n-envs", type=int, default=8, help="parallel envs in every MinAtar pipeline")
    parser.add_argument("--minatar-steps", type=int, default=40_000, help="env steps timed per MinAtar pipeline")
    args = parser.parse_args()

    def sb3_atari() -> VecEnv:
        venv = make_atari_env(
            args.env,
            n_envs=args.n_envs,
            seed=0,
            vec_env_cls=SubprocVecEnv,
            env_kwargs={"frameskip": 1, "repeat_action_probability": 0.25},
        )
        return VecFrameStack(venv, 4)

    def sb3_minatar() -> VecEnv:
        config = MinAtarConfig()
        return make_vec_env(lambda: make_minatar_env_single(args.minatar_env, config), args.minatar_n_envs, seed=0)

    report(
        f"{args.env}, {args.n_envs} envs",
        {
            "sb3 make_atari_env + SubprocVecEnv (baseline)": sb3_atari,
            "rlnorm backend=subproc": lambda: make_env(args.env, args.n_envs, 0, backend="subproc"),
            "rlnorm backend=ale": lambda: make_env(args.env, args.n_envs, 0, backend="ale"),
        },
        args.steps,
    )
    if args.minatar_env:
        report(
            f"{args.minatar_env}, {args.minatar_n_envs} envs",
            {
                "sb3 make_vec_env (Monitor + DummyVecEnv) (baseline)": sb3_minatar,
                "rlnorm backend=batched": lambda: make_env(args.minatar_env, args.minatar_n_envs, 0),
            },
            args.minatar_steps,
        )


if __name__ == "__main__":
    main()
