"""The pseudo-count bonus reads its density from a causal evaluation: eval mode for scoring, train mode only
for the update, so batch norm's train-mode leak of a frame's later pixels cannot enter the prediction gain."""

import copy
import math

import numpy as np
import pytest
import torch

from agents.exploration import PseudoCountConfig, PseudoCountReward
from rlnorm.pixelcnn.causality import logit_dependence
from tests.test_exploration import SMALL, minatar, random_frames


def replay(env: PseudoCountReward, frames: np.ndarray, *, score_training: bool) -> tuple[np.ndarray, np.ndarray]:
    """Prediction gains and bits/dim of ``frames`` recomputed by hand on a copy of ``env``'s density model."""
    density = copy.deepcopy(env.density)
    optimizer = torch.optim.Adam(density.parameters(), lr=env.config.lr)
    optimizer.load_state_dict(copy.deepcopy(env.optimizer.state_dict()))  # not the live moment tensors
    x_all = env.encoder(frames)
    h, w = x_all.shape[-2:]
    gains, bpd = [], []

    def score(x):
        with torch.no_grad():
            return density.train(score_training).log_prob(x).item()

    for k in range(len(x_all)):
        x = x_all[k : k + 1]
        before = score(x)
        loss = -density.train().log_prob(x).sum() / (h * w)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        gains.append(score(x) - before)
        bpd.append(-before / (math.log(2.0) * h * w))
    return np.array(gains), np.array(bpd)


def test_batch_norm_density_is_scored_in_eval_mode_and_trained_in_train_mode():
    env = PseudoCountReward(minatar(1), PseudoCountConfig(norm="bn", **SMALL))
    assert env.scores_in_eval_mode
    frames = random_frames(12)
    expected_gain, expected_bpd = replay(env, frames, score_training=False)
    leaky_gain, _ = replay(env, frames, score_training=True)
    before = copy.deepcopy(env.density.state_dict())
    stats = env.observe(frames)
    np.testing.assert_allclose(stats["prediction_gain"], expected_gain, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats["bits_per_dim"], expected_bpd, rtol=1e-5)
    assert not np.allclose(stats["prediction_gain"], leaky_gain, rtol=1e-3)  # the former, non-causal gains
    # trained in train mode: the running statistics moved, and the model is left in train mode
    assert env.density.training
    assert any(not torch.equal(v, before[k]) for k, v in env.density.state_dict().items() if "running" in k)
    env.close()


@pytest.mark.parametrize("norm", ["wn", "pixel_ln"])
def test_batch_independent_densities_score_as_before(norm):
    env = PseudoCountReward(minatar(1), PseudoCountConfig(norm=norm, **SMALL))
    assert not env.scores_in_eval_mode
    frames = random_frames(10)
    env.observe(frames[:2])  # WN's data-dependent init happens on the first frames
    expected_gain, expected_bpd = replay(env, frames[2:], score_training=True)
    stats = env.observe(frames[2:])
    np.testing.assert_allclose(stats["prediction_gain"], expected_gain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["bits_per_dim"], expected_bpd, rtol=1e-5)
    env.close()


def test_the_scoring_mode_of_a_batch_norm_density_is_causal_and_train_mode_is_not():
    env = PseudoCountReward(minatar(1), PseudoCountConfig(norm="bn", **SMALL))
    env.observe(random_frames(6))
    x = env.encoder(random_frames(1, seed=3))
    pixels = [(4, 4), (6, 2)]
    assert logit_dependence(env.density, x, pixels, training=False).causal
    assert logit_dependence(env.density, x, pixels, training=True).future > 0
    np.testing.assert_allclose(env.score(x).numpy(), copy.deepcopy(env.density).eval().log_prob(x).detach().numpy())
    assert env.density.training
    env.close()
