"""PixelCNN density model of single-channel images with ``levels`` grey levels, every layer with a ``norm``.

Two architectures:

* ``gated`` (van den Oord et al., 2016): a vertical stack (rows above) and a horizontal stack (pixels to the
  left) with gated activations ``tanh * sigmoid``; the vertical stack feeds the horizontal one, so the
  receptive field has no blind spot;
* ``plain`` (van den Oord et al., 2016a): a mask-``A`` convolution then residual mask-``B`` convolutions
  (it has the classic blind spot to the upper right; kept as the simple baseline).

Each pixel's value is a ``levels``-way softmax (or a discretized logistic mixture) given all pixels before it
in raster order, so
``log p(x) = sum_i log p(x_i | x_<i)`` is exact. Frames are turned into such images by
:mod:`rlnorm.pixelcnn.frames` (Atari: 42x42, 3-bit grey as in Ostrovski et al., 2017; MinAtar: the binary
channels packed into one integer per pixel).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlnorm.pixelcnn.layers import check_pixelcnn_norm, gated, masked_conv
from rlnorm.pixelcnn.logistic import discretized_logistic_log_probs
from rlnorm.validation import check_choice, check_int
from rlnorm.weight_norm import data_dependent_init_, wn_g

ARCHS: tuple[str, ...] = ("gated", "plain")
#: Output heads: a ``levels``-way softmax per pixel, or a discretized logistic mixture (PixelCNN++).
OUTPUTS: tuple[str, ...] = ("softmax", "logistic_mixture")
#: Scale of the logits after data-dependent init, relative to the unit-variance init of the other layers.
LOGITS_INIT_SCALE = 0.1


class GatedBlock(nn.Module):
    """One gated PixelCNN layer: ``(v, h) -> (v', h')`` with vertical/horizontal stacks, no blind spot.

    :param in_channels: channels of the incoming stacks (1 for the first block, which reads the image)
    :param channels: channels of the outgoing stacks
    :param kernel_size: odd kernel width ``k`` (vertical ``k x k``, horizontal ``1 x k``)
    :param first: the first block uses masks ``vA``/``hA`` (the pixel itself is hidden) and no residual
    :param norm: one of :data:`~rlnorm.pixelcnn.layers.PIXELCNN_NORMS`
    :param norm_kwargs: options of the activation norm
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        *,
        first: bool,
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        output: str = "softmax",
        n_mixtures: int = 5,
    ):
        super().__init__()
        norm = check_pixelcnn_norm(norm)
        kind = "A" if first else "B"
        self.first = first
        self.vertical = masked_conv(in_channels, 2 * channels, kernel_size, "v" + kind, norm, norm_kwargs=norm_kwargs)
        self.horizontal = masked_conv(
            in_channels, 2 * channels, (1, kernel_size), "h" + kind, norm, norm_kwargs=norm_kwargs
        )
        # the vertical features at row i only hold rows < i, so they may feed the horizontal stack unshifted
        self.v_to_h = masked_conv(2 * channels, 2 * channels, 1, "full", norm, norm_kwargs=norm_kwargs)
        self.h_out = masked_conv(channels, channels, 1, "full", norm, norm_kwargs=norm_kwargs)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical(v)
        h_out = self.h_out(gated(self.horizontal(h) + self.v_to_h(v_pre)))
        # the first block's input pixel itself must not reach its own prediction: no residual there
        return gated(v_pre), h_out if self.first else h + h_out


