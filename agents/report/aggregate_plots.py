"""The PNG figures of the cross-game report (matplotlib, Agg backend), drawn with rliable's plot helpers where it
has one (performance profiles, interval estimates, probability of improvement)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from agents.report.aggregate_metrics import METRICS, Improvement
from agents.report.plots import DPI, NORM_COLORS
from agents.report.stats import Interval

#: colours for arms that are not a plain norm name (``wn-noinit``, ``PPO:wn``), after the norms' own
EXTRA_COLORS = ("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """A colour per arm: a norm's fixed colour when the arm is (or ends with ``:<norm>``) a norm name, else one of
    :data:`EXTRA_COLORS` in turn.

    :param arms: arm labels
    """
    out, extra = {}, iter(EXTRA_COLORS * (1 + len(arms) // len(EXTRA_COLORS)))
    for arm in arms:
        base = arm.rsplit(":", 1)[-1]
        out[arm] = NORM_COLORS[base] if base in NORM_COLORS else next(extra)
    return out


def plot_aggregates(intervals: Mapping[str, Mapping[str, Interval]], arms: Sequence[str], path: Path) -> Path:
    """The four aggregate metrics per arm with their intervals (``rliable.plot_utils.plot_interval_estimates``).

    :param intervals: output of :func:`agents.report.aggregate_metrics.aggregate_intervals`
    :param arms: arm order
    :param path: PNG destination
    """
    from rliable import plot_utils

    arms = [a for a in arms if a in intervals]
    points = {a: np.array([intervals[a][m].value for m in METRICS]) for a in arms}
    cis = {a: np.array([[intervals[a][m].low for m in METRICS], [intervals[a][m].high for m in METRICS]]) for a in arms}
    fig, axes = plot_utils.plot_interval_estimates(
        points,
        cis,
        metric_names=list(METRICS),
        algorithms=arms,
        colors=arm_colors(arms),
        xlabel="",
        subfigure_width=3.2,
        row_height=0.5,
    )
    for ax in np.atleast_1d(axes):  # rliable's own label sits at a fixed figure height, over the ticks of few rows
        ax.set_xlabel("normalized score", fontsize="large")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_profiles(
    profiles: Mapping[str, np.ndarray], cis: Mapping[str, np.ndarray], taus: np.ndarray, path: Path
) -> Path:
    """Performance profiles (``rliable.plot_utils.plot_performance_profiles``).

    :param profiles: fraction of runs above each tau, per arm
    :param cis: their 95 % bands
    :param taus: thresholds
    :param path: PNG destination
    """
    from rliable import plot_utils

    fig, ax = plt.subplots(figsize=(6.5, 4))
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=cis,
        colors=arm_colors(list(profiles)),
        ax=ax,
        xlabel=r"normalized score $\tau$",
        ylabel=r"fraction of runs with score $> \tau$",
    )
    ax.legend(loc="upper right", fontsize="small")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_improvements(improvements: Sequence[Improvement], path: Path, title: str = "") -> Path:
    """``P(X > Y)`` with intervals, one row per pair (``rliable.plot_utils.plot_probability_of_improvement``).

    :param improvements: output of :func:`agents.report.aggregate_metrics.improvement_probabilities`
    :param path: PNG destination
    :param title: figure title
    """
    from rliable import plot_utils

    points = {f"{i.x},{i.y}": i.probability.value for i in improvements}
    cis = {f"{i.x},{i.y}": np.array([i.probability.low, i.probability.high]) for i in improvements}
    fig, ax = plt.subplots(figsize=(5, 0.45 * len(points) + 1.2))
    plot_utils.plot_probability_of_improvement(points, cis, ax=ax, xlabel="P(X > Y)")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_noise_robustness(
    curves: Mapping[str, Mapping[float, Interval]], kind: str, path: Path, label: str = "IQM"
) -> Path:
    """Normalized score vs noise level per arm (IQM across games with its interval band); level 0 is clean.

    :param curves: ``{arm: {level: Interval}}``
    :param kind: the noise kind (x-axis label)
    :param path: PNG destination
    :param label: the metric drawn
    """
    colors = arm_colors(list(curves))
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, by_level in curves.items():
        levels = sorted(by_level)
        ax.plot(levels, [by_level[x].value for x in levels], "o-", color=colors[arm], label=arm)
        ax.fill_between(
            levels, [by_level[x].low for x in levels], [by_level[x].high for x in levels], color=colors[arm], alpha=0.15
        )
    ax.set_xlabel(f"{kind} noise level (0 = clean)")
    ax.set_ylabel(f"normalized score ({label} across games)")
    ax.axhline(0.0, color="black", linewidth=0.5, linestyle=":")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_bn_gap(gaps: Mapping[str, Mapping[str, Interval]], path: Path) -> Path:
    """The normalized train-mode minus eval-mode return per batch-statistics arm (mean and IQM across games,
    with intervals); 0 means the two ways of acting score the same.

    :param gaps: ``{arm: {"mean": Interval, "IQM": Interval}}``
    :param path: PNG destination
    """
    arms = list(gaps)
    colors = arm_colors(arms)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(arms) * 2 + 1.0))
    y = 0
    ticks, labels = [], []
    for arm in arms:
        for metric, interval in gaps[arm].items():
            ax.errorbar(
                interval.value,
                y,
                xerr=[[interval.value - interval.low], [interval.high - interval.value]],
                fmt="o",
                color=colors[arm],
                capsize=4,
            )
            ticks.append(y)
            labels.append(f"{arm} ({metric})")
            y += 1
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_ylim(-0.7, y - 0.3)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("train-mode minus eval-mode return (normalized)")
    ax.grid(alpha=0.3, axis="x")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
