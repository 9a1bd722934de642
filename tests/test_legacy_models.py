"""Models saved by rlnorm 0.1.0 (tests/data/legacy_0_1_0, flat ``agents/`` layout, the WN data-init flag as a dict
``_extra_state``) load with today's code and act exactly as they did."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import agents  # noqa: F401 - registers the aliases and the moved module paths the zips name
from agents.policies.options import DATA_INIT_FLAG
from tests.data.legacy_0_1_0.make_models import HERE, MODELS, outputs

EXPECTED = np.load(HERE / "expected.npz")


@pytest.mark.parametrize("name", list(MODELS))
def test_legacy_model_loads_with_identical_outputs(name):
    algo, _, _, policy_kwargs, _ = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the old module paths warn
        model = algo.load(HERE / f"{name}.zip", device="cpu")
    obs = EXPECTED[f"{name}/obs"]
    got = outputs(model, obs)
    np.testing.assert_array_equal(got["actions"], EXPECTED[f"{name}/actions"])
    if "values" in got:
        np.testing.assert_allclose(got["values"], EXPECTED[f"{name}/values"], rtol=0, atol=1e-6)
    state = model.policy.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values()), "every state-dict entry is a tensor"
    if DATA_INIT_FLAG in state:  # migrated from the 0.1.0 `_extra_state` dict
        assert state[DATA_INIT_FLAG].is_floating_point()
        assert model.policy.data_init_pending is False
        assert (state[DATA_INIT_FLAG].item() == 1.0) == policy_kwargs.get("wn_data_init", False)
