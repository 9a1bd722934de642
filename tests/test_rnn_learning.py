"""The LN-LSTM policy learns sb3-contrib's own RecurrentPPO check (masked-velocity CartPole) like the plain LSTM."""

from __future__ import annotations

import pytest

from benchmarks.recurrent_learning import THRESHOLD, run_one


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ln_lstm_policy_solves_masked_velocity_cartpole():
    # one seed of benchmarks.recurrent_learning (1-3 min on one free core)
    row = run_one(("masked", "ln", 1, 50_000, 20))
    assert row["mean_return"] >= THRESHOLD, row
