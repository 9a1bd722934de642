"""Building blocks of the PixelCNN: causal masks, masked convolutions and per-pixel normalization.

Two rules keep every layer autoregressive in raster order:

* a convolution's kernel is multiplied by a fixed 0/1 mask (:func:`causal_mask`), and under weight
  normalization the mask is applied to the direction ``v`` *before* its norm is taken
  (:class:`MaskedWeightNorm`), so the effective weight is ``g * (v*m) / ||v*m||``: masked entries stay exactly
  zero and ``||w|| = g`` over the entries actually used;
* activation norms take their statistics **per pixel** over the channels (:class:`PixelNorm`): a layer norm
  over ``(C, H, W)`` would let every output see the future pixels of its own image through the mean. Hence
  the names ``pixel_ln`` / ``pixel_gn`` (:data:`rlnorm.registry.NORMS`; the former ``ln`` / ``gn`` still work,
  with a ``DeprecationWarning``). Batch norm over ``(N, H, W)`` still mixes positions in train mode -- that
  leak is the point of the comparison, and eval mode (running statistics) is causal.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from rlnorm.norms import default_num_groups, make_norm
from rlnorm.registry import NORMS, check_norm_name, norm_names
from rlnorm.torch_internals import WeightNormParametrization, conv_forward, fused_weight_norm
from rlnorm.validation import check_choice

#: Mask types: raster ``A`` (excludes the centre) / ``B`` (includes it) for the plain PixelCNN; the gated
#: PixelCNN's vertical stack (``vA``/``vB``: rows above, plus the centre row for ``vB``) and horizontal stack
#: (``hA``/``hB``: pixels to the left on the centre row, plus the centre for ``hB``).
MASK_TYPES: tuple[str, ...] = ("A", "B", "vA", "vB", "hA", "hB", "full")
#: Norms a PixelCNN layer accepts (the ``pixelcnn`` scope of :data:`rlnorm.registry.NORMS`).
PIXELCNN_NORMS: tuple[str, ...] = norm_names("pixelcnn")
#: The PixelCNN norms :class:`PixelNorm` applies to each pixel's channels.
PER_PIXEL_NORMS: tuple[str, ...] = tuple(n for n in PIXELCNN_NORMS if NORMS[n].pixel_rows is not None)


def check_pixelcnn_norm(norm: object, field: str = "norm", *, source: str = "") -> str:
    """Return the PixelCNN norm ``norm`` (the current name for a former spelling such as ``ln``), or raise.

    :param norm: one of :data:`PIXELCNN_NORMS`, or ``ln`` / ``gn`` (deprecated: ``pixel_ln`` / ``pixel_gn``)
    :param field: the dotted field named in the error and the warning
    :param source: where the value came from, for the error
    :raises rlnorm.validation.ConfigError: naming ``field`` and :data:`PIXELCNN_NORMS`
    """
    # stacklevel 4: the warning points at whoever called the function that called this one
    return check_norm_name(norm, "pixelcnn", field, source=source, stacklevel=4)


def causal_mask(kernel_size: tuple[int, int], mask_type: str) -> torch.Tensor:
    """The 0/1 kernel mask of shape ``(kh, kw)`` for ``mask_type`` (see :data:`MASK_TYPES`).

    :param kernel_size: ``(kh, kw)``, both odd so the kernel has a centre
    :param mask_type: one of :data:`MASK_TYPES`
    :return: a float tensor of ones (kept) and zeros (masked)
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type: unknown mask {mask_type!r}; choose one of {', '.join(MASK_TYPES)}")
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd in both dims, got {kernel_size}")
    ch, cw = kh // 2, kw // 2
    mask = torch.zeros(kh, kw)
    if mask_type == "full":
        mask.fill_(1.0)
    elif mask_type in ("A", "B"):
        mask[:ch] = 1.0
        mask[ch, : cw + (mask_type == "B")] = 1.0
    elif mask_type in ("vA", "vB"):
        mask[: ch + (mask_type == "vB")] = 1.0
    else:  # hA / hB
        mask[ch, : cw + (mask_type == "hB")] = 1.0
    return mask


