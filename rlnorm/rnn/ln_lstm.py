"""Layer-normalized LSTM, a drop-in replacement for ``nn.LSTM`` / ``nn.LSTMCell``, in three forms.

``form="recurrent+cell"`` (the default) normalizes the recurrent projection and the cell, not the input::

    gates = g_x * (W_x x) + g_h * LN(W_h h) + b,   c' = f*c + i*g,   h' = o * tanh(g_c * LN(c') + b_c)

``form="ba2016"`` is Ba et al. (2016)'s LN-LSTM (rlnorm < 0.2, and state dicts saved then)::

    gates = g_x * LN(W_x x) + g_h * LN(W_h h) + b,   c' = f*c + i*g,   h' = o * tanh(g_c * LN(c') + b_c)

``form="recurrent"`` normalizes the recurrent projection only (``h' = o * tanh(g_c * c' + b_c)``).

Why the default departs from Ba et al. (evidence: docs/recurrent_learning.md): ``LN(W_x x)`` is invariant to
the scale of ``x``, so with the few features of an RL observation (two in masked-velocity CartPole) the cell
sees only the *direction* of each input and cannot turn positions into velocities. And with a unit gain on
``LN(W_h h)`` the recurrent input to the gates has unit variance whatever the size of ``h``, which makes the
recurrence expand at init (perturbations of ``h`` grow). The default drops only the input LN and starts like
``nn.LSTM``: gain of ``LN(W_h h)`` 0.1, forget bias 0 (short memory at init). It keeps what LN is for in a
recurrent net (the recurrent input and the cell output keep a fixed scale whatever ``h`` and ``c`` do, and the
net stays batch-independent). All forms have the same parameters (a disabled LN keeps its gain, the cell LN
its gain and bias), so state dicts and optimizer states move between forms; the form itself is stored in the
state dict (``form_code``).

``g_x * W_x x`` (or its LN) is one batched op over all steps; only the recurrent part loops, in TorchScript with
a hand-written backward (:mod:`rlnorm.rnn.ln_kernel`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rlnorm.rnn.base import LSTMBase, State, cell_call, check_sizes, check_unsupported, lstm_uniform_
from rlnorm.rnn.ln_forms import DEFAULT_FORM, FORGET_BIAS, FORMS, LEGACY_FORM, RECURRENT_GAIN, check_form
from rlnorm.rnn.ln_kernel import ln_lstm_recurrence
from rlnorm.rnn.scripting import ScriptableLNLSTM

#: ``nn.LSTM``'s gate blocks ``(i, f, g, o)`` in this module's order ``(i, f, o, g)``
LSTM_TO_LN_GATES = (0, 1, 3, 2)

__all__ = ["LNLSTM", "LNLSTMCell"]


class LNLSTMCell(nn.Module):
    """A layer-normalized LSTM cell; ``form`` chooses which LNs apply (see :mod:`rlnorm.rnn.ln_lstm`).

    ``ba2016``: ``gates = g_ih * LN(W_ih x) + g_hh * LN(W_hh h) + b``, ``c' = f*c + i*g``,
    ``h' = o * tanh(LN_c(c'))``; ``recurrent``: ``g_ih * (W_ih x)`` and ``o * tanh(g_c * c' + b_c)`` instead;
    ``recurrent+cell``: ``g_ih * (W_ih x)`` with ``LN_c``. The two projections are bias-free ``nn.Linear``
    layers (``ih``, ``hh``); their gains are separate (``ln_ih``, ``ln_hh``) while LN biases would be redundant
    with ``b`` and are folded into it. ``ln_c`` holds the cell's gain and bias. Gate layout is ``(i, f, o, g)``.

    :param input_size: number of input features
    :param hidden_size: number of hidden units
    :param bias: whether the cell has the gate bias ``b`` and the bias of ``ln_c``
    :param forget_bias: initial value of the forget-gate part of ``b``; ``None``: :data:`FORGET_BIAS` of the form
    :param eps: epsilon of every LN
    :param form: a name of :data:`FORMS`; a loaded state dict sets the form it was saved with
    :param recurrent_gain: initial gain of ``LN(W_hh h)``; ``None``: :data:`RECURRENT_GAIN` of the form
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        forget_bias: float | None = None,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        form: str = DEFAULT_FORM,
        recurrent_gain: float | None = None,
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.eps = float(eps)
        factory = {"device": device, "dtype": dtype}
        four_h = 4 * hidden_size
        self.ih = nn.Linear(input_size, four_h, bias=False, **factory)
        self.hh = nn.Linear(hidden_size, four_h, bias=False, **factory)
        lstm_uniform_(self.ih.weight.data, hidden_size)
        lstm_uniform_(self.hh.weight.data, hidden_size)
        self.ln_ih = nn.LayerNorm(four_h, eps=eps, bias=False, **factory)
        self.ln_hh = nn.LayerNorm(four_h, eps=eps, bias=False, **factory)
        with torch.no_grad():
            self.ln_hh.weight.fill_(RECURRENT_GAIN[check_form(form)] if recurrent_gain is None else recurrent_gain)
        self.ln_c = nn.LayerNorm(hidden_size, eps=eps, bias=bias, **factory)
        if bias:
            self.gate_bias = nn.Parameter(torch.zeros(four_h, **factory))
            with torch.no_grad():
                self.gate_bias[hidden_size : 2 * hidden_size] = (
                    FORGET_BIAS[check_form(form)] if forget_bias is None else forget_bias
                )
        else:
            self.register_parameter("gate_bias", None)
            self.register_buffer("_zero_c_bias", torch.zeros(hidden_size, **factory), persistent=False)
        # The form travels in the state dict as a tensor, so a saved model comes back with its own form.
        # A floating buffer like any other (SB3 and torch utilities expect those); the form's index in FORMS.
        self.register_buffer("form_code", torch.zeros((), **factory))
        self.form = check_form(form)

    @property
    def form(self) -> str:
        """Which LNs the cell applies, a name of :data:`FORMS`; setting it keeps the parameters."""
        return self._form

    @form.setter
    def form(self, form: str) -> None:
        self.form_code.fill_(list(FORMS).index(check_form(form)))
        self._form = form  # read on every call: no device sync for the buffer

    @property
    def norm_input(self) -> bool:
        """Whether the input projection is layer-normalized (else only scaled by ``ln_ih.weight``)."""
        return FORMS[self.form][0]

    @property
    def norm_cell(self) -> bool:
        """Whether the cell state is layer-normalized before the output ``tanh`` (else only scaled and shifted)."""
        return FORMS[self.form][1]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        if prefix + "hh.weight" in state_dict and prefix + "form_code" not in state_dict:
            state_dict[prefix + "form_code"] = torch.tensor(float(list(FORMS).index(LEGACY_FORM)))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        code = round(float(self.form_code))
        if not 0 <= code < len(FORMS):
            raise ValueError(f"{prefix}form_code must be one of 0..{len(FORMS) - 1} ({', '.join(FORMS)}), got {code}")
        self._form = list(FORMS)[code]

    def input_gates(self, x: Tensor) -> Tensor:
        """``g_ih * LN(W_ih x) + b`` for any leading shape (all time steps at once).

        :param x: ``(..., input_size)``
        :return: ``(..., 4 * hidden_size)``
        """
        if self.norm_input:
            gx = F.layer_norm(self.ih(x), (4 * self.hidden_size,), self.ln_ih.weight, None, self.eps)
        else:
            gx = self.ih(x) * self.ln_ih.weight
        return gx if self.gate_bias is None else gx + self.gate_bias

    def recurrence(
        self, gx: Tensor, h0: Tensor, c0: Tensor, episode_starts: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the recurrent part over precomputed input gates.

        :param gx: :meth:`input_gates` of the whole sequence, ``(T, B, 4 * hidden_size)``
        :param h0: ``(B, hidden_size)``
        :param c0: ``(B, hidden_size)``
        :param episode_starts: optional ``(T, B)`` flags: the state is zeroed before the steps where 1
        :return: the hidden states of every step ``(T, B, hidden_size)`` and the last cell state
        """
        b_c = self.ln_c.bias if self.ln_c.bias is not None else self._zero_c_bias
        return ln_lstm_recurrence(
            gx.contiguous(), h0, c0, self.hh.weight, self.ln_hh.weight, self.ln_c.weight, b_c, self.eps, episode_starts,
            self.norm_cell,
        )  # fmt: skip

    def forward(self, input: Tensor, hx: State | None = None) -> State:
        """One step, as ``nn.LSTMCell``.

        :param input: ``(B, input_size)`` or unbatched ``(input_size,)``
        :param hx: ``(h, c)``, each ``(B, hidden_size)``; zeros when omitted
        :return: the next ``(h, c)``
        """

        def step(x: Tensor, state: State) -> State:
            hs, c = self.recurrence(self.input_gates(x).unsqueeze(0), state[0], state[1])
            return hs[0], c

        return cell_call(self, input, hx, step)

    def extra_repr(self) -> str:
        bias = "" if self.bias else ", bias=False"
        return f"{self.input_size}, {self.hidden_size}{bias}, form={self.form!r}"


class LNLSTM(LSTMBase):
    """A layer-normalized ``nn.LSTM``, stacked from :class:`LNLSTMCell` layers (forms: :mod:`rlnorm.rnn.ln_lstm`).

    Per layer, the input projection (normalized in ``ba2016``) plus ``b`` is computed for all steps in one
    batched op; the recurrence runs in TorchScript with a hand-written backward. Takes a ``PackedSequence``.

    :param input_size: number of input features
    :param hidden_size: number of hidden units
    :param num_layers: number of stacked layers
    :param bias: whether each layer has the gate bias and the bias of ``LN_c``
    :param batch_first: input and output are ``(B, T, F)`` instead of ``(T, B, F)``
    :param dropout: dropout on the outputs of every layer but the last, in training mode
    :param bidirectional: must be ``False`` (for signature compatibility)
    :param proj_size: must be ``0`` (for signature compatibility)
    :param forget_bias: initial forget-gate bias of every layer; ``None``: :data:`FORGET_BIAS` of the form
    :param eps: epsilon of every LN
    :param form: ``"recurrent+cell"`` (default), ``"ba2016"`` (Ba et al.) or ``"recurrent"``, see :data:`FORMS`;
        a loaded state dict sets the form it was saved with (``ba2016`` for those saved before forms existed)
    :param recurrent_gain: initial gain of ``LN(W_hh h)``; ``None``: :data:`RECURRENT_GAIN` of the form
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        forget_bias: float | None = None,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        form: str = DEFAULT_FORM,
        recurrent_gain: float | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size)
        self.cells = nn.ModuleList(
            LNLSTMCell(
                input_size if k == 0 else hidden_size, hidden_size, bias, forget_bias, eps, device, dtype, form,
                recurrent_gain,
            )
            for k in range(num_layers)
        )  # fmt: skip

    @property
    def form(self) -> str:
        """Which LNs the layers apply, a name of :data:`FORMS` (a loaded state dict brings its own form)."""
        return self.cells[0].form

    @form.setter
    def form(self, form: str) -> None:
        for cell in self.cells:
            cell.form = form

    def extra_repr(self) -> str:
        return super().extra_repr() + f", form={self.form!r}"

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, **kwargs) -> LNLSTM:
        """An :class:`LNLSTM` holding ``lstm``'s weights (gate order remapped, ``b = b_ih + b_hh``, LN gains 1).

        Only the weights are copied: the LN-LSTM normalizes the projections and the cell, so it computes a
        different function from ``lstm`` (a warning says so). ``load_state_dict(lstm.state_dict())`` does the same.

        :param lstm: a unidirectional ``nn.LSTM`` without projection
        :param kwargs: further :class:`LNLSTM` arguments (``eps``, ``forget_bias`` is overwritten by the copy)
        :return: the new module
        """
        if not isinstance(lstm, nn.LSTM):
            raise TypeError(f"lstm must be an nn.LSTM, got {type(lstm).__name__}")
        check_unsupported(lstm.bidirectional, lstm.proj_size)
        ref = lstm.weight_ih_l0
        new = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first, lstm.dropout,
                  device=ref.device, dtype=ref.dtype, **kwargs)  # fmt: skip
        new.load_state_dict(lstm.state_dict())
        return new

    def _lstm_state_to_own(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        warnings.warn(
            "loading nn.LSTM weights into an LNLSTM: the weights are copied (gate order remapped, b = b_ih + b_hh, "
            "LN gains 1), not the function: the LN-LSTM normalizes both projections and the cell",
            UserWarning,
            stacklevel=4,
        )
        has_bias = "bias_ih_l0" in state
        if has_bias != self.bias:
            raise ValueError(f"the nn.LSTM state has bias={has_bias} but this LNLSTM has bias={self.bias}")
        own = {}
        for k, cell in enumerate(self.cells):
            pre = f"cells.{k}."

            def gates(t: Tensor, hid: int = cell.hidden_size) -> Tensor:
                return torch.cat([t[j * hid : (j + 1) * hid] for j in LSTM_TO_LN_GATES])

            own[pre + "ih.weight"] = gates(state[f"weight_ih_l{k}"])
            own[pre + "hh.weight"] = gates(state[f"weight_hh_l{k}"])
            for name in ("ln_ih.weight", "ln_hh.weight", "ln_c.weight"):
                own[pre + name] = torch.ones_like(cell.get_parameter(name))
            own[pre + "form_code"] = cell.form_code.clone()  # the weights are copied into this module's form
            if has_bias:
                own[pre + "gate_bias"] = gates(state[f"bias_ih_l{k}"] + state[f"bias_hh_l{k}"])
                own[pre + "ln_c.bias"] = torch.zeros_like(cell.ln_c.bias)
        return own

    def _scriptable(self) -> nn.Module:
        return ScriptableLNLSTM(self)

    def _run_packed(self, x: PackedSequence, hx: State | None) -> tuple[PackedSequence, State]:
        data, batch_sizes, sorted_indices, unsorted_indices = x
        sizes = batch_sizes.tolist()
        if hx is None:
            zeros = data.new_zeros(self.num_layers, sizes[0], self.hidden_size)
            hx = (zeros, zeros)
        elif sorted_indices is not None:
            hx = (hx[0].index_select(1, sorted_indices), hx[1].index_select(1, sorted_indices))
        # Sequences are sorted by length, so the batch shrinks from the end: run the recurrence on each stretch
        # of steps with a constant batch size; its time-major output is exactly that stretch of packed data.
        stretches, start = [], 0
        for t in range(1, len(sizes) + 1):
            if t == len(sizes) or sizes[t] != sizes[start]:
                stretches.append((start, t, sizes[start]))
                start = t
        h_n, c_n = [], []
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0 and self.training:
                data = F.dropout(data, self.dropout, training=True)
            gx = cell.input_gates(data)
            h, c = hx[0][k], hx[1][k]
            outs, offset = [], 0
            for t0, t1, b in stretches:
                n = (t1 - t0) * b
                hs, c_b = cell.recurrence(gx[offset : offset + n].view(t1 - t0, b, -1), h[:b], c[:b])
                outs.append(hs.reshape(n, -1))
                # rows b.. ended before this stretch; rows < b continue from here
                h = torch.cat((hs[-1], h[b:]))
                c = torch.cat((c_b, c[b:]))
                offset += n
            data = torch.cat(outs)
            h_n.append(h)
            c_n.append(c)
        h_n, c_n = torch.stack(h_n), torch.stack(c_n)
        if unsorted_indices is not None:
            h_n, c_n = h_n.index_select(1, unsorted_indices), c_n.index_select(1, unsorted_indices)
        return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices), (h_n, c_n)

    def _run(self, x: Tensor, hx: State, keep: Tensor | None) -> tuple[Tensor, State]:
        if self.batch_first:
            x = x.transpose(0, 1)
        starts = None if keep is None else 1.0 - keep
        h_n, c_n = [], []
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, training=True)
            x, c = cell.recurrence(cell.input_gates(x), hx[0][k], hx[1][k], starts)
            h_n.append(x[-1])
            c_n.append(c)
        if self.batch_first:
            x = x.transpose(0, 1)
        return x, (torch.stack(h_n), torch.stack(c_n))
