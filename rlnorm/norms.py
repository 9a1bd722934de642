"""Activation normalizations behind one registry: :func:`make_norm`.

For an ``(N, C, H, W)`` tensor the statistics are taken over:

* ``bn``  -- ``(N, H, W)`` per channel (running statistics at eval time: batch *dependent* in train mode);
* ``brn`` -- as ``bn``, corrected towards the running statistics (Batch Renormalization, Ioffe 2017);
* ``ln``  -- ``(C, H, W)`` per sample;
* ``in``  -- ``(H, W)`` per sample and channel;
* ``gn``  -- ``(C/G, H, W)`` per sample and group;
* ``sn``  -- a learned softmax mix of the ``bn``, ``in`` and ``ln`` statistics (Switchable Norm, Luo 2018);
* ``rms`` -- root mean square over ``(C, H, W)`` per sample, no centring (RMSNorm, Zhang & Sennrich 2019).

For an ``(N, C)`` tensor ``spatial=False`` drops ``H, W``; instance norm is then undefined (one value per
sample and channel) and ``sn`` mixes ``bn`` and ``ln`` only.

Every module checks the rank of its input, so a spatial norm fed a flat tensor fails loudly instead of
silently normalizing over the wrong set.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlnorm.registry import norm_names
from rlnorm.validation import ConfigError, check_choice

#: The activation norms :func:`make_norm` builds (the ``activation`` scope of :data:`rlnorm.registry.NORMS`).
NORM_KINDS: tuple[str, ...] = norm_names("activation")
#: The kinds whose output for one sample depends on the other samples of its batch (in train mode).
BATCH_DEPENDENT_KINDS: frozenset[str] = frozenset(norm_names("activation", batch_dependent=True))
#: Batch-norm settings of the original TensorFlow implementation (decay 0.9997, eps 1e-3).
BN_ORIGINAL_SETTINGS: dict[str, float] = {"momentum": 1.0 - 0.9997, "eps": 1e-3}


def _check_rank(x: torch.Tensor, spatial: bool, name: str) -> None:
    expected = 4 if spatial else 2
    if x.dim() != expected:
        layout = "(N, C, H, W)" if spatial else "(N, C)"
        raise ValueError(f"{name} expects a {expected}-D input {layout}, got shape {tuple(x.shape)}")


def _reduce_dims(spatial: bool) -> tuple[int, ...]:
    return (0, 2, 3) if spatial else (0,)


def _channel_view(t: torch.Tensor, spatial: bool) -> torch.Tensor:
    return t.view(1, -1, 1, 1) if spatial else t.view(1, -1)


def default_num_groups(num_channels: int, max_groups: int = 8) -> int:
    """The largest divisor of ``num_channels`` not above ``max_groups`` (GroupNorm's default here)."""
    return max(g for g in range(1, min(max_groups, num_channels) + 1) if num_channels % g == 0)


class BatchNorm(nn.Module):
    """Batch normalization over ``(N, H, W)`` (or ``N``) per channel, running statistics at eval time.

    A thin rank-checking wrapper around :func:`torch.nn.functional.batch_norm` so the same class serves
    flat and spatial inputs and reports a clear error on the wrong one.

    :param num_features: number of channels ``C``
    :param spatial: whether inputs are ``(N, C, H, W)`` (else ``(N, C)``)
    :param momentum: weight of the new batch in the running statistics (torch convention: 1 - decay)
    :param eps: added to the variance
    """

    def __init__(self, num_features: int, *, spatial: bool, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.num_features, self.spatial, self.momentum, self.eps = num_features, spatial, momentum, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, self.spatial, type(self).__name__)
        if self.training:
            self.num_batches_tracked += 1
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, spatial={self.spatial}, momentum={self.momentum}, eps={self.eps}"


class BatchRenorm(BatchNorm):
    """Batch Renormalization (Ioffe, 2017): batch statistics corrected towards the running ones.

    In train mode ``x_hat = (x - mu_B) / sigma_B * r + d`` with ``r = clip(sigma_B / sigma, 1/r_max, r_max)`` and
    ``d = clip((mu_B - mu) / sigma, -d_max, d_max)`` (no gradient through ``r`` and ``d``); eval mode uses the
    running statistics, so train and eval outputs agree once the clips are inactive.

    :param r_max: bound on the scale correction (>= 1)
    :param d_max: bound on the shift correction (>= 0)
    """

    def __init__(
        self,
        num_features: int,
        *,
        spatial: bool,
        momentum: float = 0.01,
        eps: float = 1e-5,
        r_max: float = 3.0,
        d_max: float = 5.0,
    ):
        super().__init__(num_features, spatial=spatial, momentum=momentum, eps=eps)
        if r_max < 1.0 or d_max < 0.0:
            raise ValueError(f"need r_max >= 1 and d_max >= 0, got r_max={r_max}, d_max={d_max}")
        self.r_max, self.d_max = r_max, d_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, self.spatial, type(self).__name__)
        if not self.training:
            return super().forward(x)
        dims = _reduce_dims(self.spatial)
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        std = (var + self.eps).sqrt()
        with torch.no_grad():
            running_std = (self.running_var + self.eps).sqrt()
            r = (std / running_std).clamp(1.0 / self.r_max, self.r_max)
            d = ((mean - self.running_mean) / running_std).clamp(-self.d_max, self.d_max)
            n = x.numel() / x.shape[1]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
            self.num_batches_tracked += 1
        x_hat = (x - _channel_view(mean, self.spatial)) / _channel_view(std, self.spatial)
        x_hat = x_hat * _channel_view(r, self.spatial) + _channel_view(d, self.spatial)
        return x_hat * _channel_view(self.weight, self.spatial) + _channel_view(self.bias, self.spatial)


