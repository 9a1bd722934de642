"""RecurrentPPO training throughput with the WN/LN-LSTM policies against sb3-contrib's own, in one run.

Every policy trains on the same env with the same hyperparameters; after one warm-up rollout+update, each
is timed over ``--rounds`` interleaved rounds (so load changes on a shared machine hit all alike) and the
median steps per second is printed with its ratio to sb3-contrib's policy (``MlpLstmPolicy`` or
``CnnLstmPolicy``). ``NormLstmPolicy`` rows change only the LSTM (plain MLP heads), isolating its cost.

Where episodes end inside training sequences (CartPoleNoVel early on), sb3-contrib steps ``nn.LSTM`` one step
per call, while the WN/LN policies reset states inside one LSTM call; with long episodes (Atari) both take
the whole-sequence path and the comparison is kernel against kernel.

    python benchmarks/recurrent_fps.py [--env CartPoleNoVel-v1] [--cnn] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from sb3_contrib import RecurrentPPO

import envs
from agents.policies import register_policies

MLP_ARMS: list[tuple[str, str, dict[str, Any]]] = [  # (label, alias, extra policy kwargs)
    ("MlpLstmPolicy (sb3-contrib)", "MlpLstmPolicy", {}),
    ("WnLstmPolicy", "WnLstmPolicy", {}),
    ("LnLstmPolicy", "LnLstmPolicy", {}),
    ("NormLstmPolicy lstm=wn", "NormLstmPolicy", {"lstm": "wn"}),
    ("NormLstmPolicy lstm=ln", "NormLstmPolicy", {"lstm": "ln"}),
]
CNN_ARMS: list[tuple[str, str, dict[str, Any]]] = [
    ("CnnLstmPolicy (sb3-contrib)", "CnnLstmPolicy", {}),
    ("CnnWnLstmPolicy", "CnnWnLstmPolicy", {}),
    ("CnnLnLstmPolicy", "CnnLnLstmPolicy", {}),
    ("CnnNormLstmPolicy lstm=ln", "CnnNormLstmPolicy", {"lstm": "ln"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--env", default=None, help="env id (default CartPoleNoVel-v1, or ALE/Pong-v5 with --cnn)")
    parser.add_argument("--cnn", action="store_true", help="compare the Cnn policies (image env)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--lstm-hidden-size", type=int, default=256)
    parser.add_argument("--rollouts", type=int, default=2, help="rollout+update cycles per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_policies()
    env_id = args.env or ("ALE/Pong-v5" if args.cnn else "CartPoleNoVel-v1")
    arms = CNN_ARMS if args.cnn else MLP_ARMS
    per_round = args.rollouts * args.n_envs * args.n_steps
    models = {}
    for label, alias, extra in arms:
        env = envs.make_env(env_id, n_envs=args.n_envs, seed=0)
        model = RecurrentPPO(
            alias,
            env,
            n_steps=args.n_steps,
            batch_size=args.batch_size,
            n_epochs=args.n_epochs,
            seed=0,
            device="cpu",
            policy_kwargs={"lstm_hidden_size": args.lstm_hidden_size, **extra},
        )
        model.learn(args.n_envs * args.n_steps)  # warm-up: TorchScript compile, allocator, env start
        models[label] = model
    samples: dict[str, list[float]] = {label: [] for label in models}
    for _ in range(args.rounds):
        for label, model in models.items():
            start = time.perf_counter()
            model.learn(per_round, reset_num_timesteps=False)
            samples[label].append(per_round / (time.perf_counter() - start))
    print(
        f"env={env_id} n_envs={args.n_envs} n_steps={args.n_steps} batch_size={args.batch_size} "
        f"n_epochs={args.n_epochs} lstm_hidden_size={args.lstm_hidden_size} threads={torch.get_num_threads()} "
        f"rounds={args.rounds} x {per_round} steps"
    )
    base = None
    for label in models:
        fps = statistics.median(samples[label])
        base = base or fps
        print(f"{label:<30} {fps:8.1f} steps/s  ({fps / base:4.2f}x)")


if __name__ == "__main__":
    main()
