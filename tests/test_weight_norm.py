"""Weight normalization: closed-form gradients, data-dependent init, mean-only BN, caching."""

import pytest
import torch
from torch import nn

from rlnorm.layers import conv2d, linear
from rlnorm.weight_norm import (
    MeanOnlyBatchNorm,
    apply_weight_norm,
    cached,
    data_dependent_init_,
    enable_weight_cache,
    is_weight_normalized,
    remove_weight_norm,
    set_inference_cache,
    wn_g,
    wn_v,
)


@pytest.mark.parametrize("seed", range(5))
def test_gradients_match_closed_form(seed):
    torch.manual_seed(seed)
    layer = apply_weight_norm(nn.Linear(7, 5, bias=False))
    with torch.no_grad():
        wn_g(layer).copy_(torch.randn_like(wn_g(layer)))
        wn_v(layer).copy_(torch.randn_like(wn_v(layer)))
    upstream = torch.randn(5, 7)
    (layer.weight * upstream).sum().backward()  # so dL/dw = upstream

    g, v = wn_g(layer).detach(), wn_v(layer).detach()
    v_norm = v.norm(dim=1, keepdim=True)
    grad_g = (upstream * v).sum(dim=1, keepdim=True) / v_norm
    grad_v = g / v_norm * upstream - g * grad_g / v_norm**2 * v
    torch.testing.assert_close(wn_g(layer).grad, grad_g, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wn_v(layer).grad, grad_v, rtol=1e-5, atol=1e-6)
    # the gradient of the direction is orthogonal to it: WN training can only grow ||v||
    torch.testing.assert_close((wn_v(layer).grad * v).sum(dim=1), torch.zeros(5), atol=1e-5, rtol=0)


def test_effective_weight_is_g_times_unit_direction():
    torch.manual_seed(0)
    conv = apply_weight_norm(nn.Conv2d(3, 4, 3))
    w = conv.weight
    norms = w.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, wn_g(conv).flatten().abs())
    assert is_weight_normalized(conv)
    with pytest.raises(ValueError, match="already weight-normalized"):
        apply_weight_norm(conv)
    remove_weight_norm(conv)
    assert not is_weight_normalized(conv)
    torch.testing.assert_close(conv.weight, w)


@pytest.mark.parametrize("norm", ["wn", "wn+mobn"])
def test_data_dependent_init_normalizes_first_batch(norm):
    torch.manual_seed(0)
    net = nn.Sequential(conv2d(3, 8, 3, norm=norm), nn.ReLU(), nn.Flatten(), linear(8 * 6 * 6, 16, norm=norm))
    x = torch.randn(64, 3, 8, 8) * 5 + 2
    data_dependent_init_(net, x)
    v = wn_v(net[0][0] if norm == "wn+mobn" else net[0])
    assert 0.02 < v.std().item() < 0.08  # v was redrawn from N(0, 0.05^2)
    net.train()
    conv_out = net[0](x)
    torch.testing.assert_close(conv_out.mean((0, 2, 3)), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(conv_out.std((0, 2, 3), unbiased=False), torch.ones(8), atol=1e-3, rtol=0)
    hidden = net[2](net[1](conv_out))
    fc_out = net[3](hidden)
    torch.testing.assert_close(fc_out.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(fc_out.std(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)


def test_data_dependent_init_errors():
    with pytest.raises(ValueError, match="no weight-normalized layer"):
        data_dependent_init_(nn.Linear(3, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="at least 2"):
        data_dependent_init_(linear(3, 3, "wn"), torch.randn(1, 3))


def test_mean_only_batch_norm():
    torch.manual_seed(0)
    mobn = MeanOnlyBatchNorm(4, momentum=0.5)
    x = torch.randn(16, 4, 5, 5) * 3 + 7
    y = mobn(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    # no division: the spread is untouched
    torch.testing.assert_close(y.std((0, 2, 3)), x.std((0, 2, 3)))
    torch.testing.assert_close(mobn.running_mean, 0.5 * x.mean((0, 2, 3)))
    mobn.eval()
    torch.testing.assert_close(mobn(x), x - mobn.running_mean.view(1, 4, 1, 1))
    with pytest.raises(ValueError, match=r"\(N, 4, ...\)"):
        mobn(torch.randn(2, 3))


def test_weight_cache_computes_weight_once_per_forward():
    layer = apply_weight_norm(nn.Linear(4, 4))
    calls = []
    layer.parametrizations.weight[0].register_forward_hook(lambda *a: calls.append(1))

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(self.layer(x))

    model = Twice()
    x = torch.randn(3, 4)
    expected = model(x)
    assert len(calls) == 2
    calls.clear()
    enable_weight_cache(model)
    out = model(x)
    assert len(calls) == 1
    torch.testing.assert_close(out, expected)
    out.sum().backward()  # gradients still reach g and v
    assert wn_g(layer).grad is not None and wn_v(layer).grad is not None
    calls.clear()
    with cached():
        model(x)
        model(x)
    assert len(calls) == 1


def test_inference_cache_reuses_weight_until_parameters_change():
    torch.manual_seed(0)
    layer = apply_weight_norm(nn.Linear(4, 3))
    x = torch.randn(2, 4)
    with torch.no_grad():
        assert layer.weight is not layer.weight  # off by default: torch's behaviour
    set_inference_cache(layer, True)
    with torch.no_grad():
        first = layer.weight
        assert layer.weight is first  # computed once while g and v are unchanged
        out = layer(x)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).pow(2).sum().backward()  # with gradients: computed afresh, the graph reaches g and v
    assert wn_v(layer).grad is not None
    optimizer.step()
    with torch.no_grad():
        after_step = layer(x)
        assert layer.weight is not first
        expected = wn_g(layer) * wn_v(layer) / wn_v(layer).norm(dim=1, keepdim=True)
        torch.testing.assert_close(layer.weight, expected)
    assert not torch.allclose(after_step, out)
    other = apply_weight_norm(nn.Linear(4, 3))
    layer.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(layer(x), other(x))
        # writes through .data are invisible to the version counter: switching off clears the cache
        wn_g(layer).data.mul_(2.0)
        set_inference_cache(layer, False)
        torch.testing.assert_close(layer(x) - layer.bias, 2.0 * (other(x) - other.bias))


def test_inference_cache_is_not_copied():
    import copy

    layer = set_inference_cache(apply_weight_norm(nn.Linear(4, 3)), True)
    with torch.no_grad():
        layer.weight  # noqa: B018 - fills the cache
    clone = copy.deepcopy(layer)
    assert clone.parametrizations.weight[0]._cached is None
    with torch.no_grad():
        wn_g(clone).mul_(3.0)
        torch.testing.assert_close(clone.weight, 3.0 * layer.weight)
