"""Comparison report from the TensorBoard event files: ``python -m agents compare runs/<experiment>``.

Reads every run of an experiment back with tbparse (runs are found by their ``config.yaml``), aggregates
over seeds (and envs) with rliable - interquartile mean (IQM) with stratified-bootstrap 95 % intervals,
labelled for the number of runs they rest on, human-normalized scores for Atari - and writes ``reports/<experiment>/``:

* ``learning_curves.png`` - training return vs steps per env, one line per norm, CI bands;
* ``final_scores.png`` - final clean evaluation return per env (and human-normalized aggregate on Atari);
* ``noise_sensitivity.png`` - evaluation return vs observation-noise level per norm;
* ``report.md`` - how every run stands, the tables behind the plots, per-run values and links to the images.

Only finished runs (``final.json`` at the configured ``train.total_timesteps``) are aggregated and drawn; the
others (interrupted, still running, failed) are listed with their steps and reason. ``--include-unfinished``
aggregates them too, each value that includes one marked; every aggregate table states its steps.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from agents.pipeline.tb_layout import (
    LAYOUT_DIR,
    RETURN_CLEAN,
    RETURN_EVAL_MODE,
    RETURN_TRAIN_MODE,
    ROLLOUT_RETURN,
    noise_tag,
)
from agents.report.plots import plot_final_scores, plot_learning_curves, plot_noise_sensitivity
from agents.report.scalars import RUN_STATUSES, final_values, find_runs, load_scalars, noise_levels, run_states
from agents.report.stats import BOOTSTRAP_REPS, atari_game, interval_label
from agents.report.tables import fmt, md_table, ordered, score_table

#: marks aggregates that include runs which did not reach their configured steps (``--include-unfinished``)
UNFINISHED_MARK = "†"


def _steps_range(steps: pd.Series) -> str:
    """``250880`` when every run covers the same steps, else ``64512–250880``."""
    if steps.empty:
        return "-"
    low, high = int(steps.min()), int(steps.max())
    return f"{low}" if low == high else f"{low}–{high}"


def _cell(table: dict, key: tuple, finals: pd.DataFrame, env: str | None, norm: str) -> str:
    value = table.get(key)
    if value is None:
        return "-"
    rows = finals[finals.norm == norm] if env is None else finals[(finals.env == env) & (finals.norm == norm)]
    return f"{value} {UNFINISHED_MARK}" if (rows.status != "finished").any() else str(value)


def _score_rows(finals: pd.DataFrame, tag: str, envs: Sequence[str], norms: Sequence[str]) -> list[list[str]]:
    """One row per env: the IQM [CI] per norm (marked if it includes unfinished runs) and the steps covered."""
    rows_of_tag = finals[finals.tag == tag]
    table = score_table(finals, tag, envs, norms)
    rows = []
    for env in envs:
        env_rows = rows_of_tag[rows_of_tag.env == env]
        cells = [_cell(table, (env, n), env_rows, env, n) for n in norms]
        rows.append([env, *cells, _steps_range(env_rows.step)])
    if len(envs) > 1:
        label = "**all envs (IQM" + (", human-normalized" if any(map(atari_game, envs)) else "") + ")**"
        cells = [_cell(table, (None, n), rows_of_tag, None, n) for n in norms]
        rows.append([label, *cells, _steps_range(rows_of_tag.step)])
    return rows


def _status_section(states: pd.DataFrame, include_unfinished: bool) -> list[str]:
    counts = {status: int((states.status == status).sum()) for status in RUN_STATUSES}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    md = ["## Runs", "", f"{len(states)} run{'s' * (len(states) != 1)}: {summary}."]
    others = states[states.status != "finished"]
    if len(others):
        if include_unfinished:
            md[-1] += (
                f" The aggregates include the unfinished and failed runs (`--include-unfinished`); values that "
                f"include them are marked {UNFINISHED_MARK}."
            )
        else:
            md[-1] += (
                " Only finished runs (those that reached their configured steps) are aggregated; "
                "`python -m agents compare RUNS_DIR --include-unfinished` adds the others, marked."
            )
        md += [
            "",
            md_table(
                ["run", "status", "steps", "of", "why"],
                [
                    [r.run, r.status, r.steps, r.target if r.target is not None else "?", r.message]
                    for r in others.itertuples()
                ],
            ),
        ]
    return md


def compare(experiment_dir: str | Path, report_dir: str | Path, *, include_unfinished: bool = False) -> Path:
    """Write the comparison report of one experiment.

    Runs that did not reach their configured steps (interrupted, still running, failed) are listed but left out
    of the aggregates, tables and figures unless ``include_unfinished``; every aggregate table states the steps
    its values were logged at.

    :param experiment_dir: ``runs/<experiment>``
    :param report_dir: destination, usually ``reports/<experiment>``
    :param include_unfinished: aggregate unfinished and failed runs too (their values are marked)
    :return: path of ``report.md``
    """
    experiment_dir, report_dir = Path(experiment_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    states = run_states(experiment_dir)
    scalars = load_scalars(experiment_dir)
    if not include_unfinished:
        scalars = scalars[scalars.status == "finished"]
    md = [f"# {experiment_dir.name}: norm comparison", "", *_status_section(states, include_unfinished)]
    if scalars.empty:
        md += ["", "No finished run yet: nothing to aggregate."]
        for stale in ("learning_curves.png", "final_scores.png", "noise_sensitivity.png"):
            (report_dir / stale).unlink(missing_ok=True)  # figures of an earlier report would contradict this one
        path = report_dir / "report.md"
        path.write_text("\n".join(md) + "\n")
        return path
    finals = final_values(scalars)
    envs = sorted(scalars.env.unique())
    norms = ordered(scalars.norm.unique())
    clean = score_table(finals, RETURN_CLEAN, envs, norms)
    levels = noise_levels(finals)

    images = {
        "learning_curves.png": plot_learning_curves(scalars, envs, norms, report_dir / "learning_curves.png"),
        "final_scores.png": plot_final_scores(clean, envs, norms, report_dir / "final_scores.png"),
    }
    if levels:
        images["noise_sensitivity.png"] = plot_noise_sensitivity(
            finals, envs, norms, levels, report_dir / "noise_sensitivity.png"
        )
    else:
        (report_dir / "noise_sensitivity.png").unlink(missing_ok=True)

    algos = ", ".join(sorted(scalars.algo.unique()))
    seeds = sorted(scalars.seed.unique())
    runs_per_cell = finals.groupby(["env", "norm"]).run.nunique().tolist() or [0]
    md += [
        "",
        f"Algorithm {algos}; {len(envs)} env(s), norms {', '.join(norms)}, seeds {', '.join(map(str, seeds))}. "
        f"Values are interquartile means over seeds; intervals: {interval_label(runs_per_cell, task='env and norm')} "
        f"(rliable, {BOOTSTRAP_REPS} resamples), read from the event files under `{experiment_dir}`; "
        "`steps` is the step (range) at which the aggregated values were logged.",
        "",
        "## Final evaluation return (clean observations)",
        "",
        md_table(["env", *norms, "steps"], _score_rows(finals, RETURN_CLEAN, envs, norms)),
        "",
        "## Final training return (`rollout/ep_rew_mean`)",
        "",
        md_table(["env", *norms, "steps"], _score_rows(finals, ROLLOUT_RETURN, envs, norms)[: len(envs)]),
    ]
    for kind, kind_levels in levels.items():
        md += ["", f"## Evaluation return under {kind} noise", ""]
        rows = []
        for env in envs:
            for level in kind_levels:
                row = _score_rows(finals[finals.env == env], noise_tag(kind, level), [env], norms)[0]
                rows.append([env, f"{level:g}", *row[1:]])
        md.append(md_table(["env", "level", *norms, "steps"], rows))
    bn_rows = finals[finals.tag.isin([RETURN_TRAIN_MODE, RETURN_EVAL_MODE])]
    if len(bn_rows):
        md += ["", "## Batch-statistics policies: train-mode vs eval-mode return", ""]
        pivot = bn_rows.pivot_table(index=["env", "norm", "seed"], columns="tag", values="value").reset_index()
        md.append(
            md_table(
                ["env", "norm", "seed", "train mode", "eval mode"],
                [
                    [r.env, r.norm, r.seed, fmt(r.get(RETURN_TRAIN_MODE)), fmt(r.get(RETURN_EVAL_MODE))]
                    for _, r in pivot.iterrows()
                ],
            )
        )
    md += ["", "## Per run (last logged value of each tag)", ""]
    per_run_tags = [RETURN_CLEAN, ROLLOUT_RETURN]
    per_run_rows = []
    for run, group in finals.groupby("run"):
        values = dict(zip(group.tag, group.value))
        steps = int(scalars[scalars.run == run].step.max())
        first = group.iloc[0]
        per_run_rows.append(
            [run, first.env, first.norm, first.seed, steps, *(fmt(values.get(t)) for t in per_run_tags), first.status]
        )
    header = ["run", "env", "norm", "seed", "steps", *(f"`{t}`" for t in per_run_tags), "status"]
    md.append(md_table(header, per_run_rows))
    md += ["", "## Figures", ""]
    md += [f"![{name}]({name})" for name in images]
    path = report_dir / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "The comparison report of existing runs; RUNS_DIR is runs/<experiment> or runs (one report each)."
PROG = "python -m agents compare"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.report.compare RUNS_DIR [--out DIR]``; ``RUNS_DIR`` is ``runs/<experiment>`` or ``runs``
    (then every experiment in it gets a report).

    :param argv: command-line arguments
    :return: exit status
    """
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("runs", help="runs/<experiment> (or runs/ for every experiment)")
    parser.add_argument("--out", default="reports", help="reports root (default: reports)")
    parser.add_argument(
        "--include-unfinished",
        action="store_true",
        help="also aggregate runs that did not reach their configured steps (interrupted, failed), marked",
    )
    args = parser.parse_args(argv)
    root = Path(args.runs)
    if not root.is_dir():
        print(f"error: {root}: no such directory", file=sys.stderr)
        return 2
    if (root / LAYOUT_DIR).exists():
        experiments = [root]
    else:  # a runs root: one report per experiment found in it
        experiments = [d for d in sorted(root.iterdir()) if (d / LAYOUT_DIR).exists()] or [root]
    for exp in experiments:
        if not find_runs(exp):
            print(f"error: {exp}: no runs with TensorBoard events", file=sys.stderr)
            return 2
        print(f"report: {compare(exp, Path(args.out) / exp.name, include_unfinished=args.include_unfinished)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
