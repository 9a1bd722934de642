"""Comparison report from the TensorBoard event files: ``python -m agents compare runs/<experiment>``.

Reads every run of an experiment back with tbparse (runs are found by their ``config.yaml``), aggregates
over seeds (and envs) with rliable - interquartile mean (IQM) with stratified-bootstrap 95 % confidence
intervals, human-normalized scores for Atari - and writes ``reports/<experiment>/``:

* ``learning_curves.png`` - training return vs steps per env, one line per norm, CI bands;
* ``final_scores.png`` - final clean evaluation return per env (and human-normalized aggregate on Atari);
* ``noise_sensitivity.png`` - evaluation return vs observation-noise level per norm;
* ``report.md`` - the tables behind the plots, per-run values and links to the images.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.pipeline.tb_layout import (
    LAYOUT_DIR,
    RETURN_CLEAN,
    RETURN_EVAL_MODE,
    RETURN_TRAIN_MODE,
    ROLLOUT_RETURN,
    noise_tag,
)
from agents.report.plots import plot_final_scores, plot_learning_curves, plot_noise_sensitivity
from agents.report.scalars import final_values, find_runs, load_scalars, noise_levels
from agents.report.stats import BOOTSTRAP_REPS, atari_game
from agents.report.tables import fmt, md_table, ordered, score_table


def compare(experiment_dir: str | Path, report_dir: str | Path) -> Path:
    """Write the comparison report of one experiment.

    :param experiment_dir: ``runs/<experiment>``
    :param report_dir: destination, usually ``reports/<experiment>``
    :return: path of ``report.md``
    """
    experiment_dir, report_dir = Path(experiment_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    scalars = load_scalars(experiment_dir)
    finals = final_values(scalars)
    envs = sorted(scalars.env.unique())
    norms = ordered(scalars.norm.unique())
    clean = score_table(finals, RETURN_CLEAN, envs, norms)
    train_return = score_table(finals, ROLLOUT_RETURN, envs, norms)
    levels = noise_levels(finals)

    images = {
        "learning_curves.png": plot_learning_curves(scalars, envs, norms, report_dir / "learning_curves.png"),
        "final_scores.png": plot_final_scores(clean, envs, norms, report_dir / "final_scores.png"),
    }
    if levels:
        images["noise_sensitivity.png"] = plot_noise_sensitivity(
            finals, envs, norms, levels, report_dir / "noise_sensitivity.png"
        )

    algos = ", ".join(sorted(scalars.algo.unique()))
    seeds = sorted(scalars.seed.unique())
    md = [
        f"# {experiment_dir.name}: norm comparison",
        "",
        f"Algorithm {algos}; {len(envs)} env(s), norms {', '.join(norms)}, seeds {', '.join(map(str, seeds))}. "
        f"Values are interquartile means over seeds with stratified-bootstrap 95 % confidence intervals "
        f"(rliable, {BOOTSTRAP_REPS} resamples), read from the event files under `{experiment_dir}`.",
        "",
        "## Final evaluation return (clean observations)",
        "",
        md_table(
            ["env", *norms],
            [[env, *(str(clean.get((env, n), "-")) for n in norms)] for env in envs]
            + (
                [
                    [
                        "**all envs (IQM" + (", human-normalized" if any(map(atari_game, envs)) else "") + ")**",
                        *(str(clean.get((None, n), "-")) for n in norms),
                    ]
                ]
                if len(envs) > 1
                else []
            ),
        ),
        "",
        "## Final training return (`rollout/ep_rew_mean`)",
        "",
        md_table(["env", *norms], [[env, *(str(train_return.get((env, n), "-")) for n in norms)] for env in envs]),
    ]
    for kind, kind_levels in levels.items():
        md += ["", f"## Evaluation return under {kind} noise", ""]
        rows = []
        for env in envs:
            for level in kind_levels:
                table = score_table(finals, noise_tag(kind, level), [env], norms)
                rows.append([env, f"{level:g}", *(str(table.get((env, n), "-")) for n in norms)])
        md.append(md_table(["env", "level", *norms], rows))
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
            [run, first.env, first.norm, first.seed, steps, *(fmt(values.get(t)) for t in per_run_tags)]
        )
    md.append(md_table(["run", "env", "norm", "seed", "steps", *(f"`{t}`" for t in per_run_tags)], per_run_rows))
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
        print(f"report: {compare(exp, Path(args.out) / exp.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
