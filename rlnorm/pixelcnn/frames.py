"""Turn environment frames into the single-channel integer images a :class:`~rlnorm.pixelcnn.model.PixelCNN` models.

* :class:`GreyFrameEncoder` -- 8-bit grey frames (Atari ``(4, 84, 84)`` stacks): the newest frame, area-
  downsampled to ``size x size`` and quantized to ``bits`` bits (42x42, 3 bits as in Ostrovski et al., 2017);
* :class:`BinaryFrameEncoder` -- MinAtar's ``(C, 10, 10)`` binary channels, either packed losslessly into one
  integer per pixel (``"bits"``: ``sum_c x_c 2^c``, ``2^C`` levels) or collapsed to the index of the last active
  channel (``"argmax"``: ``C + 1`` levels; overlapping objects keep only the last channel).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from rlnorm.validation import check_choice, check_int

BINARY_MODES: tuple[str, ...] = ("bits", "argmax")


class FrameEncoder(Protocol):
    """What the data pipeline and the exploration wrapper need from an encoder."""

    levels: int
    image_size: tuple[int, int]

    def __call__(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor: ...


def _as_batch(obs: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(obs)
    if x.dim() != 4:
        raise ValueError(f"frames must be a batch (N, C, H, W) of channel-first images, got shape {tuple(x.shape)}")
    return x


class GreyFrameEncoder:
    """Newest grey frame of a channel-first stack -> ``(N, 1, size, size)`` integer levels ``0 .. 2^bits - 1``.

    :param size: output height and width
    :param bits: grey-level bits kept (1..8)
    """

    def __init__(self, size: int = 42, bits: int = 3):
        bits = check_int(bits, "bits", 1, maximum=8)
        size = check_int(size, "size", 1)
        self.size, self.bits = size, bits
        self.levels = 2**bits
        self.image_size = (size, size)

    def __call__(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = _as_batch(obs)
        if x.dtype != torch.uint8:
            raise ValueError(f"grey frames must be uint8 in 0..255, got dtype {x.dtype}")
        newest = x[:, -1:].float()  # frame stacks put the newest frame last
        if newest.shape[-2:] != self.image_size:
            newest = F.interpolate(newest, size=self.image_size, mode="area")
        return (newest.round().long() >> (8 - self.bits)).clamp_(0, self.levels - 1)


class BinaryFrameEncoder:
    """Binary channels ``(N, C, H, W)`` -> ``(N, 1, H, W)`` integer levels.

    :param n_channels: ``C``
    :param image_size: ``(H, W)``
    :param mode: ``"bits"`` (lossless, ``2^C`` levels, ``C <= 8``) or ``"argmax"`` (``C + 1`` levels)
    """

    def __init__(self, n_channels: int, image_size: tuple[int, int] = (10, 10), mode: str = "bits"):
        check_choice(mode, "mode", BINARY_MODES)
        n_channels = check_int(n_channels, "n_channels", 1)
        if mode == "bits" and n_channels > 8:
            raise ValueError(f"mode='bits' packs at most 8 channels into 256 levels, got {n_channels}; use 'argmax'")
        self.n_channels, self.mode = n_channels, mode
        self.levels = 2**n_channels if mode == "bits" else n_channels + 1
        self.image_size = tuple(image_size)

    def __call__(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = _as_batch(obs)
        if x.shape[1] != self.n_channels or tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(
                f"expected frames (N, {self.n_channels}, {self.image_size[0]}, {self.image_size[1]}), "
                f"got {tuple(x.shape)}"
            )
        on = (x > 0).long()
        if self.mode == "bits":
            weights = (2 ** torch.arange(self.n_channels)).view(1, -1, 1, 1)
            return (on * weights).sum(1, keepdim=True)
        # 1 + index of the last active channel, 0 where none is
        index = torch.arange(1, self.n_channels + 1).view(1, -1, 1, 1)
        return (on * index).amax(1, keepdim=True)


def frame_encoder_for(
    obs_shape: tuple[int, ...],
    obs_high: int,
    *,
    size: int = 42,
    bits: int = 3,
    binary_mode: str = "bits",
) -> GreyFrameEncoder | BinaryFrameEncoder:
    """The encoder for a channel-first ``uint8`` observation space: binary if ``high == 1``, else grey.

    :param obs_shape: ``(C, H, W)``
    :param obs_high: the largest observation value (1 for MinAtar, 255 for Atari)
    :param size: grey frames' output size
    :param bits: grey frames' bits
    :param binary_mode: binary frames' encoding, one of :data:`BINARY_MODES`
    """
    if len(obs_shape) != 3:
        raise ValueError(f"a frame encoder needs channel-first image observations (C, H, W), got {obs_shape}")
    if obs_high == 1:
        return BinaryFrameEncoder(obs_shape[0], (obs_shape[1], obs_shape[2]), binary_mode)
    if obs_high == 255:
        return GreyFrameEncoder(size, bits)
    raise ValueError(f"observation high must be 1 (binary) or 255 (8-bit grey), got {obs_high}")
