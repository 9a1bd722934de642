"""Weight-normalized LSTM (Salimans & Kingma 2016), a drop-in replacement for ``nn.LSTM`` / ``nn.LSTMCell``.

:class:`WNLSTM` reparametrizes every row of ``W_ih`` and ``W_hh`` as ``g * v / ||v||`` (one ``g`` per gate unit,
``torch.nn.utils.parametrizations.weight_norm`` on ``nn.Linear`` layers), computes the normalized weights once
per call and runs the fused ``nn.LSTM`` kernel (oneDNN on CPU, cuDNN on GPU).
"""

from __future__ import annotations

import itertools
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations
from torch.nn.utils.rnn import PackedSequence

from rlnorm.rnn.base import LSTMBase, State, cell_call, check_sizes, lstm_uniform_
from rlnorm.rnn.scripting import ScriptableWNLSTM
from rlnorm.torch_internals import VF

__all__ = ["WNLSTM", "WNLSTMCell"]


# torch.compile leaves the fused RNN kernel out of its graph (as it does for nn.LSTM, dynamo's allow_rnn=False):
# inductor's CPU lowering of the kernel fails in forward+backward (aten.mkldnn_rnn_layer, torch 2.13). The weight
# normalization around it is still compiled.
@torch.compiler.disable
def _fused_lstm(
    seq: Tensor, state: State, weights: list[Tensor], bias: bool, layers: int, dropout: float, train: bool, bf: bool
) -> tuple[Tensor, Tensor, Tensor]:
    return VF.lstm(seq, state, weights, bias, layers, dropout, train, False, bf)


@torch.compiler.disable
def _fused_lstm_packed(
    data: Tensor,
    sizes: Tensor,
    state: State,
    weights: list[Tensor],
    bias: bool,
    layers: int,
    dropout: float,
    train: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    return VF.lstm(data, sizes, state, weights, bias, layers, dropout, train, False)


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
        check_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        self.ih = nn.Linear(input_size, 4 * hidden_size, bias=bias, **factory)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size, bias=bias, **factory)
        for layer in (self.ih, self.hh):
            for p in layer.parameters():
                lstm_uniform_(p.data, hidden_size)
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
        return cell_call(self, input, hx, lambda x, s: VF.lstm_cell(x, s, w_ih, w_hh, *(b or (None, None))))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class WNLSTM(LSTMBase):
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

    def _lstm_state_to_own(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        # The same function as the nn.LSTM: v = W, g = ||W_row|| (weight_norm's right inverse).
        if ("bias_ih_l0" in state) != self.bias:
            raise ValueError(f"the nn.LSTM state has bias={'bias_ih_l0' in state} but this WNLSTM has bias={self.bias}")
        own = {}
        for k in range(self.num_layers):
            for part in ("ih", "hh"):
                w = state[f"weight_{part}_l{k}"]
                own[f"cells.{k}.{part}.parametrizations.weight.original0"] = w.norm(dim=1, keepdim=True)
                own[f"cells.{k}.{part}.parametrizations.weight.original1"] = w
                if self.bias:
                    own[f"cells.{k}.{part}.bias"] = state[f"bias_{part}_l{k}"]
        return own

    def _scriptable(self) -> nn.Module:
        return ScriptableWNLSTM(self)

    def _flat_weights(self) -> list[Tensor]:
        return [w for cell in self.cells for w in cell.flat_weights()]

    def _run(self, x: Tensor, hx: State, keep: Tensor | None) -> tuple[Tensor, State]:
        weights = self._flat_weights()  # normalized once, shared by every segment below

        def fused(seq: Tensor, state: State, batch_first: bool) -> tuple[Tensor, State]:
            def call() -> tuple[Tensor, State]:
                output, h_n, c_n = _fused_lstm(
                    seq, state, weights, self.bias, self.num_layers, self.dropout, self.training, batch_first
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
        output, h_n, c_n = _fused_lstm_packed(
            data, batch_sizes, hx, self._flat_weights(), self.bias, self.num_layers, self.dropout, self.training
        )
        if unsorted_indices is not None:
            h_n, c_n = h_n.index_select(1, unsorted_indices), c_n.index_select(1, unsorted_indices)
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), (h_n, c_n)
