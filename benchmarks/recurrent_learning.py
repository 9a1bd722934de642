"""Learning benchmark of the recurrent policies: plain LSTM, WN-LSTM and LN-LSTM, success rate over seeds.

``masked`` (default) is sb3-contrib's own check of RecurrentPPO (``tests/test_lstm.py``): CartPole with the
velocities masked out (observation = cart position and pole angle), ``TimeLimit(500)``, ``VecNormalize``, 8 envs,
``n_steps=128, learning_rate=7e-4, batch_size=256, n_epochs=10, max_grad_norm=1, gae_lambda=0.98``,
``net_arch=dict(vf=[64], pi=[]), lstm_hidden_size=64, ortho_init=False, enable_critic_lstm=True``, 50,000 steps,
then ``evaluate_policy`` (deterministic) on the training ``VecNormalize`` env; a run succeeds when its mean
return reaches 450 (the maximum is 500). ``flicker`` is the project's flickering CartPole
(``configs/study_recurrent_flicker.yaml``: every training observation blanked with probability 0.5, its
hyperparameters and 40,000 steps), evaluated on clean CartPole.

Each run is one process with one torch thread; ``--workers`` run at once. Every finished run is appended to
``runs.csv`` in ``--out`` at once (nothing is lost if the benchmark is stopped); at the end ``summary.md`` and
``summary.csv`` hold the success rate (Wilson 95% interval) and mean return (t 95% interval) per policy, with
the command line and wall time::

    nice -n 10 python -m benchmarks.recurrent_learning --seeds 1 2 3 4 5 6 7 8 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

#: policy name -> (RecurrentPPO alias, extra policy kwargs)
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("MlpLstmPolicy", {}),
    "wn": ("WnLstmPolicy", {}),
    "ln": ("LnLstmPolicy", {}),
    "ln-ba2016": ("LnLstmPolicy", {"lstm_kwargs": {"form": "ba2016"}}),
    "ln-recurrent+cell": ("LnLstmPolicy", {"lstm_kwargs": {"form": "recurrent+cell"}}),
}
TASKS = ("masked", "flicker")
THRESHOLD = 450.0
FIELDS = ["task", "policy", "seed", "steps", "mean_return", "std_return", "success", "train_seconds"]


def _masked_run(alias: str, extra: dict[str, Any], seed: int, steps: int, episodes: int) -> tuple[float, float]:
    from gymnasium.wrappers import TimeLimit
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from envs.pomdp import CartPoleNoVelEnv

    env = VecNormalize(make_vec_env(lambda: TimeLimit(CartPoleNoVelEnv(), max_episode_steps=500), n_envs=8, seed=seed))
    policy_kwargs = dict(net_arch=dict(vf=[64], pi=[]), lstm_hidden_size=64, ortho_init=False, enable_critic_lstm=True)
    model = RecurrentPPO(
        alias, env, n_steps=128, learning_rate=7e-4, batch_size=256, n_epochs=10, max_grad_norm=1, gae_lambda=0.98,
        seed=seed, device="cpu", policy_kwargs={**policy_kwargs, **extra},
    )  # fmt: skip
    model.learn(total_timesteps=steps)
    mean, std = evaluate_policy(model, env, n_eval_episodes=episodes)
    return float(mean), float(std)


def _flicker_run(alias: str, extra: dict[str, Any], seed: int, steps: int, episodes: int) -> tuple[float, float]:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from torch import nn

    from envs import make_env

    def linear(start: float):
        return lambda progress: progress * start

    policy_kwargs = dict(
        ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, enable_critic_lstm=True,
        net_arch=dict(pi=[64], vf=[64]),
    )  # fmt: skip
    model = RecurrentPPO(
        alias, make_env("CartPole-v1", 8, seed, flicker_p=0.5), n_steps=32, batch_size=256, gae_lambda=0.8,
        gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed,
        device="cpu", policy_kwargs={**policy_kwargs, **extra},
    )  # fmt: skip
    model.learn(total_timesteps=steps)
    mean, std = evaluate_policy(model, make_env("CartPole-v1", 4, seed + 10_000), n_eval_episodes=episodes)
    return float(mean), float(std)


def run_one(job: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """Train and evaluate one (task, policy, seed) in this process; one torch thread.

    :param job: ``(task, policy, seed, steps, eval episodes)``
    :return: one row of ``runs.csv``
    """
    import torch

    import agents  # noqa: F401 - registers the rlnorm policy aliases

    torch.set_num_threads(1)
    task, policy, seed, steps, episodes = job
    alias, extra = POLICIES[policy]
    start = time.perf_counter()
    mean, std = (_masked_run if task == "masked" else _flicker_run)(alias, extra, seed, steps, episodes)
    return dict(
        task=task, policy=policy, seed=seed, steps=steps, mean_return=round(mean, 2), std_return=round(std, 2),
        success=int(mean >= THRESHOLD), train_seconds=round(time.perf_counter() - start, 1),
    )  # fmt: skip


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sensible at 0/n and n/n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (no scipy needed)
_T975 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its t 95% interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    t = _T975[min(len(values) - 1, len(_T975)) - 1]
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per (task, policy): success rate with its Wilson interval, mean return with its t interval."""
    out = []
    for task, policy in dict.fromkeys((r["task"], r["policy"]) for r in rows):
        runs = sorted((r for r in rows if r["task"] == task and r["policy"] == policy), key=lambda r: int(r["seed"]))
        returns = [float(r["mean_return"]) for r in runs]
        wins = sum(int(r["success"]) for r in runs)
        low, high = wilson_interval(wins, len(runs))
        mean, m_low, m_high = mean_interval(returns)
        out.append(dict(
            task=task, policy=policy, runs=len(runs), successes=wins, success_rate=round(wins / len(runs), 3),
            success_low=round(low, 3), success_high=round(high, 3), mean_return=round(mean, 1),
            return_low=round(m_low, 1), return_high=round(m_high, 1),
            returns=" ".join(f"{int(r['seed'])}:{float(r['mean_return']):.0f}" for r in runs),
        ))  # fmt: skip
    return out


