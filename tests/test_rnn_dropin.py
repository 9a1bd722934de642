"""What nn.LSTM users do with an LSTM, done with WNLSTM / LNLSTM: script, trace, compile, pack, load nn.LSTM weights."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rlnorm.rnn import LNLSTM, WNLSTM

CLASSES = [WNLSTM, LNLSTM]


class Model(nn.Module):
    """A model holding an LSTM, as users script / trace / compile them."""

    def __init__(self, cls: type[nn.Module], **kwargs) -> None:
        super().__init__()
        self.rnn = cls(3, 4, num_layers=2, **kwargs)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _perturbed(cls: type[nn.Module], **kwargs) -> Model:
    torch.manual_seed(0)
    model = Model(cls, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bias", [True, False])
def test_jit_script_runs_trains_and_saves(cls, bias):
    model = _perturbed(cls, bias=bias)
    x = torch.randn(5, 2, 3)
    model(x).sum().backward()
    expected, expected_grads = model(x), _grads(model)
    model.zero_grad()
    keys = sorted(model.state_dict())
    scripted = torch.jit.script(model)
    y = scripted(x)
    torch.testing.assert_close(y, expected)
    y.sum().backward()  # the same Parameter objects receive the gradients
    for got, want in zip(_grads(model), expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert sorted(scripted.state_dict()) == keys
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.jit.load(buffer)(x), expected)
    torch.testing.assert_close(model(x), expected)  # the eager model still runs its own module


@pytest.mark.parametrize("cls", CLASSES)
def test_scripted_module_takes_state_and_episode_starts(cls):
    model = _perturbed(cls).rnn
    x, starts = torch.randn(6, 2, 3), torch.zeros(6, 2)
    starts[3, 1] = 1.0
    state = (torch.randn(2, 2, 4), torch.randn(2, 2, 4))
    expected = model(x, state, starts)
    got = torch.jit.script(model)(x, state, starts)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("cls", CLASSES)
def test_jit_trace_passes_its_check_and_generalizes(cls):
    model = _perturbed(cls)
    x = torch.randn(5, 2, 3)
    traced = torch.jit.trace(model, (x,))  # runs torch's sanity check
    other = torch.randn(7, 2, 3)
    torch.testing.assert_close(traced(other), model(other))
    traced(other).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("cls", CLASSES)
def test_torch_compile_forward_and_backward(cls):
    model = _perturbed(cls)
    x = torch.randn(5, 2, 3)
    model(x).sum().backward()
    expected, expected_grads = model(x), _grads(model)
    model.zero_grad()
    y = torch.compile(model)(x)
    y.sum().backward()
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    for got, want in zip(_grads(model), expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_matches_per_sequence_runs(cls, enforce_sorted):
    model = _perturbed(cls).rnn
    x = torch.randn(6, 3, 3)
    lengths = torch.tensor([6, 4, 2]) if enforce_sorted else torch.tensor([2, 6, 4])
    state = (torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    out, (h_n, c_n) = model(packed, state)
    y, _ = pad_packed_sequence(out)
    for b, length in enumerate(lengths.tolist()):
        y_b, (h_b, c_b) = model(x[:length, b : b + 1], (state[0][:, b : b + 1], state[1][:, b : b + 1]))
        torch.testing.assert_close(y[:length, b : b + 1], y_b)
        torch.testing.assert_close(h_n[:, b : b + 1], h_b)
        torch.testing.assert_close(c_n[:, b : b + 1], c_b)


def test_packed_sequence_gradients_reach_every_parameter():
    model = _perturbed(LNLSTM).rnn
    packed = pack_padded_sequence(torch.randn(5, 2, 3), torch.tensor([5, 3]))
    out, (_, c_n) = model(packed)
    (out.data.sum() + c_n.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_wnlstm_loads_an_nn_lstm_state_dict_and_computes_its_function(bias, batch_first):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, bias=bias, batch_first=batch_first)
    wn = WNLSTM(3, 4, num_layers=2, bias=bias, batch_first=batch_first)
    wn.load_state_dict(lstm.state_dict())
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(wn(x)[0], lstm(x)[0])


def test_lnlstm_loads_an_nn_lstm_state_dict_with_a_warning_and_remapped_gates():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.warns(UserWarning, match="not the function"):
        ln = LNLSTM.from_lstm(lstm)
    hid = 4
    for k, cell in enumerate(ln.cells):
        w = getattr(lstm, f"weight_hh_l{k}")
        b = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
        # (i, f, g, o) -> (i, f, o, g)
        torch.testing.assert_close(cell.hh.weight[2 * hid : 3 * hid], w[3 * hid :])
        torch.testing.assert_close(cell.hh.weight[3 * hid :], w[2 * hid : 3 * hid])
        torch.testing.assert_close(cell.gate_bias[: 2 * hid], b[: 2 * hid])
        torch.testing.assert_close(cell.gate_bias[2 * hid : 3 * hid], b[3 * hid :])
    other = LNLSTM(3, 4, num_layers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(other.state_dict(), ln.state_dict())


@pytest.mark.parametrize("cls", CLASSES)
def test_nn_lstm_state_dict_with_other_bias_setting_is_refused(cls):
    lstm = nn.LSTM(3, 4, bias=False)
    with pytest.raises(ValueError, match="bias"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls(3, 4).load_state_dict(lstm.state_dict())
