"""Forward+backward cost of each normalization, as a ratio to no normalization, in one run.

Networks: the NatureCNN stack (84x84x4 frames, conv 32-64-64 + linear 512) and a 2x256 MLP, built with
``rlnorm.layers`` for every norm. Usage::

    python benchmarks/norm_overhead.py [--batch 256] [--repeats 15] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from benchmarks._timing import interleaved_median_ms, print_ratio_table
from rlnorm.layers import LAYER_NORMS, conv2d, linear


def nature_cnn(norm: str) -> nn.Module:
    flat_norm = "none" if norm == "in" else norm
    return nn.Sequential(
        conv2d(4, 32, 8, stride=4, norm=norm),
        nn.ReLU(),
        conv2d(32, 64, 4, stride=2, norm=norm),
        nn.ReLU(),
        conv2d(64, 64, 3, stride=1, norm=norm),
        nn.ReLU(),
        nn.Flatten(),
        linear(3136, 512, norm=flat_norm),
        nn.ReLU(),
    )


def mlp(norm: str) -> nn.Module:
    flat_norm = "none" if norm == "in" else norm
    return nn.Sequential(linear(64, 256, flat_norm), nn.Tanh(), linear(256, 256, flat_norm), nn.Tanh(), linear(256, 1))


def step_fn(net: nn.Module, x: torch.Tensor) -> callable:
    def step() -> None:
        net.zero_grad(set_to_none=True)
        net(x).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    frames = torch.rand(args.batch, 4, 84, 84, device=device)
    vectors = torch.randn(args.batch * 4, 64, device=device)
    print(f"device={device} threads={args.threads} batch={args.batch} (MLP: {args.batch * 4}) repeats={args.repeats}")
    for title, build, x in (("NatureCNN fwd+bwd", nature_cnn, frames), ("MLP 2x256 fwd+bwd", mlp, vectors)):
        cases = {norm: step_fn(build(norm).to(device).train(), x) for norm in LAYER_NORMS}
        print_ratio_table(title, interleaved_median_ms(cases, repeats=args.repeats), baseline="none")


if __name__ == "__main__":
    main()
