"""Weight-normalized and layer-normalized LSTMs, drop-in replacements for ``nn.LSTM`` / ``nn.LSTMCell``.

Both take the ``nn.LSTM`` constructor (``input_size, hidden_size, num_layers, bias, batch_first, dropout``) and
call signature ``forward(x, (h0, c0)) -> (y, (h_n, c_n))`` with states ``(num_layers, B, H)``; unbatched input
``(T, F)`` with states ``(num_layers, H)`` works too.

- :class:`WNLSTM` reparametrizes every row of ``W_ih`` and ``W_hh`` as ``g * v / ||v||`` (one ``g`` per gate
  unit, ``torch.nn.utils.parametrizations.weight_norm`` on ``nn.Linear`` layers), computes the normalized
  weights once per call and runs the fused ``nn.LSTM`` kernel (oneDNN on CPU, cuDNN on GPU).
- :class:`LNLSTM` follows Ba et al. (2016): ``gates = LN(W_x x) + LN(W_h h) + b`` and
  ``h' = o * tanh(LN(c'))``. ``LN(W_x x)`` is one batched op over all steps; only the recurrent part loops,
  in TorchScript with a hand-written backward (:mod:`rlnorm.rnn_ln_kernel`).
"""

from __future__ import annotations

import itertools
import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations
from torch.nn.utils.rnn import PackedSequence

from rlnorm.rnn_ln_kernel import ln_lstm_recurrence

__all__ = ["LNLSTM", "WNLSTM", "LNLSTMCell", "WNLSTMCell"]

State = tuple[Tensor, Tensor]


def _check_sizes(input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
    for field, value, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{field} must be a positive int, got {value!r}")
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
    if not 0.0 <= float(dropout) <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")


def _check_unsupported(bidirectional: bool, proj_size: int) -> None:
    # Accepted for signature compatibility with nn.LSTM; only the defaults are implemented.
    if bidirectional:
        raise ValueError("bidirectional must be False (allowed: False); use two modules for a bidirectional LSTM")
    if proj_size != 0:
        raise ValueError(f"proj_size must be 0 (allowed: 0), got {proj_size!r}")


def _uniform_(tensor: Tensor, hidden_size: int) -> None:
    """``nn.LSTM``'s default init: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    nn.init.uniform_(tensor, -bound, bound)


class _LSTMBase(nn.Module):
    """Argument checks and the input/state conventions of ``nn.LSTM``; subclasses implement ``_run``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, num_layers, dropout)
        _check_unsupported(bidirectional, proj_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = False
        self.proj_size = 0

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s

    def flatten_parameters(self) -> None:
        """No-op, for code written against ``nn.LSTM`` (the weights are computed on every call)."""

    def _run(self, x: Tensor, hx: State, keep: Tensor | None) -> tuple[Tensor, State]:
        raise NotImplementedError

    def _run_packed(self, x: PackedSequence, hx: State | None) -> tuple[PackedSequence, State]:
        raise TypeError(f"{type(self).__name__} does not accept a PackedSequence; pass a padded tensor")

    def forward(
        self, input: Tensor | PackedSequence, hx: State | None = None, *, episode_starts: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, State]:
        """Run the LSTM over a sequence.

        :param input: ``(T, B, input_size)`` (``(B, T, input_size)`` if ``batch_first``), or unbatched
            ``(T, input_size)``
        :param hx: initial ``(h0, c0)``, each ``(num_layers, B, hidden_size)`` (``(num_layers, hidden_size)``
            for unbatched input); zeros when omitted
        :param episode_starts: optional flags laid out as the first dims of ``input`` (``(T, B)``, ``(B, T)``
            if ``batch_first``, ``(T,)`` unbatched); where 1, every layer's state is zeroed before that step,
            so one call handles sequences that cross episode boundaries (an extension of ``nn.LSTM``)
        :return: ``(output, (h_n, c_n))`` with the shapes of ``nn.LSTM``
        """
        if isinstance(input, PackedSequence):
            if episode_starts is not None:
                raise ValueError("episode_starts cannot be combined with a PackedSequence input")
            return self._run_packed(input, hx)
        if input.dim() not in (2, 3):
            raise ValueError(f"input must be 2-D (unbatched) or 3-D, got shape {tuple(input.shape)}")
        if input.size(-1) != self.input_size:
            raise ValueError(f"input.size(-1) must be input_size={self.input_size}, got {input.size(-1)}")
        batched = input.dim() == 3
        lead = tuple(input.shape[:-1])  # the layout episode_starts must have
        if not batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        batch = input.size(0 if self.batch_first else 1)
        expected = (self.num_layers, batch, self.hidden_size)
        if hx is None:
            zeros = input.new_zeros(expected)
            hx = (zeros, zeros)
        else:
            if not batched:
                hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
            for name, state in (("hx[0]", hx[0]), ("hx[1]", hx[1])):
                if tuple(state.shape) != expected:
                    shown = expected if batched else (self.num_layers, self.hidden_size)
                    raise ValueError(f"{name} must have shape {shown}, got {tuple(state.shape)}")
        keep = None
        if episode_starts is not None:
            if tuple(episode_starts.shape) != lead:
                raise ValueError(f"episode_starts must have shape {lead}, got {tuple(episode_starts.shape)}")
            starts = episode_starts.reshape(input.shape[:2])
            keep = 1.0 - (starts.transpose(0, 1) if self.batch_first else starts).to(input.dtype)
        output, (h_n, c_n) = self._run(input, hx, keep)
        if not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)


