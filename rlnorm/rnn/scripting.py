"""TorchScript twins of :class:`~rlnorm.rnn.LNLSTM` and :class:`~rlnorm.rnn.WNLSTM`.

``torch.jit.script`` cannot compile the eager modules: the LN-LSTM's backward is an ``autograd.Function`` and the
WN-LSTM's weights come from ``torch.nn.utils.parametrize``, neither of which TorchScript supports. Both modules
therefore define ``__prepare_scriptable__``, which ``torch.jit.script`` calls and scripts the module it returns:
a twin written in TorchScript over the *same* ``Parameter`` objects and state-dict keys, so a scripted model
trains the same weights and saves with ``torch.jit.save``. The twin's recurrence is differentiated by autograd
(slower than the eager module's hand-written backward) and it takes no ``PackedSequence``.

``torch.jit.script`` also puts the twin in place of the module in the (eager) parent; in eager mode the twin
calls back into the original module, so the parent behaves as before.
"""

from __future__ import annotations

from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlnorm.rnn.ln_forms import FORMS
from rlnorm.rnn.ln_kernel import ln_lstm_recurrence_autograd

__all__ = ["ScriptableLNLSTM", "ScriptableWNLSTM"]

StateT = tuple[Tensor, Tensor]


class _Twin(nn.Module):
    """Shape handling shared by the twins (TorchScript-able); subclasses implement ``_layers``."""

    __jit_ignored_attributes__: ClassVar[list[str]] = ["_eager"]

    def __init__(self, eager: nn.Module) -> None:
        super().__init__()
        self._eager = (eager,)  # a tuple: neither a submodule nor seen by TorchScript
        self.input_size: int = eager.input_size
        self.hidden_size: int = eager.hidden_size
        self.num_layers: int = eager.num_layers
        self.batch_first: bool = eager.batch_first
        self.dropout: float = eager.dropout
        self.bias: bool = eager.bias

    def _layers(self, x: Tensor, h0: Tensor, c0: Tensor, keep: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:  # noqa: UP045
        raise NotImplementedError

    def forward(
        self,
        input: Tensor,
        hx: Optional[StateT] = None,  # noqa: UP045 (TorchScript reads typing.Optional)
        episode_starts: Optional[Tensor] = None,  # noqa: UP045
    ) -> tuple[Tensor, StateT]:
        """As the eager module's ``forward`` (no ``PackedSequence``)."""
        if not torch.jit.is_scripting():
            return self._eager[0](input, hx, episode_starts)
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
        if self.batch_first:
            x = x.transpose(0, 1)
        shape = [self.num_layers, x.size(1), self.hidden_size]
        if hx is None:
            h0 = x.new_zeros(shape)
            c0 = x.new_zeros(shape)
        else:
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        keep: Optional[Tensor] = None  # noqa: UP045
        if episode_starts is not None:
            starts = episode_starts if batched else episode_starts.unsqueeze(0 if self.batch_first else 1)
            if self.batch_first:
                starts = starts.transpose(0, 1)
            keep = (1.0 - starts.to(x.dtype)).unsqueeze(-1)
        y, h_n, c_n = self._layers(x, h0, c0, keep)
        if self.batch_first:
            y = y.transpose(0, 1)
        if not batched:
            y = y.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return y, (h_n, c_n)


class _LNCellTwin(nn.Module):
    """One LN-LSTM layer over a whole sequence, holding the eager cell's submodules and parameters."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.ih, self.hh, self.ln_ih, self.ln_hh, self.ln_c = cell.ih, cell.hh, cell.ln_ih, cell.ln_hh, cell.ln_c
        self.hidden_size: int = cell.hidden_size
        self.eps: float = cell.eps
        self.gate_bias = cell.gate_bias  # None without bias (TorchScript then drops the branches using it)
        self.register_buffer("form_code", cell.form_code)  # shared: a loaded state dict sets the form of both
        self.norm_input: list[bool] = [norms[0] for norms in FORMS.values()]
        self.norm_cell: list[bool] = [norms[1] for norms in FORMS.values()]

    def forward(self, x: Tensor, h0: Tensor, c0: Tensor, keep: Optional[Tensor]) -> tuple[Tensor, Tensor]:  # noqa: UP045
        code = int(torch.round(self.form_code))
        if self.norm_input[code]:
            gx = F.layer_norm(self.ih(x), [4 * self.hidden_size], self.ln_ih.weight, None, self.eps)
        else:
            gx = self.ih(x) * self.ln_ih.weight
        if self.gate_bias is not None:
            gx = gx + self.gate_bias
        b_c = self.ln_c.bias if self.ln_c.bias is not None else torch.zeros_like(self.ln_c.weight)
        return ln_lstm_recurrence_autograd(
            gx, h0, c0, keep, self.hh.weight, self.ln_hh.weight, self.ln_c.weight, b_c, self.eps, self.norm_cell[code]
        )


class ScriptableLNLSTM(_Twin):
    """The TorchScript twin of an :class:`~rlnorm.rnn.LNLSTM` (same parameters and state-dict keys).

    :param eager: the module to mirror
    """

    def __init__(self, eager: nn.Module) -> None:
        super().__init__(eager)
        self.cells = nn.ModuleList(_LNCellTwin(cell) for cell in eager.cells)

    def _layers(self, x: Tensor, h0: Tensor, c0: Tensor, keep: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:  # noqa: UP045
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, True)
            x, c = cell(x, h0[k], c0[k], keep)
            h_n.append(x[-1])
            c_n.append(c)
        return x, torch.stack(h_n), torch.stack(c_n)


class _WNWeight(nn.Module):
    """Holds ``weight_norm``'s ``original0`` (g) and ``original1`` (v) under their state-dict names."""

    def __init__(self, g: nn.Parameter, v: nn.Parameter) -> None:
        super().__init__()
        self.original0, self.original1 = g, v


class _WNLinearTwin(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.parametrizations.weight
        self.parametrizations = nn.ModuleDict({"weight": _WNWeight(weight.original0, weight.original1)})
        self.bias = linear.bias

    def weights(self) -> list[Tensor]:
        w = self.parametrizations["weight"]
        out = [torch._weight_norm(w.original1, w.original0, 0)]
        if self.bias is not None:
            out.append(self.bias)
        return out


class _WNCellTwin(nn.Module):
    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.ih, self.hh = _WNLinearTwin(cell.ih), _WNLinearTwin(cell.hh)


class ScriptableWNLSTM(_Twin):
    """The TorchScript twin of a :class:`~rlnorm.rnn.WNLSTM` (same parameters and state-dict keys).

    :param eager: the module to mirror
    """

    def __init__(self, eager: nn.Module) -> None:
        super().__init__(eager)
        self.cells = nn.ModuleList(_WNCellTwin(cell) for cell in eager.cells)

    def _layers(self, x: Tensor, h0: Tensor, c0: Tensor, keep: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:  # noqa: UP045
        weights: list[Tensor] = []
        for cell in self.cells:
            w_ih, w_hh = cell.ih.weights(), cell.hh.weights()
            weights += [w_ih[0], w_hh[0]] + w_ih[1:] + w_hh[1:]  # noqa: RUF005 (TorchScript: no starred lists)
        if keep is None:
            return torch.lstm(
                x, [h0, c0], weights, self.bias, self.num_layers, self.dropout, self.training, False, False
            )
        # resets inside the sequence: one step per call
        h, c = h0, c0
        ys: list[Tensor] = []
        for t in range(x.size(0)):
            y, h, c = torch.lstm(
                x[t : t + 1], [h * keep[t], c * keep[t]], weights, self.bias, self.num_layers, self.dropout,
                self.training, False, False,
            )  # fmt: skip
            ys.append(y)
        return torch.cat(ys), h, c
