"""Train the PixelCNN with each norm at each batch size on the frame dataset; log bits/dim to TensorBoard.

``python -m agents.pixelcnn.train configs/pixelcnn.yaml [key=value ...]``

The dataset is collected first if missing (:func:`agents.pixelcnn.data.ensure_dataset`). Each (norm, batch
size) run goes to ``<logdir>/<env>/<norm>-b<batch>-s<seed>/`` with TensorBoard scalars

* ``train/bits_per_dim`` -- mean over the updates since the last log, on the training batches;
* ``test/bits_per_dim`` -- eval mode (batch norm uses its running statistics);
* ``test/bits_per_dim_train_mode_b1`` -- train mode, one frame at a time (batch norm normalizes each frame
  with its own statistics: the online setting of the pseudo-count agent);

a final ``samples.png`` grid (drawn in eval mode) and ``model.pt`` (:func:`load_run_model` reads it back, for
measurements after training such as :mod:`agents.pixelcnn.causality`). ``summary.csv`` beside the runs and the
printed table hold the final test values.

Only ``test/bits_per_dim`` is a causal evaluation for every norm. In train mode batch norm's statistics over
``(N, H, W)`` let each pixel see its own later pixels (and the other images of the batch), so for ``bn`` the
train-mode numbers (``train/bits_per_dim`` and ``test/bits_per_dim_train_mode_b1``) are not the bits/dim of a
normalized density (:mod:`rlnorm.pixelcnn.causality`); for the batch-independent norms they equal the causal ones.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from agents.pixelcnn.config import PixelCNNExperiment, load_pixelcnn_config
from agents.pixelcnn.data import ensure_dataset, load_dataset
from rlnorm.pixelcnn.frames import BINARY_MODES
from rlnorm.pixelcnn.model import PixelCNN
from rlnorm.registry import NORMS
from rlnorm.validation import check_choice

#: Frames used by weight norm's data-dependent initialization.
DATA_INIT_FRAMES = 256
#: Frames per forward pass when evaluating in eval mode.
EVAL_BATCH = 256
#: The trained model in each run folder (constructor arguments and state dict).
MODEL_FILE = "model.pt"


@dataclass(frozen=True)
class PixelCNNRunResult:
    """Final numbers of one (norm, batch size) run."""

    norm: str
    batch_size: int
    train_bpd: float
    test_bpd: float
    test_bpd_train_mode_b1: float
    seconds: float


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_run_model(path: str | Path, device: str | torch.device = "cpu") -> PixelCNN:
    """The PixelCNN saved by :func:`train_one` (``<run>/model.pt``), in eval mode.

    :param path: the ``model.pt`` file or the run folder holding it
    :param device: where to load it
    """
    path = Path(path)
    saved = torch.load(path / MODEL_FILE if path.is_dir() else path, map_location=device, weights_only=True)
    kwargs = dict(saved["kwargs"], image_size=tuple(saved["kwargs"]["image_size"]))
    model = PixelCNN(**kwargs).to(device)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


@torch.no_grad()
def eval_bits_per_dim(model: PixelCNN, frames: torch.Tensor) -> float:
    """Mean bits/dim of ``frames`` in eval mode."""
    was_training = model.training
    model.eval()
    values = [model.bits_per_dim(chunk) for chunk in frames.split(EVAL_BATCH)]
    model.train(was_training)
    return torch.cat(values).mean().item()


@torch.no_grad()
def train_mode_batch1_bits_per_dim(model: PixelCNN, frames: torch.Tensor) -> float:
    """Mean bits/dim of ``frames`` in train mode, one frame per forward pass (on a copy: no side effects)."""
    probe = copy.deepcopy(model).train()
    return float(np.mean([probe.bits_per_dim(x[None]).item() for x in frames]))


#: How a dataset's levels map to pictures: grey values, or one of the MinAtar channel encodings.
ENCODINGS: tuple[str, ...] = ("grey", *BINARY_MODES)
#: Colours of MinAtar's channels in sample pictures (matplotlib's tab10).
PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
     [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    dtype=np.uint8,
)  # fmt: skip


def to_rgb(images: np.ndarray, levels: int, encoding: str) -> np.ndarray:
    """Integer images ``(n, H, W)`` -> RGB ``(n, H, W, 3)`` ``uint8``.

    :param images: levels ``0 .. levels-1``
    :param levels: number of levels
    :param encoding: ``grey`` (levels are grey values), ``bits`` (bit ``c`` = MinAtar channel ``c``) or
        ``argmax`` (level ``k > 0`` = channel ``k - 1``)
    """
    check_choice(encoding, "encoding", ENCODINGS)
    if encoding == "grey":
        grey = (images * (255.0 / (levels - 1))).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    palette = PALETTE[np.arange(levels) % len(PALETTE)]
    if encoding == "argmax":
        return np.where((images > 0)[..., None], palette[np.maximum(images - 1, 0)], 0).astype(np.uint8)
    rgb = np.zeros((*images.shape, 3), dtype=np.uint8)  # "bits"
    for c in range(int(math.log2(levels))):
        on = ((images >> c) & 1).astype(bool)
        rgb[on] = np.maximum(rgb[on], palette[c])
    return rgb


def sample_grid(samples: torch.Tensor, levels: int, encoding: str = "grey", columns: int = 8) -> np.ndarray:
    """Tile ``(n, 1, H, W)`` integer images into one RGB ``uint8`` picture with 1-pixel grey borders."""
    n, _, h, w = samples.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, 3), 128, dtype=np.uint8)
    pixels = to_rgb(samples[:, 0].cpu().numpy(), levels, encoding)
    for k in range(n):
        r, c = divmod(k, columns)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = pixels[k]
    return grid


def save_png(picture: np.ndarray, path: Path, scale: int = 4) -> None:
    """Write an RGB ``uint8`` picture as PNG, each pixel shown as ``scale x scale``."""
    import matplotlib.pyplot as plt

    plt.imsave(path, picture.repeat(scale, axis=0).repeat(scale, axis=1))


def train_one(
    config: PixelCNNExperiment,
    norm: str,
    batch_size: int,
    train: torch.Tensor,
    test: torch.Tensor,
    levels: int,
    run_dir: Path,
    encoding: str = "grey",
) -> PixelCNNRunResult:
    """Train one PixelCNN and log it under ``run_dir``.

    :param config: the experiment
    :param norm: the norm of every layer
    :param batch_size: frames per update
    :param train: training frames ``(N, 1, H, W)`` on the target device
    :param test: evaluation frames
    :param levels: grey levels of the frames
    :param run_dir: TensorBoard directory of this run
    :param encoding: how levels map to pictures (see :func:`to_rgb`)
    """
    cfg = config.train
    torch.manual_seed(cfg.seed)
    model_kwargs = {
        "levels": levels,
        "image_size": tuple(train.shape[-2:]),
        "hidden_channels": config.model.hidden_channels,
        "n_layers": config.model.n_layers,
        "kernel_size": config.model.kernel_size,
        "arch": config.model.arch,
        "norm": norm,
        "output": config.model.output,
        "n_mixtures": config.model.n_mixtures,
    }
    model = PixelCNN(**model_kwargs).to(train.device)
    if norm == "wn":
        model.data_init_(train[:DATA_INIT_FRAMES])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    writer = SummaryWriter(str(run_dir))
    start, running = time.perf_counter(), []
    train_bpd = test_bpd = test_bpd_b1 = float("nan")
    try:
        for update in range(1, cfg.n_updates + 1):
            index = torch.randint(len(train), (batch_size,), generator=generator).to(train.device)
            loss = model.bits_per_dim(train[index]).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{norm} b{batch_size}: non-finite loss at update {update}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running.append(loss.item())
            if update % cfg.eval_every == 0 or update == cfg.n_updates:
                train_bpd = float(np.mean(running))
                running.clear()
                test_bpd = eval_bits_per_dim(model, test)
                test_bpd_b1 = train_mode_batch1_bits_per_dim(model, test)
                writer.add_scalar("train/bits_per_dim", train_bpd, update)
                writer.add_scalar("test/bits_per_dim", test_bpd, update)
                writer.add_scalar("test/bits_per_dim_train_mode_b1", test_bpd_b1, update)
                writer.add_scalar("time/updates_per_second", update / (time.perf_counter() - start), update)
        model.eval()
        samples = model.sample(cfg.n_samples, generator=torch.Generator(train.device).manual_seed(cfg.seed))
        picture = sample_grid(samples, levels, encoding)
        writer.add_image("samples", picture, cfg.n_updates, dataformats="HWC")
        save_png(picture, run_dir / "samples.png")
        torch.save({"kwargs": model_kwargs, "state_dict": model.state_dict()}, run_dir / MODEL_FILE)
    finally:
        writer.close()
    return PixelCNNRunResult(norm, batch_size, train_bpd, test_bpd, test_bpd_b1, time.perf_counter() - start)


def run_pixelcnn_grid(config: PixelCNNExperiment) -> list[PixelCNNRunResult]:
    """Every (norm, batch size) run of ``config``; writes ``summary.csv`` and returns the results."""
    data = load_dataset(ensure_dataset(config.data))
    device = resolve_device(config.train.device)
    levels = int(data["levels"])
    encoding = str(data.get("encoding", "grey"))
    train = torch.as_tensor(data["train"]).long().to(device)
    test = torch.as_tensor(data["test"][: config.train.eval_frames]).long().to(device)
    env_slug = str(data["env_id"]).replace("/", "_")
    root = Path(config.train.logdir) / env_slug
    results = []
    for norm in config.train.norms:
        for batch_size in config.train.batch_sizes:
            run_dir = root / f"{norm}-b{batch_size}-s{config.train.seed}"
            result = train_one(config, norm, batch_size, train, test, levels, run_dir, encoding)
            print(
                f"{norm:>8} b{batch_size:<4} train {result.train_bpd:.3f}  test {result.test_bpd:.3f}  "
                f"test(train mode, b1) {result.test_bpd_train_mode_b1:.3f}  bits/dim  ({result.seconds:.0f}s)",
                flush=True,
            )
            results.append(result)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["norm", "batch_size", "train_bpd", "test_bpd", "test_bpd_train_mode_b1", "seconds"])
        for r in results:
            writer.writerow([r.norm, r.batch_size, r.train_bpd, r.test_bpd, r.test_bpd_train_mode_b1, r.seconds])
    print(summary_table(results))
    return results


def summary_table(results: Sequence[PixelCNNRunResult]) -> str:
    """Markdown table: one row per norm, test bits/dim (eval mode, causal / train mode at batch 1) per batch size.

    The train-mode value of a batch-dependent norm is not causal (its row is marked).
    """
    batch_sizes = sorted({r.batch_size for r in results})
    norms = list(dict.fromkeys(r.norm for r in results))
    lines = [
        "| norm | " + " | ".join(f"b{b} test (causal eval mode / train-mode b1)" for b in batch_sizes) + " |",
        "|---" * (len(batch_sizes) + 1) + "|",
    ]
    by_key = {(r.norm, r.batch_size): r for r in results}
    for norm in norms:
        cells = [
            f"{by_key[norm, b].test_bpd:.3f} / {by_key[norm, b].test_bpd_train_mode_b1:.3f}"
            if (norm, b) in by_key
            else "-"
            for b in batch_sizes
        ]
        label = f"{norm} (train mode not causal)" if NORMS[norm].batch_dependent else norm
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "Train the PixelCNN with each norm at each batch size on the frame dataset; log bits/dim to TensorBoard."
PROG = "python -m agents pixelcnn"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m agents.pixelcnn.train CONFIG [key=value ...]``."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("config", help="YAML config, e.g. configs/pixelcnn.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.n_updates=200")
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            # a command-line user should see that a config spells a norm the old way
            warnings.simplefilter("always", DeprecationWarning)
            config = load_pixelcnn_config(args.config, args.overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_pixelcnn_grid(config)
    return 0


# the former names, which the experiment pipeline also uses (agents.pipeline.runs.RunResult,
# agents.pipeline.sweep.run_grid) for other things
_RENAMED = {"RunResult": "PixelCNNRunResult", "run_grid": "run_pixelcnn_grid"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        warnings.warn(f"agents.pixelcnn.train.{name} is now {_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
