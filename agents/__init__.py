"""Stable-Baselines3 integration of rlnorm: norm-aware policies, training, callbacks and reports.

Importing this package registers the policy names, so ``PPO("WnCnnPolicy", env)``, ``A2C("LnMlpPolicy", env)``,
``DQN("BnCnnPolicy", env)`` and ``RecurrentPPO("LnLstmPolicy", env)`` work after ``import agents``.
"""

from agents.policies import register_policies
from agents.recurrent import register_recurrent_policies

register_policies()
register_recurrent_policies()
