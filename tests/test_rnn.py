"""WNLSTM / LNLSTM: equivalence with nn.LSTM, the LN-LSTM equations and gradients, shapes, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rlnorm.rnn import LNLSTM, WNLSTM, LNLSTMCell, WNLSTMCell
from rlnorm.rnn.ln_kernel import ln_lstm_recurrence
from rlnorm.rnn.ln_lstm import FORMS as LN_FORMS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def reference_ln_lstm(model: LNLSTM, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor]):
    """The LN-LSTM of ``model.form`` written out step by step with plain autograd ops, time-major, gates (i, f, o, g).

    ``ba2016`` (Ba et al. 2016) normalizes the input projection, the recurrent projection and the cell;
    ``recurrent`` only the recurrent projection (the input projection and cell keep their gain / gain and bias);
    ``recurrent+cell`` the recurrent projection and the cell.
    """
    norm_x = model.form == "ba2016"
    norm_c = model.form in ("ba2016", "recurrent+cell")
    hs, cs = [], []
    for k, cell in enumerate(model.cells):
        hid = cell.hidden_size
        h, c = hx[0][k], hx[1][k]
        outs = []
        for x_t in x.unbind(0):
            if norm_x:
                gates = F.layer_norm(x_t @ cell.ih.weight.t(), (4 * hid,), cell.ln_ih.weight, None, cell.eps)
            else:
                gates = (x_t @ cell.ih.weight.t()) * cell.ln_ih.weight
            gates = gates + F.layer_norm(h @ cell.hh.weight.t(), (4 * hid,), cell.ln_hh.weight, None, cell.eps)
            if cell.gate_bias is not None:
                gates = gates + cell.gate_bias
            i, f, o = torch.sigmoid(gates[:, : 3 * hid]).chunk(3, 1)
            g = torch.tanh(gates[:, 3 * hid :])
            c = f * c + i * g
            if norm_c:
                h = o * torch.tanh(F.layer_norm(c, (hid,), cell.ln_c.weight, cell.ln_c.bias, cell.eps))
            else:
                b_c = 0.0 if cell.ln_c.bias is None else cell.ln_c.bias
                h = o * torch.tanh(c * cell.ln_c.weight + b_c)
            outs.append(h)
        x = torch.stack(outs)
        hs.append(h)
        cs.append(c)
    return x, (torch.stack(hs), torch.stack(cs))


def _perturb_(module: nn.Module, scale: float = 0.3) -> None:
    """Move every parameter off its init (LN gains 1, biases 0) so that each one matters in a comparison."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def _state(layers: int, batch: int, hidden: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(layers, batch, hidden, dtype=dtype), torch.randn(layers, batch, hidden, dtype=dtype)


# ---------------------------------------------------------------- WN-LSTM