class LayerNorm(nn.Module):
    """Layer normalization over ``(C, H, W)`` (or ``C``) per sample, with a per-channel gain and bias."""

    def __init__(self, num_features: int, *, spatial: bool, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.spatial, self.eps = num_features, spatial, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, self.spatial, type(self).__name__)
        if self.spatial:
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        return F.layer_norm(x, (self.num_features,), self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, spatial={self.spatial}, eps={self.eps}"


class GroupNorm(nn.GroupNorm):
    """Group normalization over ``(C/G, H, W)`` per sample and group; ``num_groups`` must divide ``C``."""

    def __init__(self, num_features: int, *, spatial: bool, num_groups: int | None = None, eps: float = 1e-5):
        groups = default_num_groups(num_features) if num_groups is None else num_groups
        if groups < 1 or num_features % groups != 0:
            raise ValueError(f"gn: num_groups={groups} must be >= 1 and divide num_features={num_features}")
        super().__init__(groups, num_features, eps=eps)
        self.spatial = spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, self.spatial, type(self).__name__)
        return super().forward(x)


class InstanceNorm(nn.GroupNorm):
    """Instance normalization over ``(H, W)`` per sample and channel (spatial inputs only; no running stats)."""

    def __init__(self, num_features: int, *, spatial: bool = True, eps: float = 1e-5):
        if not spatial:
            raise ValueError(
                "in: instance norm needs spatial (N, C, H, W) inputs; on (N, C) each statistic covers one value"
            )
        super().__init__(num_features, num_features, eps=eps)
        self.spatial = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, True, type(self).__name__)
        return super().forward(x)


class RMSNorm(nn.Module):
    """RMS normalization over ``(C, H, W)`` (or ``C``) per sample: no centring, per-channel gain only."""

    def __init__(self, num_features: int, *, spatial: bool, eps: float = 1e-6):
        super().__init__()
        self.num_features, self.spatial, self.eps = num_features, spatial, eps
        self.weight = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, self.spatial, type(self).__name__)
        dims = (1, 2, 3) if self.spatial else (1,)
        x = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + self.eps)
        return x * _channel_view(self.weight, self.spatial)

    def extra_repr(self) -> str:
        return f"{self.num_features}, spatial={self.spatial}, eps={self.eps}"


