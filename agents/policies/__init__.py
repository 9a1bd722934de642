"""Norm-aware Stable-Baselines3 and sb3-contrib policies, one module per algorithm family, and their aliases.

- :mod:`~agents.policies.actor_critic`: PPO, A2C, TRPO; :mod:`~agents.policies.maskable`: MaskablePPO;
  :mod:`~agents.policies.recurrent`: RecurrentPPO (WN-LSTM / LN-LSTM);
  :mod:`~agents.policies.dqn`: DQN; :mod:`~agents.policies.qrdqn`: QR-DQN (shared: :mod:`~.value_based`);
  :mod:`~agents.policies.sac`: SAC; :mod:`~agents.policies.td3`: TD3 and DDPG; :mod:`~agents.policies.tqc`: TQC;
  :mod:`~agents.policies.crossq`: CrossQ (shared: :mod:`~agents.policies.continuous`).
- :mod:`~agents.policies.base`: the constructor prologue and alias classes every family shares;
  :mod:`~agents.policies.extractors`: the norm-aware features extractors and MLPs;
  :mod:`~agents.policies.heads`: normalized output heads (``head_norm``);
  :mod:`~agents.policies.head_stats`: TensorBoard callback for per-action head norms and action frequencies;
  :mod:`~agents.policies.options`: the option checks, WN-correct init, data-init flag and rollout weight cache.
- :mod:`~agents.policies.algos`: which algorithm class and policy an experiment arm uses.

``import agents`` calls :func:`register_policies`, after which ``PPO("WnCnnPolicy", env)``,
``SAC("LnMlpPolicy", env)`` and the other names of the README's table work.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from agents.policies import actor_critic
from agents.policies.actor_critic import actor_critic_aliases
from agents.policies.dqn import dqn_aliases
from agents.policies.options import ALIAS_NORMS
from agents.policies.recurrent import recurrent_aliases

__all__ = [
    "ALIAS_NORMS",
    "actor_critic_aliases",
    "algorithm_aliases",
    "dqn_aliases",
    "recurrent_aliases",
    "register_policies",
]


def algorithm_aliases() -> dict[str, tuple[type, dict[str, type]]]:
    """Algorithm name -> (algorithm class, the norm policy aliases it gets), for every SB3/sb3-contrib algorithm."""
    from sb3_contrib import QRDQN, TQC, TRPO, CrossQ, MaskablePPO, RecurrentPPO
    from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

    from agents.policies.crossq import crossq_aliases
    from agents.policies.maskable import maskable_aliases
    from agents.policies.qrdqn import qrdqn_aliases
    from agents.policies.sac import sac_aliases
    from agents.policies.td3 import td3_aliases
    from agents.policies.tqc import tqc_aliases

    table: dict[str, tuple[type, Callable[[], dict[str, type]]]] = {
        "PPO": (PPO, actor_critic_aliases),
        "A2C": (A2C, actor_critic_aliases),
        "TRPO": (TRPO, actor_critic_aliases),
        "MaskablePPO": (MaskablePPO, maskable_aliases),
        "RecurrentPPO": (RecurrentPPO, recurrent_aliases),
        "DQN": (DQN, dqn_aliases),
        "QRDQN": (QRDQN, qrdqn_aliases),
        "SAC": (SAC, sac_aliases),
        "TD3": (TD3, td3_aliases),
        "DDPG": (DDPG, td3_aliases),
        "TQC": (TQC, tqc_aliases),
        "CrossQ": (CrossQ, crossq_aliases),
    }
    return {name: (algo, aliases()) for name, (algo, aliases) in table.items()}


def register_policies() -> None:
    """Add the norm policy aliases to each algorithm's ``policy_aliases`` (idempotent)."""
    for algo, aliases in algorithm_aliases().values():
        # SB3 defines one dict per algorithm class, except where a subclass inherits it (DDPG shares TD3's):
        # give the class a dict of its own before updating, so no other algorithm's names change
        if "policy_aliases" not in vars(algo):
            algo.policy_aliases = dict(algo.policy_aliases)
        algo.policy_aliases.update(aliases)


def __getattr__(name: str) -> Any:
    # Before 0.2 this package was the module agents/policies.py with the PPO/A2C classes at its top level;
    # saved models name them as agents.policies.<Class>, so those names still resolve here.
    if not name.startswith("_") and hasattr(actor_critic, name):
        warnings.warn(
            f"agents.policies.{name} moved to agents.policies.actor_critic.{name}", DeprecationWarning, stacklevel=2
        )
        return getattr(actor_critic, name)
    raise AttributeError(f"module 'agents.policies' has no attribute {name!r}")