@pytest.mark.parametrize("num_layers,bias,batch_first", [(1, True, False), (2, True, True), (2, False, False)])
def test_wnlstm_from_lstm_matches_nn_lstm(num_layers, bias, batch_first):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6, num_layers=num_layers, bias=bias, batch_first=batch_first)
    wn = WNLSTM.from_lstm(lstm)
    x = torch.randn(4, 3, 5, requires_grad=True)
    hx = _state(num_layers, 4 if batch_first else 3, 6)
    y_ref, (h_ref, c_ref) = lstm(x, hx)
    y, (h, c) = wn(x, hx)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    (g_ref,) = torch.autograd.grad(y_ref.square().sum() + c_ref.sum(), x)
    (g,) = torch.autograd.grad(y.square().sum() + c.sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_wnlstm_g_per_gate_unit_and_scale_invariance():
    torch.manual_seed(0)
    wn = WNLSTM(5, 6, num_layers=2)
    x = torch.randn(7, 2, 5)
    y, _ = wn(x)
    for cell in wn.cells:
        for layer in (cell.ih, cell.hh):
            g = layer.parametrizations.weight.original0
            v = layer.parametrizations.weight.original1
            assert g.shape == (24, 1)  # one magnitude per row = per gate unit
            torch.testing.assert_close(g, v.norm(dim=1, keepdim=True))  # init: effective weight = v
            with torch.no_grad():
                v.mul_(torch.rand(24, 1) * 5 + 0.1)  # a row's direction is all that v carries
    torch.testing.assert_close(wn(x)[0], y)
    with torch.no_grad():
        wn.cells[0].hh.parametrizations.weight.original0.mul_(2.0)
    assert not torch.allclose(wn(x)[0], y)


def test_wnlstm_gradients_reach_g_and_v():
    torch.manual_seed(0)
    wn = WNLSTM(4, 3, num_layers=2)
    y, (_h, c) = wn(torch.randn(5, 2, 4))
    (y.sum() + c.sum()).backward()
    for name, p in wn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_wnlstm_packed_sequence_matches_nn_lstm():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6, num_layers=2)
    wn = WNLSTM.from_lstm(lstm)
    packed = pack_padded_sequence(torch.randn(4, 3, 5), torch.tensor([2, 4, 3]), enforce_sorted=False)
    hx = _state(2, 3, 6)
    y_ref, (h_ref, c_ref) = lstm(packed, hx)
    y, (h, c) = wn(packed, hx)
    torch.testing.assert_close(y.data, y_ref.data)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


def test_wnlstm_cell_matches_lstm_cell():
    torch.manual_seed(0)
    ref = nn.LSTMCell(5, 6)
    cell = WNLSTMCell(5, 6)
    with torch.no_grad():
        cell.ih.weight = ref.weight_ih.clone()
        cell.hh.weight = ref.weight_hh.clone()
        cell.ih.bias.copy_(ref.bias_ih)
        cell.hh.bias.copy_(ref.bias_hh)
    x, hx = torch.randn(3, 5), (torch.randn(3, 6), torch.randn(3, 6))
    for a, b in zip(cell(x, hx), ref(x, hx)):
        torch.testing.assert_close(a, b)
    for a, b in zip(cell(x[0]), ref(x[0])):  # unbatched, zero state
        torch.testing.assert_close(a, b)


def test_wnlstm_forget_bias_option():
    wn = WNLSTM(3, 4, forget_bias=1.0)
    torch.testing.assert_close(wn.cells[0].ih.bias[4:8], torch.ones(4))
    torch.testing.assert_close(wn.cells[0].hh.bias[4:8], torch.zeros(4))


# ---------------------------------------------------------------- LN-LSTM


