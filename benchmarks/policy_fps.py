"""Training speed of the norm policies against SB3's own policy on the same env, in one run.

``--algo ppo`` (default): PPO with every norm against SB3's ``CnnPolicy`` on an Atari game or MinAtar.
``--algo sac``: SAC on a MuJoCo task (``Hopper-v5``, needs ``pip install -e ".[mujoco]"``) with weight-normalized
critics, fully weight-normalized and plain norm policies against SB3's ``MlpPolicy`` (goal for WN critics: >= 0.95),
then the gradient steps alone in round-robin chunks (``--updates-only`` for just these) and, with ``--profile``,
the ops that make up each policy's extra time per gradient step.

For each policy the same PPO run (same env, seed and hyperparameters) is timed several times in alternation
and the best time kept (the machine may be shared). Reported per policy:

* ``fps``         -- environment steps per second of ``learn()`` (collection + updates, as SB3's ``time/fps``);
* ``fps ratio``   -- its fps over the baseline's (1.00 = as fast; goal for WN: >= 0.95);
* ``update ratio``-- time inside ``PPO.train()`` (the gradient updates alone) over the baseline's.

A second table times the networks alone, without the env (less noisy on a shared machine): one rollout
forward pass on ``n_envs`` observations (eval mode, no grad) and one forward + backward on a minibatch.

The baseline is SB3's ``CnnPolicy``; ``NormCnnPolicy`` with ``norm="none"`` is this project's code with no norm.

Usage::

    python benchmarks/policy_fps.py                       # ALE/Pong-v5, CPU
    python benchmarks/policy_fps.py --env minatar --steps 4096
    python benchmarks/policy_fps.py --device cuda --norms none wn bn ln
    python -m benchmarks.policy_fps --algo sac --steps 1000        # SAC on Hopper-v5, CPU
"""

from __future__ import annotations

import argparse
import functools
import random
import time

import ale_py
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

from agents.policies import register_policies
from benchmarks._timing import interleaved_median_ms
from envs.minatar import ChannelFirstBinary, register_minatar
from rlnorm.layers import LAYER_NORMS

register_policies()

DEFAULT_NORMS = LAYER_NORMS


def make_env(name: str, n_envs: int, seed: int) -> VecEnv:
    """``ALE/<Game>-v5`` with SB3's Atari preprocessing and 4 stacked frames, or ``minatar`` (Breakout)."""
    if name == "minatar":
        register_minatar()
        return make_vec_env("MinAtar/Breakout-v1", n_envs=n_envs, seed=seed, wrapper_class=ChannelFirstBinary)
    gym.register_envs(ale_py)
    return VecFrameStack(make_atari_env(name, n_envs=n_envs, seed=seed), n_stack=4)


def timed(algo: type[BaseAlgorithm]) -> type[BaseAlgorithm]:
    """``algo`` subclassed to add up the wall time spent in its gradient updates (``train_seconds``)."""

    class Timed(algo):  # type: ignore[valid-type, misc]
        train_seconds = 0.0

        def train(self, *args, **kwargs) -> None:
            start = time.perf_counter()
            super().train(*args, **kwargs)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.train_seconds += time.perf_counter() - start

    Timed.__name__ = f"Timed{algo.__name__}"
    return Timed


TimedPPO, TimedSAC = timed(PPO), timed(SAC)

#: SAC candidates: name -> (policy, policy_kwargs); the first is the baseline
SAC_CANDIDATES: dict[str, tuple[str, dict]] = {
    "SB3 MlpPolicy": ("MlpPolicy", {}),
    "NormMlpPolicy norm=none": ("NormMlpPolicy", {"norm": "none"}),
    "NormMlpPolicy critic_norm=wn": ("NormMlpPolicy", {"critic_norm": "wn"}),
    "WnMlpPolicy": ("WnMlpPolicy", {}),
    "LnMlpPolicy": ("LnMlpPolicy", {}),
}


def warm_sac(algo: type[SAC], policy: str, policy_kwargs: dict, args: argparse.Namespace) -> SAC:
    """A SAC model on ``args.env`` that has run past ``learning_starts``, so that its timed steps all train."""
    model = algo(
        policy,
        gym.make(args.env),
        learning_starts=args.learning_starts,
        batch_size=args.batch_size,
        policy_kwargs=policy_kwargs,
        device=args.device,
        seed=0,
        verbose=0,
    )
    model.learn(args.learning_starts + 100)
    return model


