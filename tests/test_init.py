"""Initializers set the *effective* weight of weight-normalized layers."""

import math

import pytest
import torch
from torch import nn

from rlnorm.init import (
    INIT_METHODS,
    init_weights_,
    kaiming_normal_,
    orthogonal_,
    set_effective_weight_,
    xavier_uniform_,
)
from rlnorm.layers import conv2d, linear
from rlnorm.weight_norm import apply_weight_norm, wn_g, wn_v


def test_plain_torch_orthogonal_changes_nothing_on_wn_layer():
    """The trap this module exists for: writing into the computed weight is silently lost."""
    torch.manual_seed(0)
    layer = apply_weight_norm(nn.Linear(8, 8))
    before = layer.weight.detach().clone()
    nn.init.orthogonal_(layer.weight, gain=3.0)
    torch.testing.assert_close(layer.weight.detach(), before)


@pytest.mark.parametrize("shape", [(8, 8), (4, 16), (16, 4)])
@pytest.mark.parametrize("gain", [1.0, math.sqrt(2), 0.01])
def test_orthogonal_on_wn_linear(shape, gain):
    torch.manual_seed(0)
    layer = apply_weight_norm(nn.Linear(shape[1], shape[0]))
    orthogonal_(layer, gain=gain)
    w = layer.weight.detach()
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    torch.testing.assert_close(gram, gain**2 * torch.eye(min(shape)), atol=1e-5 * max(1, gain**2), rtol=1e-4)
    torch.testing.assert_close(layer.bias, torch.zeros(shape[0]))
    # g carries the row norms, v the direction
    torch.testing.assert_close(wn_g(layer).flatten(), w.norm(dim=1))
    torch.testing.assert_close(wn_v(layer), w)


def test_orthogonal_on_wn_conv():
    torch.manual_seed(0)
    conv = conv2d(4, 16, 3, norm="wn")
    orthogonal_(conv, gain=2.0)
    w = conv.weight.detach().flatten(1)  # (16, 36)
    torch.testing.assert_close(w @ w.T, 4.0 * torch.eye(16), atol=1e-4, rtol=1e-4)


def test_xavier_and_kaiming_variances_on_wn_layer():
    torch.manual_seed(0)
    layer = apply_weight_norm(nn.Linear(400, 300))
    xavier_uniform_(layer, gain=1.0)
    assert abs(layer.weight.var().item() - 2 / 700) / (2 / 700) < 0.05
    kaiming_normal_(layer)
    assert abs(layer.weight.var().item() - 2 / 400) / (2 / 400) < 0.05


@pytest.mark.parametrize("method", INIT_METHODS)
@pytest.mark.parametrize("norm", ["none", "wn", "wn+mobn", "ln"])
def test_init_weights_reaches_every_layer(method, norm):
    torch.manual_seed(0)
    net = nn.Sequential(conv2d(3, 8, 3, norm=norm), nn.ReLU(), nn.Flatten(), linear(8 * 4 * 4, 6, norm=norm))
    before = [p.detach().clone() for p in net.parameters()]
    init_weights_(net, method=method, gain=1.0)
    after = list(net.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after))
    if method == "orthogonal":
        w = net[3].weight.detach() if norm in ("none", "wn") else net[3][0].weight.detach()
        torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match="unknown 'lecun'; choose one of orthogonal"):
        init_weights_(nn.Linear(2, 2), method="lecun")
    with pytest.raises(ValueError, match=r"weight of shape \(3, 3\) does not fit Linear"):
        set_effective_weight_(nn.Linear(2, 2), torch.zeros(3, 3))
