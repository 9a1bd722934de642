"""Norm-aware TQC (sb3-contrib) policies: normalized actor and quantile critics.

Options and BN/cache behaviour: :mod:`agents.policies.continuous`.
"""

from __future__ import annotations

from sb3_contrib.tqc.policies import Actor, Critic, TQCPolicy
from stable_baselines3.common.policies import BasePolicy

from agents.policies.base import define_aliases
from agents.policies.continuous import NormActorMixin, NormCriticMixin, NormOffPolicyMixin
from agents.policies.extractors import NormCombinedExtractor


class NormTQCActor(NormActorMixin, Actor):
    """sb3-contrib's TQC :class:`Actor` with normalized hidden layers."""


class NormTQCCritic(NormCriticMixin, Critic):
    """sb3-contrib's TQC :class:`Critic` (quantile Q-networks) with normalized hidden layers."""


class NormTQCPolicy(NormOffPolicyMixin, TQCPolicy):
    """sb3-contrib's :class:`TQCPolicy` with normalized actor and critics."""

    actor_class, critic_class = NormTQCActor, NormTQCCritic


class NormTQCCnnPolicy(NormTQCPolicy):
    """:class:`NormTQCPolicy` for channel-first images."""

    default_extractor = None


class NormTQCMultiInputPolicy(NormTQCPolicy):
    """:class:`NormTQCPolicy` for ``Dict`` observations."""

    default_extractor = NormCombinedExtractor


_ALIASES = define_aliases(
    globals(), {"Mlp": NormTQCPolicy, "Cnn": NormTQCCnnPolicy, "MultiInput": NormTQCMultiInputPolicy}, "TQC policy"
)


def tqc_aliases() -> dict[str, type[BasePolicy]]:
    """Every TQC alias name -> policy class."""
    return dict(_ALIASES)
