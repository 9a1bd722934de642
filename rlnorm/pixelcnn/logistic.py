"""Discretized logistic mixture (PixelCNN++, Salimans et al., 2017) as per-level log-probabilities.

The ``levels`` grey values are the centres of equal bins on ``[-1, 1]``; a pixel's probability of level ``k`` is
the mixture's mass on bin ``k``, with the outer bins extended to ``-inf`` / ``+inf``, so the ``levels``
probabilities sum to one exactly. Returning the whole ``(N, levels, H, W)`` table lets the PixelCNN treat
both output heads alike (cross-entropy, sampling); it costs ``K * levels`` values per pixel, cheap for the
3-bit frames used here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Lower bound of the per-component log-scale (as in PixelCNN++).
MIN_LOG_SCALE = -7.0


def _log1mexp(a: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(a))`` for ``a < 0`` (Maechler's two-branch form; ``a`` is kept below 0)."""
    a = a.clamp(max=-1e-7)
    return torch.where(a > -0.6931, torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def discretized_logistic_log_probs(params: torch.Tensor, levels: int) -> torch.Tensor:
    """Per-level log-probabilities of a mixture of ``K`` discretized logistics.

    :param params: ``(N, 3K, H, W)``: mixture logits, means (on the ``[-1, 1]`` scale) and log-scales
    :param levels: number of grey levels
    :return: ``(N, levels, H, W)``, normalized over dim 1
    """
    if params.shape[1] % 3 != 0:
        raise ValueError(f"params must have 3K channels (logits, means, log-scales), got {params.shape[1]}")
    logit_pi, mean, log_scale = params.chunk(3, dim=1)  # each (N, K, H, W)
    log_scale = log_scale.clamp(min=MIN_LOG_SCALE)
    centres = torch.linspace(-1.0, 1.0, levels, device=params.device, dtype=params.dtype)
    half_bin = 1.0 / (levels - 1)
    # (N, K, 1, H, W) against (levels,) -> (N, K, levels, H, W)
    centred = centres.view(1, 1, -1, 1, 1) - mean.unsqueeze(2)
    inv_scale = torch.exp(-log_scale).unsqueeze(2)
    upper = inv_scale * (centred + half_bin)
    lower = inv_scale * (centred - half_bin)
    log_cdf_upper, log_cdf_lower = F.logsigmoid(upper), F.logsigmoid(lower)
    log_surv_upper, log_surv_lower = F.logsigmoid(-upper), F.logsigmoid(-lower)
    # mass = cdf(u) - cdf(l) = surv(l) - surv(u): take the difference of the smaller pair (left of the mean:
    # the cdfs, right of it: the survivals) so that it does not cancel
    left = log_cdf_upper + _log1mexp(log_cdf_lower - log_cdf_upper)
    right = log_surv_lower + _log1mexp(log_surv_upper - log_surv_lower)
    log_mass = torch.where(upper + lower < 0, left, right)
    first = torch.zeros(levels, dtype=torch.bool, device=params.device)
    first[0] = True
    last = torch.zeros_like(first)
    last[-1] = True
    log_mass = torch.where(first.view(1, 1, -1, 1, 1), log_cdf_upper, log_mass)
    log_mass = torch.where(last.view(1, 1, -1, 1, 1), log_surv_lower, log_mass)
    log_pi = torch.log_softmax(logit_pi, dim=1).unsqueeze(2)
    return torch.logsumexp(log_pi + log_mass, dim=1)
