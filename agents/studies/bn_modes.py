"""Study experiment 4: batch-statistics policies evaluated in train mode vs eval mode, over training.

``python -m agents study bn-modes runs/<experiment> [--out reports]``

:class:`agents.pipeline.callbacks.NoiseEvalCallback` evaluates every BN (or BatchRenorm) policy twice at each
evaluation: with its running statistics (eval mode, ``eval/return_eval_mode``) and with the statistics of the batch of
``eval.n_envs`` observations it acts on (train mode, ``eval/return_train_mode``), and logs the mean KL divergence
between the two action distributions (``eval/bn_mode_kl``). This script reads those tags back from the event
files and writes ``<out>/<experiment>/bn_modes.png`` (both returns and the KL vs environment steps) and
``bn_modes.md`` (the final return gap ``eval - train`` and the final KL as IQM over seeds with rliable's
stratified-bootstrap 95 % intervals, and the per-run values).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.pipeline.tb_layout import BN_MODE_KL, RETURN_EVAL_MODE, RETURN_TRAIN_MODE
from agents.report.plots import INTERVAL_CAPTION
from agents.report.scalars import load_scalars
from agents.report.stats import curve_intervals, interval_label, iqm_interval
from agents.report.tables import md_table
from agents.studies.cli import command_error, finish

TAGS = (RETURN_EVAL_MODE, RETURN_TRAIN_MODE, BN_MODE_KL)


def mode_table(scalars: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, evaluation step) with the eval-mode and train-mode returns, their gap and the KL.

    :param scalars: output of :func:`agents.report.compare.load_scalars`
    :return: columns ``run, env, norm, seed, step, eval_mode, train_mode, gap, kl``
    :raises ValueError: when no run logged the train/eval-mode tags (no BN policy, or ``eval.bn_modes: false``)
    """
    rows = scalars[scalars.tag.isin(TAGS)]
    if rows.empty:
        raise ValueError(
            "no eval/return_train_mode tags: the experiment needs a batch-statistics norm (bn, brn) "
            "and eval.bn_modes: true"
        )
    wide = rows.pivot_table(index=["run", "env", "norm", "seed", "step"], columns="tag", values="value").reset_index()
    wide = wide.rename(columns={RETURN_EVAL_MODE: "eval_mode", RETURN_TRAIN_MODE: "train_mode", BN_MODE_KL: "kl"})
    for column in ("eval_mode", "train_mode", "kl"):
        if column not in wide:
            wide[column] = np.nan
    wide["gap"] = wide.eval_mode - wide.train_mode
    return wide


