"""Layer-normalized LSTM (Ba et al. 2016), a drop-in replacement for ``nn.LSTM`` / ``nn.LSTMCell``.

``gates = LN(W_x x) + LN(W_h h) + b`` and ``h' = o * tanh(LN(c'))``. ``LN(W_x x)`` is one batched op over all
steps; only the recurrent part loops, in TorchScript with a hand-written backward (:mod:`rlnorm.rnn.ln_kernel`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlnorm.rnn.base import LSTMBase, State, cell_call, check_sizes, lstm_uniform_
from rlnorm.rnn.ln_kernel import ln_lstm_recurrence

__all__ = ["LNLSTM", "LNLSTMCell"]


class LNLSTMCell(nn.Module):
    """A layer-normalized LSTM cell (Ba et al., 2016).

    ``gates = g_ih * LN(W_ih x) + g_hh * LN(W_hh h) + b``, ``c' = f*c + i*g``, ``h' = o * tanh(LN_c(c'))``.
    The two projections are bias-free ``nn.Linear`` layers (``ih``, ``hh``); their LN gains are separate
    (``ln_ih``, ``ln_hh``) while their LN biases would be redundant with ``b`` and are folded into it.
    ``LN_c`` has its own gain and bias. Gate layout is ``(i, f, o, g)``.

    :param input_size: number of input features
    :param hidden_size: number of hidden units
    :param bias: whether the cell has the gate bias ``b`` and the bias of ``LN_c``
    :param forget_bias: initial value of the forget-gate part of ``b`` (1.0, common practice)
    :param eps: epsilon of every LN
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        forget_bias: float = 1.0,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
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
        self.ln_c = nn.LayerNorm(hidden_size, eps=eps, bias=bias, **factory)
        if bias:
            self.gate_bias = nn.Parameter(torch.zeros(four_h, **factory))
            with torch.no_grad():
                self.gate_bias[hidden_size : 2 * hidden_size] = forget_bias
        else:
            self.register_parameter("gate_bias", None)
            self.register_buffer("_zero_c_bias", torch.zeros(hidden_size, **factory), persistent=False)

    def input_gates(self, x: Tensor) -> Tensor:
        """``g_ih * LN(W_ih x) + b`` for any leading shape (all time steps at once).

        :param x: ``(..., input_size)``
        :return: ``(..., 4 * hidden_size)``
        """
        gx = F.layer_norm(self.ih(x), (4 * self.hidden_size,), self.ln_ih.weight, None, self.eps)
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
            gx.contiguous(), h0, c0, self.hh.weight, self.ln_hh.weight, self.ln_c.weight, b_c, self.eps, episode_starts
        )

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
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LNLSTM(LSTMBase):
    """A layer-normalized ``nn.LSTM`` (Ba et al., 2016), stacked from :class:`LNLSTMCell` layers.

    Per layer, ``LN(W_ih x) + b`` is computed for all steps in one batched op; the recurrence runs in
    TorchScript with a hand-written backward.

    :param input_size: number of input features
    :param hidden_size: number of hidden units
    :param num_layers: number of stacked layers
    :param bias: whether each layer has the gate bias and the bias of ``LN_c``
    :param batch_first: input and output are ``(B, T, F)`` instead of ``(T, B, F)``
    :param dropout: dropout on the outputs of every layer but the last, in training mode
    :param bidirectional: must be ``False`` (for signature compatibility)
    :param proj_size: must be ``0`` (for signature compatibility)
    :param forget_bias: initial forget-gate bias of every layer
    :param eps: epsilon of every LN
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
        forget_bias: float = 1.0,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size)
        self.cells = nn.ModuleList(
            LNLSTMCell(input_size if k == 0 else hidden_size, hidden_size, bias, forget_bias, eps, device, dtype)
            for k in range(num_layers)
        )

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
