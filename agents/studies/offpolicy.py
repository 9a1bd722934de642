"""The off-policy study arm (issue 18): SAC with each critic norm and CrossQ (+ WN) on one env, in one report.

``python -m agents study offpolicy CONFIG [CONFIG ...]`` trains each config's grid (finished runs are skipped),
writes each experiment's comparison report (:mod:`agents.report.compare`) and then the joint report into the
first experiment's report folder:

* ``offpolicy.md`` - final evaluation return per arm (an arm is an algorithm with a critic norm) as the IQM over
  seeds with a stratified-bootstrap interval, each arm's difference to the first arm, and the BN train/eval gap;
* ``offpolicy_curves.png`` - training and evaluation return vs environment steps per arm;
* ``offpolicy_runs.csv`` and ``offpolicy_bn_gap.csv`` - the per-run values behind the tables.

The BN train/eval gap is measured by :mod:`agents.studies.offpolicy_gap` on each final model with batch
statistics.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from agents.config import ConfigError, ExperimentConfig, load_config
from agents.pipeline.evaluation import has_batch_statistics
from agents.pipeline.runs import run_wall_time
from agents.pipeline.tb_layout import RETURN_CLEAN, ROLLOUT_RETURN
from agents.report.plots import norm_color, save_figure, seed_curves, subplots
from agents.report.scalars import final_values, find_runs, load_scalars
from agents.report.stats import BOOTSTRAP_REPS, curve_intervals, iqm, iqm_interval
from agents.report.tables import fmt, md_table, ordered
from agents.studies.offpolicy_gap import critic_mode_gap

#: the line that says what the intervals are (with 3 seeds IQM trims nothing and the interval is their range)
INTERVAL_NOTE = (
    "IQM over seeds with rliable's stratified-bootstrap percentile interval ({reps} resamples, nominal 95 %). "
    "With 3 seeds (or fewer) the IQM trims nothing (it is the mean) and the interval is the range of the seeds, "
    "not a 95 % confidence interval of the arm's expected return."
)


def arm_name(algo: str, norm: str, policy_kwargs: dict[str, Any] | None = None) -> str:
    """The arm of a run: ``SAC ln`` (the critic norm), ``CrossQ BRN`` or ``CrossQ BRN+WN``.

    :param algo: the algorithm of the run
    :param norm: the run's norm
    :param policy_kwargs: the run's ``policy_kwargs`` (``batch_norm`` marks CrossQ's BatchRenorm layout)
    """
    if (policy_kwargs or {}).get("batch_norm"):
        return f"{algo} BRN" + ("" if norm == "none" else f"+{norm.upper()}")
    return f"{algo} {norm}"


def wall_times(experiment_dirs: Sequence[Path]) -> dict[str, float]:
    """Wall time in seconds of every finished run (``final.json``), keyed ``<experiment>/<run>``."""
    times = {}
    for exp in experiment_dirs:
        for run_dir in find_runs(exp) if exp.is_dir() else []:
            seconds = run_wall_time(run_dir)
            if not math.isnan(seconds):
                times[f"{exp.name}/{run_dir.relative_to(exp)}"] = seconds
    return times


def run_configs(run_dir: Path) -> dict[str, Any]:
    """The saved config of a run (``config.yaml``)."""
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def load_arms(experiment_dirs: Sequence[Path]) -> tuple[pd.DataFrame, list[str]]:
    """Every scalar of the finished runs of the experiments, with ``arm`` (:func:`arm_name`) and ``experiment``
    columns; ``run`` becomes ``<experiment>/<run>``.

    :param experiment_dirs: ``runs/<experiment>`` folders
    :return: the scalars, and the arms in order (experiments as given, norms in the registry's order)
    """
    frames, arms = [], []
    for exp in experiment_dirs:
        if not exp.is_dir() or not find_runs(exp):
            continue
        scalars = load_scalars(exp)
        scalars = scalars[scalars.status == "finished"]
        if scalars.empty:
            continue
        arm_of = {}
        for run in scalars.run.unique():
            info = run_configs(exp / run)
            arm_of[run] = arm_name(info["algo"], info["run"]["norm"], info.get("policy_kwargs"))
        scalars = scalars.assign(arm=scalars.run.map(arm_of), experiment=exp.name, run=exp.name + "/" + scalars.run)
        for norm in ordered(scalars.norm.unique()):
            arms.append(scalars[scalars.norm == norm].arm.iloc[0])
        frames.append(scalars)
    if not frames:
        raise FileNotFoundError(f"no finished runs under {', '.join(map(str, experiment_dirs))}")
    return pd.concat(frames, ignore_index=True), arms


def difference_interval(
    scores: np.ndarray, reference: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> tuple[float, float, float]:
    """IQM(scores) - IQM(reference) with a percentile-bootstrap interval, each arm's seeds resampled apart.

    :param scores: one value per seed
    :param reference: one value per seed of the arm compared against
    :param reps: bootstrap repetitions
    :param seed: numpy seed
    :return: (difference, low, high) of the nominal 95 % interval
    """
    rng = np.random.default_rng(seed)
    a, b = np.asarray(scores, dtype=float), np.asarray(reference, dtype=float)
    draws = iqm(rng.choice(a, (reps, len(a))), axis=1) - iqm(rng.choice(b, (reps, len(b))), axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(iqm(a) - iqm(b)), float(low), float(high)


def final_table(
    finals: pd.DataFrame, arms: Sequence[str], walls: dict[str, float] | None = None
) -> tuple[list[list[str]], pd.DataFrame]:
    """Rows of the final-return table (one per arm) and the per-run values behind it.

    :param finals: :func:`agents.report.scalars.final_values` of the arms' scalars (with ``arm``)
    :param arms: arm order; the first is the reference of the difference column
    :param walls: wall time per run (:func:`wall_times`)
    """
    clean = finals[finals.tag == RETURN_CLEAN].sort_values(["arm", "seed"])
    clean = clean.assign(wall_time_s=clean.run.map(walls or {}))
    per_arm = {arm: clean[clean.arm == arm] for arm in arms}
    reference = per_arm[arms[0]].value.to_numpy()
    rows = []
    for arm in arms:
        values = per_arm[arm].value.to_numpy()
        interval = iqm_interval(values[:, None])
        diff = "-" if arm == arms[0] else "{:.1f} [{:.1f}, {:.1f}]".format(*difference_interval(values, reference))
        seeds = ", ".join(f"{v:.1f}" for v in values)
        steps = per_arm[arm].step
        rows.append(
            [
                arm,
                len(values),
                f"{int(steps.min())}" if steps.min() == steps.max() else f"{int(steps.min())}-{int(steps.max())}",
                f"{interval.value:.1f} [{interval.low:.1f}, {interval.high:.1f}]",
                diff,
                seeds,
                f"{per_arm[arm].run.map(walls or {}).mean():.0f}",
            ]
        )
    return rows, clean[["arm", "experiment", "run", "seed", "step", "value", "wall_time_s"]]


def within_rows(per_run: pd.DataFrame, arms: Sequence[str]) -> list[list[str]]:
    """Each arm against the first arm of its own experiment (e.g. CrossQ BRN+WN vs CrossQ BRN), where that is
    not the table's reference already.

    :param per_run: the per-run values of :func:`final_table`
    :param arms: arm order; ``arms[0]`` is the table's reference
    """
    rows = []
    for _, runs in per_run.groupby("experiment", sort=False):
        own = [a for a in arms if a in set(runs.arm)]
        if own[0] == arms[0]:
            continue
        reference = runs[runs.arm == own[0]].sort_values("seed").value.to_numpy()
        for arm in own[1:]:
            values = runs[runs.arm == arm].sort_values("seed").value.to_numpy()
            rows.append([arm, own[0], "{:.1f} [{:.1f}, {:.1f}]".format(*difference_interval(values, reference))])
    return rows


def plot_curves(scalars: pd.DataFrame, arms: Sequence[str], path: Path) -> Path:
    """Training and evaluation return vs environment steps, IQM over seeds with the bootstrap band, per arm."""
    fig, axes = subplots(1, 2, figsize=(12, 4.4), squeeze=False)
    for ax, tag, title in zip(axes[0], (ROLLOUT_RETURN, RETURN_CLEAN), ("training return", "evaluation return")):
        rows = scalars[scalars.tag == tag]
        for arm in arms:
            seeds = seed_curves(rows[rows.arm == arm])
            if seeds is None:
                continue
            steps, curves = seeds
            point, ci = curve_intervals(curves)
            algo, norm = arm.split(" ", 1)
            color = norm_color("brn" if norm == "BRN" else norm.split("+")[-1].lower())
            style = "--" if algo != "SAC" else "-"
            ax.plot(steps, point, style, color=color, label=f"{arm} (n={len(curves)})", lw=1.8)
            ax.fill_between(steps, ci[0], ci[1], color=color, alpha=0.12, lw=0)
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Off-policy arm: IQM over seeds, bootstrap band (with 3 seeds: their range)", fontsize=11)
    return save_figure(fig, path)


def measure_gaps(
    experiment_dirs: Sequence[Path], *, n_episodes: int = 10, eval_envs: int = 2, seed_offset: int = 10_000
) -> pd.DataFrame:
    """:func:`critic_mode_gap` of the final model of every finished run whose policy has batch statistics.

    :param experiment_dirs: ``runs/<experiment>`` folders
    :param n_episodes: evaluation episodes per mode
    :param eval_envs: evaluation envs (the train-mode batch when acting)
    :param seed_offset: evaluation env seed = run seed + offset
    :return: one row per run: ``arm, run, seed`` and the :class:`ModeGap` fields
    """
    from stable_baselines3.common.env_util import make_vec_env

    from agents.pipeline.train import algo_class

    rows = []
    for exp in experiment_dirs:
        for run_dir in find_runs(exp) if exp.is_dir() else []:
            model_file = run_dir / "final_model.zip"
            if not model_file.exists():
                continue
            info = run_configs(run_dir)
            model = algo_class(info["algo"]).load(model_file, device="cpu")
            if not has_batch_statistics(model.policy):
                continue
            env = make_vec_env(info["run"]["env"], n_envs=eval_envs, seed=int(info["run"]["seed"]) + seed_offset)
            try:
                batch_size = int(model.batch_size)
                gap = critic_mode_gap(model.policy, env, n_episodes=n_episodes, batch_size=batch_size)
            finally:
                env.close()
            arm = arm_name(info["algo"], info["run"]["norm"], info.get("policy_kwargs"))
            rows.append({"arm": arm, "run": f"{exp.name}/{run_dir.relative_to(exp)}", **asdict(gap)})
    return pd.DataFrame(rows)


def gap_rows(gaps: pd.DataFrame, arms: Sequence[str]) -> list[list[str]]:
    """One row per arm with batch statistics: mean over seeds of each :class:`ModeGap` field."""
    rows = []
    for arm in arms:
        g = gaps[gaps.arm == arm]
        if g.empty:
            continue
        train_return = g.return_train_mode.dropna()
        rows.append(
            [
                arm,
                len(g),
                fmt(g.return_eval_mode.mean()),
                fmt(train_return.mean()) if len(train_return) else "= eval (plain actor)",
                fmt(g.q_eval_mode.mean()),
                fmt(g.q_train_mode.mean()),
                f"{100 * g.q_gap.mean():.1f} % ({100 * g.q_gap.min():.1f}-{100 * g.q_gap.max():.1f})",
            ]
        )
    return rows


def write_report(experiment_dirs: Sequence[Path], out_dir: Path, *, n_episodes: int = 10, note: str = "") -> Path:
    """Write ``offpolicy.md``, ``offpolicy_curves.png`` and the CSVs into ``out_dir``.

    :param experiment_dirs: ``runs/<experiment>`` of each config; the first run arm is the reference
    :param out_dir: report folder
    :param n_episodes: evaluation episodes per mode for the BN gap
    :param note: a line on steps and wall time
    :return: path of ``offpolicy.md``
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    scalars, arms = load_arms(experiment_dirs)
    finals = final_values(scalars)
    rows, per_run = final_table(finals, arms, wall_times(experiment_dirs))
    per_run.to_csv(out_dir / "offpolicy_runs.csv", index=False)
    plot_curves(scalars, arms, out_dir / "offpolicy_curves.png")
    gaps = measure_gaps(experiment_dirs, n_episodes=n_episodes)
    gaps.to_csv(out_dir / "offpolicy_bn_gap.csv", index=False)
    md = [
        "# Off-policy arm: SAC critic norms and CrossQ",
        "",
        f"Experiments: {', '.join(f'`{e}`' for e in experiment_dirs)}. {note}".rstrip(),
        "",
        "## Final evaluation return",
        "",
        INTERVAL_NOTE.format(reps=BOOTSTRAP_REPS)
        + f" `vs {arms[0]}`: difference of the IQMs with a percentile-bootstrap interval (each arm's seeds "
        "resampled apart); with 3 seeds a bootstrap understates the uncertainty, so an interval that excludes 0 is "
        "weak evidence and one that includes 0 supports no claim.",
        "",
        md_table(["arm", "seeds", "steps", "IQM [interval]", f"vs {arms[0]}", "per seed", "wall s/run"], rows),
        "",
    ]
    within = within_rows(per_run, arms)
    if within:
        md += [md_table(["arm", "against", "difference of IQMs [interval]"], within), ""]
    md += [
        "## BN train/eval-mode gap (final models)",
        "",
        f"{n_episodes} deterministic evaluation episodes per mode on 2 envs. Returns: acting with running statistics "
        "(eval mode) or with the statistics of the batch of 2 envs (train mode); a plain actor acts the same in "
        "both. Q: the critics' mean value of (state, greedy action) on the eval-mode episodes' states, shuffled "
        "into batches of the training batch size, in eval mode and in train mode (batch statistics, as in the "
        "updates); gap: mean |Q_train - Q_eval| / mean |Q_eval|, mean over seeds (min-max).",
        "",
    ]
    rows_gap = gap_rows(gaps, arms) if len(gaps) else []
    md.append(
        md_table(
            ["arm", "runs", "return eval mode", "return train mode", "Q eval mode", "Q train mode", "Q gap"], rows_gap
        )
        if rows_gap
        else "No finished run has batch statistics."
    )
    md += ["", "![offpolicy_curves.png](offpolicy_curves.png)", ""]
    path = out_dir / "offpolicy.md"
    path.write_text("\n".join(md))
    return path


DESCRIPTION = "Off-policy study arm: train each config's grid, then the joint report (return, curves, BN gap)."
PROG = "python -m agents study offpolicy"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents study offpolicy CONFIG [CONFIG ...] [key=value ...]``.

    :param argv: command-line arguments
    :return: exit status: 0 ok, 1 some run failed, 2 bad config
    """
    from agents.pipeline.sweep import preflight, run_grid
    from agents.report.compare import compare

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("args", nargs="+", help="configs, then key=value overrides applied to each")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: sweep.workers)")
    parser.add_argument("--report-only", action="store_true", help="only read existing runs back")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per mode for the BN gap")
    args = parser.parse_args(argv)
    paths = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    try:
        configs: list[ExperimentConfig] = [load_config(p, overrides) for p in paths]
        for path, config in zip(paths, configs):
            preflight(config, path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not configs:
        print("error: no config given", file=sys.stderr)
        return 2
    failed = 0
    dirs = [Path(c.runs_dir) / c.experiment for c in configs]
    for config, exp in zip(configs, dirs):
        if not args.report_only:
            failed += sum(r.status == "failed" for r in run_grid(config, workers=args.workers))
        if find_runs(exp):
            print(f"report: {compare(exp, Path(config.reports_dir) / config.experiment)}")
    steps = ", ".join(f"{c.experiment}: {c.train.total_timesteps} steps x {len(c.seeds)} seeds" for c in configs)
    report = write_report(
        dirs, Path(configs[0].reports_dir) / configs[0].experiment, n_episodes=args.episodes, note=steps + "."
    )
    print(f"report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
