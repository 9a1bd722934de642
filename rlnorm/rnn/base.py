"""What the project's LSTMs share: ``nn.LSTM``'s argument checks, input and state conventions, its default init.

:class:`LSTMBase` handles batched / unbatched / batch-first input, ``PackedSequence``, the ``episode_starts``
resets, ``nn.LSTM`` state dicts and TorchScript; a subclass implements ``_run`` (one padded sequence),
``_run_packed``, ``_lstm_state_to_own`` (an ``nn.LSTM`` state dict in its own keys) and ``_scriptable``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

State = tuple[Tensor, Tensor]


def check_sizes(input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
    for field, value, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{field} must be a positive int, got {value!r}")
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
    if not 0.0 <= float(dropout) <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")


def check_unsupported(bidirectional: bool, proj_size: int) -> None:
    # Accepted for signature compatibility with nn.LSTM; only the defaults are implemented.
    if bidirectional:
        raise ValueError("bidirectional must be False (allowed: False); use two modules for a bidirectional LSTM")
    if proj_size != 0:
        raise ValueError(f"proj_size must be 0 (allowed: 0), got {proj_size!r}")


def lstm_uniform_(tensor: Tensor, hidden_size: int) -> None:
    """``nn.LSTM``'s default init: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    nn.init.uniform_(tensor, -bound, bound)


class LSTMBase(nn.Module):
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
        check_sizes(input_size, hidden_size, num_layers, dropout)
        check_unsupported(bidirectional, proj_size)
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
        raise NotImplementedError

    def _lstm_state_to_own(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """``nn.LSTM``'s ``weight_ih_l{k}`` ... (no prefix) as this module's state entries (no prefix)."""
        raise NotImplementedError

    def _scriptable(self) -> nn.Module:
        raise NotImplementedError

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script calls this and scripts the returned module instead: a twin with a TorchScript-able
        # forward over the same Parameter objects (rlnorm.rnn.scripting). torch also puts the twin in place of
        # this module in its parent; in eager mode the twin calls back into this module, so nothing changes there.
        return self._scriptable()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # An nn.LSTM state dict (weight_ih_l0, ...) is converted in place; children then load their parts.
        if prefix + "weight_ih_l0" in state_dict and not any(k.startswith(prefix + "cells.") for k in state_dict):
            lstm_keys = [k for k in list(state_dict) if k.startswith(prefix) and "." not in k[len(prefix) :]]
            own = self._lstm_state_to_own({k[len(prefix) :]: state_dict.pop(k) for k in lstm_keys})
            state_dict.update({prefix + k: v for k, v in own.items()})
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def forward(
        self, input: Tensor | PackedSequence, hx: State | None = None, episode_starts: Tensor | None = None
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


def cell_call(cell: nn.Module, input: Tensor, hx: State | None, step) -> State:
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
