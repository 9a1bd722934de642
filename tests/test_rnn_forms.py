"""LNLSTM forms: the default, Ba et al.'s form kept selectable, and saved models coming back with their own form."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sb3_contrib import RecurrentPPO

import agents  # noqa: F401 - registers the aliases and the module paths the legacy zips name
from rlnorm.rnn import LNLSTM, LNLSTMCell
from rlnorm.rnn.ln_lstm import DEFAULT_FORM, FORMS, LEGACY_FORM
from tests._policy_envs import cartpole_env
from tests.data.legacy_0_1_0.make_models import HERE, outputs


def test_default_form_and_choices():
    assert DEFAULT_FORM == "recurrent+cell" and LEGACY_FORM == "ba2016"
    assert LNLSTM(3, 4).form == DEFAULT_FORM
    model = LNLSTM(3, 4, num_layers=2, form="ba2016")
    assert model.form == "ba2016" and all(cell.form == "ba2016" for cell in model.cells)
    assert "form='ba2016'" in repr(model)
    with pytest.raises(ValueError, match="form must be one of ba2016, recurrent"):
        LNLSTM(3, 4, form="tf")


def test_forms_share_one_parameter_set():
    """Same names, shapes and order: a state dict or an optimizer state moves between forms."""

    def shapes(form: str) -> list[tuple[str, torch.Size]]:
        return [(n, p.shape) for n, p in LNLSTM(3, 4, num_layers=2, form=form).named_parameters()]

    assert all(shapes(form) == shapes(DEFAULT_FORM) for form in FORMS)


@pytest.mark.parametrize("saved", list(FORMS))
@pytest.mark.parametrize("built", list(FORMS))
def test_state_dict_brings_its_form(saved, built):
    torch.manual_seed(0)
    source = LNLSTM(3, 4, num_layers=2, form=saved)
    x = torch.randn(5, 2, 3)
    target = LNLSTM(3, 4, num_layers=2, form=built)
    target.load_state_dict(dict(source.state_dict()))  # a plain dict: no metadata needed
    assert target.form == saved
    torch.testing.assert_close(target(x)[0], source(x)[0])


def test_state_dict_without_form_is_the_legacy_form():
    """State dicts written before forms existed are Ba et al.'s form."""
    source = LNLSTM(3, 4, form="ba2016")
    old = {k: v for k, v in source.state_dict().items() if not k.endswith("form_code")}
    target = LNLSTM(3, 4)
    target.load_state_dict(old)
    assert target.form == "ba2016"
    cell = LNLSTMCell(3, 4)
    cell.load_state_dict({k.removeprefix("cells.0."): v for k, v in old.items()})
    assert cell.form == "ba2016"


def test_legacy_rppo_ln_lstm_zip_loads_in_ba2016_form_and_acts_identically():
    expected = np.load(HERE / "expected.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the 0.1 module paths warn
        model = RecurrentPPO.load(HERE / "rppo_ln_lstm.zip", device="cpu")
    assert model.policy.lstm_actor.form == "ba2016" and model.policy.lstm_critic.form == "ba2016"
    got = outputs(model, expected["rppo_ln_lstm/obs"])
    np.testing.assert_array_equal(got["actions"], expected["rppo_ln_lstm/actions"])
    model.set_env(cartpole_env(2, seed=0))
    model.learn(32)  # the optimizer state matched the parameters


@pytest.mark.parametrize("form", [None, "ba2016"])
def test_policy_saves_and_loads_its_form(tmp_path, form):
    kwargs = {} if form is None else {"lstm_kwargs": {"form": form}}
    model = RecurrentPPO(
        "LnLstmPolicy", cartpole_env(2, seed=0), n_steps=16, batch_size=16, seed=0,
        policy_kwargs={"lstm_hidden_size": 8, "net_arch": [8], **kwargs},
    )  # fmt: skip
    assert model.policy.lstm_actor.form == (form or DEFAULT_FORM)
    model.learn(32)
    model.save(tmp_path / "m.zip")
    loaded = RecurrentPPO.load(tmp_path / "m.zip", device="cpu")
    assert loaded.policy.lstm_actor.form == (form or DEFAULT_FORM)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(outputs(loaded, obs)["actions"], outputs(model, obs)["actions"])
