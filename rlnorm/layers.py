"""The one place that turns a norm name into a layer stack.

``linear(...)`` and ``conv2d(...)`` return the affine layer and its normalization, without activation:

* ``none``     -- the plain layer;
* ``wn``       -- the layer with its weight reparametrized by weight normalization;
* ``wn+mobn``  -- a weight-normalized layer followed by :class:`~rlnorm.weight_norm.MeanOnlyBatchNorm`;
* an activation norm of :data:`~rlnorm.norms.NORM_KINDS` -- the layer followed by that norm. The layer's own
  bias is dropped when the norm has a shift of its own (:attr:`~rlnorm.registry.NormSpec.has_shift`: everything
  but ``rms``), since it would be cancelled.

The names are the ``layer`` scope of :data:`rlnorm.registry.NORMS`. :data:`ACTIVATIONS` names the activation
classes configs may choose (YAML cannot hold a class).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from rlnorm.norms import check_norm_kind, make_norm
from rlnorm.registry import NORMS, norm_names
from rlnorm.torch_internals import TorchConvBase
from rlnorm.weight_norm import MeanOnlyBatchNorm, apply_weight_norm

#: The norms :func:`linear` and :func:`conv2d` accept (and so a policy's ``norm``).
LAYER_NORMS: tuple[str, ...] = norm_names("layer")
#: Layer norms that reparametrize the weight (weight norm, alone or with mean-only batch norm).
WEIGHT_NORM_KINDS: tuple[str, ...] = norm_names("layer", weight_normalized=True)
#: Layer norms whose output for one sample depends on the rest of its batch in train mode.
BATCH_DEPENDENT_NORMS: frozenset[str] = frozenset(norm_names("layer", batch_dependent=True))
#: Activation name -> class, for configs (``policy_kwargs.activation_fn: relu``).
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def check_norm(norm: str, allowed: tuple[str, ...] = LAYER_NORMS, field: str = "norm") -> str:
    """Return ``norm`` if allowed, else raise :class:`~rlnorm.validation.ConfigError` naming ``field`` and the
    allowed values."""
    return check_norm_kind(norm, allowed, field)


def _stack(layer: nn.Module, norm: str, num_features: int, spatial: bool, norm_kwargs: dict[str, Any]) -> nn.Module:
    if norm == "none":
        return layer
    if norm == "wn":
        return apply_weight_norm(layer)
    if norm == "wn+mobn":
        return nn.Sequential(apply_weight_norm(layer), MeanOnlyBatchNorm(num_features, **norm_kwargs))
    return nn.Sequential(layer, make_norm(norm, num_features, spatial=spatial, **norm_kwargs))


def linear(
    in_features: int,
    out_features: int,
    norm: str = "none",
    *,
    bias: bool = True,
    norm_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """A fully connected layer normalized by ``norm``.

    :param in_features: input size
    :param out_features: output size
    :param norm: one of :data:`LAYER_NORMS`
    :param bias: whether the layer has a bias (dropped anyway when the norm brings a shift)
    :param norm_kwargs: options of the normalization (e.g. ``momentum``, ``num_groups``)
    :return: ``nn.Linear`` (WN-parametrized for ``wn``) or ``nn.Sequential(linear, norm)``
    """
    check_norm(norm)
    layer = nn.Linear(in_features, out_features, bias=bias and not NORMS[norm].has_shift)
    return _stack(layer, norm, out_features, False, norm_kwargs or {})


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    norm: str = "none",
    *,
    bias: bool = True,
    norm_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """A 2-D convolution normalized by ``norm`` (arguments as :class:`torch.nn.Conv2d`).

    :param norm: one of :data:`LAYER_NORMS`
    :param bias: whether the convolution has a bias (dropped anyway when the norm brings a shift)
    :param norm_kwargs: options of the normalization
    :return: ``nn.Conv2d`` (WN-parametrized for ``wn``) or ``nn.Sequential(conv, norm)``
    """
    check_norm(norm)
    use_bias = bias and not NORMS[norm].has_shift
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=use_bias)
    return _stack(layer, norm, out_channels, True, norm_kwargs or {})


def weight_layers(module: nn.Module) -> Iterator[nn.Module]:
    """Yield every ``nn.Linear`` and convolution inside ``module`` (WN-parametrized or not)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, TorchConvBase)):
            yield m