class WNLSTMCell(nn.Module):
    """A weight-normalized ``nn.LSTMCell``: every row of ``W_ih`` and ``W_hh`` is ``g * v / ||v||``.

    The two projections are ``nn.Linear`` layers (``ih``, ``hh``) carrying PyTorch's ``weight_norm``
    parametrization, so ``rlnorm.weight_norm`` and ``rlnorm.init`` helpers apply to them. Gate order is
    ``nn.LSTM``'s ``(i, f, g, o)``; initialization is ``nn.LSTMCell``'s, with ``g = ||v||``.

    :param input_size: number of input features
    :param hidden_size: number of hidden units
    :param bias: whether the cell has the two bias vectors ``b_ih`` and ``b_hh``
    :param forget_bias: if given, the forget-gate part of ``b_ih`` is set to it (and of ``b_hh`` to 0)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        forget_bias: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        self.ih = nn.Linear(input_size, 4 * hidden_size, bias=bias, **factory)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size, bias=bias, **factory)
        for layer in (self.ih, self.hh):
            for p in layer.parameters():
                _uniform_(p.data, hidden_size)
        if bias and forget_bias is not None:
            with torch.no_grad():
                self.ih.bias[hidden_size : 2 * hidden_size] = forget_bias
                self.hh.bias[hidden_size : 2 * hidden_size] = 0.0
        # Applied after the init so that g = ||v|| and the effective weight is the one just drawn.
        parametrizations.weight_norm(self.ih, dim=0)
        parametrizations.weight_norm(self.hh, dim=0)

    def flat_weights(self) -> list[Tensor]:
        """The effective ``[W_ih, W_hh(, b_ih, b_hh)]`` in ``nn.LSTM``'s order, normalized once."""
        weights = [self.ih.weight, self.hh.weight]
        if self.bias:
            weights += [self.ih.bias, self.hh.bias]
        return weights

    def forward(self, input: Tensor, hx: State | None = None) -> State:
        """One step, as ``nn.LSTMCell``.

        :param input: ``(B, input_size)`` or unbatched ``(input_size,)``
        :param hx: ``(h, c)``, each ``(B, hidden_size)``; zeros when omitted
        :return: the next ``(h, c)``
        """
        w_ih, w_hh, *b = self.flat_weights()
        return _cell_call(self, input, hx, lambda x, s: torch._VF.lstm_cell(x, s, w_ih, w_hh, *(b or (None, None))))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class WNLSTM(_LSTMBase):
    """A weight-normalized ``nn.LSTM`` (one ``g`` per gate unit of ``W_ih`` and ``W_hh`` of every layer).

    The normalized weights are computed once per call and fed to the same fused kernel ``nn.LSTM`` uses, so
    with ``g = ||v||`` the output equals ``nn.LSTM``'s with the same weights (see :meth:`from_lstm`).

    :param input_size: number of input features
    :param hidden_size: number of hidden units
    :param num_layers: number of stacked layers
    :param bias: whether each layer has the bias vectors ``b_ih`` and ``b_hh``
    :param batch_first: input and output are ``(B, T, F)`` instead of ``(T, B, F)``
    :param dropout: dropout on the outputs of every layer but the last, in training mode
    :param bidirectional: must be ``False`` (for signature compatibility)
    :param proj_size: must be ``0`` (for signature compatibility)
    :param forget_bias: if given, the forget-gate part of every ``b_ih`` is set to it (``b_hh``'s to 0)
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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size)
        self.cells = nn.ModuleList(
            WNLSTMCell(input_size if k == 0 else hidden_size, hidden_size, bias, forget_bias, device, dtype)
            for k in range(num_layers)
        )

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM) -> WNLSTM:
        """A :class:`WNLSTM` whose effective weights are ``lstm``'s (``v = W``, ``g = ||W_row||``).

        :param lstm: a unidirectional ``nn.LSTM`` without projection
        :return: the weight-normalized copy
        """
        if not isinstance(lstm, nn.LSTM):
            raise TypeError(f"lstm must be an nn.LSTM, got {type(lstm).__name__}")
        ref = lstm.weight_ih_l0
        new = cls(
            lstm.input_size,
            lstm.hidden_size,
            lstm.num_layers,
            lstm.bias,
            lstm.batch_first,
            lstm.dropout,
            lstm.bidirectional,
            lstm.proj_size,
            device=ref.device,
            dtype=ref.dtype,
        )
        with torch.no_grad():
            for k, cell in enumerate(new.cells):
                # Assigning a parametrized weight calls weight_norm's right_inverse: sets g and v.
                cell.ih.weight = getattr(lstm, f"weight_ih_l{k}").detach().clone()
                cell.hh.weight = getattr(lstm, f"weight_hh_l{k}").detach().clone()
                if lstm.bias:
                    cell.ih.bias.copy_(getattr(lstm, f"bias_ih_l{k}"))
                    cell.hh.bias.copy_(getattr(lstm, f"bias_hh_l{k}"))
        return new

    def _flat_weights(self) -> list[Tensor]:
        return [w for cell in self.cells for w in cell.flat_weights()]

    def _run(self, x: Tensor, hx: State, keep: Tensor | None) -> tuple[Tensor, State]:
        weights = self._flat_weights()  # normalized once, shared by every segment below

        def fused(seq: Tensor, state: State, batch_first: bool) -> tuple[Tensor, State]:
            def call() -> tuple[Tensor, State]:
                output, h_n, c_n = torch._VF.lstm(
                    seq, state, weights, self.bias, self.num_layers, self.dropout, self.training, False, batch_first
                )
                return output, (h_n, c_n)

            if not seq.is_cuda:
                return call()
            # cuDNN asks for one contiguous weight buffer; normalized weights are new tensors every call, so
            # its compaction copy is unavoidable and the warning only noise.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
                return call()

        if keep is None:
            return fused(x, hx, self.batch_first)
        # The fused kernel cannot reset mid-sequence: run it on the segments between steps where a reset occurs.
        seq = x.transpose(0, 1) if self.batch_first else x
        cuts = torch.nonzero((keep != 1).any(dim=1)).flatten().tolist()
        bounds = [0, *[t for t in cuts if t > 0], seq.size(0)]
        outputs = []
        for start, end in itertools.pairwise(bounds):
            k = keep[start].view(1, -1, 1)
            out, hx = fused(seq[start:end], (hx[0] * k, hx[1] * k), False)
            outputs.append(out)
        output = torch.cat(outputs)
        return (output.transpose(0, 1) if self.batch_first else output), hx

    def _run_packed(self, x: PackedSequence, hx: State | None) -> tuple[PackedSequence, State]:
        data, batch_sizes, sorted_indices, unsorted_indices = x
        expected = (self.num_layers, int(batch_sizes[0]), self.hidden_size)
        if hx is None:
            zeros = data.new_zeros(expected)
            hx = (zeros, zeros)
        elif sorted_indices is not None:
            hx = (hx[0].index_select(1, sorted_indices), hx[1].index_select(1, sorted_indices))
        output, h_n, c_n = torch._VF.lstm(
            data, batch_sizes, hx, self._flat_weights(), self.bias, self.num_layers, self.dropout,
            self.training, False,
        )  # fmt: skip
        if unsorted_indices is not None:
            h_n, c_n = h_n.index_select(1, unsorted_indices), c_n.index_select(1, unsorted_indices)
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), (h_n, c_n)


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
        _check_sizes(input_size, hidden_size)
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
        _uniform_(self.ih.weight.data, hidden_size)
        _uniform_(self.hh.weight.data, hidden_size)
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

        return _cell_call(self, input, hx, step)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LNLSTM(_LSTMBase):
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


def _cell_call(cell: nn.Module, input: Tensor, hx: State | None, step) -> State:
    """Shape handling shared by the two cells (batched or unbatched input, default zero state)."""
    if input.dim() not in (1, 2):
        raise ValueError(f"input must be 1-D (unbatched) or 2-D, got shape {tuple(input.shape)}")
    if input.size(-1) != cell.input_size:
        raise ValueError(f"input.size(-1) must be input_size={cell.input_size}, got {input.size(-1)}")
    batched = input.dim() == 2
    if not batched:
        input = input.unsqueeze(0)
        hx = None if hx is None else (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
    expected = (input.size(0), cell.hidden_size)
    if hx is None:
        zeros = input.new_zeros(expected)
        hx = (zeros, zeros)
    for name, state in (("hx[0]", hx[0]), ("hx[1]", hx[1])):
        if tuple(state.shape) != expected:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(state.shape)}")
    h, c = step(input, hx)
    return (h, c) if batched else (h.squeeze(0), c.squeeze(0))