class PixelCNN(nn.Module):
    """Autoregressive density model ``p(x) = prod_i p(x_i | x_<i)`` of ``(N, 1, H, W)`` integer images.

    :param levels: number of grey levels (values ``0 .. levels-1``; 256 for 8-bit, 8 for 3-bit)
    :param image_size: ``(H, W)`` used by :meth:`sample` (the network itself is fully convolutional)
    :param hidden_channels: channels of the hidden stacks
    :param n_layers: number of masked layers (gated blocks, or mask-A conv + residual mask-B convs)
    :param kernel_size: odd kernel width of the hidden layers
    :param first_kernel_size: odd kernel width of the first layer (default: ``kernel_size``)
    :param arch: ``"gated"`` or ``"plain"``
    :param norm: one of :data:`~rlnorm.pixelcnn.layers.PIXELCNN_NORMS`, used by every layer but the logits
        (``ln`` / ``gn`` are deprecated spellings of ``pixel_ln`` / ``pixel_gn``)
    :param norm_kwargs: options of the activation norm (e.g. ``{"num_groups": 4}``)
    :param output: ``"softmax"`` or ``"logistic_mixture"`` (see :mod:`rlnorm.pixelcnn.logistic`)
    :param n_mixtures: logistic components per pixel (``logistic_mixture`` only)
    """

    def __init__(
        self,
        levels: int = 256,
        image_size: tuple[int, int] = (42, 42),
        hidden_channels: int = 32,
        n_layers: int = 5,
        kernel_size: int = 3,
        first_kernel_size: int | None = None,
        arch: str = "gated",
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        output: str = "softmax",
        n_mixtures: int = 5,
    ):
        super().__init__()
        norm = check_pixelcnn_norm(norm)
        check_choice(arch, "arch", ARCHS)
        check_choice(output, "output", OUTPUTS)
        n_mixtures = check_int(n_mixtures, "n_mixtures", 1)
        levels = check_int(levels, "levels", 2)
        n_layers = check_int(n_layers, "n_layers", 1)
        hidden_channels = check_int(hidden_channels, "hidden_channels", 1)
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (H, W) with positive sizes, got {image_size}")
        first_k = kernel_size if first_kernel_size is None else first_kernel_size
        self.levels, self.image_size, self.arch, self.norm = levels, tuple(image_size), arch, norm
        self.output = output
        n_out = levels if output == "softmax" else 3 * n_mixtures
        c, kw = hidden_channels, {"norm": norm, "norm_kwargs": norm_kwargs}
        if arch == "gated":
            self.blocks = nn.ModuleList(
                [GatedBlock(1, c, first_k, first=True, **kw)]
                + [GatedBlock(c, c, kernel_size, first=False, **kw) for _ in range(n_layers - 1)]
            )
        else:
            self.blocks = nn.ModuleList(
                [masked_conv(1, c, first_k, "A", **kw)]
                + [masked_conv(c, c, kernel_size, "B", **kw) for _ in range(n_layers - 1)]
            )
        self.head = masked_conv(c, c, 1, "full", **kw)
        # the logits get weight norm at most: an activation norm would fix their scale
        self.logits = masked_conv(c, n_out, 1, "full", "wn" if norm == "wn" else "none")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Map integer levels ``(N, 1, H, W)`` to floats in ``[-1, 1]`` (the network's input)."""
        return x.float() * (2.0 / (self.levels - 1)) - 1.0

    def logits_from_input(self, z: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits ``(N, levels, H, W)`` from an embedded input ``z`` (see :meth:`embed`).

        For the ``logistic_mixture`` head these are the normalized per-level log-probabilities. Exposed so
        tests can differentiate with respect to the input.
        """
        if self.arch == "gated":
            v, h = z, z
            for block in self.blocks:
                v, h = block(v, h)
        else:
            h = self.blocks[0](z)
            for conv in self.blocks[1:]:
                h = h + conv(F.relu(h))
        out = self.logits(F.relu(self.head(F.relu(h))))
        if self.output == "logistic_mixture":
            return discretized_logistic_log_probs(out, self.levels)
        return out

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is an integer ``(N, 1, H, W)`` tensor with values in ``[0, levels)``."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"x must have shape (N, 1, H, W), got {tuple(x.shape)}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise ValueError(f"x must hold integer levels, got dtype {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.levels):
            raise ValueError(f"x values must lie in [0, {self.levels - 1}], got [{int(x.min())}, {int(x.max())}]")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits ``(N, levels, H, W)`` of integer images ``x`` ``(N, 1, H, W)``."""
        self.check_input(x)
        return self.logits_from_input(self.embed(x))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` in nats, one value per image: shape ``(N,)``."""
        nll = F.cross_entropy(self(x), x[:, 0].long(), reduction="none")
        return -nll.flatten(1).sum(1)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """``-log2 p(x) / (H W)`` per image: shape ``(N,)``; ``log2(levels)`` for a uniform model."""
        return -self.log_prob(x) / (math.log(2.0) * x.shape[-2] * x.shape[-1])

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Draw ``n`` images pixel by pixel in raster order (``H*W`` forward passes).

        The model is used in its current mode; call ``eval()`` first for batch norm's running statistics.

        :param n: number of images
        :param generator: random generator for reproducible samples
        :param temperature: softmax temperature (> 0)
        :return: integer images ``(n, 1, H, W)``
        """
        if n < 1 or temperature <= 0:
            raise ValueError(f"need n >= 1 and temperature > 0, got n={n}, temperature={temperature}")
        device = next(self.parameters()).device
        h, w = self.image_size
        x = torch.zeros(n, 1, h, w, dtype=torch.long, device=device)
        for i in range(h):
            for j in range(w):
                probs = torch.softmax(self(x)[:, :, i, j] / temperature, dim=1)
                x[:, 0, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return x

    def data_init_(self, x: torch.Tensor, init_scale: float = 1.0) -> PixelCNN:
        """Data-dependent initialization of the weight-normalized layers on the batch ``x`` (``norm="wn"`` only).

        :param x: integer images ``(N, 1, H, W)``, ``N >= 2``
        :param init_scale: target standard deviation of each hidden pre-activation (the logits get
            ``LOGITS_INIT_SCALE`` times that, so the initial model is close to uniform)
        :return: ``self``
        """
        if self.norm != "wn":
            raise ValueError(f"data_init_ needs norm='wn', this model has norm={self.norm!r}")
        data_dependent_init_(self, x, init_scale=init_scale)
        # start the softmax near uniform, as the other norms' default init does
        with torch.no_grad():
            wn_g(self.logits).mul_(LOGITS_INIT_SCALE)
            self.logits.bias.mul_(LOGITS_INIT_SCALE)
        return self
