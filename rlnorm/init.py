"""Weight initializers that are correct for weight-normalized layers.

``nn.init.orthogonal_(layer.weight)`` on a weight-normalized layer writes into a tensor that is recomputed
from ``g`` and ``v`` at the next access, so it silently changes nothing (this is what SB3's ``ortho_init``
does to WN layers). The initializers here draw the intended weight matrix ``W`` and set the layer so that its
*effective* weight is exactly ``W``: for WN, ``v <- W`` and ``g <- ||W||`` per output unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from rlnorm.layers import weight_layers
from rlnorm.weight_norm import is_weight_normalized, wn_g, wn_v

INIT_METHODS: tuple[str, ...] = ("orthogonal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")


def _weight_shape(layer: nn.Module) -> torch.Size:
    if is_weight_normalized(layer):
        return wn_v(layer).shape
    if not isinstance(getattr(layer, "weight", None), torch.Tensor):
        raise ValueError(f"{type(layer).__name__} has no weight to initialize")
    return layer.weight.shape


@torch.no_grad()
def set_effective_weight_(layer: nn.Module, weight: torch.Tensor) -> nn.Module:
    """Make ``layer``'s effective weight equal ``weight`` (for WN: ``v <- weight``, ``g <- ||weight||``)."""
    if weight.shape != _weight_shape(layer):
        raise ValueError(f"weight of shape {tuple(weight.shape)} does not fit {type(layer).__name__}")
    if is_weight_normalized(layer):
        wn_v(layer).copy_(weight)
        wn_g(layer).copy_(torch.norm_except_dim(weight, 2, 0))
    else:
        layer.weight.copy_(weight)
    return layer


def _initializer(draw: Callable[[torch.Tensor], object]) -> Callable[..., nn.Module]:
    @torch.no_grad()
    def init_(layer: nn.Module, bias: float | None = 0.0) -> nn.Module:
        v_like = wn_v(layer) if is_weight_normalized(layer) else layer.weight
        weight = torch.empty(_weight_shape(layer), dtype=v_like.dtype, device=v_like.device)
        draw(weight)
        set_effective_weight_(layer, weight)
        if bias is not None and getattr(layer, "bias", None) is not None:
            layer.bias.fill_(bias)
        return layer

    return init_


def orthogonal_(layer: nn.Module, gain: float = 1.0, bias: float | None = 0.0) -> nn.Module:
    """Orthogonal effective weight scaled by ``gain`` (SB3's and CleanRL's default); bias set to ``bias``.

    :param layer: ``nn.Linear``/``nn.Conv*``, weight-normalized or not
    :param gain: scale of the orthogonal matrix
    :param bias: value for the bias, or ``None`` to leave it
    """
    return _initializer(lambda w: nn.init.orthogonal_(w, gain=gain))(layer, bias)


def xavier_uniform_(layer: nn.Module, gain: float = 1.0, bias: float | None = 0.0) -> nn.Module:
    """Xavier/Glorot uniform effective weight (variance ``2 gain^2 / (fan_in + fan_out)``)."""
    return _initializer(lambda w: nn.init.xavier_uniform_(w, gain=gain))(layer, bias)


def xavier_normal_(layer: nn.Module, gain: float = 1.0, bias: float | None = 0.0) -> nn.Module:
    """Xavier/Glorot normal effective weight (variance ``2 gain^2 / (fan_in + fan_out)``)."""
    return _initializer(lambda w: nn.init.xavier_normal_(w, gain=gain))(layer, bias)


def kaiming_uniform_(layer: nn.Module, nonlinearity: str = "relu", bias: float | None = 0.0) -> nn.Module:
    """Kaiming/He uniform effective weight for ``nonlinearity`` (variance ``gain^2 / fan_in``)."""
    return _initializer(lambda w: nn.init.kaiming_uniform_(w, nonlinearity=nonlinearity))(layer, bias)


def kaiming_normal_(layer: nn.Module, nonlinearity: str = "relu", bias: float | None = 0.0) -> nn.Module:
    """Kaiming/He normal effective weight for ``nonlinearity`` (variance ``gain^2 / fan_in``)."""
    return _initializer(lambda w: nn.init.kaiming_normal_(w, nonlinearity=nonlinearity))(layer, bias)


def init_weights_(
    module: nn.Module, method: str = "orthogonal", gain: float = math.sqrt(2), bias: float | None = 0.0
) -> nn.Module:
    """Initialize every linear and convolutional layer inside ``module`` with ``method``.

    :param method: one of :data:`INIT_METHODS`
    :param gain: gain for ``orthogonal`` and ``xavier_*`` (``kaiming_*`` use the ReLU gain)
    :param bias: value for the biases, or ``None`` to leave them
    """
    if method not in INIT_METHODS:
        raise ValueError(f"init method: unknown {method!r}; choose one of {', '.join(INIT_METHODS)}")
    for layer in weight_layers(module):
        if method.startswith("kaiming"):
            _KAIMING[method](layer, bias=bias)
        else:
            _GAINED[method](layer, gain=gain, bias=bias)
    return module


_GAINED = {"orthogonal": orthogonal_, "xavier_uniform": xavier_uniform_, "xavier_normal": xavier_normal_}
_KAIMING = {"kaiming_uniform": kaiming_uniform_, "kaiming_normal": kaiming_normal_}
