"""The shorter forward of weight-normalized ``nn.Linear`` layers (rlnorm.weight_norm.fast_linear_forward): the same
outputs and gradients as torch's parametrization chain, torch's cache inside ``cached()``, and every copy keeps it."""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn
from torch.nn.utils import parametrize

from rlnorm.weight_norm import (
    apply_weight_norm,
    cached,
    fast_linear_forward,
    remove_weight_norm,
    set_inference_cache,
    wn_g,
    wn_v,
)


def _reference(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The layer's output through torch's path (the parametrized ``weight`` property)."""
    return nn.functional.linear(x, layer.weight, layer.bias)


def test_weight_normalized_linear_takes_the_fast_forward() -> None:
    layer = apply_weight_norm(nn.Linear(5, 3))
    assert type(layer).forward is fast_linear_forward
    assert type(apply_weight_norm(nn.Conv2d(2, 3, 3))).forward is not fast_linear_forward  # Linear only

    class Custom(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    assert type(apply_weight_norm(Custom(5, 3))).forward is not fast_linear_forward  # its own forward is kept
    removed = remove_weight_norm(apply_weight_norm(nn.Linear(5, 3)))
    assert type(removed) is nn.Linear


def test_fast_forward_matches_torch_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    layer = apply_weight_norm(nn.Linear(6, 4))
    with torch.no_grad():
        wn_g(layer).mul_(torch.linspace(0.5, 2.0, 4).view(4, 1))
    x = torch.randn(8, 6)
    out = layer(x)
    expected = _reference(layer, x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grads = torch.autograd.grad(out.square().sum(), (wn_g(layer), wn_v(layer), layer.bias))
    ref = torch.autograd.grad(expected.square().sum(), (wn_g(layer), wn_v(layer), layer.bias))
    for got, want in zip(grads, ref):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_fast_forward_defers_to_torch_cache_and_sees_data_writes() -> None:
    layer = apply_weight_norm(nn.Linear(4, 4))
    calls = []
    layer.parametrizations.weight[0].register_forward_hook(lambda *a: calls.append(1))  # hooks still run
    x = torch.randn(2, 4)
    layer(x)
    layer(x)
    assert len(calls) == 2
    calls.clear()
    with cached():
        layer(x)
        layer(x)
    assert len(calls) == 1
    # the inference cache: reused until a write through .data
    set_inference_cache(layer, True)
    with torch.no_grad():
        before = layer(x)
        wn_g(layer).data.mul_(0.5)
        torch.testing.assert_close(layer(x) - layer.bias, 0.5 * (before - layer.bias))


def test_fast_forward_with_a_second_parametrization_takes_torchs_path() -> None:
    class Double(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return 2 * w

    torch.manual_seed(0)
    layer = apply_weight_norm(nn.Linear(4, 3))
    x = torch.randn(2, 4)
    single = layer(x)
    parametrize.register_parametrization(layer, "weight", Double())
    torch.testing.assert_close(layer(x) - layer.bias, 2 * (single - layer.bias))


def test_copies_keep_the_fast_forward() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(apply_weight_norm(nn.Linear(4, 8)), nn.ReLU(), apply_weight_norm(nn.Linear(8, 2)))
    x = torch.randn(3, 4)
    expected = net(x)
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert type(clone[0]).forward is fast_linear_forward and type(clone[2]).forward is fast_linear_forward
        torch.testing.assert_close(clone(x), expected)
