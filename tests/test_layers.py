"""Layer stacks built from a norm name."""

import pytest
import torch
from torch import nn

from rlnorm.layers import LAYER_NORMS, check_norm, conv2d, linear, weight_layers
from rlnorm.weight_norm import MeanOnlyBatchNorm, is_weight_normalized


@pytest.mark.parametrize("norm", LAYER_NORMS)
def test_conv2d_and_linear_shapes(norm):
    conv = conv2d(3, 8, 3, stride=2, padding=1, norm=norm)
    assert conv(torch.randn(2, 3, 9, 9)).shape == (2, 8, 5, 5)
    if norm != "in":
        assert linear(5, 7, norm=norm)(torch.randn(3, 5)).shape == (3, 7)


def test_structure():
    assert type(linear(2, 3)) is nn.Linear and not is_weight_normalized(linear(2, 3))
    assert is_weight_normalized(linear(2, 3, "wn")) and linear(2, 3, "wn").bias is not None
    stack = linear(2, 3, "wn+mobn")
    assert is_weight_normalized(stack[0]) and stack[0].bias is None and isinstance(stack[1], MeanOnlyBatchNorm)
    bn = conv2d(2, 3, 1, norm="bn")
    assert bn[0].bias is None  # cancelled by the norm's own shift
    assert conv2d(2, 3, 1, norm="rms")[0].bias is not None  # RMSNorm has no shift
    assert len(list(weight_layers(nn.Sequential(bn, linear(3, 3, "wn"))))) == 2


def test_unknown_norm_names_field_and_choices():
    message = r"norm: must be one of none, wn, wn\+mobn, bn, ln, gn, in, sn, brn, rms; got 'weightnorm'"
    with pytest.raises(ValueError, match=message):
        linear(2, 2, norm="weightnorm")
    with pytest.raises(ValueError, match=r"policy_kwargs\.norm: must be one of .*; got 'x'"):
        check_norm("x", field="policy_kwargs.norm")


def test_instance_norm_rejects_linear():
    with pytest.raises(ValueError, match="instance norm needs spatial"):
        linear(4, 4, norm="in")
