"""The PNG figures of the comparison report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from agents.pipeline.tb_layout import RETURN_CLEAN, ROLLOUT_RETURN, noise_tag
from agents.report.stats import CURVE_POINTS, curve_intervals, iqm_interval

#: one fixed colour per norm of :data:`rlnorm.registry.NORMS` (a test checks that every norm has one), so
#: every figure of every report reads the same way; the PixelCNN's per-pixel norms are darker shades of theirs
NORM_COLORS: dict[str, str] = {
    "none": "#4d4d4d",
    "wn": "#1f77b4",
    "wn+mobn": "#17becf",
    "bn": "#d62728",
    "ln": "#2ca02c",
    "gn": "#9467bd",
    "in": "#8c564b",
    "sn": "#e377c2",
    "brn": "#ff7f0e",
    "rms": "#bcbd22",
    "cosine": "#000080",
    "pixel_ln": "#00591b",
    "pixel_gn": "#4b2a7b",
}
DPI = 120

#: what the bands and whiskers are (with 3 or fewer seeds the bootstrap can only span the seeds)
INTERVAL_CAPTION = "IQM over seeds, 95% stratified-bootstrap interval (the seeds' range when n <= 3)"


def norm_color(norm: str) -> str:
    """The fixed colour of a norm in every figure (grey for an unknown one)."""
    return NORM_COLORS.get(norm, "#7f7f7f")


def panel_grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(5.5 * cols, 7.0), 4.0 * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def subplots(*args, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """``matplotlib.pyplot.subplots`` on the Agg backend (the studies draw their own figures with it)."""
    return plt.subplots(*args, **kwargs)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Lay out, write as PNG and close ``fig``; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def seed_curves(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """The runs of ``rows`` (one tag) on a common step grid: the steps every run logged (from the latest first
    step to the earliest last one) and a ``(runs, CURVE_POINTS)`` array interpolated on them.

    :param rows: scalars of one tag (columns ``run``, ``step``, ``value``)
    :return: ``(steps, curves)``, or ``None`` when no run has two points
    """
    runs = [g.sort_values("step") for _, g in rows.groupby("run")]
    runs = [r for r in runs if len(r) >= 2]
    if not runs:
        return None
    steps = np.linspace(max(r.step.min() for r in runs), min(r.step.max() for r in runs), CURVE_POINTS)
    return steps, np.stack([np.interp(steps, r.step, r.value) for r in runs])


def plot_learning_curves(scalars: pd.DataFrame, envs: Sequence[str], norms: Sequence[str], path: Path) -> Path:
    """Training return vs environment steps per env: IQM over seeds and its 95 % CI band, one colour per norm.

    :param scalars: all scalars (:func:`agents.report.compare.load_scalars`)
    :param envs: one panel per env
    :param norms: one line per norm
    :param path: PNG destination
    """
    fig, axes = panel_grid(len(envs))
    rows = scalars[scalars.tag == ROLLOUT_RETURN]
    for ax, env in zip(axes.flat, envs):
        env_rows = rows[rows.env == env]
        for norm in norms:
            seeds = seed_curves(env_rows[env_rows.norm == norm])
            if seeds is None:
                continue
            steps, curves = seeds
            point, ci = curve_intervals(curves)
            ax.plot(steps, point, color=norm_color(norm), label=f"{norm} (n={len(curves)})", lw=1.8)
            ax.fill_between(steps, ci[0], ci[1], color=norm_color(norm), alpha=0.2, lw=0)
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return (training)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="norm", title_fontsize=8)
    fig.suptitle(f"Learning curves\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def plot_final_scores(table: Mapping, envs: Sequence[str], norms: Sequence[str], path: Path) -> Path:
    """Bar chart of the final clean evaluation return per env and norm, with 95 % CI whiskers.

    :param table: ``{(env, norm): Interval}`` from :func:`agents.report.compare.score_table` (``env=None``:
        aggregate over envs, drawn as an extra panel)
    :param envs: panels
    :param norms: bars
    :param path: PNG destination
    """
    panels: list[str | None] = list(envs) + ([None] if any(k[0] is None for k in table) else [])
    fig, axes = panel_grid(len(panels))
    for ax, env in zip(axes.flat, panels):
        present = [n for n in norms if (env, n) in table]
        x = np.arange(len(present))
        values = np.array([table[(env, n)].value for n in present])
        err = np.array(
            [[values[i] - table[(env, n)].low, table[(env, n)].high - values[i]] for i, n in enumerate(present)]
        )
        ax.bar(x, values, color=[norm_color(n) for n in present], alpha=0.85)
        if len(present):
            ax.errorbar(x, values, yerr=err.T, fmt="none", ecolor="black", capsize=4, lw=1.2)
        for xi, v, n in zip(x, values, present):
            # above the CI whisker, so the number never sits on the error bar
            top = max(v, table[(env, n)].high)
            ax.annotate(
                f"{v:.2f}", (xi, top), ha="center", va="bottom", fontsize=9, xytext=(0, 3), textcoords="offset points"
            )
        ax.margins(y=0.12)
        ax.set_xticks(x, present)
        ax.set_title(env if env is not None else "all envs (IQM)")
        ax.set_ylabel(f"final {RETURN_CLEAN}" if env is not None else "aggregate score")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Final evaluation return (clean observations)\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def plot_noise_sensitivity(
    finals: pd.DataFrame,
    envs: Sequence[str],
    norms: Sequence[str],
    levels: Mapping[str, Sequence[float]],
    path: Path,
) -> Path:
    """Final evaluation return vs noise level (level 0 = clean) per env and noise kind, one line per norm.

    :param finals: last value of each tag per run (:func:`agents.report.compare.final_values`)
    :param envs: panel rows
    :param norms: lines
    :param levels: ``{kind: [levels]}`` (:func:`agents.report.compare.noise_levels`)
    :param path: PNG destination
    """
    panels = [(env, kind) for env in envs for kind in levels]
    fig, axes = panel_grid(len(panels))
    for ax, (env, kind) in zip(axes.flat, panels):
        xs = [0.0, *levels[kind]]
        tags = [RETURN_CLEAN, *(noise_tag(kind, lv) for lv in levels[kind])]
        for norm in norms:
            rows = finals[(finals.env == env) & (finals.norm == norm)]
            points, lows, highs, used = [], [], [], []
            for x, tag in zip(xs, tags):
                values = rows[rows.tag == tag].value.to_numpy()
                if len(values):
                    iv = iqm_interval(values[:, None], reps=500)
                    points.append(iv.value)
                    lows.append(iv.low)
                    highs.append(iv.high)
                    used.append(x)
            if used:
                ax.plot(used, points, marker="o", color=norm_color(norm), label=norm, lw=1.8)
                ax.fill_between(used, lows, highs, color=norm_color(norm), alpha=0.15, lw=0)
        ax.set_title(f"{env}: {kind} observation noise")
        ax.set_xlabel("noise level (0 = clean)")
        ax.set_ylabel("final evaluation return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="norm", title_fontsize=8)
    fig.suptitle(f"Noise sensitivity\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)
