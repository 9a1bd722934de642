"""rliable's aggregate metrics over ``(runs, games)`` score matrices: IQM, mean, median and optimality gap with
stratified-bootstrap intervals, performance profiles, and the probability of improvement of each pair of arms.

Everything here calls rliable (``rliable.library``, ``rliable.metrics``); nothing re-implements it. Every
bootstrap seeds numpy's global generator first (as :mod:`agents.report.stats` does; rliable's ``random_state``
argument is deprecated in the ``arch`` package under it), so a report is reproducible.

What the intervals are: rliable's stratified bootstrap resamples runs *within* each game (games are fixed,
``task_bootstrap=False``), so an interval says how much the aggregate moves with the seeds, not with the choice
of games; with ``n`` runs per game each stratum has only ``n`` values to draw from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from agents.report.stats import BOOTSTRAP_REPS, Interval

#: aggregate metrics in report order, with rliable's function name
METRICS = ("IQM", "mean", "median", "optimality gap")


def _aggregate(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_optimality_gap(scores, gamma=1),
        ]
    )


def aggregate_intervals(
    matrices: Mapping[str, np.ndarray], reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> dict[str, dict[str, Interval]]:
    """IQM, mean, median and optimality gap (``gamma=1``) of each arm's ``(runs, games)`` normalized scores with
    stratified-bootstrap 95 % percentile intervals (``rliable.library.get_interval_estimates``).

    :param matrices: ``{arm: (runs, games)}``
    :param reps: bootstrap repetitions
    :param seed: seed of the bootstrap
    :return: ``{arm: {metric: Interval}}`` with the metrics of :data:`METRICS`
    """
    from rliable import library as rly

    out = {}
    for arm, scores in matrices.items():
        np.random.seed(seed)
        point, ci = rly.get_interval_estimates({arm: scores}, _aggregate, reps=reps)
        out[arm] = {
            m: Interval(float(point[arm][i]), float(ci[arm][0, i]), float(ci[arm][1, i])) for i, m in enumerate(METRICS)
        }
    return out


def metric_interval(
    matrices: Mapping[str, np.ndarray], metric: str = "IQM", reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> dict[str, Interval]:
    """One of :data:`METRICS` per arm with its stratified-bootstrap 95 % interval.

    :param matrices: ``{arm: (runs, games)}``
    :param metric: one of :data:`METRICS`
    :param reps: bootstrap repetitions
    :param seed: seed of the bootstrap
    """
    from rliable import library as rly
    from rliable import metrics

    functions = {
        "IQM": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality gap": metrics.aggregate_optimality_gap,
    }
    if metric not in functions:
        raise ValueError(f"metric must be one of {', '.join(functions)}; got {metric!r}")
    out = {}
    for arm, scores in matrices.items():
        np.random.seed(seed)
        point, ci = rly.get_interval_estimates({arm: scores}, lambda s: np.array([functions[metric](s)]), reps=reps)
        out[arm] = Interval(float(point[arm][0]), float(ci[arm][0, 0]), float(ci[arm][1, 0]))
    return out


@dataclass(frozen=True)
class Improvement:
    """``P(X > Y)`` over the games both arms were run on, with its stratified-bootstrap 95 % interval."""

    x: str
    y: str
    probability: Interval
    #: the fewest runs either arm has on a game; with one run per game the bootstrap has nothing to resample
    min_runs: int = 2

    @property
    def verdict(self) -> str:
        """Whether the interval excludes 0.5 (no difference), and in whose favour; no reading from one run a game."""
        if self.min_runs < 2:
            return "no interval (one run per game)"
        if self.probability.low > 0.5:
            return f"{self.x} better"
        if self.probability.high < 0.5:
            return f"{self.y} better"
        return "not distinguishable"


def improvement_probabilities(
    matrices: Mapping[str, np.ndarray], arms: Sequence[str] | None = None, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> list[Improvement]:
    """``P(X > Y)`` for each pair of arms (``rliable.metrics.probability_of_improvement``: the Mann-Whitney
    probability that a run of X beats a run of Y on the same game, averaged over games), with intervals from
    rliable's stratified independent bootstrap (X's and Y's runs resampled separately within each game).

    Each pair is listed once, X before Y in ``arms`` order; ``P(Y > X) = 1 - P(X > Y)``.

    :param matrices: ``{arm: (runs, games)}`` over the same games (runs may differ between arms)
    :param arms: order (default the matrices' order)
    :param reps: bootstrap repetitions
    :param seed: seed of the bootstrap
    """
    from rliable import library as rly
    from rliable import metrics

    arms = [a for a in (arms or list(matrices)) if a in matrices]
    out = []
    for x, y in combinations(arms, 2):
        key = f"{x},{y}"
        np.random.seed(seed)
        point, ci = rly.get_interval_estimates(
            {key: [matrices[x], matrices[y]]},
            metrics.probability_of_improvement,
            reps=reps,
        )
        low, high = np.ravel(ci[key])
        runs = min(matrices[x].shape[0], matrices[y].shape[0])
        out.append(Improvement(x, y, Interval(float(point[key]), float(low), float(high)), runs))
    return out


def performance_profiles(
    matrices: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score distributions (fraction of runs with normalized score above each ``tau``) with stratified-bootstrap
    95 % bands (``rliable.library.create_performance_profile``).

    :param matrices: ``{arm: (runs, games)}``
    :param taus: thresholds
    :param reps: bootstrap repetitions
    :param seed: numpy's global seed, set before the bootstrap
    :return: ``(profiles, cis)`` keyed by arm
    """
    from rliable import library as rly

    np.random.seed(seed)  # create_performance_profile takes no random_state
    return rly.create_performance_profile(dict(matrices), taus, reps=reps)
