"""Stable-Baselines3 integration of rlnorm: norm-aware policies, the training pipeline, reports and studies.

Importing this package registers the policy names, so ``PPO("WnCnnPolicy", env)``, ``A2C("LnMlpPolicy", env)``,
``DQN("BnCnnPolicy", env)`` and ``RecurrentPPO("LnLstmPolicy", env)`` work after ``import agents``.
The packages: ``policies`` (the SB3 policies), ``config`` (experiment YAML), ``pipeline`` (runs, sweeps,
checkpoints, callbacks), ``report`` (statistics, tables, plots), ``studies`` (the noise-sensitivity study),
``pixelcnn`` (density-model experiments) and ``exploration`` (the pseudo-count bonus). Command line:
``python -m agents --help``.
"""

from agents.moved import MOVED_MODULES
from agents.policies import register_policies
from rlnorm.moved import install_moved_modules

register_policies()
install_moved_modules(MOVED_MODULES)
