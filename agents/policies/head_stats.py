"""TensorBoard logging of the per-action output-head weight norms beside the action frequencies.

A plain policy or Q head's row for action ``a`` grows with the gradient it gets, which follows how often ``a``
is taken (or trained on); a normalized head (``head_norm="wn"``: ``|g_a|``; ``"cosine"``: equal norms) changes
that. :class:`HeadStatsCallback` logs, for discrete actions, ``heads/weight_norm/a<i>``,
``heads/action_freq/a<i>`` and their Pearson correlation ``heads/norm_freq_corr`` over the last window::

    model.learn(100_000, callback=HeadStatsCallback(log_freq=1000))
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from agents.policies.heads import discrete_head, head_weight_norms


def norm_frequency_correlation(norms: np.ndarray, frequencies: np.ndarray) -> float:
    """Pearson correlation of per-action head norms and action frequencies (``nan`` if either is constant)."""
    if norms.std() == 0 or frequencies.std() == 0:
        return float("nan")
    return float(np.corrcoef(norms, frequencies)[0, 1])


class HeadStatsCallback(BaseCallback):
    """Logs the discrete head's per-action weight norms and the action frequencies every ``log_freq`` steps.

    Works with every algorithm with discrete actions (PPO, A2C, TRPO, MaskablePPO, RecurrentPPO, DQN, QR-DQN);
    does nothing for continuous actions. Frequencies count the actions the algorithm took in the env since the
    last log (all envs).

    :param log_freq: environment steps (callback calls) between two logs
    :param prefix: TensorBoard tag prefix
    :param verbose: SB3 verbosity
    """

    def __init__(self, log_freq: int = 1000, prefix: str = "heads", verbose: int = 0) -> None:
        super().__init__(verbose)
        if log_freq < 1:
            raise ValueError(f"log_freq must be >= 1, got {log_freq}")
        self.log_freq, self.prefix = log_freq, prefix
        self.counts: np.ndarray | None = None
        #: the last logged (norms, frequencies), for tests and scripts
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def _init_callback(self) -> None:
        space = self.model.action_space
        if isinstance(space, spaces.Discrete) and discrete_head(self.model.policy) is not None:
            self.counts = np.zeros(int(space.n))

    def _on_step(self) -> bool:
        if self.counts is None:
            return True
        actions = np.asarray(self.locals.get("actions", []), dtype=np.int64).reshape(-1)
        self.counts += np.bincount(actions, minlength=len(self.counts))[: len(self.counts)]
        if self.n_calls % self.log_freq == 0:
            self.log_now()
        return True

    def log_now(self) -> None:
        """Record the norms and the frequencies since the last log, and start a new window."""
        if self.counts is None or self.counts.sum() == 0:
            return
        head = discrete_head(self.model.policy)
        norms = head_weight_norms(head, len(self.counts)).cpu().numpy()
        frequencies = self.counts / self.counts.sum()
        for a, (norm, freq) in enumerate(zip(norms, frequencies)):
            self.logger.record(f"{self.prefix}/weight_norm/a{a}", float(norm))
            self.logger.record(f"{self.prefix}/action_freq/a{a}", float(freq))
        self.logger.record(f"{self.prefix}/norm_freq_corr", norm_frequency_correlation(norms, frequencies))
        self.last = (norms, frequencies)
        self.counts[:] = 0
