"""The recurrent part of a layer-normalized LSTM layer, with a hand-written backward pass.

Autograd through a per-step loop records ~20 small nodes per step and computes ``dW_hh`` as ``T`` rank-``B``
updates. Here the forward and backward loops are TorchScript functions (no Python per step), the backward
loop only does the ``B x 4H @ 4H x H`` product each step, and every parameter gradient (``dW_hh``, LN gains
and biases) is one batched reduction after the loop.

Gate layout is ``(i, f, o, g)`` so the three sigmoid gates are one contiguous slice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Optional

import torch
from torch import Tensor

__all__ = ["ln_lstm_recurrence", "ln_lstm_recurrence_autograd"]


def _script(fn: Callable) -> Callable:
    """TorchScript ``fn`` while this torch still can; the eager function computes the same, only slower.

    TorchScript is deprecated in torch 2.13 but still the cheapest way to run a dynamic-length loop without
    Python overhead per op: ``torch.compile`` needs a C++ toolchain and recompiles per sequence length.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(fn)
    except (RuntimeError, AttributeError, NotImplementedError):  # TorchScript removed or unable
        return fn


@_script
def _forward_loop(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    keep: Optional[Tensor],  # noqa: UP045 (TorchScript reads typing.Optional)
    w_hh: Tensor,
    g_hh: Tensor,
    g_c: Tensor,
    b_c: Tensor,
    eps: float,
    norm_c: bool,
    save: bool,
) -> list[Tensor]:
    steps, batch = gx.size(0), gx.size(1)
    hidden = h0.size(1)
    h, c = h0, c0
    w_t = w_hh.t()
    hs = gx.new_empty((steps + 1, batch, hidden))
    hs[0] = h0
    if not save:
        for t in range(steps):
            if keep is not None:
                h, c = h * keep[t], c * keep[t]
            a_hat = torch.native_layer_norm(torch.mm(h, w_t), [4 * hidden], None, None, eps)[0]
            gates = torch.addcmul(gx[t], a_hat, g_hh)
            ifo = torch.sigmoid(gates[:, : 3 * hidden])
            g = torch.tanh(gates[:, 3 * hidden :])
            c = torch.addcmul(ifo[:, hidden : 2 * hidden] * c, ifo[:, :hidden], g)
            c_hat = torch.native_layer_norm(c, [hidden], None, None, eps)[0] if norm_c else c
            h = torch.mul(ifo[:, 2 * hidden :], torch.tanh(torch.addcmul(b_c, c_hat, g_c)), out=hs[t + 1])
        return [hs, c]
    cs = gx.new_empty((steps + 1, batch, hidden))
    cs[0] = c0
    acts = gx.new_empty((steps, batch, 4 * hidden))
    a_raw = gx.new_empty((steps, batch, 4 * hidden))
    tn = gx.new_empty((steps, batch, hidden))
    # Results go straight into the saved buffers (out=); LN statistics are recomputed in one batch for backward.
    for t in range(steps):
        if keep is not None:
            h, c = h * keep[t], c * keep[t]
        a = a_raw[t]
        torch.mm(h, w_t, out=a)
        gates = torch.addcmul(gx[t], torch.native_layer_norm(a, [4 * hidden], None, None, eps)[0], g_hh)
        act = acts[t]
        torch.sigmoid(gates[:, : 3 * hidden], out=act[:, : 3 * hidden])
        torch.tanh(gates[:, 3 * hidden :], out=act[:, 3 * hidden :])
        c = torch.addcmul(act[:, hidden : 2 * hidden] * c, act[:, :hidden], act[:, 3 * hidden :], out=cs[t + 1])
        c_hat = torch.native_layer_norm(c, [hidden], None, None, eps)[0] if norm_c else c
        th = torch.tanh(torch.addcmul(b_c, c_hat, g_c), out=tn[t])
        h = torch.mul(act[:, 2 * hidden : 3 * hidden], th, out=hs[t + 1])
    return [hs, cs, acts, a_raw, tn]