FORMS = list(LN_FORMS)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("num_layers,bias,batch_first", [(1, True, False), (2, True, True), (2, False, False)])
def test_lnlstm_matches_reference_equations(num_layers, bias, batch_first, form):
    torch.manual_seed(0)
    model = LNLSTM(5, 6, num_layers=num_layers, bias=bias, batch_first=batch_first, form=form)
    _perturb_(model)
    x = torch.randn(3, 4, 5)
    hx = _state(num_layers, 3 if batch_first else 4, 6)
    y, (h, c) = model(x, hx)
    x_tm = x.transpose(0, 1) if batch_first else x
    y_ref, (h_ref, c_ref) = reference_ln_lstm(model, x_tm, hx)
    torch.testing.assert_close(y, y_ref.transpose(0, 1) if batch_first else y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


@pytest.mark.parametrize("form", FORMS)
def test_lnlstm_parameter_gradients_match_autograd_reference(form):
    torch.manual_seed(0)
    model = LNLSTM(4, 5, num_layers=2, form=form).double()
    _perturb_(model)
    x = torch.randn(6, 3, 4, dtype=torch.double)
    hx = _state(2, 3, 5, torch.double)
    w_y, w_c = torch.randn(6, 3, 5, dtype=torch.double), torch.randn(2, 3, 5, dtype=torch.double)

    def loss(out):
        y, (_, c) = out
        return (y * w_y).sum() + (c * w_c).sum()

    params = list(model.parameters())
    grads = torch.autograd.grad(loss(model(x, hx)), params)
    grads_ref = torch.autograd.grad(loss(reference_ln_lstm(model, x, hx)), params)
    for (name, _), g, g_ref in zip(model.named_parameters(), grads, grads_ref):
        torch.testing.assert_close(g, g_ref, msg=name)


@pytest.mark.parametrize("norm_c", [True, False])
def test_ln_recurrence_gradcheck(norm_c):
    torch.manual_seed(0)
    steps, batch, hid = 4, 3, 5
    dt = torch.double
    args = (
        torch.randn(steps, batch, 4 * hid, dtype=dt),
        torch.randn(batch, hid, dtype=dt),
        torch.randn(batch, hid, dtype=dt),
        torch.randn(4 * hid, hid, dtype=dt) * 0.5,
        1 + 0.2 * torch.randn(4 * hid, dtype=dt),
        1 + 0.2 * torch.randn(hid, dtype=dt),
        0.2 * torch.randn(hid, dtype=dt),
    )
    args = tuple(a.requires_grad_() for a in args)
    assert torch.autograd.gradcheck(lambda *a: ln_lstm_recurrence(*a, norm_c=norm_c), args)


@settings(max_examples=15, deadline=None)
@given(
    steps=st.integers(1, 6),
    batch=st.integers(1, 4),
    n_in=st.integers(1, 5),
    hid=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    form=st.sampled_from(FORMS),
)
def test_lnlstm_any_shape_matches_reference(steps, batch, n_in, hid, seed, form):
    torch.manual_seed(seed)
    model = LNLSTM(n_in, hid, form=form)
    _perturb_(model)
    x = torch.randn(steps, batch, n_in)
    hx = _state(1, batch, hid)
    y, (_h, c) = model(x, hx)
    y_ref, (_h_ref, c_ref) = reference_ln_lstm(model, x, hx)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c, c_ref, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the inference path (no saved tensors) gives the same numbers
        torch.testing.assert_close(model(x, hx)[0], y)


@pytest.mark.parametrize("form", FORMS)
def test_lnlstm_invariant_to_the_scale_of_normalized_weights(form):
    """Every form is invariant to the scale of W_hh; ba2016 also to that of W_ih."""
    torch.manual_seed(0)
    model = LNLSTM(5, 6, eps=1e-12, form=form).double()
    x, hx = torch.randn(8, 3, 5, dtype=torch.double), _state(1, 3, 6, torch.double)
    y, _ = model(x, hx)
    with torch.no_grad():
        model.cells[0].hh.weight.mul_(3.0)
    # only LN's eps sees the scale, and it is tiny here
    torch.testing.assert_close(model(x, hx)[0], y)
    with torch.no_grad():
        model.cells[0].ih.weight.mul_(7.0)
    if form == "ba2016":
        torch.testing.assert_close(model(x, hx)[0], y)
    else:  # the input projection keeps the magnitude of the input
        assert not torch.allclose(model(x, hx)[0], y)


@pytest.mark.parametrize("form", FORMS)
def test_lnlstm_invariance_to_input_scale_only_in_ba2016(form):
    """ba2016 sees only the direction of each input (LN of its projection), the other forms its magnitude too."""
    torch.manual_seed(0)
    model = LNLSTM(2, 6, eps=1e-12, form=form).double()
    x, hx = torch.randn(8, 3, 2, dtype=torch.double), _state(1, 3, 6, torch.double)
    y, _ = model(x, hx)
    same = torch.allclose(model(2.5 * x, hx)[0], y)
    assert same == (form == "ba2016")


@pytest.mark.parametrize("form,default", [("recurrent+cell", 0.0), ("recurrent", 0.0), ("ba2016", 1.0)])
def test_lnlstm_forget_bias_default_and_option(form, default):
    model = LNLSTM(3, 4, num_layers=2, form=form)
    for cell in model.cells:
        torch.testing.assert_close(cell.gate_bias[4:8], torch.full((4,), default))  # (i, f, o, g): f is the 2nd
        assert cell.gate_bias[:4].abs().sum() == 0 and cell.gate_bias[8:].abs().sum() == 0
    torch.testing.assert_close(LNLSTM(3, 4, forget_bias=2.5, form=form).cells[0].gate_bias[4:8], torch.full((4,), 2.5))


@pytest.mark.parametrize("form,gain", [("recurrent+cell", 0.1), ("recurrent", 0.1), ("ba2016", 1.0)])
def test_lnlstm_recurrent_gain_default_and_option(form, gain):
    cell = LNLSTM(3, 4, form=form).cells[0]
    torch.testing.assert_close(cell.ln_hh.weight, torch.full((16,), gain))
    torch.testing.assert_close(cell.ln_ih.weight, torch.ones(16))
    other = LNLSTM(3, 4, form=form, recurrent_gain=0.5).cells[0]
    torch.testing.assert_close(other.ln_hh.weight, torch.full((16,), 0.5))


def test_lnlstm_cell_steps_match_sequence():
    torch.manual_seed(0)
    model = LNLSTM(5, 6)
    _perturb_(model)
    cell: LNLSTMCell = model.cells[0]
    x, hx = torch.randn(5, 2, 5), _state(1, 2, 6)
    y, (_h_n, c_n) = model(x, hx)
    h, c = hx[0][0], hx[1][0]
    for t in range(5):
        h, c = cell(x[t], (h, c))
        torch.testing.assert_close(h, y[t])
    torch.testing.assert_close(c, c_n[0])
    h1, _ = cell(x[0, 0])  # unbatched, zero state
    torch.testing.assert_close(h1, cell(x[0, :1])[0][0])


# ---------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize("cls", [WNLSTM, LNLSTM])
def test_chunked_calls_carry_state(cls):
    torch.manual_seed(0)
    model = cls(4, 5, num_layers=2)
    x = torch.randn(6, 3, 4)
    y, (h, c) = model(x)
    state = None
    chunks = []
    for part in x.split([1, 3, 2]):
        out, state = model(part, state)
        chunks.append(out)
    torch.testing.assert_close(torch.cat(chunks), y)
    torch.testing.assert_close(state[0], h)
    torch.testing.assert_close(state[1], c)


@pytest.mark.parametrize("cls", [WNLSTM, LNLSTM])
def test_batch_independent_and_unbatched(cls):
    torch.manual_seed(0)
    model = cls(4, 5, num_layers=2)
    x = torch.randn(6, 3, 4)
    y, (h, _) = model(x)
    y0, (h0, _) = model(x[:, 1])  # unbatched: (T, F), states (layers, H)
    torch.testing.assert_close(y0, y[:, 1])
    torch.testing.assert_close(h0, h[:, 1])
    x2 = x.clone()
    x2[:, 0] += 10.0  # another sample of the batch changes
    torch.testing.assert_close(model(x2)[0][:, 1:], y[:, 1:])


@pytest.mark.parametrize("cls", [WNLSTM, LNLSTM])
def test_dropout_between_layers_only_in_training(cls):
    torch.manual_seed(0)
    model = cls(4, 5, num_layers=2, dropout=0.5)
    x = torch.randn(6, 3, 4)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])
    model.train()
    assert not torch.allclose(model(x)[0], model.eval()(x)[0])


