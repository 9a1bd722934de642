"""Stable-Baselines3 integration of rlnorm: norm-aware policies, the training pipeline, reports and studies.

Importing this package registers the policy names, so ``PPO("WnCnnPolicy", env)``, ``A2C("LnMlpPolicy", env)``,
``DQN("BnCnnPolicy", env)`` and ``RecurrentPPO("LnLstmPolicy", env)`` work after ``import agents``.
The packages: ``policies`` (the SB3 policies), ``config`` (experiment YAML), ``pipeline`` (runs, sweeps,
checkpoints, callbacks), ``report`` (statistics, tables, plots), ``studies`` (the noise-sensitivity study),
``pixelcnn`` (density-model experiments) and ``exploration`` (the pseudo-count bonus). Command line:
``python -m agents --help``.
"""

import signal
import sys
from types import FrameType


def _exit_on_ctrl_c(signum: int, frame: FrameType | None) -> None:
    print("interrupted (Ctrl-C) before the command started", file=sys.stderr)
    raise SystemExit(130)


# `python -m agents ...` (sys.argv[0] is "-m" while the module is located): Ctrl-C during the seconds of imports
# below ends with one line, not a traceback from inside torch. The command installs its own handling after.
if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _exit_on_ctrl_c)

from agents.moved import MOVED_MODULES  # noqa: E402 - after the Ctrl-C handler, which must cover these imports
from agents.policies import register_policies  # noqa: E402
from rlnorm.moved import install_moved_modules  # noqa: E402

register_policies()
install_moved_modules(MOVED_MODULES)
