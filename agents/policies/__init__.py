"""Norm-aware Stable-Baselines3 policies, one module per algorithm family, and their string aliases.

- :mod:`~agents.policies.actor_critic`: PPO and A2C; :mod:`~agents.policies.dqn`: DQN;
  :mod:`~agents.policies.recurrent`: RecurrentPPO (WN-LSTM / LN-LSTM).
- :mod:`~agents.policies.extractors`: the norm-aware features extractors and MLPs they share;
  :mod:`~agents.policies.options`: the option checks, WN-correct init and rollout weight cache they share.
- :mod:`~agents.policies.algos`: which algorithm class and policy an experiment arm uses.

``import agents`` calls :func:`register_policies`, after which ``PPO("WnCnnPolicy", env)`` and the other names
of the README's table work.
"""

from __future__ import annotations

import warnings
from typing import Any

from agents.policies import actor_critic
from agents.policies.actor_critic import actor_critic_aliases
from agents.policies.dqn import dqn_aliases
from agents.policies.options import ALIAS_NORMS
from agents.policies.recurrent import recurrent_aliases

__all__ = ["ALIAS_NORMS", "actor_critic_aliases", "dqn_aliases", "recurrent_aliases", "register_policies"]


def register_policies() -> None:
    """Add the norm policy aliases to each algorithm's ``policy_aliases`` (idempotent)."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import A2C, DQN, PPO

    # each of these classes owns its dict (SB3 defines one per algorithm), so updating in place is safe
    for algo in (PPO, A2C):
        algo.policy_aliases.update(actor_critic_aliases())
    DQN.policy_aliases.update(dqn_aliases())
    RecurrentPPO.policy_aliases.update(recurrent_aliases())


def __getattr__(name: str) -> Any:
    # Before 0.2 this package was the module agents/policies.py with the PPO/A2C classes at its top level;
    # saved models name them as agents.policies.<Class>, so those names still resolve here.
    if not name.startswith("_") and hasattr(actor_critic, name):
        warnings.warn(
            f"agents.policies.{name} moved to agents.policies.actor_critic.{name}", DeprecationWarning, stacklevel=2
        )
        return getattr(actor_critic, name)
    raise AttributeError(f"module 'agents.policies' has no attribute {name!r}")