def final_intervals(table: pd.DataFrame) -> dict[tuple[str, str, str], object]:
    """IQM [95 % CI] over seeds of the last evaluation's values, keyed ``(env, norm, column)``.

    :param table: output of :func:`mode_table`
    """
    last = table.sort_values("step").groupby("run").last()
    out = {}
    for (env, norm), group in last.groupby(["env", "norm"]):
        for column in ("eval_mode", "train_mode", "gap", "kl"):
            values = group.sort_values("seed")[column].dropna().to_numpy()
            if len(values):
                out[(env, norm, column)] = iqm_interval(values[:, None])
    return out


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Per (env, norm): eval-mode and train-mode returns vs steps (left), the action KL vs steps (right).

    :param table: output of :func:`mode_table`
    :param path: PNG destination
    """
    from agents.report.plots import save_figure, subplots

    groups = list(table.groupby(["env", "norm"]))
    fig, axes = subplots(len(groups), 2, figsize=(12.0, 4.0 * len(groups)), squeeze=False)
    for (key, group), row in zip(groups, axes):
        env, norm = key
        for ax, columns in ((row[0], ("eval_mode", "train_mode")), (row[1], ("kl",))):
            for column, color in zip(columns, ("#1f77b4", "#d62728") if len(columns) == 2 else ("#9467bd",)):
                runs = [g.sort_values("step") for _, g in group.groupby("run") if g[column].notna().sum()]
                if not runs:
                    continue
                steps = np.array(sorted(set.intersection(*(set(r.step) for r in runs))))
                curves = np.stack([r.set_index("step")[column].loc[steps].to_numpy() for r in runs])
                point, ci = curve_intervals(curves)
                ax.plot(steps, point, marker="o", color=color, label=f"{column.replace('_', ' ')} (n={len(runs)})")
                ax.fill_between(steps, ci[0], ci[1], color=color, alpha=0.2, lw=0)
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        row[0].set_ylabel("evaluation return")
        row[0].set_title(f"{env}, {norm}: running stats (eval) vs batch stats (train)")
        row[1].set_ylabel("mean KL(train-mode || eval-mode actions)")
        row[1].set_title(f"{env}, {norm}: action-distribution KL")
    fig.suptitle(f"Batch-statistics policies: train vs eval mode\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def write_report(table: pd.DataFrame, intervals: dict, experiment_dir: Path, out_dir: Path) -> Path:
    """``bn_modes.md``: final values with CIs, per-run values at every evaluation, the figure.

    :param table: output of :func:`mode_table`
    :param intervals: output of :func:`final_intervals`
    :param experiment_dir: the experiment read
    :param out_dir: destination directory
    """
    seeds = sorted(int(s) for s in table.seed.unique())
    md = [
        f"# {experiment_dir.name}: train-mode vs eval-mode evaluation of batch-statistics policies",
        "",
        f"From the event files under `{experiment_dir}`; seeds {', '.join(map(str, seeds))}. "
        "gap = eval-mode return - train-mode return; KL = mean over visited states of "
        "KL(train-mode || eval-mode action distribution). IQM over seeds; intervals: "
        f"{interval_label(table.groupby(['env', 'norm']).seed.nunique().tolist(), task='env')}.",
        "",
        "## Final evaluation",
        "",
        md_table(
            ["env", "norm", "eval mode", "train mode", "gap", "KL"],
            [
                [
                    env,
                    norm,
                    *(str(intervals.get((env, norm, c), "-")) for c in ("eval_mode", "train_mode", "gap")),
                    _kl_cell(intervals.get((env, norm, "kl"))),
                ]
                for env, norm in sorted({(k[0], k[1]) for k in intervals})
            ],
        ),
        "",
        "## Every evaluation",
        "",
        md_table(
            ["run", "step", "eval mode", "train mode", "gap", "KL"],
            [
                [r.run, int(r.step), f"{r.eval_mode:.2f}", f"{r.train_mode:.2f}", f"{r.gap:.2f}", f"{r.kl:.4f}"]
                for r in table.sort_values(["run", "step"]).itertuples()
            ],
        ),
        "",
        "![bn_modes.png](bn_modes.png)",
        "",
    ]
    path = out_dir / "bn_modes.md"
    path.write_text("\n".join(md))
    return path


def _kl_cell(interval: object) -> str:
    if interval is None:
        return "-"
    return f"{interval.value:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def bn_modes_report(experiment_dir: str | Path, out: str | Path = "reports") -> Path:
    """Read one experiment and write ``<out>/<experiment>/bn_modes.png`` and ``bn_modes.md``.

    :param experiment_dir: ``runs/<experiment>``
    :param out: reports root
    :return: path of ``bn_modes.md``
    """
    experiment_dir = Path(experiment_dir)
    out_dir = Path(out) / experiment_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    table = mode_table(load_scalars(experiment_dir))
    plot(table, out_dir / "bn_modes.png")
    return write_report(table, final_intervals(table), experiment_dir, out_dir)


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "Study experiment 4: batch-statistics policies evaluated in train mode vs eval mode, over training."
PROG = "python -m agents study bn-modes"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m agents study bn-modes RUNS_DIR [--out DIR]``.

    :param argv: command-line arguments
    :return: exit status
    """
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("experiment", help="runs/<experiment> with BN runs evaluated in both modes")
    parser.add_argument("--out", default="reports", help="reports root (default: reports)")
    args = parser.parse_args(argv)
    try:
        path = bn_modes_report(args.experiment, args.out)
    except (ValueError, FileNotFoundError) as err:
        return command_error(err)
    return finish(path)


if __name__ == "__main__":
    sys.exit(main())
