"""Cost of the experiment machinery: ``agents.pipeline.train.train_run`` vs a bare SB3 ``model.learn`` on the same run.

Both train the default experiment's PPO (MinAtar Breakout, 8 envs, small CNN) for the same steps with one torch
thread, alternating in rounds; ``train_run`` adds the NaN guard, norm diagnostics, periodic checkpoints, HParams,
and the final clean + noisy (+ BN train-mode) evaluation. Prints fps of both and their ratio.

``python benchmarks/train_overhead.py [--steps 16384] [--norm bn] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from agents.config import load_config
from agents.pipeline.runs import grid
from agents.pipeline.train import algo_kwargs, make_train_env, train_run
from agents.policies.algos import algo_class, policy_for


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=16384)
    parser.add_argument("--norm", default="bn")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    bare, full = [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(
                "configs/default.yaml",
                [
                    f"runs_dir={tmp}",
                    f"total_timesteps={args.steps}",
                    f"norms=[{args.norm}]",
                    "seeds=[0]",
                    "train.progress_bar=false",
                    f"checkpoint_freq={max(args.steps // 4, 1)}",
                    f"diagnostics.freq={max(args.steps // 8, 1)}",
                    "eval.freq=0",
                ],
            )
            spec = grid(config)[0]
            env = make_train_env(spec)
            policy_cls, policy_kwargs = policy_for(config.algo, "cnn", spec.norm)
            model = algo_class(config.algo)(policy_cls, env, seed=0, device="cpu", **algo_kwargs(spec, policy_kwargs))
            start = time.perf_counter()
            model.learn(args.steps)
            bare.append(model.num_timesteps / (time.perf_counter() - start))
            env.close()

            start = time.perf_counter()
            result = train_run(spec)
            full.append(result.num_timesteps / (time.perf_counter() - start))
        print(f"round {r}: bare learn {bare[-1]:.0f} fps, train_run {full[-1]:.0f} fps", flush=True)
    best_bare, best_full = max(bare), max(full)
    print(f"norm={args.norm} steps={args.steps}: bare SB3 learn {best_bare:.0f} fps, train_run {best_full:.0f} fps")
    print(f"ratio train_run / bare = {best_full / best_bare:.2f} (train_run adds env/model setup, checkpoints, eval)")


if __name__ == "__main__":
    main()
