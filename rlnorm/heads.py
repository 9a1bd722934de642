"""Normalized output layers: heads whose units cannot win by growing their weights.

:class:`CosineLinear` is the fixed-norm ("cosine") head. Weight-normalized heads are
:func:`rlnorm.weight_norm.apply_weight_norm` on a plain ``nn.Linear``.
"""

from __future__ import annotations

import torch
from torch import nn


class CosineLinear(nn.Linear):
    """A fixed-norm ("cosine") output layer: ``y_a = s * cos(w_a, x) = s * w_a . x / (||w_a|| ||x||)``.

    Every output unit has the same weight norm and the input's scale is divided out, so no unit can win by
    growing its weight (the per-action norms of a plain policy or Q head track how often each action is
    trained). The scale ``s`` is learned or fixed; there is no bias. A subclass of ``nn.Linear``, so
    initializers (``rlnorm.init``) and ``weight_layers`` treat it as one.

    :param in_features: input size
    :param out_features: output size
    :param scale: initial (or fixed) value of ``s``
    :param learn_scale: whether ``s`` is a parameter (else a buffer)
    :param eps: added to the norms
    """

    def __init__(
        self, in_features: int, out_features: int, scale: float = 1.0, learn_scale: bool = True, eps: float = 1e-8
    ) -> None:
        super().__init__(in_features, out_features, bias=False)
        value = torch.tensor(float(scale))
        if learn_scale:
            self.scale = nn.Parameter(value)
        else:
            self.register_buffer("scale", value)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
        x = x / (x.norm(dim=-1, keepdim=True) + self.eps)
        return self.scale * nn.functional.linear(x, w)

    def extra_repr(self) -> str:
        learned = isinstance(self.scale, nn.Parameter)
        return f"{super().extra_repr()}, scale={float(self.scale):.3g}, learn_scale={learned}"