class MaskedConv2d(nn.Conv2d):
    """A stride-1 "same" convolution whose kernel is multiplied by a fixed causal mask.

    :param in_channels: input channels
    :param out_channels: output channels
    :param kernel_size: ``k`` or ``(kh, kw)``, odd
    :param mask_type: one of :data:`MASK_TYPES`
    :param bias: whether the convolution has a bias
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str,
        *,
        bias: bool = True,
    ):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask((kh, kw), mask_type).expand_as(self.weight).clone())
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # multiplying again is a no-op for a weight-normalized layer and guards a plain one against
        # optimizers that write into masked entries (weight decay, manual edits)
        return conv_forward(self, x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}"


class MaskedWeightNorm(WeightNormParametrization):
    """Weight normalization of a masked kernel: ``w = g * (v*m) / ||v*m||`` per output channel.

    A subclass of torch's own parametrization, so :func:`rlnorm.weight_norm.is_weight_normalized`,
    ``wn_g``/``wn_v`` and :func:`~rlnorm.weight_norm.data_dependent_init_` treat the layer as any WN layer
    (that init redraws ``v`` everywhere; the mask in :meth:`forward` keeps the result causal and
    correctly normalized).

    :param mask: the 0/1 mask, broadcastable to the weight
    :param dim: the output dimension (one ``g`` per index)
    """

    def __init__(self, mask: torch.Tensor, dim: int = 0):
        super().__init__(dim)
        self.register_buffer("mask", mask.detach().clone())

    def forward(self, weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
        return fused_weight_norm(weight_v * self.mask, weight_g, self.dim)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight_v = weight * self.mask
        return torch.norm_except_dim(weight_v, 2, self.dim), weight_v


def apply_masked_weight_norm(conv: MaskedConv2d) -> MaskedConv2d:
    """Reparametrize a masked convolution's weight as ``g * (v*m) / ||v*m||`` (in place).

    :param conv: the masked convolution
    :return: the same module
    """
    # torch's weight_norm registers its parametrization the same way (unsafe: two originals g and v)
    parametrize.register_parametrization(conv, "weight", MaskedWeightNorm(conv.mask), unsafe=True)
    return conv


class PixelNorm(nn.Module):
    """An activation norm of :func:`rlnorm.norms.make_norm` applied with each pixel as one row ``(C,)``.

    ``pixel_ln``/``pixel_gn`` normalize over the channels (groups) of one pixel -- causal and
    batch-independent; ``bn`` takes its statistics over ``(N, H, W)`` exactly like ``BatchNorm2d``.

    :param kind: ``pixel_ln``, ``pixel_gn`` or ``bn`` (the norms with a
        :attr:`~rlnorm.registry.NormSpec.pixel_rows`)
    :param num_features: number of channels
    :param norm_kwargs: options of the norm (e.g. ``num_groups``, ``momentum``); ``pixel_gn`` defaults to
        groups of at least 8 channels (or one group)
    """

    def __init__(self, kind: str, num_features: int, **norm_kwargs: Any):
        super().__init__()
        kind = check_choice(check_pixelcnn_norm(kind, "kind"), "kind", PER_PIXEL_NORMS)
        rows = NORMS[kind].pixel_rows
        if rows == "gn" and "num_groups" not in norm_kwargs:
            # over one pixel a group of 2 channels normalizes to +-1 (zero gradient): keep groups >= 8 wide
            norm_kwargs["num_groups"] = default_num_groups(num_features, max_groups=max(1, num_features // 8))
        self.norm = make_norm(rows, num_features, spatial=False, **norm_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        if isinstance(self.norm, nn.GroupNorm):
            # same result as the module's own forward, about 2x faster on many short rows
            g = self.norm.num_groups
            out = F.layer_norm(rows.view(-1, g, c // g), (c // g,), eps=self.norm.eps).view(-1, c)
            out = out * self.norm.weight + self.norm.bias
        else:
            out = self.norm(rows)
        return out.reshape(n, h, w, c).permute(0, 3, 1, 2)


def masked_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    mask_type: str,
    norm: str = "none",
    *,
    norm_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """A masked convolution normalized by ``norm`` (the PixelCNN counterpart of :func:`rlnorm.layers.conv2d`).

    :param in_channels: input channels
    :param out_channels: output channels
    :param kernel_size: odd ``k`` or ``(kh, kw)``
    :param mask_type: one of :data:`MASK_TYPES`
    :param norm: one of :data:`PIXELCNN_NORMS`
    :param norm_kwargs: options of the activation norm
    :return: a :class:`MaskedConv2d` (WN-parametrized for ``wn``) or ``nn.Sequential(conv, PixelNorm)``
    """
    norm = check_pixelcnn_norm(norm)
    conv = MaskedConv2d(in_channels, out_channels, kernel_size, mask_type, bias=not NORMS[norm].has_shift)
    if norm == "none":
        return conv
    if norm == "wn":
        return apply_masked_weight_norm(conv)
    return nn.Sequential(conv, PixelNorm(norm, out_channels, **(norm_kwargs or {})))


def gated(x: torch.Tensor) -> torch.Tensor:
    """The gated activation ``tanh(a) * sigmoid(b)`` of a ``2C``-channel tensor split in two halves."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)
