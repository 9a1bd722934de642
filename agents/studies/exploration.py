"""Study experiment 6b: PPO with and without the PixelCNN pseudo-count bonus, per density-model norm.

``python -m agents study exploration configs/study_exploration.yaml [key=value ...] [--density-norms wn bn]``

With ``--sizes`` the command is study 6c instead (:mod:`agents.studies.exploration_sizes`): several algorithm
configs, Deep Sea sizes and the variants ``plain`` / ``count`` / ``pc-<norm>``.

The config is an ordinary experiment config with an ``exploration:`` block. This script runs its grid once
without the bonus (variant ``plain``, the block removed) and once per density-model norm (variant
``pc-<norm>``, ``exploration.norm=<norm>``), each into ``<runs_dir>/<experiment>/<variant>/``, then reads the
event files back and writes ``<reports_dir>/<experiment>/``: ``curves.png`` (evaluation return vs steps, IQM
over seeds with 95 % stratified-bootstrap intervals) and ``report.md`` (final return, solved fraction, steps
to first solve). Finished runs are skipped, so re-running only redoes the report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.config import ConfigError, ExperimentConfig, load_config
from agents.pipeline.tb_layout import RETURN_CLEAN
from agents.report.plots import INTERVAL_CAPTION
from agents.report.scalars import load_scalars
from agents.report.stats import curve_intervals, interval_label, iqm_interval
from agents.report.tables import md_table

PLAIN = "plain"
DENSITY_NORMS = ("wn",)
#: Deep Sea pays 1 - (cost of the moves) at the treasure and at most 0 elsewhere
SOLVED_RETURN = 0.5


def variant_name(density_norm: str | None) -> str:
    """``plain`` without the bonus, ``pc-<norm>`` with a density model normalized by ``norm``."""
    return PLAIN if density_norm is None else f"pc-{density_norm}"


def exploration_configs(
    path: str | Path, density_norms: Sequence[str] = DENSITY_NORMS, overrides: Sequence[str] = ()
) -> list[tuple[str, ExperimentConfig]]:
    """One validated config per variant, writing to ``<runs_dir>/<experiment>/<variant>/``.

    :param path: the study config (must have an ``exploration:`` block)
    :param density_norms: density-model norms, one ``pc-<norm>`` variant each (a ``plain`` variant comes first)
    :param overrides: ``key=value`` overrides applied to every variant
    :raises ConfigError: without an exploration block, or on a duplicate or unknown density norm
    """
    base = load_config(path, overrides)
    if base.exploration is None:
        raise ConfigError(str(path), "exploration", "the study compares with and without it; add the block")
    norms = list(density_norms)
    if len(set(norms)) != len(norms):
        raise ConfigError("<command line>", "--density-norms", f"duplicate norms in {norms}")
    root = Path(base.runs_dir) / base.experiment
    variants: list[tuple[str, list[str]]] = [(PLAIN, ["exploration=null"])]
    variants += [(variant_name(n), [f"exploration.norm={n}"]) for n in norms]
    return [
        (name, load_config(path, [*overrides, *extra, f"experiment={name}", f"runs_dir={root}"]))
        for name, extra in variants
    ]


def load_eval(study_dir: str | Path, variants: Sequence[str]) -> pd.DataFrame:
    """Every ``eval/return_clean`` point of every run, with a ``variant`` column.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param variants: the variant folders read (missing ones are skipped)
    """
    frames = []
    for name in variants:
        folder = Path(study_dir) / name
        if folder.is_dir():
            scalars = load_scalars(folder)
            frames.append(scalars[scalars.tag == RETURN_CLEAN].assign(variant=name))
    if not frames:
        raise FileNotFoundError(f"{study_dir}: no variant folders with runs ({', '.join(variants)})")
    return pd.concat(frames, ignore_index=True)


def per_seed(evals: pd.DataFrame, solved_return: float = SOLVED_RETURN) -> pd.DataFrame:
    """Final return, solved flag and first solving step of each run.

    :param evals: output of :func:`load_eval`
    :param solved_return: an evaluation at or above this return counts as solved
    :return: columns ``variant, env, seed, final, solved, first_solved_step`` (NaN when never solved)
    """
    rows = []
    # run paths are relative to each variant's folder, so group by variant, not by run
    for (variant, env, seed), run in evals.groupby(["variant", "env", "seed"]):
        final = float(run.sort_values("step").value.iloc[-1])
        hits = run[run.value >= solved_return].step
        rows.append(
            {
                "variant": variant,
                "env": env,
                "seed": int(seed),
                "final": final,
                "solved": final >= solved_return,
                "first_solved_step": float(hits.min()) if len(hits) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def plot(evals: pd.DataFrame, variants: Sequence[str], path: Path) -> Path:
    """Evaluation return vs environment steps, IQM over seeds with its interval, one line per variant, per env.

    :param evals: output of :func:`load_eval`
    :param variants: line order
    :param path: PNG destination
    """
    from agents.report.plots import save_figure, subplots

    envs = sorted(evals.env.unique())
    fig, axes = subplots(1, len(envs), figsize=(6.5 * len(envs), 4.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for i, name in enumerate(variants):
            rows = evals[(evals.env == env) & (evals.variant == name)]
            if rows.empty:
                continue
            curves = rows.pivot_table(index="seed", columns="step", values="value").dropna(axis=1)
            point, ci = curve_intervals(curves.to_numpy())
            steps = curves.columns.to_numpy()
            color = f"C{i}"
            ax.plot(steps, point, marker="o", color=color, label=f"{name} ({len(curves)} seeds)")
            ax.fill_between(steps, ci[0], ci[1], color=color, alpha=0.2)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(RETURN_CLEAN)
        ax.set_title(env)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"PPO with and without the pseudo-count bonus\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def write_report(seeds: pd.DataFrame, variants: Sequence[str], out_dir: Path, note: str = "") -> Path:
    """``report.md``: per variant the final return (IQM, CI), solved fraction and steps to first solve.

    :param seeds: output of :func:`per_seed`
    :param variants: row order
    :param out_dir: destination directory
    :param note: a line about how the runs were made (command, steps, wall time)
    """
    md = [
        "# Exploration: PPO with and without the pseudo-count bonus",
        "",
        f"Variants {', '.join(variants)} (`pc-<norm>`: the bonus, with a PixelCNN density model normalized by "
        "`<norm>`). Final greedy evaluation return as IQM over seeds; intervals: "
        f"{interval_label(seeds.groupby(['env', 'variant']).seed.nunique().tolist(), task='env')} (rliable); "
        "a run is solved when its final evaluation return is at least the `--solved-return` threshold. " + note,
    ]
    for env in sorted(seeds.env.unique()):
        rows = []
        for name in variants:
            group = seeds[(seeds.env == env) & (seeds.variant == name)].sort_values("seed")
            if group.empty:
                continue
            first = group.first_solved_step.dropna()
            rows.append(
                [
                    name,
                    str(iqm_interval(group.final.to_numpy()[:, None])),
                    f"{int(group.solved.sum())}/{len(group)}",
                    ", ".join(f"{int(s)}" for s in first) if len(first) else "never",
                ]
            )
        md += [
            "",
            f"## {env}",
            "",
            md_table(["variant", f"final `{RETURN_CLEAN}`", "solved", "first solving evaluation (steps)"], rows),
        ]
    md += ["", "## Per run", ""]
    md.append(
        md_table(
            ["env", "variant", "seed", "final", "solved", "first solved at"],
            [
                [
                    r.env,
                    r.variant,
                    r.seed,
                    f"{r.final:.3f}",
                    r.solved,
                    "-" if np.isnan(r.first_solved_step) else int(r.first_solved_step),
                ]
                for r in seeds.itertuples()
            ],
        )
    )
    md += ["", "![curves.png](curves.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path


def report(
    study_dir: str | Path,
    out_dir: str | Path,
    variants: Sequence[str],
    solved_return: float = SOLVED_RETURN,
    note: str = "",
) -> Path:
    """Read the runs back and write ``curves.png``, ``per_run.csv`` and ``report.md`` into ``out_dir``.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param out_dir: ``<reports_dir>/<experiment>``
    :param variants: variant folders read, in report order
    :param solved_return: the solved threshold
    :param note: a line about how the runs were made
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    evals = load_eval(study_dir, variants)
    seeds = per_seed(evals, solved_return)
    seeds.to_csv(out_dir / "per_run.csv", index=False)
    present = [v for v in variants if v in set(seeds.variant)]
    plot(evals, present, out_dir / "curves.png")
    return write_report(seeds, present, out_dir, note)


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = (
    "Study experiment 6b: PPO with and without the PixelCNN pseudo-count bonus, per density-model norm. With "
    "--sizes it is study 6c instead (several algorithm configs, Deep Sea sizes, variants plain / count / "
    "pc-<norm>): see '--sizes 6 --help'."
)
PROG = "python -m agents study exploration"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run every variant's grid (skipping finished runs), then the report.

    :param argv: command-line arguments
    :return: exit status (0 ok, 1 some run failed, 2 bad config)
    """
    from agents.studies.cli import run_arms, study_parser

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg == "--sizes" or arg.startswith("--sizes=") for arg in argv):
        from agents.studies.exploration_sizes import main as sizes_main

        return sizes_main(argv)
    parser = study_parser(PROG, DESCRIPTION, "variant")
    parser.add_argument("--density-norms", nargs="+", default=list(DENSITY_NORMS), help="one pc-<norm> variant each")
    parser.add_argument(
        "--solved-return", type=float, default=SOLVED_RETURN, help="evaluation return that counts as solved"
    )
    args = parser.parse_args(argv)
    return run_arms(
        args,
        lambda: exploration_configs(args.config, args.density_norms, args.overrides),
        lambda study_dir, out_dir, variants, note: report(study_dir, out_dir, variants, args.solved_return, note),
    )


if __name__ == "__main__":
    sys.exit(main())
