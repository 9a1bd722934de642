"""Activation norms: the right normalization sets (against numpy), running statistics, errors."""

import numpy as np
import pytest
import torch

from rlnorm.norms import NORM_KINDS, BatchNorm, make_norm
from rlnorm.validation import ConfigError


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(6, 8, 5, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1


def test_bn_over_n_h_w_per_channel(images):
    out = make_norm("bn", 8, spatial=True).train()(images)
    np.testing.assert_allclose(out.detach().numpy(), _normalize(images.numpy(), (0, 2, 3)), atol=1e-4)


def test_ln_over_c_h_w_per_sample(images):
    out = make_norm("ln", 8, spatial=True)(images)
    np.testing.assert_allclose(out.detach().numpy(), _normalize(images.numpy(), (1, 2, 3)), atol=1e-4)


def test_in_over_h_w_per_sample_and_channel(images):
    out = make_norm("in", 8, spatial=True)(images)
    np.testing.assert_allclose(out.detach().numpy(), _normalize(images.numpy(), (2, 3)), atol=1e-4)


def test_gn_over_channel_groups(images):
    out = make_norm("gn", 8, spatial=True, num_groups=2)(images)
    grouped = images.numpy().reshape(6, 2, 4, 5, 4)
    expected = _normalize(grouped, (2, 3, 4)).reshape(images.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-4)


def test_flat_bn_and_ln():
    x = torch.randn(10, 6) * 2 - 1
    np.testing.assert_allclose(
        make_norm("bn", 6, spatial=False)(x).detach().numpy(), _normalize(x.numpy(), (0,)), atol=1e-4
    )
    np.testing.assert_allclose(
        make_norm("ln", 6, spatial=False)(x).detach().numpy(), _normalize(x.numpy(), (1,)), atol=1e-4
    )


def test_rms_over_c_h_w_without_centring(images):
    out = make_norm("rms", 8, spatial=True)(images).detach().numpy()
    x = images.numpy()
    np.testing.assert_allclose(out, x / np.sqrt((x**2).mean(axis=(1, 2, 3), keepdims=True) + 1e-6), atol=1e-4)


def test_switchable_norm_mixes_bn_in_ln(images):
    sn = make_norm("sn", 8, spatial=True)
    x = images.numpy()
    with torch.no_grad():  # put all weight on one source at a time
        for source, axes in enumerate([(0, 2, 3), (2, 3), (1, 2, 3)]):
            sn.mean_weight.copy_(torch.full((3,), -1e4))
            sn.var_weight.copy_(torch.full((3,), -1e4))
            sn.mean_weight[source] = sn.var_weight[source] = 0.0
            np.testing.assert_allclose(sn(images).numpy(), _normalize(x, axes), atol=1e-3)
    # equal weights: mean and variance are the averages of the three sources
    sn = make_norm("sn", 8, spatial=True)
    sources = [(0, 2, 3), (2, 3), (1, 2, 3)]
    mean = sum(x.mean(axis=a, keepdims=True) for a in sources) / 3
    var = sum(x.var(axis=a, keepdims=True) for a in sources) / 3
    np.testing.assert_allclose(sn(images).detach().numpy(), (x - mean) / np.sqrt(var + 1e-5), atol=1e-3)


@pytest.mark.parametrize("kind", ["bn", "brn", "sn"])
def test_train_and_eval_outputs_differ_and_running_stats_follow_momentum(kind, images):
    norm = make_norm(kind, 8, spatial=True, momentum=0.3)
    out_train = norm.train()(images)
    expected_mean = 0.3 * images.mean((0, 2, 3))
    torch.testing.assert_close(norm.running_mean, expected_mean, atol=1e-5, rtol=1e-5)
    n = images.numel() / 8
    expected_var = 0.7 + 0.3 * images.var((0, 2, 3), unbiased=False) * n / (n - 1)
    torch.testing.assert_close(norm.running_var, expected_var, atol=1e-4, rtol=1e-4)
    out_eval = norm.eval()(images)
    assert (out_train - out_eval).abs().max() > 0.1


def test_original_bn_settings():
    from rlnorm.norms import BN_ORIGINAL_SETTINGS

    bn = make_norm("bn", 3, spatial=False, **BN_ORIGINAL_SETTINGS)
    assert isinstance(bn, BatchNorm) and bn.eps == 1e-3 and abs(bn.momentum - 3e-4) < 1e-12


def test_none_is_identity(images):
    assert make_norm("none", 8, spatial=True)(images) is images


def test_unknown_kind_lists_known_ones():
    with pytest.raises(ConfigError, match=r"norm: must be one of .*; got 'batchnorm'") as err:
        make_norm("batchnorm", 4, spatial=False)
    assert err.value.field == "norm"
    for kind in NORM_KINDS:
        assert kind in str(err.value)


def test_gn_groups_must_divide_channels():
    with pytest.raises(ValueError, match="num_groups=3 must be >= 1 and divide num_features=8"):
        make_norm("gn", 8, spatial=True, num_groups=3)


def test_instance_norm_needs_spatial_input():
    with pytest.raises(ValueError, match="instance norm needs spatial"):
        make_norm("in", 8, spatial=False)


@pytest.mark.parametrize("kind", [k for k in NORM_KINDS if k != "none"])
def test_wrong_input_rank_is_rejected(kind):
    norm = make_norm(kind, 8, spatial=True)
    with pytest.raises(ValueError, match=r"expects a 4-D input \(N, C, H, W\), got shape \(2, 8\)"):
        norm(torch.randn(2, 8))
    if kind != "in":
        flat = make_norm(kind, 8, spatial=False)
        with pytest.raises(ValueError, match="expects a 2-D input"):
            flat(torch.randn(2, 8, 3, 3))


def test_bad_option_names_the_norm():
    with pytest.raises(ValueError, match="norm 'ln': bad option"):
        make_norm("ln", 4, spatial=False, momentum=0.1)


def test_flat_switchable_norm_mixes_bn_and_ln():
    x = torch.randn(12, 6, generator=torch.Generator().manual_seed(1)) * 2 + 1
    sn = make_norm("sn", 6, spatial=False)
    a = x.numpy()
    mean = (a.mean(axis=0, keepdims=True) + a.mean(axis=1, keepdims=True)) / 2
    var = (a.var(axis=0, keepdims=True) + a.var(axis=1, keepdims=True)) / 2
    np.testing.assert_allclose(sn(x).detach().numpy(), (a - mean) / np.sqrt(var + 1e-5), atol=1e-4)
