"""Study experiment 2: final return vs minibatch size (PPO/A2C minibatch, DQN replay batch), per norm.

``python -m agents study minibatch configs/study_minibatch.yaml [key=value ...] [--batch-sizes 16 64 256]``

The config is an ordinary experiment config (norms x envs x seeds); this script runs its grid once per
minibatch size (``hyperparams.default.batch_size``), each into ``<runs_dir>/<experiment>/mb<size>/`` (an
experiment folder of its own, with TensorBoard events and the TensorBoard layout), then reads the event files
back and writes ``<reports_dir>/<experiment>/``: ``minibatch.png`` and ``report.md`` with the final clean
evaluation return (and, for batch-statistics norms, the train-mode vs eval-mode return) as IQM over seeds with
rliable's stratified-bootstrap 95 % intervals (the seeds' range with 3 or fewer). Finished runs are skipped, so
re-running only redoes the report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.config import ConfigError, ExperimentConfig, load_config
from agents.pipeline.tb_layout import RETURN_CLEAN, RETURN_TRAIN_MODE, ROLLOUT_RETURN
from agents.report.plots import INTERVAL_CAPTION
from agents.report.scalars import final_values, load_scalars
from agents.report.stats import Interval, interval_label, iqm_interval
from agents.report.tables import md_table, ordered

MINIBATCH_SIZES = (16, 64, 256)
#: tags tabulated per minibatch size
TAGS = (RETURN_CLEAN, ROLLOUT_RETURN, RETURN_TRAIN_MODE)


def minibatch_configs(
    path: str | Path, batch_sizes: Sequence[int] = MINIBATCH_SIZES, overrides: Sequence[str] = ()
) -> list[tuple[int, ExperimentConfig]]:
    """One validated config per minibatch size, writing to ``<runs_dir>/<experiment>/mb<size>/``.

    :param path: the study config
    :param batch_sizes: PPO/A2C minibatch sizes (``batch_size``), each >= 2
    :param overrides: ``key=value`` overrides applied to every size
    :raises ConfigError: on a bad size, or when an env block sets ``batch_size`` itself (it would win)
    """
    base = load_config(path, overrides)
    sizes = list(batch_sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in sizes):
        raise ConfigError("<command line>", "--batch-sizes", f"must be integers >= 2, got {sizes}")
    if len(set(sizes)) != len(sizes):
        raise ConfigError("<command line>", "--batch-sizes", f"duplicate sizes in {sizes}")
    for block, params in base.hyperparams.items():
        if block != "default" and "batch_size" in params:
            raise ConfigError(str(path), f"hyperparams.{block}.batch_size", "the study sets batch_size; remove it")
    root = Path(base.runs_dir) / base.experiment
    return [
        (
            size,
            load_config(
                path,
                [*overrides, f"hyperparams.default.batch_size={size}", f"experiment=mb{size}", f"runs_dir={root}"],
            ),
        )
        for size in sizes
    ]


def algo_label(finals: pd.DataFrame) -> str:
    """The algorithm(s) of the runs, e.g. ``"PPO"`` or ``"DQN"``, for titles and axis labels.

    :param finals: output of :func:`load_finals`
    """
    return "/".join(sorted(finals.algo.unique()))


def load_finals(study_dir: str | Path, batch_sizes: Sequence[int]) -> pd.DataFrame:
    """The last logged value of every tag of every run, with a ``minibatch`` column.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param batch_sizes: the ``mb<size>`` folders read (missing ones are skipped)
    """
    frames = []
    for size in batch_sizes:
        folder = Path(study_dir) / f"mb{size}"
        if folder.is_dir():
            frames.append(final_values(load_scalars(folder)).assign(minibatch=size))
    if not frames:
        raise FileNotFoundError(f"{study_dir}: no mb<size> folders with runs")
    return pd.concat(frames, ignore_index=True)


def summarize(finals: pd.DataFrame) -> dict[tuple[str, str, str, int], Interval]:
    """IQM over seeds with intervals, keyed ``(tag, env, norm, minibatch)``.

    :param finals: output of :func:`load_finals`
    """
    table = {}
    rows = finals[finals.tag.isin(TAGS)]
    for (tag, env, norm, size), group in rows.groupby(["tag", "env", "norm", "minibatch"]):
        table[(tag, env, norm, int(size))] = iqm_interval(group.sort_values("seed").value.to_numpy()[:, None])
    return table


def plot(
    table: dict, envs: Sequence[str], norms: Sequence[str], sizes: Sequence[int], path: Path, algo: str = "PPO"
) -> Path:
    """Final clean evaluation return vs minibatch size per norm (BN's train-mode return dotted), per env.

    :param table: output of :func:`summarize`
    :param envs: one panel each
    :param norms: one line each
    :param sizes: x axis
    :param path: PNG destination
    :param algo: the algorithm named on the x axis
    """
    from agents.report.plots import norm_color, save_figure, subplots

    fig, axes = subplots(1, len(envs), figsize=(6.5 * len(envs), 4.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        offsets = np.linspace(-0.06, 0.06, len(norms))  # keep overlapping whiskers apart
        for off, norm in zip(offsets, norms):
            for tag, style, suffix in ((RETURN_CLEAN, "-", ""), (RETURN_TRAIN_MODE, ":", " train mode")):
                points = [(s, table[(tag, env, norm, s)]) for s in sizes if (tag, env, norm, s) in table]
                if not points:
                    continue
                x = np.array([p[0] for p in points]) * 2**off
                v = np.array([p[1].value for p in points])
                err = np.array([[p[1].value - p[1].low, p[1].high - p[1].value] for p in points]).T
                ax.errorbar(
                    x, v, yerr=err, fmt=style, marker="o", capsize=3, color=norm_color(norm), label=norm + suffix
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(sizes), [str(s) for s in sizes])
        ax.set_xlabel(f"{algo} minibatch size")
        ax.set_ylabel(f"final {RETURN_CLEAN}")
        ax.set_title(env)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Final evaluation return vs minibatch size\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def write_report(finals: pd.DataFrame, table: dict, out_dir: Path, note: str = "") -> Path:
    """``report.md``: one table per tag (norm x minibatch size), per-run values and the figure.

    :param finals: output of :func:`load_finals`
    :param table: output of :func:`summarize`
    :param out_dir: destination directory
    :param note: a line about how the runs were made (command, steps, wall time)
    """
    envs = sorted(finals.env.unique())
    norms = ordered(finals.norm.unique())
    sizes = sorted(int(s) for s in finals.minibatch.unique())
    seeds = sorted(int(s) for s in finals.seed.unique())
    md = [
        f"# Final return vs {algo_label(finals)} minibatch size",
        "",
        f"Norms {', '.join(norms)}; minibatch sizes {', '.join(map(str, sizes))}; seeds {', '.join(map(str, seeds))}. "
        f"IQM over seeds; intervals: {interval_label([len(seeds)], task='cell')} (rliable). " + note,
    ]
    titles = {
        RETURN_CLEAN: "final evaluation return (eval mode, clean)",
        ROLLOUT_RETURN: "final training return (`rollout/ep_rew_mean`)",
        RETURN_TRAIN_MODE: "final evaluation return of batch-statistics policies in train mode",
    }
    for tag in TAGS:
        for env in envs:
            rows = [[n, *(str(table.get((tag, env, n, s), "-")) for s in sizes)] for n in norms]
            rows = [r for r in rows if any(c != "-" for c in r[1:])]  # e.g. train mode exists for BN only
            if not rows:
                continue
            md += ["", f"## {env}: {titles[tag]}", "", md_table(["norm", *(f"mb={s}" for s in sizes)], rows)]
    md += ["", "## Per run", ""]
    per_run = finals[finals.tag.isin(TAGS)].pivot_table(
        index=["env", "norm", "minibatch", "seed"], columns="tag", values="value"
    )
    md.append(
        md_table(
            ["env", "norm", "minibatch", "seed", *(f"`{t}`" for t in TAGS)],
            [[*idx, *(f"{r.get(t, float('nan')):.2f}" for t in TAGS)] for idx, r in per_run.iterrows()],
        )
    )
    md += ["", "![minibatch.png](minibatch.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path


def report(study_dir: str | Path, out_dir: str | Path, batch_sizes: Sequence[int], note: str = "") -> Path:
    """Read the runs back and write ``minibatch.png``, ``per_run.csv`` and ``report.md`` into ``out_dir``.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param out_dir: ``<reports_dir>/<experiment>``
    :param batch_sizes: minibatch sizes read
    :param note: a line about how the runs were made
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finals = load_finals(study_dir, batch_sizes)
    finals.to_csv(out_dir / "per_run.csv", index=False)
    table = summarize(finals)
    envs = sorted(finals.env.unique())
    norms = ordered(finals.norm.unique())
    sizes = sorted(int(s) for s in finals.minibatch.unique())
    plot(table, envs, norms, sizes, out_dir / "minibatch.png", algo_label(finals))
    return write_report(finals, table, out_dir, note)


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "Study experiment 2: final return vs minibatch size (PPO/A2C minibatch, DQN replay batch), per norm."
PROG = "python -m agents study minibatch"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the grid at every minibatch size (skipping finished runs), then the report.

    :param argv: command-line arguments
    :return: exit status (0 ok, 1 some run failed, 2 bad config)
    """
    from agents.studies.cli import run_arms, study_parser

    parser = study_parser(PROG, DESCRIPTION, "size")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=list(MINIBATCH_SIZES), help="one grid per minibatch size"
    )
    args = parser.parse_args(argv)
    return run_arms(args, lambda: minibatch_configs(args.config, args.batch_sizes, args.overrides), report)


if __name__ == "__main__":
    sys.exit(main())
