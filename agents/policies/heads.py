"""Normalized output heads (``head_norm``) for every policy family, and the per-action head weight norms.

``head_norm`` (policy kwarg of every norm policy) normalizes the output layers -- action logits / means,
values, Q-values and quantiles -- which ``norm`` leaves plain:

* ``"none"`` -- SB3's plain linear layers;
* ``"wn"`` -- weight norm (the effective weight, as initialized, is kept);
* ``"cosine"`` -- :class:`rlnorm.heads.CosineLinear`: every output unit has the same weight norm and the
  input's scale is divided out; ``head_kwargs=dict(scale=1.0, learn_scale=True)`` sets its scale.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rlnorm.heads import CosineLinear
from rlnorm.layers import check_norm
from rlnorm.weight_norm import apply_weight_norm, is_weight_normalized, wn_g

HEAD_NORMS: tuple[str, ...] = ("none", "wn", "cosine")
_COSINE_KWARGS = ("scale", "learn_scale")


def check_head_norm(head_norm: str, head_kwargs: dict[str, Any] | None) -> str:
    """Validate the policy kwargs ``head_norm`` and ``head_kwargs`` (before anything is built)."""
    check_norm(head_norm, HEAD_NORMS, field="policy_kwargs['head_norm']")
    unknown = set(head_kwargs or {}) - (set(_COSINE_KWARGS) if head_norm == "cosine" else set())
    if unknown:
        allowed = ", ".join(_COSINE_KWARGS) if head_norm == "cosine" else "none"
        raise ValueError(
            f"policy_kwargs['head_kwargs']: unknown {', '.join(sorted(unknown))} for head_norm={head_norm!r} "
            f"(allowed: {allowed})"
        )
    return head_norm


def normalized_head(layer: nn.Linear, head_norm: str, head_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``layer`` as a ``head_norm`` head, with the same effective weight where the head has one.

    :param layer: a plain ``nn.Linear`` output layer
    :param head_norm: one of :data:`HEAD_NORMS`
    :param head_kwargs: :class:`CosineLinear` options for ``"cosine"``
    """
    if head_norm == "none" or is_weight_normalized(layer) or isinstance(layer, CosineLinear):
        return layer
    if head_norm == "wn":
        return apply_weight_norm(layer)
    head = CosineLinear(layer.in_features, layer.out_features, **(head_kwargs or {}))
    with torch.no_grad():
        head.weight.copy_(layer.weight)
    return head.to(layer.weight.device)


def normalize_heads_(owner: nn.Module, names: list[str], head_norm: str, head_kwargs: dict[str, Any] | None) -> bool:
    """Replace the output layer of each ``owner.<name>`` (a linear layer, or the last one of a sequence).

    :return: whether anything was replaced (the caller then rebuilds its optimizer)
    """
    if head_norm == "none":
        return False
    for name in names:
        module = getattr(owner, name, None)
        if isinstance(module, nn.Linear):
            setattr(owner, name, normalized_head(module, head_norm, head_kwargs))
        elif isinstance(module, nn.Sequential):
            index = max(i for i, m in enumerate(module) if isinstance(m, nn.Linear))
            module[index] = normalized_head(module[index], head_norm, head_kwargs)
    return True


def head_weight_norms(head: nn.Module, n_actions: int) -> torch.Tensor:
    """The weight norm of each action's output unit(s) of a discrete head: ``|g_a|`` for WN, the row norm
    otherwise (a cosine head's effective norms are all its scale); rows ``a, a + n, a + 2n, ...`` (quantile heads)
    are pooled.

    :param head: the output layer (``nn.Linear``, WN or :class:`CosineLinear`)
    :param n_actions: number of actions
    """
    with torch.no_grad():
        if is_weight_normalized(head):
            norms = wn_g(head).flatten().abs()
        elif isinstance(head, CosineLinear):
            norms = head.scale.abs().expand(head.out_features)
        else:
            norms = head.weight.norm(dim=1)
        return norms.reshape(-1, n_actions).pow(2).sum(0).sqrt()


def discrete_head(policy: nn.Module) -> nn.Module | None:
    """The output layer whose rows are the actions of a discrete-action policy (action logits, Q-values or
    quantiles), or ``None`` where the policy has none (continuous actions)."""
    for path in ("action_net", "q_net.q_net", "quantile_net.quantile_net"):
        module: nn.Module | None = policy
        for name in path.split("."):
            module = getattr(module, name, None)
        if isinstance(module, nn.Sequential):
            module = [m for m in module if isinstance(m, nn.Linear)][-1]
        if isinstance(module, nn.Linear):
            return module
    return None