@_script
def ln_lstm_recurrence_autograd(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    keep: Optional[Tensor],  # noqa: UP045
    w_hh: Tensor,
    g_hh: Tensor,
    g_c: Tensor,
    b_c: Tensor,
    eps: float,
    norm_c: bool = True,
) -> tuple[Tensor, Tensor]:
    """The recurrence of :func:`ln_lstm_recurrence` in out-of-place ops, differentiated by autograd.

    For ``torch.jit.trace`` / ``torch.jit.script``, which can record neither the hand-written backward (an
    ``autograd.Function``) nor the ``out=`` writes of the fast loop. ``keep`` is ``1 - episode_starts``,
    ``(T, B, 1)``.
    """
    hidden = h0.size(1)
    h, c = h0, c0
    hs: list[Tensor] = []
    for t in range(gx.size(0)):
        if keep is not None:
            h, c = h * keep[t], c * keep[t]
        a_hat = torch.layer_norm(torch.mm(h, w_hh.t()), [4 * hidden], None, None, eps)
        gates = torch.addcmul(gx[t], a_hat, g_hh)
        ifo = torch.sigmoid(gates[:, : 3 * hidden])
        c = ifo[:, hidden : 2 * hidden] * c + ifo[:, :hidden] * torch.tanh(gates[:, 3 * hidden :])
        c_hat = torch.layer_norm(c, [hidden], None, None, eps) if norm_c else c
        h = ifo[:, 2 * hidden :] * torch.tanh(torch.addcmul(b_c, c_hat, g_c))
        hs.append(h)
    return torch.stack(hs), c


@_script
def _backward_loop(
    dy: Tensor,
    dc_n: Tensor,
    w_hh: Tensor,
    g_hh: Tensor,
    g_c: Tensor,
    cs: Tensor,
    c_prev: Tensor,
    keep: Optional[Tensor],  # noqa: UP045
    acts: Tensor,
    a_raw: Tensor,
    a_stats: Tensor,
    c_stats: Tensor,
    tn: Tensor,
    norm_c: bool,
) -> list[Tensor]:
    steps = dy.size(0)
    hidden = dc_n.size(1)
    four_h = 4 * hidden
    # Batched over all steps: d gates = [dc, dc, dh, dc] * k_gates (each block's local derivative times the
    # factor it multiplies), d n = dh * k_n; the loop then needs two ops for all four gates.
    i = acts[:, :, :hidden]
    f = acts[:, :, hidden : 2 * hidden]
    o = acts[:, :, 2 * hidden : 3 * hidden]
    g = acts[:, :, 3 * hidden :]
    k_gates = torch.cat((g * i * (1.0 - i), c_prev * f * (1.0 - f), tn * o * (1.0 - o), i * (1.0 - g * g)), 2)
    k_n = o * (1.0 - tn * tn)
    d_gates = torch.empty_like(acts)
    d_a = torch.empty_like(acts)
    d_n = torch.empty_like(dy)
    dh = torch.zeros_like(dc_n)
    dc = dc_n
    mask: list[bool] = [True, False, False]
    for t in range(steps - 1, -1, -1):
        dh = dh + dy[t]
        dn = torch.mul(dh, k_n[t], out=d_n[t])
        if norm_c:
            dc = (
                dc
                + torch.ops.aten.native_layer_norm_backward(
                    dn, cs[t + 1], [hidden], c_stats[0, t], c_stats[1, t], g_c, None, mask
                )[0]
            )
        else:
            dc = torch.addcmul(dc, dn, g_c)
        dg_t = torch.mul(torch.cat((dc, dc, dh, dc), 1), k_gates[t], out=d_gates[t])
        da = torch.ops.aten.native_layer_norm_backward(
            dg_t, a_raw[t], [four_h], a_stats[0, t], a_stats[1, t], g_hh, None, mask
        )[0]
        d_a[t] = da
        dh = torch.mm(da, w_hh)
        dc = dc * f[t]
        if keep is not None:  # a reset state received no gradient from this step
            dh, dc = dh * keep[t], dc * keep[t]
    return [d_gates, d_a, d_n, dh, dc]


def _ln_stats(x: Tensor, eps: float) -> Tensor:
    """``stack((mean, rstd))`` of LN over the last dim, as ``native_layer_norm`` computes them."""
    var, mean = torch.var_mean(x, -1, correction=0, keepdim=True)
    return torch.stack((mean, torch.rsqrt(var + eps)))


