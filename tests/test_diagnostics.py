"""Batch dependence as a property over all norms, and the per-layer statistics."""

import copy

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import nn

from rlnorm.diagnostics import batch_dependence, layer_statistics, train_eval_gap
from rlnorm.layers import LAYER_NORMS, conv2d, linear

BATCH_INDEPENDENT = ("none", "wn", "ln", "gn", "in", "rms")
BATCH_DEPENDENT = ("bn", "brn", "sn", "wn+mobn")
assert set(BATCH_INDEPENDENT) | set(BATCH_DEPENDENT) == set(LAYER_NORMS)


def _net(norm: str, channels: int) -> nn.Module:
    return nn.Sequential(
        conv2d(3, channels, 3, padding=1, norm=norm),
        nn.ReLU(),
        conv2d(channels, channels, 3, stride=2, norm=norm),
        nn.ReLU(),
        nn.Flatten(),
        linear(channels * 9, 8, norm="none" if norm == "in" else norm),
    )


nets = st.builds(
    lambda norm, channels, batch, seed, scale: (norm, channels, batch, seed, scale),
    norm=st.sampled_from(LAYER_NORMS),
    channels=st.sampled_from([4, 8]),
    batch=st.integers(2, 9),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 10.0),
)


@settings(max_examples=40, deadline=None)
@given(nets)
def test_batch_dependence_property(case):
    norm, channels, batch, seed, scale = case
    torch.manual_seed(seed)
    net = _net(norm, channels)
    x = torch.randn(batch, 3, 7, 7) * scale
    net.train()
    train_dep = batch_dependence(net, x)
    if norm in BATCH_INDEPENDENT:
        assert train_dep < 1e-5
    else:
        assert train_dep > 1e-4
    net.eval()
    assert batch_dependence(net, x) < 1e-5


def test_batch_dependence_has_no_side_effects():
    torch.manual_seed(0)
    net = _net("bn", 4).train()
    state = copy.deepcopy(net.state_dict())
    batch_dependence(net, torch.randn(4, 3, 7, 7))
    assert net.training
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_batch_dependence_on_uint8_frames_and_tuple_outputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), linear(16, 4, norm="bn"))

        def forward(self, x):
            h = self.body(x.float() / 255)
            return h, h.sum(1)

    frames = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    assert batch_dependence(TwoHeads().train(), frames) > 1e-4
    assert batch_dependence(TwoHeads().eval(), frames) == 0.0


def test_batch_dependence_keeps_class_indices_in_range():
    # a Discrete(6) observation is a class index that SB3 one-hot encodes: a replacement out of range is no input
    class OneHotBN(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = linear(6, 3, norm="bn")

        def forward(self, x):
            return self.body(nn.functional.one_hot(x.long(), num_classes=6).float())

    obs = torch.tensor([0, 5, 2, 3, 1, 4])
    with pytest.raises(RuntimeError, match="num_classes"):
        batch_dependence(OneHotBN().train(), obs)  # the replacements leave the range without value_range
    assert batch_dependence(OneHotBN().train(), obs, value_range=(0, 5)) > 1e-4
    assert batch_dependence(OneHotBN().eval(), obs, value_range=(0, 5)) == 0.0


def test_diagnostics_callback_on_discrete_observations():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    import agents  # noqa: F401  (registers the policy names)
    from agents.pipeline.callbacks import NormDiagnosticsCallback

    env = make_vec_env("CliffWalking-v1", n_envs=4, seed=0)
    model = PPO("NormMlpPolicy", env, n_steps=16, batch_size=32, policy_kwargs=dict(norm="bn"), seed=0)
    callback = NormDiagnosticsCallback(32)
    model.learn(64, callback=callback)
    callback.log_now()
    assert model.logger.name_to_value["norm/batch_dependence"] > 0.0


def test_batch_dependence_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        batch_dependence(nn.Linear(2, 2), torch.randn(1, 2))


def test_train_eval_gap():
    x = torch.randn(8, 3, 7, 7)
    assert train_eval_gap(_net("bn", 4), x) > 0.1
    assert train_eval_gap(_net("wn", 4), x) == 0.0


def test_layer_statistics_tags():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 7, 7) * 2 + 3
    wn_stats = layer_statistics(_net("wn", 4))
    assert {"0/g_mean", "0/g_std", "0/v_norm_mean", "0/w_norm_mean", "5/g_mean"} <= set(wn_stats)
    bn = _net("bn", 4)
    bn_stats = layer_statistics(bn, x)
    assert bn_stats["0.1/running_var_mean"] == 1.0
    # running stats are still the initial ones, so the gap is the input's batch mean
    conv_out = bn[0][0](x)
    expected_gap = conv_out.mean((0, 2, 3)).abs().mean().item()
    assert abs(bn_stats["0.1/batch_mean_gap"] - expected_gap) < 1e-5
    ln_stats = layer_statistics(_net("ln", 4))
    assert ln_stats["0.1/gain_mean"] == 1.0
