"""The private parts of torch that rlnorm relies on, in one place.

torch makes no promise about names that start with an underscore; every one rlnorm uses is named here, with why,
so a torch upgrade that moves one breaks this module and nothing else (``tests/test_architecture.py`` checks that
no other module of the project reaches into torch's private API).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.parametrizations import _WeightNorm

#: torch's weight-norm parametrization (``g * v / ||v||``): WN layers subclass it and are recognized by it
WeightNormParametrization = _WeightNorm
#: the base class of every torch batch-norm layer (BatchNorm1d/2d/3d, SyncBatchNorm)
TorchBatchNormBase = _BatchNorm
#: the base class of every torch convolution (Conv1d/2d/3d and the transposed ones)
TorchConvBase = _ConvNd
#: the raw ``.data`` descriptor of tensors, which a parameter subclass wraps to see writes through ``.data``
TENSOR_DATA_DESCRIPTOR = torch._C.TensorBase.data
#: torch's fused LSTM kernels (``lstm``, ``lstm_cell``) called with weights computed outside ``nn.LSTM``
VF = torch._VF


def fused_weight_norm(v: Tensor, g: Tensor, dim: int) -> Tensor:
    """``g * v / ||v||`` with torch's fused kernel (the one its weight-norm parametrization calls)."""
    return torch._weight_norm(v, g, dim)


def tensor_version(tensor: Tensor) -> int:
    """The tensor's version counter: it changes on every in-place write (the WN inference cache's key)."""
    return tensor._version


def conv_forward(conv: nn.Module, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A convolution layer's own forward with another weight (a masked convolution's masked weight)."""
    return conv._conv_forward(x, weight, bias)


def own_tensors(module: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """A module's own parameters and buffers (not its children's), as ``state_dict`` sees them for pickling."""
    return dict(module._parameters), dict(module._buffers)


def add_load_state_dict_pre_hook(module: nn.Module, hook: Callable[..., None]) -> None:
    """Run ``hook`` before ``module`` loads a state dict (to rename the keys older versions saved)."""
    module._register_load_state_dict_pre_hook(hook)
