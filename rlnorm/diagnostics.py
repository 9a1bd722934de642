"""Measurements of batch dependence and per-layer normalization statistics.

:func:`batch_dependence` answers the question the library is about: how far does one sample's output move
when the *other* samples of its batch change? It is exactly zero for batch-independent networks (WN, LN, GN,
IN, RMS, and every norm in eval mode) and positive for batch norm in train mode.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from rlnorm.norms import BatchNorm, SwitchableNorm
from rlnorm.torch_internals import TorchBatchNormBase
from rlnorm.weight_norm import MeanOnlyBatchNorm, is_weight_normalized, wn_g, wn_v


def _first_tensor(out: object) -> torch.Tensor:
    """The tensors of a module's output, flattened per sample and concatenated (tuples, lists, dicts)."""
    if isinstance(out, torch.Tensor):
        return out.reshape(out.shape[0], -1)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, Iterable):
        parts = [_first_tensor(o) for o in out if isinstance(o, (torch.Tensor, tuple, list, dict))]
        if parts:
            return torch.cat(parts, dim=1)
    raise TypeError(f"cannot read a batched tensor from an output of type {type(out).__name__}")


@torch.no_grad()
def batch_dependence(
    module: nn.Module,
    x: torch.Tensor,
    *,
    n_trials: int = 4,
    seed: int = 0,
    value_range: tuple[float | torch.Tensor, float | torch.Tensor] | None = None,
) -> float:
    """Largest change of sample 0's output when the other samples of its batch are replaced.

    The module is copied first, so running statistics and the train/eval mode of ``module`` are untouched;
    each trial re-runs the copy from the same state. Replacements are the other samples permuted and
    perturbed with noise of their own scale, plus a constant shift, so any batch statistic changes.

    :param module: the network (in the mode to measure: ``train()`` or ``eval()``)
    :param x: a batch of at least 2 inputs
    :param n_trials: number of different replacements tried
    :param seed: seed of the replacements
    :param value_range: the inputs' valid range ``(low, high)`` (numbers, or tensors broadcast over a sample), where
        out-of-range values are not inputs at all (class indices of a discrete observation); replacements are
        rounded and clipped into it. Integer inputs are always kept in their dtype's range.
    :return: ``max |f(x')[0] - f(x)[0]|`` over the trials
    """
    if x.shape[0] < 2:
        raise ValueError(f"batch_dependence needs a batch of at least 2 samples, got shape {tuple(x.shape)}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    state = copy.deepcopy(module.state_dict())
    probe = copy.deepcopy(module)
    reference = _first_tensor(probe(x))[0]
    x_float = x.float()
    scale = x_float[1:].std().clamp_min(1e-3)
    worst = 0.0
    for trial in range(n_trials):
        probe.load_state_dict(state)
        perm = torch.randperm(x.shape[0] - 1, generator=gen) + 1
        noise = torch.randn(x[1:].shape, generator=gen).to(x.device)
        replaced = x_float[perm] + scale * (noise + trial + 1)
        x2 = x.clone()
        if not x.dtype.is_floating_point:  # keep integer images (uint8 frames) in their range
            info = torch.iinfo(x.dtype)
            replaced = replaced.round().clamp(info.min, info.max)
        if value_range is not None:
            low, high = (torch.as_tensor(v, dtype=replaced.dtype, device=replaced.device) for v in value_range)
            replaced = torch.minimum(torch.maximum(replaced.round(), low), high)
        x2[1:] = replaced.to(x.dtype)
        out = _first_tensor(probe(x2))[0]
        worst = max(worst, (out - reference).abs().max().item())
    return worst


@torch.no_grad()
def train_eval_gap(module: nn.Module, x: torch.Tensor) -> float:
    """Largest output difference between train mode (batch statistics) and eval mode (running statistics).

    Runs on a copy; zero for networks without batch-dependent layers.
    """
    probe = copy.deepcopy(module)
    probe.eval()
    eval_out = _first_tensor(probe(x))
    probe.train()
    train_out = _first_tensor(probe(x))
    return (train_out - eval_out).abs().max().item()


def _batch_moments(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [d for d in range(inputs.dim()) if d != 1]
    return inputs.mean(dims), inputs.var(dims, unbiased=False)


@torch.no_grad()
def layer_statistics(module: nn.Module, x: torch.Tensor | None = None) -> dict[str, float]:
    """Per-layer statistics of the normalizations inside ``module``, keyed ``"<layer name>/<statistic>"``.

    * weight-normalized layers: ``g_mean``, ``g_std``, ``v_norm_mean`` (the scale of the direction, which WN
      training grows), ``w_norm_mean``;
    * batch norms (incl. Switchable Norm's BN part) and mean-only BN: ``running_mean_abs``, ``running_var_mean``;
      with a batch ``x``, also the batch moments of the layer's input and their gap to the running ones
      (``batch_mean_gap`` = mean |batch mean - running mean|, ``batch_var_ratio`` = mean batch var / running var);
    * other norms with a gain (LN, GN, IN, RMS): ``gain_mean``, ``gain_std``.

    :param module: the network
    :param x: an optional batch; the forward pass runs on a copy in eval mode
    """
    stats: dict[str, float] = {}
    for name, m in module.named_modules():
        key = name or type(m).__name__
        if is_weight_normalized(m):
            g = wn_g(m).detach().flatten()
            v_norm = torch.norm_except_dim(wn_v(m).detach(), 2, 0).flatten()
            stats[f"{key}/g_mean"] = g.mean().item()
            stats[f"{key}/g_std"] = g.std().item() if g.numel() > 1 else 0.0
            stats[f"{key}/v_norm_mean"] = v_norm.mean().item()
            stats[f"{key}/w_norm_mean"] = g.abs().mean().item()
        elif isinstance(m, (BatchNorm, SwitchableNorm, TorchBatchNormBase)):
            stats[f"{key}/running_mean_abs"] = m.running_mean.abs().mean().item()
            stats[f"{key}/running_var_mean"] = m.running_var.mean().item()
        elif isinstance(m, MeanOnlyBatchNorm):
            stats[f"{key}/running_mean_abs"] = m.running_mean.abs().mean().item()
        elif isinstance(getattr(m, "weight", None), nn.Parameter) and not list(m.children()) and m.weight.dim() == 1:
            stats[f"{key}/gain_mean"] = m.weight.mean().item()
            stats[f"{key}/gain_std"] = m.weight.std().item() if m.weight.numel() > 1 else 0.0
    if x is not None:
        stats.update(_batch_vs_running(module, x))
    return stats


def _batch_vs_running(module: nn.Module, x: torch.Tensor) -> dict[str, float]:
    probe = copy.deepcopy(module).eval()
    names = {m: n for n, m in probe.named_modules()}
    stats: dict[str, float] = {}

    def hook(m: nn.Module, args: tuple, out: object) -> None:
        key = names[m] or type(m).__name__
        mean, var = _batch_moments(args[0])
        stats[f"{key}/batch_mean_gap"] = (mean - m.running_mean).abs().mean().item()
        if hasattr(m, "running_var"):
            stats[f"{key}/batch_var_ratio"] = (var.mean() / m.running_var.mean().clamp_min(1e-8)).item()

    batch_norms = (BatchNorm, SwitchableNorm, MeanOnlyBatchNorm, TorchBatchNormBase)
    handles = [m.register_forward_hook(hook) for m in probe.modules() if isinstance(m, batch_norms)]
    try:
        probe(x)
    finally:
        for h in handles:
            h.remove()
    return stats
