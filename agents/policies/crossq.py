"""Norm-aware CrossQ (sb3-contrib) policies.

CrossQ (Bhatt et al., 2024) drops the target network and puts sb3-contrib's ``BatchRenorm1d`` before every
linear layer of actor and critic; its ``train`` evaluates observations and next observations in one joint
critic batch and switches the batch-statistics layers on and off with ``set_bn_training_mode``, which here
switches every layer with batch statistics (rlnorm's BN/BRN/SN/mean-only BN too).

* ``CrossQ("<Norm>MlpPolicy", env)`` -- actor and critics without BatchRenorm, normalized by ``<Norm>`` as the
  other algorithms' policies (``actor_norm`` / ``critic_norm`` overrides with ``NormMlpPolicy``).
* ``CrossQ("WnBrnMlpPolicy", env)`` -- CrossQ's own BatchRenorm layout plus weight norm on the hidden linear
  layers (Palenicek et al., 2025, "Scaling Off-Policy RL with Batch and Weight Normalization").
* ``NormMlpPolicy`` with ``batch_norm=True`` keeps the BatchRenorm layout; ``norm`` is then ``"none"`` (that is
  sb3-contrib's ``MlpPolicy``) or ``"wn"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sb3_contrib.common.torch_layers import BatchRenorm1d
from sb3_contrib.crossq.policies import Actor, CrossQCritic, CrossQPolicy
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from agents.policies.base import define_aliases
from agents.policies.continuous import NormActorMixin, NormCriticMixin, NormOffPolicyMixin
from rlnorm.norms import BatchNorm, SwitchableNorm
from rlnorm.weight_norm import MeanOnlyBatchNorm, apply_weight_norm

#: Layers whose output depends on the batch in train mode (toggled by ``set_bn_training_mode``).
BATCH_STATISTICS_LAYERS: tuple[type[nn.Module], ...] = (BatchRenorm1d, BatchNorm, SwitchableNorm, MeanOnlyBatchNorm)
#: Norms that may go with CrossQ's BatchRenorm layout (``batch_norm=True``).
BATCH_RENORM_NORMS: tuple[str, ...] = ("none", "wn")

_BRN_KEYS = ("batch_norm", "batch_norm_momentum", "batch_norm_eps", "renorm_warmup_steps")


def _weight_normalize_hidden(net: nn.Module) -> None:
    """Weight-normalize every linear layer of ``net`` but the last (the output head)."""
    for layer in [m for m in net.modules() if isinstance(m, nn.Linear)][:-1]:
        apply_weight_norm(layer)


class _BatchStatisticsModes:
    """``set_bn_training_mode`` for every layer with batch statistics, not only sb3-contrib's."""

    def set_bn_training_mode(self, mode: bool) -> None:
        """Train (batch statistics, running ones updated) or eval mode for the batch-statistics layers."""
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, BATCH_STATISTICS_LAYERS):
                module.train(mode)


class NormCrossQActor(_BatchStatisticsModes, NormActorMixin, Actor):
    """sb3-contrib's CrossQ :class:`Actor`: normalized hidden layers, or BatchRenorm (+ WN) with ``batch_norm``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._brn_kwargs = {k: kwargs[k] for k in _BRN_KEYS if k in kwargs}
        super().__init__(*args, **kwargs)

    def _rebuild_hidden(self) -> None:
        if not self._brn_kwargs.get("batch_norm", True):
            super()._rebuild_hidden()
        elif self.norm == "wn":
            for layer in [m for m in self.latent_pi.modules() if isinstance(m, nn.Linear)]:
                apply_weight_norm(layer)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._brn_kwargs)
        return data


class NormCrossQCritic(_BatchStatisticsModes, NormCriticMixin, CrossQCritic):
    """sb3-contrib's :class:`CrossQCritic`: normalized Q-networks, or BatchRenorm (+ WN) with ``batch_norm``."""

    def _rebuild_q_networks(self) -> None:
        if not self._critic_kwargs.get("batch_norm", True):
            super()._rebuild_q_networks()
        elif self.norm == "wn":
            for q_net in self.q_networks:
                _weight_normalize_hidden(q_net)


class NormCrossQPolicy(NormOffPolicyMixin, CrossQPolicy):
    """sb3-contrib's :class:`CrossQPolicy` with normalized actor and critics.

    :param batch_norm: keep CrossQ's BatchRenorm layers (default: the class's; ``False`` for the ``<Norm>``
        names); with it ``norm`` must be one of :data:`BATCH_RENORM_NORMS`
    :param kwargs: :class:`~agents.policies.continuous.NormOffPolicyMixin` and :class:`CrossQPolicy` arguments
    """

    actor_class, critic_class = NormCrossQActor, NormCrossQCritic
    #: whether the class keeps CrossQ's BatchRenorm layout by default
    default_batch_norm: ClassVar[bool] = False

    def __init__(self, *args: Any, batch_norm: bool | None = None, **kwargs: Any) -> None:
        type(self).check_fixed_options(batch_norm=batch_norm)
        batch_norm = self.default_batch_norm if batch_norm is None else batch_norm
        super().__init__(*args, batch_norm=batch_norm, **kwargs)
        if batch_norm and not {self.actor_norm, self.critic_norm} <= set(BATCH_RENORM_NORMS):
            raise ValueError(
                f"policy_kwargs['batch_norm']=True keeps CrossQ's BatchRenorm layers, which go with norm "
                f"{' or '.join(BATCH_RENORM_NORMS)}; got actor_norm={self.actor_norm!r}, "
                f"critic_norm={self.critic_norm!r}"
            )


class WnBrnMlpPolicy(NormCrossQPolicy):
    """CrossQ's BatchRenorm layout with weight-normalized hidden layers (Palenicek et al., 2025)."""

    fixed_options: ClassVar[dict[str, Any]] = {"norm": "wn", "batch_norm": True}


_ALIASES = define_aliases(globals(), {"Mlp": NormCrossQPolicy}, "CrossQ policy")
_ALIASES["WnBrnMlpPolicy"] = WnBrnMlpPolicy


def crossq_aliases() -> dict[str, type[BasePolicy]]:
    """Every CrossQ alias name -> policy class."""
    return dict(_ALIASES)
