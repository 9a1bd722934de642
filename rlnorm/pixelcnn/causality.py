"""Is a PixelCNN a density? Which inputs each pixel's prediction depends on, measured.

An autoregressive model is a normalized density only if the prediction of pixel ``p`` depends on the pixels
before ``p`` in raster order and on nothing else: not on ``p`` itself, not on later pixels, not on the other
images of the batch. The masks guarantee this for every layer; an activation norm can break it. Batch norm in
train mode takes its statistics over ``(N, H, W)``, so every pixel sees (through the mean and variance) the
later pixels of its own image and the other images of its batch. Eval mode (running statistics) is causal.

* :func:`logit_dependence`: the Jacobian of pixel ``p``'s logits with respect to the (embedded) input, split
  into the allowed past, the forbidden future of the same image, and the other images (Frobenius norms,
  averaged over the pixels asked for); exactly 0 in the last two for a causal model.
* :func:`total_probability`: ``sum_x p(x)`` over every image of a tiny shape (1 for a density).
* :func:`future_blind_log_prob`: a causal evaluation that keeps train-mode, one-image statistics: each
  pixel's conditional is computed from an input whose pixels from ``p`` on are replaced by a filler image,
  so the product of the conditionals is a normalized density whatever the norm.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlnorm.pixelcnn.model import PixelCNN

#: :func:`total_probability` enumerates at most this many images.
MAX_ENUMERATED_IMAGES = 1 << 14


@dataclass(frozen=True)
class Dependence:
    """Size of ``d logits[image, :, p] / d input`` by input region, averaged over the pixels ``p`` measured.

    :param past: pixels before ``p`` in the same image (the dependence a PixelCNN is meant to have)
    :param future: ``p`` itself and the pixels after it in the same image (0 for a causal model)
    :param other_images: every pixel of the other images of the batch (0 for a batch-independent model)
    :param n_pixels: pixels ``p`` averaged over
    """

    past: float
    future: float
    other_images: float
    n_pixels: int

    @property
    def causal(self) -> bool:
        """Exactly no dependence on the future or on other images."""
        return self.future == 0.0 and self.other_images == 0.0


def raster_index(height: int, width: int) -> torch.Tensor:
    """The raster position ``i * width + j`` of every pixel, shape ``(height, width)``."""
    return torch.arange(height * width).view(height, width)


def _probe(model: PixelCNN, training: bool) -> PixelCNN:
    # a copy: train-mode batch norm would otherwise move the caller's running statistics
    return copy.deepcopy(model).train(training)


def logit_dependence(
    model: PixelCNN,
    x: torch.Tensor,
    pixels: Sequence[tuple[int, int]] | None = None,
    *,
    training: bool,
    image: int = 0,
) -> Dependence:
    """How much image ``image``'s logits at each of ``pixels`` depend on the past, the future and other images.

    One backward pass per (pixel, output channel) on a copy of ``model`` (the model itself is untouched).
    The norm reported per region is the Frobenius norm of that block of the Jacobian (all output channels,
    all input pixels of the region), then averaged over ``pixels``.

    :param model: the PixelCNN
    :param x: integer images ``(N, 1, H, W)``; ``N`` is the batch the statistics of train mode come from
    :param pixels: ``(i, j)`` positions to measure (default: every pixel)
    :param training: measure in train mode (batch statistics) or eval mode (running statistics)
    :param image: the image of the batch whose logits are differentiated
    """
    model.check_input(x)
    n, _, h, w = x.shape
    if not 0 <= image < n:
        raise ValueError(f"image must lie in [0, {n - 1}], got {image}")
    pixels = list(pixels) if pixels is not None else list(itertools.product(range(h), range(w)))
    if not pixels or any(not (0 <= i < h and 0 <= j < w) for i, j in pixels):
        raise ValueError(f"pixels must be a non-empty list of positions inside ({h}, {w}), got {pixels}")
    probe = _probe(model, training)
    z = probe.embed(x).requires_grad_()
    logits = probe.logits_from_input(z)
    order = raster_index(h, w).to(x.device)
    others = torch.ones(n, dtype=torch.bool, device=x.device)
    others[image] = False
    past = future = other = 0.0
    for i, j in pixels:
        squared = torch.zeros_like(z)
        for channel in range(logits.shape[1]):
            (grad,) = torch.autograd.grad(logits[image, channel, i, j], z, retain_graph=True)
            squared += grad.square()
        own = squared[image, 0]
        before = order < i * w + j
        past += own[before].sum().sqrt().item()
        future += own[~before].sum().sqrt().item()
        other += squared[others].sum().sqrt().item()
    k = len(pixels)
    return Dependence(past / k, future / k, other / k, k)


@torch.no_grad()
def total_probability(model: PixelCNN, shape: tuple[int, int], *, training: bool) -> float:
    """``sum_x p(x)`` over all ``levels ** (H W)`` images of ``shape`` (1 up to rounding for a density).

    In train mode each image is scored alone (a batch of one: the online setting); in eval mode all at once.

    :param model: the PixelCNN
    :param shape: ``(H, W)`` of the images, small enough for at most :data:`MAX_ENUMERATED_IMAGES` images
    :param training: score in train mode (batch statistics) or eval mode (running statistics)
    """
    h, w = shape
    count = model.levels ** (h * w)
    if count > MAX_ENUMERATED_IMAGES:
        raise ValueError(f"{model.levels} levels on {h}x{w} give {count} images; at most {MAX_ENUMERATED_IMAGES}")
    device = next(model.parameters()).device
    values = torch.cartesian_prod(*[torch.arange(model.levels, device=device)] * (h * w))
    images = values.view(count, 1, h, w)
    probe = _probe(model, training)
    # train mode: one image per batch (the online setting); eval mode: all at once
    log_p = torch.cat([probe.log_prob(x[None]) for x in images]) if training else probe.log_prob(images)
    return torch.logsumexp(log_p.double(), 0).exp().item()


@torch.no_grad()
def future_blind_log_prob(
    model: PixelCNN, x: torch.Tensor, filler: torch.Tensor, *, training: bool = True
) -> torch.Tensor:
    """``log p(x)`` (nats, shape ``(N,)``) from conditionals that cannot see the pixel they predict or later ones.

    The conditional of pixel ``p`` of image ``n`` is read from one forward pass, alone in its batch, of the
    image that equals ``x[n]`` before ``p`` and ``filler[n]`` from ``p`` on. Each conditional then depends on
    ``x[n]``'s earlier pixels (and the fixed filler) only, so ``exp`` of the result sums to 1 over all ``x``:
    a causal evaluation that keeps batch norm's train-mode statistics of one image. ``H W`` forward passes
    per image. For a causal model it equals :meth:`PixelCNN.log_prob` (up to rounding), whatever the filler.

    :param model: the PixelCNN
    :param x: integer images ``(N, 1, H, W)``
    :param filler: integer images of the same shape supplying the pixels a conditional must not see
    :param training: train mode (batch norm normalizes each spliced image by its own statistics) or eval mode
    """
    model.check_input(x)
    model.check_input(filler)
    if filler.shape != x.shape:
        raise ValueError(f"filler must have the shape of x {tuple(x.shape)}, got {tuple(filler.shape)}")
    _, _, h, w = x.shape
    probe = _probe(model, training)
    seen = raster_index(h, w).to(x.device)
    out = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for n in range(len(x)):
        for i, j in itertools.product(range(h), range(w)):
            spliced = torch.where(seen < i * w + j, x[n, 0], filler[n, 0])[None, None]
            log_probs = F.log_softmax(probe(spliced)[0, :, i, j], dim=0)
            out[n] += log_probs[x[n, 0, i, j]].double()
    return out.float()


__all__ = [
    "MAX_ENUMERATED_IMAGES",
    "Dependence",
    "future_blind_log_prob",
    "logit_dependence",
    "raster_index",
    "total_probability",
]