def markdown(summary: list[dict[str, Any]], command: str, wall_seconds: float) -> str:
    """The summary as a markdown table, with the command and wall time that produced it."""
    lines = [
        "# Recurrent learning benchmark",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {wall_seconds / 60:.1f} min. Success: mean evaluation return >= {THRESHOLD:.0f}.",
        "",
        "| task | policy | success | 95% interval | mean return | 95% interval | return per seed |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['task']} | {s['policy']} | {s['successes']}/{s['runs']} | {s['success_low']:.2f}-"
            f"{s['success_high']:.2f} | {s['mean_return']:.1f} | {s['return_low']:.0f}-{s['return_high']:.0f} | "
            f"{s['returns']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n\n")[0])
    parser.add_argument("--policies", nargs="+", default=["plain", "wn", "ln"], choices=list(POLICIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(1, 9)))
    parser.add_argument("--steps", type=int, default=None, help="default 50000 (masked), 40000 (flicker)")
    parser.add_argument("--task", default="masked", choices=TASKS)
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("reports/recurrent_learning"))
    args = parser.parse_args(argv)
    steps = args.steps or (50_000 if args.task == "masked" else 40_000)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.recurrent_learning " + shlex.join(sys.argv[1:] if argv is None else argv)
    # seeds outermost, so that a stopped benchmark has compared every policy on the same seeds
    jobs = [(args.task, p, seed, steps, args.episodes) for seed in args.seeds for p in args.policies]
    runs_csv = args.out / "runs.csv"
    new_file = not runs_csv.exists()
    rows = []
    start = time.perf_counter()
    with runs_csv.open("a", newline="") as f, multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        writer = csv.DictWriter(f, FIELDS)
        if new_file:
            writer.writeheader()
        for row in pool.imap_unordered(run_one, jobs):
            writer.writerow(row)
            f.flush()
            rows.append(row)
            print(json.dumps(row), flush=True)
    wall = time.perf_counter() - start
    summary = summarize(rows)
    stem = f"summary_{args.task}"
    with (args.out / f"{stem}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    text = markdown(summary, command, wall)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