class SwitchableNorm(nn.Module):
    """Switchable Normalization (Luo et al., 2018): a learned softmax mix of BN, IN and LN statistics.

    Means and variances are mixed with separate softmax weights. The BN part keeps its own running
    statistics, used at eval time. On flat ``(N, C)`` inputs only BN and LN are mixed.

    :param num_features: number of channels ``C``
    :param spatial: whether inputs are ``(N, C, H, W)``
    :param momentum: running-statistics momentum of the BN part
    :param eps: added to the variances
    """

    def __init__(self, num_features: int, *, spatial: bool, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.spatial, self.momentum, self.eps = num_features, spatial, momentum, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        n_sources = 3 if spatial else 2  # (bn, in, ln) or (bn, ln)
        self.mean_weight = nn.Parameter(torch.ones(n_sources))
        self.var_weight = nn.Parameter(torch.ones(n_sources))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_rank(x, self.spatial, type(self).__name__)
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        if self.spatial:  # per sample and channel moments; LN and BN moments are derived from them
            mean_in = flat.mean(-1, keepdim=True)
            var_in = flat.var(-1, keepdim=True, unbiased=False)
            second_in = var_in + mean_in**2
        else:  # each "instance" is a single value: its mean is the value (no size-1 reductions, they are slow)
            mean_in, second_in = flat, flat * flat
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = second_in.mean(1, keepdim=True) - mean_ln**2
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = second_in.mean(0, keepdim=True) - mean_bn**2
            with torch.no_grad():
                m = flat.shape[0] * flat.shape[2]
                self.running_mean.lerp_(mean_bn.view(c), self.momentum)
                self.running_var.lerp_(var_bn.view(c) * m / max(m - 1, 1), self.momentum)
        else:
            mean_bn = self.running_mean.view(1, c, 1)
            var_bn = self.running_var.view(1, c, 1)
        wm = torch.softmax(self.mean_weight, 0)
        wv = torch.softmax(self.var_weight, 0)
        if self.spatial:
            mean = wm[0] * mean_bn + wm[1] * mean_in + wm[2] * mean_ln
            var = wv[0] * var_bn + wv[1] * var_in + wv[2] * var_ln
        else:
            mean = wm[0] * mean_bn + wm[1] * mean_ln
            var = wv[0] * var_bn + wv[1] * var_ln
        out = (flat - mean) / (var.clamp_min(0.0) + self.eps).sqrt()
        out = out * self.weight.view(1, c, 1) + self.bias.view(1, c, 1)
        return out.view_as(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, spatial={self.spatial}, momentum={self.momentum}, eps={self.eps}"


_NORM_CLASSES: dict[str, type[nn.Module]] = {
    "bn": BatchNorm,
    "ln": LayerNorm,
    "gn": GroupNorm,
    "in": InstanceNorm,
    "sn": SwitchableNorm,
    "brn": BatchRenorm,
    "rms": RMSNorm,
}


def check_norm_kind(kind: str, allowed: tuple[str, ...] = NORM_KINDS, field: str = "norm") -> str:
    """Return ``kind`` if it is one of ``allowed``, else raise a :class:`~rlnorm.validation.ConfigError` naming
    ``field`` and the choices."""
    return check_choice(kind, field, allowed)


def make_norm(kind: str, num_features: int, *, spatial: bool, **kwargs: Any) -> nn.Module:
    """Build the activation normalization ``kind`` for ``num_features`` channels.

    :param kind: one of :data:`NORM_KINDS` (``"none"`` gives ``nn.Identity``)
    :param num_features: number of channels ``C``
    :param spatial: ``True`` for ``(N, C, H, W)`` inputs, ``False`` for ``(N, C)``
    :param kwargs: passed to the norm class (e.g. ``momentum``, ``eps``, ``num_groups``, ``r_max``)
    :return: the normalization module
    """
    check_norm_kind(kind)
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    if kind == "none":
        return nn.Identity()
    try:
        return _NORM_CLASSES[kind](num_features, spatial=spatial, **kwargs)
    except TypeError as exc:  # an option this norm does not take
        raise ConfigError("", "norm_kwargs", f"norm {kind!r}: bad option in {sorted(kwargs)}: {exc}") from exc
