"""PixelCNN forward+backward cost of each norm, as a ratio to no norm, in one run.

Two settings of the same gated PixelCNN: the density model of the pseudo-count agent on Atari frames
(42x42, 8 grey levels) at a training batch and at batch 1 (the online update done for every frame), and the
MinAtar-sized model of ``configs/pixelcnn.yaml`` (10x10, 16 levels). Usage::

    python -m benchmarks.pixelcnn_speed [--batch 32] [--repeats 15] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from benchmarks._timing import interleaved_median_ms, print_ratio_table
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS
from rlnorm.pixelcnn.model import PixelCNN


def step_fn(model: PixelCNN, x: torch.Tensor) -> Callable[[], None]:
    """One forward+backward of the mean bits/dim on ``x`` (gradients are overwritten, not accumulated)."""

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model.bits_per_dim(x).mean().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    return step


def build(norm: str, levels: int, size: int, channels: int, n_layers: int, device: torch.device) -> PixelCNN:
    torch.manual_seed(0)
    model = PixelCNN(levels, (size, size), hidden_channels=channels, n_layers=n_layers, norm=norm).to(device)
    if norm == "wn":
        model.data_init_(torch.randint(0, levels, (8, 1, size, size), device=device))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="training batch size")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = [
        ("Atari 42x42, 8 levels, 32 ch x 5 layers", 8, 42, 32, 5, args.batch),
        ("Atari 42x42, 8 levels, 32 ch x 5 layers, online", 8, 42, 32, 5, 1),
        ("MinAtar 10x10, 16 levels, 16 ch x 4 layers", 16, 10, 16, 4, args.batch),
    ]
    print(f"device {device}, {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}")
    for title, levels, size, channels, n_layers, batch in settings:
        x = torch.randint(0, levels, (batch, 1, size, size), device=device)
        cases = {norm: step_fn(build(norm, levels, size, channels, n_layers, device), x) for norm in PIXELCNN_NORMS}
        times = interleaved_median_ms(cases, repeats=args.repeats)
        print_ratio_table(f"{title}, batch {batch}: forward+backward", times, baseline="none")


if __name__ == "__main__":
    main()
