"""Env throughput of rlnorm's fast backends against SB3's standard pipelines, in one run.

Atari: rlnorm's ``ale`` backend (ale-py's C++ vector env) against what SB3 users run: ``make_atari_env``
(``AtariWrapper``: no-op reset, frame skip 4 with max-pool, episodic life, fire reset, 84×84 gray, reward
clipping, ``Monitor``) in a ``SubprocVecEnv``, then ``VecFrameStack(4)``; rlnorm's ``subproc`` backend (the same
SB3 wrappers) is timed as well. All pipelines use the same game, number of envs, sticky actions (0.25) and
random actions. Prints steps/s (env steps, i.e. agent decisions summed over envs) and the ratio to the baseline.

MinAtar (the default CPU experiment: 8 envs): rlnorm's ``batched`` backend against SB3's ``make_vec_env``
(``Monitor`` + ``DummyVecEnv``) over the same channel-first MinAtar env.

The ``ale`` backend's speed is decided once per process (where the OS puts ale-py's threads), so its thread
settings are also timed over ``--processes`` fresh processes each, reporting min / median / max: unpinned
threads (ale-py's default), one thread, and threads pinned to the cores the process claimed
(``thread_affinity="auto"``, :mod:`envs.cores`).

Usage: ``python -m benchmarks.env_throughput [--env ALE/Breakout-v5] [--n-envs 4] [--steps 4000] [--processes 5]
[--minatar-env MinAtar/Breakout-v1] [--minatar-n-envs 8] [--minatar-steps 40000]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecFrameStack

from envs import MinAtarConfig, make_env, make_minatar_env_single
from envs.cores import allowed_cores, owning_cores


def _worker_pids(venv: VecEnv) -> list[int]:
    while not isinstance(venv, SubprocVecEnv) and hasattr(venv, "venv"):
        venv = venv.venv
    return [process.pid for process in getattr(venv, "processes", [])]


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time of this process (all its threads) plus the given worker processes (Linux ``/proc``)."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        # utime and stime are fields 14 and 15 of /proc/<pid>/stat (after the parenthesised command name).
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def report(title: str, pipelines: dict[str, Callable[[], VecEnv]], n_steps: int, rounds: int = 5) -> None:
    """Time the pipelines round-robin (so load changes hit all alike); print rates and ratios to the first.

    Wall-clock steps/s is what training sees; CPU µs per step (all threads and worker processes) is the cost,
    which stays meaningful when other jobs share the cores.

    :param title: heading line
    :param pipelines: name -> env builder; the first is the baseline
    :param n_steps: env steps timed per pipeline (over all rounds)
    :param rounds: interleaved timing rounds
    """
    venvs = {name: make() for name, make in pipelines.items()}
    wall = dict.fromkeys(venvs, 0.0)
    cpu = dict.fromkeys(venvs, 0.0)
    done = dict.fromkeys(venvs, 0)
    rng = np.random.default_rng(0)
    for venv in venvs.values():
        venv.reset()
        for _ in range(20):  # warm-up
            venv.step(rng.integers(0, venv.action_space.n, venv.num_envs))
    for _ in range(rounds):
        for name, venv in venvs.items():
            n_vec_steps = max(1, n_steps // (rounds * venv.num_envs))
            actions = rng.integers(0, venv.action_space.n, (n_vec_steps, venv.num_envs))
            pids = _worker_pids(venv)
            cpu_start, start = _cpu_seconds(pids), time.perf_counter()
            for step_actions in actions:
                venv.step(step_actions)
            wall[name] += time.perf_counter() - start
            cpu[name] += _cpu_seconds(pids) - cpu_start
            done[name] += n_vec_steps * venv.num_envs
    for venv in venvs.values():
        venv.close()
    print(f"{title}, {n_steps} env steps per pipeline, {rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}")
    base = next(iter(venvs))
    base_rate, base_cpu = done[base] / wall[base], cpu[base] / done[base]
    for name in venvs:
        rate, cpu_per_step = done[name] / wall[name], cpu[name] / done[name]
        print(
            f"  {name:<52} {rate:>9,.0f} steps/s ({rate / base_rate:5.2f}x)"
            f"   {cpu_per_step * 1e6:>7,.0f} CPU µs/step ({base_cpu / cpu_per_step:5.2f}x less)"
        )


#: the ale backend's thread settings timed over fresh processes: its speed is decided once per process (where
#: the OS happens to put ale-py's threads), so one process can be fast or slow by chance; the minimum is what a
#: run of a sweep can count on
ALE_THREAD_SETTINGS: dict[str, dict[str, Any]] = {
    "ale, threads unpinned (ale-py default)": {"thread_affinity": "none"},
    "ale, num_threads=1": {"thread_affinity": "none", "num_threads": 1},
    "ale, pinned to the cores it claimed (auto)": {"thread_affinity": "auto"},
}


def time_ale_setting(env_id: str, n_envs: int, n_steps: int, setting: str) -> dict[str, Any]:
    """Steps/s of one :data:`ALE_THREAD_SETTINGS` entry in this process (random actions, after a warm-up).

    :param env_id: an ``ALE/<Game>-v5`` id
    :param n_envs: games in the vector env
    :param n_steps: env steps timed
    :param setting: a key of :data:`ALE_THREAD_SETTINGS`; ``auto`` first claims every core of this process
    """
    options = ALE_THREAD_SETTINGS[setting]
    claim = owning_cores(len(allowed_cores())) if options["thread_affinity"] == "auto" else nullcontext(None)
    with claim as cores:
        venv = make_env(env_id, n_envs, 0, backend="ale", **options)
        rng = np.random.default_rng(0)
        venv.reset()
        for _ in range(20):
            venv.step(rng.integers(0, venv.action_space.n, n_envs))
        actions = rng.integers(0, venv.action_space.n, (max(1, n_steps // n_envs), n_envs))
        start = time.perf_counter()
        for step_actions in actions:
            venv.step(step_actions)
        rate = actions.size / (time.perf_counter() - start)
        venv.close()
    return {"rate": rate, "cores": cores}


def fresh_process_report(env_id: str, n_envs: int, n_steps: int, processes: int) -> None:
    """Time every :data:`ALE_THREAD_SETTINGS` entry in ``processes`` fresh processes each (interleaved, so load
    changes hit all alike); print min / median / max steps/s.

    :param env_id: an ``ALE/<Game>-v5`` id
    :param n_envs: games in the vector env
    :param n_steps: env steps timed per process
    :param processes: fresh processes per setting
    """
    rates: dict[str, list[float]] = {name: [] for name in ALE_THREAD_SETTINGS}
    unpinned = 0
    for _ in range(processes):
        for name in ALE_THREAD_SETTINGS:
            command = [sys.executable, "-m", "benchmarks.env_throughput", "--child", name, "--env", env_id]
            command += ["--n-envs", str(n_envs), "--steps", str(n_steps)]
            out = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{name}: child process failed: {out.stderr.strip()[-2000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rates[name].append(result["rate"])
            unpinned += ALE_THREAD_SETTINGS[name]["thread_affinity"] == "auto" and result["cores"] is None
    print(
        f"{env_id}, {n_envs} envs, backend=ale, {n_steps} env steps per process: steps/s over {processes} fresh "
        f"processes per setting, load {os.getloadavg()[0]:.1f}"
    )
    print(f"  {'setting':<44} {'min':>9} {'median':>9} {'max':>9}")
    for name, values in rates.items():
        print(f"  {name:<44} {min(values):>9,.0f} {statistics.median(values):>9,.0f} {max(values):>9,.0f}")
    if unpinned:
        print(f"  ({unpinned} 'auto' process(es) found a core claimed by another process and ran unpinned)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5", help="an ALE/<Game>-v5 id")
    parser.add_argument("--n-envs", type=int, default=4, help="parallel envs in every Atari pipeline")
    parser.add_argument("--steps", type=int, default=4000, help="env steps timed per Atari pipeline")
    parser.add_argument("--minatar-env", default="MinAtar/Breakout-v1", help="a MinAtar id ('' to skip)")
    parser.add_argument("--minatar-n-envs", type=int, default=8, help="parallel envs in every MinAtar pipeline")
    parser.add_argument("--minatar-steps", type=int, default=40_000, help="env steps timed per MinAtar pipeline")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per ale thread setting (0: skip)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one fresh-process measurement
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(time_ale_setting(args.env, args.n_envs, args.steps, args.child)))
        return

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
    if args.processes:
        fresh_process_report(args.env, args.n_envs, args.steps, args.processes)
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
