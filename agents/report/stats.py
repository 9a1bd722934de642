"""Statistics of a report: interquartile mean (IQM) with stratified-bootstrap intervals (rliable), and the
normalization of Atari scores.

With ``n`` runs per task the bootstrap interval can only span what the runs span: with 3 seeds it is their
range, and IQM trims nothing below 4 runs. Reports say so next to their tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Random and human reference scores (Badia et al. 2020, Agent57, table H.4) for human-normalized scores.
ATARI_REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "Breakout": (1.7, 30.5),
    "Enduro": (0.0, 860.5),
    "Pong": (-20.7, 14.6),
    "Seaquest": (68.4, 42054.7),
    "SpaceInvaders": (148.0, 1668.7),
}
BOOTSTRAP_REPS = 2000
CURVE_POINTS = 50


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def atari_game(env_id: str) -> str | None:
    """The game name of an ALE id with reference scores (``ALE/Pong-v5`` -> ``Pong``), else ``None``.

    :param env_id: a gymnasium id
    """
    match = re.match(r"^(?:ALE/)?([A-Za-z]+?)(?:NoFrameskip)?-v\d+$", env_id)
    return match.group(1) if match and match.group(1) in ATARI_REFERENCE_SCORES else None


def human_normalized(env_id: str, score: float) -> float | None:
    """``(score - random) / (human - random)`` for Atari games with reference scores, else ``None``.

    :param env_id: a gymnasium id
    :param score: a game score
    """
    game = atari_game(env_id)
    if game is None:
        return None
    random_score, human_score = ATARI_REFERENCE_SCORES[game]
    return (score - random_score) / (human_score - random_score)


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50 % of the scores.

    Equal to ``rliable.metrics.aggregate_iqm`` (``scipy.stats.trim_mean(x, 0.25)``) on the flattened scores, but
    vectorized: the bootstrap calls it thousands of times and scipy's wrapper costs ~0.4 ms per call.

    :param scores: any array
    :param axis: ``None`` flattens; otherwise the axis reduced
    """
    values = np.asarray(scores, dtype=float)
    values = np.sort(values.ravel() if axis is None else np.moveaxis(values, axis, 0), axis=0)
    n = values.shape[0]
    cut = int(0.25 * n)
    return values[cut : n - cut].mean(axis=0)


def iqm_interval(scores: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> Interval:
    """IQM of a ``(runs, tasks)`` score matrix with a stratified-bootstrap 95 % CI (rliable).

    :param scores: rows are seeds, columns are envs
    :param reps: bootstrap repetitions
    :param seed: numpy seed, so a report is reproducible
    """
    from rliable import library as rly

    np.random.seed(seed)
    point, ci = rly.get_interval_estimates(
        {"x": np.asarray(scores, dtype=float)}, lambda s: np.array([iqm(s)]), reps=reps
    )
    return Interval(float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0]))


def curve_intervals(curves: np.ndarray, reps: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """IQM over runs at each point of ``(runs, points)`` curves, with stratified-bootstrap 95 % CIs.

    :param curves: one row per seed
    :param reps: bootstrap repetitions
    :param seed: numpy seed
    :return: (IQM per point, CI array of shape ``(2, points)``)
    """
    from rliable import library as rly

    np.random.seed(seed)
    scores = np.asarray(curves, dtype=float)[:, None, :]  # (runs, 1 task, points)

    def per_point(s: np.ndarray) -> np.ndarray:
        return iqm(s.reshape(-1, s.shape[-1]), axis=0)

    point, ci = rly.get_interval_estimates({"x": scores}, per_point, reps=reps)
    return point["x"], ci["x"]


def interval_label(runs_per_game: Sequence[int], task: str = "game") -> str:
    """What the report calls an interval at the sample size it has.

    :param runs_per_game: runs on each game (of one arm or a whole table)
    :param task: what one stratum of the bootstrap is called (``game``, ``env``)
    """
    low, high = min(runs_per_game), max(runs_per_game)
    n = f"{low}" if low == high else f"{low}–{high}"
    text = f"95 % stratified-bootstrap percentile interval over the runs of each {task} (n = {n} per {task})"
    if low == 1:
        text += (
            f"; with one run per {task} there is nothing to resample: the interval collapses onto the value and "
            "supports no claim"
        )
    elif low <= 3:
        text += (
            f"; with 3 or fewer runs per {task} an IQM trims nothing (it is the mean of its runs) and the "
            "bootstrap can only recombine those runs, so the interval is the spread of a handful of seeds, "
            "not a population interval"
        )
    return text


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a fraction ``k/n`` (95 % by default); ``(nan, nan)`` for ``n = 0``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