class _LNLSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, h0, c0, keep, w_hh, g_hh, g_c, b_c, eps, norm_c):  # type: ignore[override]
        out = _forward_loop(gx, h0, c0, keep, w_hh, g_hh, g_c, b_c, eps, norm_c, True)
        hs, cs = out[0], out[1]
        ctx.eps, ctx.norm_c = eps, norm_c
        ctx.save_for_backward(keep, w_hh, g_hh, g_c, *out)
        return hs[1:], cs[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dc_n):  # type: ignore[override]
        keep, w_hh, g_hh, g_c, hs, cs, acts, a_raw, tn = ctx.saved_tensors
        # the states that entered each step (after the resets)
        h_prev, c_prev = (hs[:-1], cs[:-1]) if keep is None else (hs[:-1] * keep, cs[:-1] * keep)
        a_stats = _ln_stats(a_raw, ctx.eps)
        c_stats = _ln_stats(cs[1:], ctx.eps) if ctx.norm_c else a_stats  # (unused without LN_c)
        dy = torch.zeros_like(hs[1:]) if dy is None else dy.contiguous()
        # h_n is y[-1], so its gradient already arrives through dy.
        dc_n = torch.zeros_like(cs[0]) if dc_n is None else dc_n.contiguous()
        d_gates, d_a, d_n, dh0, dc0 = _backward_loop(
            dy, dc_n, w_hh, g_hh, g_c, cs, c_prev, keep, acts, a_raw, a_stats, c_stats, tn, ctx.norm_c
        )
        hidden = hs.size(-1)
        d_w_hh = d_a.reshape(-1, 4 * hidden).t().mm(h_prev.reshape(-1, hidden))
        a_hat = (a_raw - a_stats[0]) * a_stats[1]
        c_hat = (cs[1:] - c_stats[0]) * c_stats[1] if ctx.norm_c else cs[1:]
        d_g_hh = (d_gates * a_hat).sum((0, 1))
        d_g_c = (d_n * c_hat).sum((0, 1))
        d_b_c = d_n.sum((0, 1))
        return d_gates, dh0, dc0, None, d_w_hh, d_g_hh, d_g_c, d_b_c, None, None


def ln_lstm_recurrence(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    g_hh: Tensor,
    g_c: Tensor,
    b_c: Tensor,
    eps: float = 1e-5,
    episode_starts: Tensor | None = None,
    norm_c: bool = True,
) -> tuple[Tensor, Tensor]:
    """Run the recurrent part of one layer-normalized LSTM layer over a whole sequence.

    Per step: ``gates = gx[t] + g_hh * LN(h W_hh^T)``, ``c = f*c + i*g``, ``h = o*tanh(g_c * LN(c) + b_c)``
    (``h = o*tanh(g_c * c + b_c)`` if not ``norm_c``) with gate layout ``(i, f, o, g)``.

    :param gx: the normalized input projection plus every gate bias for all steps, ``(T, B, 4H)``
    :param h0: initial hidden state ``(B, H)``
    :param c0: initial cell state ``(B, H)``
    :param w_hh: recurrent weight ``(4H, H)``
    :param g_hh: LN gain of the recurrent projection ``(4H,)``
    :param g_c: LN gain of the cell state ``(H,)``
    :param b_c: LN bias of the cell state ``(H,)``
    :param eps: LN epsilon
    :param episode_starts: optional ``(T, B)`` flags; where 1, ``h`` and ``c`` are zeroed before that step
        (a new episode starts there), so one call covers sequences that cross episode boundaries
    :param norm_c: whether the cell state is layer-normalized before the output ``tanh``
    :return: the hidden states of every step ``(T, B, H)`` (the last one is ``h_n``) and ``c_n`` ``(B, H)``
    """
    keep = None
    if episode_starts is not None:
        if episode_starts.shape != gx.shape[:2]:
            raise ValueError(
                f"episode_starts must have shape (T, B) = {tuple(gx.shape[:2])}, got {tuple(episode_starts.shape)}"
            )
        keep = (1.0 - episode_starts.to(gx.dtype)).unsqueeze(-1).contiguous()
    params = (w_hh, g_hh, g_c, b_c)
    if torch.jit.is_tracing():
        return ln_lstm_recurrence_autograd(gx, h0, c0, keep, *params, eps, norm_c)
    if torch.is_grad_enabled() and any(a.requires_grad for a in (gx, h0, c0, *params)):
        return _LNLSTMRecurrence.apply(gx, h0, c0, keep, *params, eps, norm_c)
    hs, c_n = _forward_loop(gx, h0, c0, keep, w_hh, g_hh, g_c, b_c, eps, norm_c, False)
    return hs[1:], c_n
