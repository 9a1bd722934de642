"""Study experiment 1: batch dependence of *trained* policy networks on *real* observations.

``python -m agents study batch-dependence runs/<experiment> [--out reports] [--batch-sizes 1 4 16 64 256]``

For every finished feed-forward run of an experiment (``final_model.zip``), the trained policy plays its env
(``envs.make_env``, evaluation settings) to collect observations from its own state distribution; then, for each
batch size ``B``, disjoint batches of ``B`` of those observations go through the policy's deterministic outputs
(action logits or Q-values, and values) in train mode (what PPO's update sees) and in eval mode (what acting
sees). Two numbers per batch:

* ``batch_dependence`` -- :func:`rlnorm.diagnostics.batch_dependence`: the largest change of sample 0's outputs
  when the other ``B - 1`` samples are replaced (synthetic replacements that move every batch statistic);
* ``action_tv`` -- the largest total-variation distance between sample 0's action distributions when the
  other samples are replaced by *other real observations* (what a different minibatch does in practice).

Batch size 1 has no "other samples": it is reported as n/a (and BN cannot run a batch of one in train mode).
Values are averaged over the batches of a run; the report gives the IQM over runs (seeds) with rliable's
stratified-bootstrap 95 % interval. Writes ``<out>/study_batch_dependence/`` (``report.md``, ``batch_dependence.png``)
and TensorBoard scalars ``batch_dependence/<mode>`` and ``action_tv/<mode>`` (step = batch size) under
``runs/study_batch_dependence/<experiment>/<env>/<run>/``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agents.pipeline.tb_layout import env_slug
from agents.report.plots import INTERVAL_CAPTION
from agents.report.stats import Interval, interval_label, iqm_interval
from agents.report.tables import md_table, ordered
from agents.studies.batch_probe import (
    BATCH_SIZES,
    METRICS,
    MODES,
    collect_observations,
    find_trained_runs,
    load_policy,
    log_to_tensorboard,
    measure_run,
)
from agents.studies.cli import command_error, finish

EXPERIMENT = "study_batch_dependence"


def summarize(results: pd.DataFrame) -> dict[tuple[str, str, str, str, int], Interval]:
    """IQM over seeds with bootstrap 95 % CIs, keyed ``(env, norm, metric, mode, batch_size)``.

    :param results: per-run results with columns ``env, norm, seed, mode, batch_size, metric, value``
    """
    table = {}
    valid = results.dropna(subset=["value"])
    for key, group in valid.groupby(["env", "norm", "metric", "mode", "batch_size"]):
        table[key] = iqm_interval(group.sort_values("seed").value.to_numpy()[:, None])
    return table


def plot(results: pd.DataFrame, table: dict, path: Path) -> Path:
    """Metric vs batch size per norm in train mode, one panel per metric (eval mode drawn dashed only where it is
    not exactly zero; the panel says so otherwise).

    :param results: per-run results (for the norms, envs and batch sizes)
    :param table: output of :func:`summarize`
    :param path: PNG destination
    """
    from agents.report.plots import norm_color, save_figure, subplots

    envs = sorted(results.env.unique())
    norms = ordered(results.norm.unique())
    sizes = sorted(int(s) for s in results.batch_size.unique() if s >= 2)
    metrics = [m for m in METRICS if results[results.metric == m].value.notna().any()]
    fig, axes = subplots(len(envs), len(metrics), figsize=(6.2 * len(metrics), 4.4 * len(envs)), squeeze=False)
    labels = {
        "batch_dependence": "batch_dependence: max |change of sample 0's outputs|",
        "action_tv": "TV distance of sample 0's action distribution",
    }
    markers = "osD^vP*X"
    # norms with identical values (exact zeros) would hide each other: shift them apart along x
    offsets = np.linspace(-0.15, 0.15, len(norms)) if len(norms) > 1 else [0.0]
    for i, env in enumerate(envs):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            eval_all_zero = True
            for k, norm in enumerate(norms):
                for mode, style in (("train", "-"), ("eval", "--")):
                    points = [
                        (s, table[(env, norm, metric, mode, s)]) for s in sizes if (env, norm, metric, mode, s) in table
                    ]
                    if not points:
                        continue
                    vals = np.array([p[1].value for p in points])
                    if mode == "eval" and not vals.any():
                        continue
                    eval_all_zero &= mode == "train"
                    x = np.array([p[0] for p in points]) * 2 ** offsets[k]
                    err = np.array([[p[1].value - p[1].low, p[1].high - p[1].value] for p in points]).T
                    ax.errorbar(
                        x,
                        vals,
                        yerr=err,
                        fmt=style,
                        marker=markers[k % len(markers)],
                        capsize=3,
                        color=norm_color(norm),
                        label=f"{norm}" + (" (eval mode)" if mode == "eval" else ""),
                    )
            if eval_all_zero:
                ax.text(0.02, 0.97, "eval mode: exactly 0 for every norm", transform=ax.transAxes, va="top", fontsize=8)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(s) for s in sizes])
            # exact zeros (batch-independent norms) stay visible below the log range
            ax.set_yscale("symlog", linthresh=1e-6)
            ax.set_ylim(-3e-7, max(ax.get_ylim()[1], 1e-5) * 3)
            ax.set_xlabel("batch size")
            ax.set_ylabel(labels[metric], fontsize=9)
            ax.set_title(f"{env}: {metric} (train mode)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, title="norm", title_fontsize=8, loc="center right")
    fig.suptitle(f"Batch dependence of trained policies on real observations\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def write_report(results: pd.DataFrame, table: dict, sources: Sequence[str], seconds: float, out_dir: Path) -> Path:
    """``report.md``: tables of every metric (IQM [95 % CI] over seeds), per-run values, the figure.

    :param results: per-run results
    :param table: output of :func:`summarize`
    :param sources: the experiment directories measured
    :param seconds: wall time of the measurement
    :param out_dir: destination directory
    """
    norms = ordered(results.norm.unique())
    sizes = sorted(results.batch_size.unique())
    seeds = sorted(results.seed.unique())
    md = [
        "# Batch dependence of trained policies on real observations",
        "",
        f"Runs from {', '.join(f'`{s}`' for s in sources)}; seeds {', '.join(map(str, seeds))}; "
        f"{int(results.n_batches.max())} batches per (run, batch size, mode). Values are IQMs over seeds (rliable); "
        f"intervals: {interval_label(results.groupby(['env', 'norm']).seed.nunique().tolist(), task='env')}; "
        "n/a: a batch of one has no other samples. "
        f"Measured in {seconds:.0f} s.",
    ]
    for env in sorted(results.env.unique()):
        for metric in METRICS:
            for mode in MODES:
                rows = []
                for norm in norms:
                    cells = []
                    for size in sizes:
                        interval = table.get((env, norm, metric, mode, size))
                        cells.append(_interval_cell(interval) if interval else "n/a")
                    rows.append([norm, *cells])
                if all(c == "n/a" for r in rows for c in r[1:]):
                    continue
                md += ["", f"## {env}: `{metric}`, {mode} mode", ""]
                md.append(md_table(["norm", *(f"B={s}" for s in sizes)], rows))
    md += ["", "## Per run (mean over batches)", ""]
    per_run = results.pivot_table(index=["run", "metric", "mode"], columns="batch_size", values="value").reset_index()
    md.append(
        md_table(
            ["run", "metric", "mode", *(f"B={s}" for s in sizes)],
            [[r.run, r.metric, r["mode"], *(_num(r.get(s)) for s in sizes)] for _, r in per_run.iterrows()],
        )
    )
    md += ["", "![batch_dependence.png](batch_dependence.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path


def _num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3g}"


def _interval_cell(interval: Interval) -> str:
    return f"{interval.value:.3g} [{interval.low:.3g}, {interval.high:.3g}]"


def run_study(
    experiment_dirs: Sequence[str | Path],
    out: str | Path = "reports",
    runs_root: str | Path = "runs",
    batch_sizes: Sequence[int] = BATCH_SIZES,
    n_obs: int = 1024,
    n_batches: int = 8,
    seed: int = 20_000,
) -> Path:
    """Measure every finished run of the given experiments and write the report.

    :param experiment_dirs: ``runs/<experiment>`` directories
    :param out: reports root; the report goes to ``<out>/study_batch_dependence/``
    :param runs_root: TensorBoard events go to ``<runs_root>/study_batch_dependence/<experiment>/<env>/<run>/``
    :param batch_sizes: batch sizes measured, each >= 1
    :param n_obs: observations collected per run
    :param n_batches: batches per (batch size, mode)
    :param seed: seed of the observation collection and of the batch draws
    :return: path of ``report.md``
    """
    sizes = list(batch_sizes)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"batch_sizes: must be integers >= 1, got {sizes}")
    if n_obs < max(sizes):
        raise ValueError(f"n_obs: must be >= the largest batch size {max(sizes)}, got {n_obs}")
    started = time.perf_counter()
    frames = []
    for exp in map(Path, experiment_dirs):
        runs = find_trained_runs(exp)
        if not runs:
            raise FileNotFoundError(f"{exp}: no finished runs (config.yaml + final_model.zip)")
        for run in runs:
            policy = load_policy(run)
            observations = collect_observations(policy, run, n_obs, seed + run.seed)
            results = measure_run(policy, observations, sizes, n_batches, seed)
            log_to_tensorboard(results, Path(runs_root) / EXPERIMENT / exp.name / env_slug(run.env_id) / run.name)
            frames.append(results.assign(run=f"{exp.name}/{run.name}", env=run.env_id, norm=run.arm, seed=run.seed))
            print(f"{exp.name}/{run.name}: measured", flush=True)
    results = pd.concat(frames, ignore_index=True)
    out_dir = Path(out) / EXPERIMENT
    out_dir.mkdir(parents=True, exist_ok=True)
    results.to_csv(out_dir / "per_run.csv", index=False)
    table = summarize(results)
    plot(results, table, out_dir / "batch_dependence.png")
    return write_report(results, table, [str(e) for e in experiment_dirs], time.perf_counter() - started, out_dir)


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "Study experiment 1: batch dependence of *trained* policy networks on *real* observations."
PROG = "python -m agents study batch-dependence"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m agents study batch-dependence RUNS_DIR [RUNS_DIR ...] [options]``.

    :param argv: command-line arguments
    :return: exit status
    """
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("experiments", nargs="+", help="runs/<experiment> directories with finished runs")
    parser.add_argument("--out", default="reports", help="reports root (default: reports)")
    parser.add_argument("--runs-root", default="runs", help="root of the TensorBoard output (default: runs)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--n-obs", type=int, default=1024, help="observations collected per run")
    parser.add_argument("--n-batches", type=int, default=8, help="batches per batch size and mode")
    parser.add_argument("--seed", type=int, default=20_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        path = run_study(
            args.experiments, args.out, args.runs_root, args.batch_sizes, args.n_obs, args.n_batches, args.seed
        )
    except (ValueError, FileNotFoundError) as err:
        return command_error(err)
    return finish(path)


if __name__ == "__main__":
    sys.exit(main())
