"""How causal the trained PixelCNNs of a grid are, measured on the test frames (:mod:`rlnorm.pixelcnn.causality`).

For one saved model (``<run>/model.pt`` of :mod:`agents.pixelcnn.train`):

* :func:`leak_vs_batch_size`: for each scoring batch size ``B``, in train mode, the Jacobian norms of a test
  frame's logits (at :func:`leak_pixels`) with respect to its own later pixels, the other ``B - 1`` frames of
  the batch, and its own earlier pixels; and the test bits/dim scored in batches of ``B``;
* :func:`causal_bits_per_dim`: on the same test frames, the bits/dim of three evaluations: eval mode (running
  statistics: causal), train mode one frame at a time (what the study called "train mode, b1": not causal for
  batch norm) and *future-blind* train mode one frame at a time (each pixel's conditional computed with that
  pixel and the later ones replaced by another test frame's: causal, with train-mode one-image statistics).

The difference between the last two is the part of the train-mode bits/dim that comes from seeing the future.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rlnorm.pixelcnn.causality import future_blind_log_prob, logit_dependence
from rlnorm.pixelcnn.model import PixelCNN

#: The cache of :func:`measure_run` in a run folder.
CAUSALITY_FILE = "causality.json"
#: Scoring batch sizes of the leak measurement.
LEAK_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
#: Positions measured, as fractions of the frame's height and width (spread over the frame, none on row 0).
LEAK_PIXEL_FRACTIONS: tuple[tuple[float, float], ...] = ((0.2, 0.3), (0.4, 0.4), (0.5, 0.8), (0.7, 0.2), (0.8, 0.6))


#: the regions of :class:`rlnorm.pixelcnn.causality.Dependence`
REGIONS: tuple[str, ...] = ("future", "other_images", "past")


def leak_pixels(height: int, width: int) -> list[tuple[int, int]]:
    """The pixels whose logits :func:`leak_vs_batch_size` differentiates, for a ``height x width`` frame."""
    return [(int(a * height), int(b * width)) for a, b in LEAK_PIXEL_FRACTIONS]


def bits_per_dim_in_batches(model: PixelCNN, frames: torch.Tensor, batch_size: int, *, training: bool) -> float:
    """Mean bits/dim of ``frames`` scored in consecutive batches of ``batch_size`` (on a copy of ``model``).

    :param model: the PixelCNN
    :param frames: integer frames ``(N, 1, H, W)``
    :param batch_size: frames per forward pass (in train mode: the frames batch norm's statistics come from)
    :param training: train mode (batch statistics) or eval mode (running statistics)
    """
    probe = copy.deepcopy(model).train(training)
    with torch.no_grad():
        return torch.cat([probe.bits_per_dim(chunk) for chunk in frames.split(batch_size)]).mean().item()


def leak_vs_batch_size(
    model: PixelCNN,
    frames: torch.Tensor,
    batch_sizes: Sequence[int] = LEAK_BATCH_SIZES,
    *,
    repeats: int = 2,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per scoring batch size: the train-mode dependence of a frame's logits, and bits/dim.

    Each row averages :func:`rlnorm.pixelcnn.causality.logit_dependence` over ``repeats`` batches of ``B``
    frames drawn from ``frames`` (the frame measured is the first of each batch) and over :func:`leak_pixels`.

    :param model: the PixelCNN
    :param frames: integer test frames ``(N, 1, H, W)``, ``N >= max(batch_sizes)``
    :param batch_sizes: scoring batch sizes
    :param repeats: batches averaged per size
    :param seed: seed of the batches drawn
    :return: rows with ``score_batch``, ``future``, ``other_images``, ``past`` (Frobenius norms of the Jacobian
        blocks), ``future_over_past``, ``bpd_train_mode`` (all ``frames`` scored in batches of ``B``) and
        ``bpd_eval`` (causal)
    """
    if max(batch_sizes) > len(frames):
        raise ValueError(f"batch sizes up to {max(batch_sizes)} need as many frames, got {len(frames)}")
    generator = torch.Generator().manual_seed(seed)
    pixels = leak_pixels(*frames.shape[-2:])
    bpd_eval = bits_per_dim_in_batches(model, frames, len(frames), training=False)
    rows = []
    for size in batch_sizes:
        batches = [frames[torch.randperm(len(frames), generator=generator)[:size]] for _ in range(repeats)]
        measured = [logit_dependence(model, batch, pixels, training=True) for batch in batches]
        future, other, past = (sum(getattr(d, k) for d in measured) / repeats for k in REGIONS)
        rows.append(
            {
                "score_batch": size,
                "future": future,
                "other_images": other,
                "past": past,
                "future_over_past": future / past if past > 0 else math.nan,
                "bpd_train_mode": bits_per_dim_in_batches(model, frames, size, training=True),
                "bpd_eval": bpd_eval,
            }
        )
    return rows


def causal_bits_per_dim(model: PixelCNN, frames: torch.Tensor) -> dict[str, float]:
    """Bits/dim of ``frames`` by three evaluations (see the module docstring); the filler of frame ``n`` is
    frame ``n - 1`` (cyclically).

    :param model: the PixelCNN
    :param frames: integer frames ``(N, 1, H, W)``, ``N >= 2``; ``H W`` forward passes per frame
    :return: ``bpd_eval`` (causal), ``bpd_train_mode_b1`` (not causal for batch norm),
        ``bpd_future_blind_b1`` (causal) and ``leak_bpd`` = ``bpd_future_blind_b1 - bpd_train_mode_b1``
    """
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames (one is the other's filler), got {len(frames)}")
    dims = math.log(2.0) * frames.shape[-2] * frames.shape[-1]
    blind = (-future_blind_log_prob(model, frames, frames.roll(1, 0)) / dims).mean().item()
    b1 = bits_per_dim_in_batches(model, frames, 1, training=True)
    return {
        "bpd_eval": bits_per_dim_in_batches(model, frames, len(frames), training=False),
        "bpd_train_mode_b1": b1,
        "bpd_future_blind_b1": blind,
        "leak_bpd": blind - b1,
    }


def measure_run(run_dir: str | Path, frames: torch.Tensor, causal_frames: int) -> dict[str, Any]:
    """:func:`leak_vs_batch_size` and :func:`causal_bits_per_dim` of the model saved in ``run_dir``, cached.

    The result is written to ``<run_dir>/causality.json`` and read back from there on the next call with the
    same number of frames (the measurement takes minutes: one forward pass per pixel per frame).

    :param run_dir: a run folder of :mod:`agents.pixelcnn.train` (holding ``model.pt``)
    :param frames: integer test frames ``(N, 1, H, W)``; batch sizes up to ``N`` are measured
    :param causal_frames: the first frames scored by :func:`causal_bits_per_dim`
    :return: ``{"frames", "causal_frames", "leak": rows, "causal_bpd": values}``
    """
    from agents.pixelcnn.train import load_run_model

    cache = Path(run_dir) / CAUSALITY_FILE
    sizes = [b for b in LEAK_BATCH_SIZES if b <= len(frames)]
    settings = {"frames": len(frames), "causal_frames": causal_frames, "batch_sizes": sizes}
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if all(saved.get(key) == value for key, value in settings.items()):
            return saved
    model = load_run_model(run_dir, frames.device)
    result = {
        **settings,
        "leak": leak_vs_batch_size(model, frames, sizes),
        "causal_bpd": causal_bits_per_dim(model, frames[:causal_frames]),
    }
    cache.write_text(json.dumps(result, indent=1))
    return result
