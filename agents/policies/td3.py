"""Norm-aware TD3 and DDPG policies (DDPG uses TD3's policy classes, as in SB3).

Options and BN/cache behaviour: :mod:`agents.policies.continuous`.
"""

from __future__ import annotations

from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn

from agents.policies.base import define_aliases
from agents.policies.continuous import NormActorMixin, NormOffPolicyMixin
from agents.policies.extractors import NormCombinedExtractor
from agents.policies.sac import NormContinuousCritic


class NormTD3Actor(NormActorMixin, Actor):
    """SB3's TD3 :class:`Actor` (deterministic, tanh output) with normalized hidden layers."""

    def _rebuild_hidden(self) -> None:
        last = self.net_arch[-1] if self.net_arch else self.features_dim
        head = nn.Linear(last, get_action_dim(self.action_space))
        self.mu = nn.Sequential(*self._hidden(), head, nn.Tanh())


class NormTD3Policy(NormOffPolicyMixin, TD3Policy):
    """SB3's :class:`TD3Policy` with normalized actor and critics (options: :class:`NormOffPolicyMixin`)."""

    actor_class, critic_class = NormTD3Actor, NormContinuousCritic


class NormTD3CnnPolicy(NormTD3Policy):
    """:class:`NormTD3Policy` for channel-first images."""

    default_extractor = None


class NormTD3MultiInputPolicy(NormTD3Policy):
    """:class:`NormTD3Policy` for ``Dict`` observations."""

    default_extractor = NormCombinedExtractor


_ALIASES = define_aliases(
    globals(),
    {"Mlp": NormTD3Policy, "Cnn": NormTD3CnnPolicy, "MultiInput": NormTD3MultiInputPolicy},
    "TD3/DDPG policy",
)


def td3_aliases() -> dict[str, type[BasePolicy]]:
    """Every TD3/DDPG alias name -> policy class."""
    return dict(_ALIASES)
