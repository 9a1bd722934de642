"""Norm-aware MaskablePPO (sb3-contrib) policies: same names and options as PPO's
(:mod:`agents.policies.actor_critic`), on sb3-contrib's :class:`MaskableActorCriticPolicy`."""

from __future__ import annotations

from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import BasePolicy

from agents.policies.actor_critic import NormActorCriticMixin
from agents.policies.base import define_aliases
from agents.policies.extractors import NormCombinedExtractor


class NormMaskableActorCriticPolicy(NormActorCriticMixin, MaskableActorCriticPolicy):
    """sb3-contrib's :class:`MaskableActorCriticPolicy` with normalized hidden layers."""


class NormMaskableActorCriticCnnPolicy(NormMaskableActorCriticPolicy):
    """:class:`NormMaskableActorCriticPolicy` for channel-first images."""

    default_extractor = None


class NormMaskableMultiInputActorCriticPolicy(NormMaskableActorCriticPolicy):
    """:class:`NormMaskableActorCriticPolicy` for ``Dict`` observations."""

    default_extractor = NormCombinedExtractor


_ALIASES = define_aliases(
    globals(),
    {
        "Mlp": NormMaskableActorCriticPolicy,
        "Cnn": NormMaskableActorCriticCnnPolicy,
        "MultiInput": NormMaskableMultiInputActorCriticPolicy,
    },
    "MaskablePPO policy",
)


def maskable_aliases() -> dict[str, type[BasePolicy]]:
    """Every MaskablePPO alias name -> policy class."""
    return dict(_ALIASES)