@pytest.mark.parametrize("cls", [WNLSTM, LNLSTM])
def test_state_dict_round_trip(cls):
    torch.manual_seed(0)
    a, b = cls(4, 5, num_layers=2), cls(4, 5, num_layers=2)
    _perturb_(a)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 2, 4)
    torch.testing.assert_close(a(x)[0], b(x)[0])


@pytest.mark.parametrize("cls", [WNLSTM, LNLSTM])
def test_bad_arguments_name_the_field(cls):
    with pytest.raises(ValueError, match="hidden_size"):
        cls(4, 0)
    with pytest.raises(ValueError, match="num_layers"):
        cls(4, 5, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        cls(4, 5, dropout=1.5)
    with pytest.raises(ValueError, match="bidirectional"):
        cls(4, 5, bidirectional=True)
    with pytest.raises(ValueError, match="proj_size"):
        cls(4, 5, proj_size=2)
    model = cls(4, 5)
    with pytest.raises(ValueError, match="input_size=4"):
        model(torch.randn(3, 2, 7))
    with pytest.raises(ValueError, match=r"hx\[0\] must have shape \(1, 2, 5\)"):
        model(torch.randn(3, 2, 4), (torch.zeros(1, 3, 5), torch.zeros(1, 3, 5)))
    with pytest.raises(ValueError, match=r"2-D .* or 3-D"):
        model(torch.randn(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6, num_layers=2)
    wn, ln = WNLSTM.from_lstm(lstm), LNLSTM(5, 6, num_layers=2)
    x = torch.randn(7, 3, 5)
    for model in (wn, ln):
        y_cpu, _ = model(x)
        y_gpu, _ = model.cuda()(x.cuda())
        torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- episode_starts (resets inside a sequence)


def _stepwise_with_resets(model, x, hx, starts):
    """Reference: one step per call, zeroing the state where an episode starts (as sb3-contrib does)."""
    outs = []
    for t in range(x.size(0)):
        keep = (1.0 - starts[t]).view(1, -1, 1)
        x_t = x[t : t + 1].transpose(0, 1) if model.batch_first else x[t : t + 1]
        y, hx = model(x_t, (hx[0] * keep, hx[1] * keep))
        outs.append(y[:, 0] if model.batch_first else y[0])
    return torch.stack(outs), hx


@pytest.mark.parametrize("cls", [WNLSTM, LNLSTM])
@pytest.mark.parametrize("batch_first", [False, True])
def test_episode_starts_match_stepwise_resets(cls, batch_first):
    torch.manual_seed(0)
    model = cls(4, 5, num_layers=2, batch_first=batch_first)
    _perturb_(model)
    x, hx = torch.randn(7, 3, 4, requires_grad=True), _state(2, 3, 5)
    starts = torch.zeros(7, 3)
    starts[0, 1] = starts[3, 0] = starts[3, 2] = starts[5, 0] = 1.0
    y_ref, (h_ref, c_ref) = _stepwise_with_resets(model, x, hx, starts)
    if batch_first:
        y, (h, c) = model(x.transpose(0, 1), hx, episode_starts=starts.t())
        y = y.transpose(0, 1)
    else:
        y, (h, c) = model(x, hx, episode_starts=starts)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    grads = torch.autograd.grad((y * y_ref.detach()).sum() + c.sum(), [x, *model.parameters()])
    grads_ref = torch.autograd.grad((y_ref * y_ref.detach()).sum() + c_ref.sum(), [x, *model.parameters()])
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)
    no_reset = model(x.transpose(0, 1), hx)[0].transpose(0, 1) if batch_first else model(x, hx)[0]
    assert not torch.allclose(y, no_reset)  # the resets did change the outputs


def test_ln_recurrence_gradcheck_with_resets():
    torch.manual_seed(1)
    steps, batch, hid = 4, 3, 3
    dt = torch.double
    args = [
        torch.randn(steps, batch, 4 * hid, dtype=dt),
        torch.randn(batch, hid, dtype=dt),
        torch.randn(batch, hid, dtype=dt),
        torch.randn(4 * hid, hid, dtype=dt) * 0.5,
        1 + 0.2 * torch.randn(4 * hid, dtype=dt),
        1 + 0.2 * torch.randn(hid, dtype=dt),
        0.2 * torch.randn(hid, dtype=dt),
    ]
    args = [a.requires_grad_() for a in args]
    starts = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=dt)
    assert torch.autograd.gradcheck(lambda *a: ln_lstm_recurrence(*a, episode_starts=starts), args)


def test_episode_starts_shape_is_checked():
    with pytest.raises(ValueError, match=r"episode_starts must have shape \(6, 2\)"):
        LNLSTM(3, 4)(torch.randn(6, 2, 3), episode_starts=torch.zeros(2, 6))