def time_run(policy: str, policy_kwargs: dict, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds of ``learn(args.steps)`` and of the updates inside it, after a warm-up."""
    if args.algo == "sac":
        model = warm_sac(TimedSAC, policy, policy_kwargs, args)
        env = model.get_env()
    else:
        env = make_env(args.env, args.n_envs, seed=0)
        model = TimedPPO(
            policy,
            env,
            n_steps=args.n_steps,
            batch_size=args.batch_size,
            n_epochs=args.n_epochs,
            policy_kwargs=policy_kwargs,
            device=args.device,
            seed=0,
            verbose=0,
        )
        model.learn(args.n_steps * args.n_envs)  # warm-up: first-call allocations, kernel selection
    model.train_seconds = 0.0
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    total = time.perf_counter() - start
    env.close()
    return total, model.train_seconds


def time_networks(policy: str, policy_kwargs: dict, args: argparse.Namespace, env: VecEnv) -> tuple[float, float]:
    """Best seconds of one rollout forward pass and of one minibatch forward + backward pass."""
    model = PPO(policy, env, policy_kwargs=policy_kwargs, device=args.device, seed=0, n_steps=args.n_steps)
    net = model.policy
    space = model.observation_space  # after SB3's channel-first transpose of Atari frames
    space.seed(0)
    sample = torch.as_tensor(np.stack([space.sample() for _ in range(args.batch_size)]), device=net.device)
    actions = torch.zeros(args.batch_size, device=net.device)
    rollout, update = float("inf"), float("inf")
    for _ in range(args.repeats * 3):
        net.set_training_mode(False)
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(20):
                net(sample[: args.n_envs])
        if net.device.type == "cuda":
            torch.cuda.synchronize()
        rollout = min(rollout, (time.perf_counter() - start) / 20)
        net.set_training_mode(True)
        start = time.perf_counter()
        values, log_prob, entropy = net.evaluate_actions(sample, actions)
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
        if net.device.type == "cuda":
            torch.cuda.synchronize()
        update = min(update, time.perf_counter() - start)
    return rollout, update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=("ppo", "sac"), default="ppo")
    parser.add_argument("--env", default=None, help="ppo: an ALE id or 'minatar' (default ALE/Pong-v5); sac: Hopper-v5")
    parser.add_argument("--norms", nargs="+", default=list(DEFAULT_NORMS))
    parser.add_argument("--steps", type=int, default=2048, help="timed env steps per run")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-starts", type=int, default=1000, help="sac: random steps before training")
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="runs per policy; the fastest counts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--update-chunk", type=int, default=40, help="sac: gradient steps per timed chunk")
    parser.add_argument("--update-repeats", type=int, default=15, help="sac: timed chunks per policy")
    parser.add_argument("--profile", action="store_true", help="sac: per-op excess time over the baseline")
    parser.add_argument("--updates-only", action="store_true", help="sac: skip the learn() fps table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.algo == "sac":
        main_sac(args)
        return
    args.env = args.env or "ALE/Pong-v5"

    # SB3's CnnPolicy needs an SB3 image space (uint8 in [0, 255]); MinAtar is {0, 1}, so its baseline is ours
    if args.env == "minatar":
        base_name, candidates = "NormCnnPolicy norm=none", {}
    else:
        base_name, candidates = "SB3 CnnPolicy", {"SB3 CnnPolicy": ("CnnPolicy", {})}
    candidates.update({f"NormCnnPolicy norm={n}": ("NormCnnPolicy", {"norm": n}) for n in args.norms})
    candidates.setdefault(base_name, ("NormCnnPolicy", {"norm": "none"}))
    best = {name: (float("inf"), float("inf")) for name in candidates}
    order = list(candidates)
    rng = random.Random(0)
    for _ in range(args.repeats):  # alternate in a new order each round: load changes hit every policy alike
        rng.shuffle(order)
        for name in order:
            policy, kwargs = candidates[name]
            total, updates = time_run(policy, kwargs, args)
            best[name] = (min(best[name][0], total), min(best[name][1], updates))

    env = make_env(args.env, args.n_envs, seed=0)
    nets = {name: time_networks(policy, kwargs, args, env) for name, (policy, kwargs) in candidates.items()}
    env.close()

    base_total, base_updates = best[base_name]
    print(
        f"PPO on {args.env}, device={args.device}, {args.steps} steps x best of {args.repeats}, "
        f"n_envs={args.n_envs} n_steps={args.n_steps} batch={args.batch_size} epochs={args.n_epochs}; "
        f"ratios against {base_name}"
    )
    print(f"{'policy':<28} {'fps':>8} {'fps ratio':>10} {'update s':>9} {'update ratio':>13}")
    for name, (total, updates) in best.items():
        print(
            f"{name:<28} {args.steps / total:8.1f} {base_total / total:10.3f} "
            f"{updates:9.2f} {updates / base_updates:13.3f}"
        )
    base_rollout, base_update = nets[base_name]
    print(f"\nnetworks alone: rollout forward on {args.n_envs} obs, forward+backward on {args.batch_size} obs")
    print(f"{'policy':<28} {'rollout ms':>10} {'time ratio':>10} {'update ms':>10} {'time ratio':>10}")
    for name, (rollout, update) in nets.items():
        print(
            f"{name:<28} {1000 * rollout:10.2f} {rollout / base_rollout:10.3f} "
            f"{1000 * update:10.1f} {update / base_update:10.3f}"
        )


def main_sac(args: argparse.Namespace) -> None:
    """SAC: learn() fps and update time of each of :data:`SAC_CANDIDATES`, alternated, best of ``repeats``."""
    args.env = args.env or "Hopper-v5"
    if args.updates_only:
        sac_updates_alone(args)
        return
    best = {name: (float("inf"), float("inf")) for name in SAC_CANDIDATES}
    order = list(SAC_CANDIDATES)
    rng = random.Random(0)
    for _ in range(args.repeats):
        rng.shuffle(order)
        for name in order:
            total, updates = time_run(*SAC_CANDIDATES[name], args)
            best[name] = (min(best[name][0], total), min(best[name][1], updates))
            # one line per timed run: a benchmark stopped early still shows what it measured
            print(f"  {name}: learn {total:.2f} s, updates {updates:.2f} s", flush=True)
    base_name = next(iter(SAC_CANDIDATES))
    base_total, base_updates = best[base_name]
    print(
        f"SAC on {args.env}, device={args.device}, {args.steps} steps x best of {args.repeats}, "
        f"batch={args.batch_size}; ratios against {base_name}"
    )
    print(f"{'policy':<30} {'fps':>8} {'fps ratio':>10} {'update s':>9} {'update ratio':>13}")
    for name, (total, updates) in best.items():
        print(
            f"{name:<30} {args.steps / total:8.1f} {base_total / total:10.3f} "
            f"{updates:9.2f} {updates / base_updates:13.3f}"
        )
    sac_updates_alone(args)


def sac_models(args: argparse.Namespace) -> dict[str, SAC]:
    """One SAC model per candidate, its replay buffer filled and past ``learning_starts``."""
    return {name: warm_sac(SAC, policy, kwargs, args) for name, (policy, kwargs) in SAC_CANDIDATES.items()}


def sac_updates_alone(args: argparse.Namespace) -> None:
    """Gradient steps alone (``SAC.train``), round-robin in chunks: less noisy than whole ``learn()`` runs.

    Then, with ``--profile``, where each candidate's extra time per gradient step goes: torch profiler self-CPU
    time per op, minus the baseline's, largest first (the ops a norm adds, and the ones it makes slower).
    """
    models = sac_models(args)
    chunk = args.update_chunk
    cases = {name: functools.partial(model.train, gradient_steps=chunk) for name, model in models.items()}
    times = interleaved_median_ms(cases, repeats=args.update_repeats)
    per_step = {name: ms / chunk for name, ms in times.items()}
    base_name = next(iter(SAC_CANDIDATES))
    print(f"\ngradient steps alone: median of {args.update_repeats} round-robin chunks of {chunk} steps")
    print(f"{'policy':<30} {'ms/step':>8} {'speed ratio':>12}")
    for name, ms in per_step.items():
        print(f"{name:<30} {ms:8.3f} {per_step[base_name] / ms:12.3f}")
    if args.profile:
        profile_excess(models, base_name, chunk)


def profile_excess(models: dict[str, SAC], base_name: str, steps: int, top: int = 12) -> None:
    """Print, per candidate, the ops whose self-CPU time per gradient step exceeds the baseline's the most."""
    from torch.profiler import ProfilerActivity, profile

    per_op: dict[str, dict[str, tuple[float, float]]] = {}
    for name, model in models.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.train(gradient_steps=steps)
        per_op[name] = {e.key: (e.self_cpu_time_total / steps, e.count / steps) for e in prof.key_averages()}
    base = per_op[base_name]
    for name, ops in per_op.items():
        if name == base_name:
            continue
        total_excess = sum(t for t, _ in ops.values()) - sum(t for t, _ in base.values())
        print(f"\n{name}: {total_excess:+.0f} us self-CPU per gradient step vs {base_name} (profiled)")
        print(f"  {'op':<48} {'extra us':>9} {'calls':>13}")
        excess = sorted(ops, key=lambda k: ops[k][0] - base.get(k, (0.0, 0.0))[0], reverse=True)
        for key in excess[:top]:
            (t, n), (t0, n0) = ops[key], base.get(key, (0.0, 0.0))
            print(f"  {key[:48]:<48} {t - t0:+9.1f} {n0:6.0f} -> {n:<4.0f}")


if __name__ == "__main__":
    main()
