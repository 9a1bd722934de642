"""Study experiment 6: PixelCNN test bits/dim vs training batch size per norm, over seeds.

``python -m agents.studies.pixelcnn configs/study_pixelcnn.yaml --seeds 0 1 2 [--reuse 0=PATH/summary.csv]``

Runs the norm x batch-size grid of :mod:`agents.pixelcnn.train` once per seed (``train.seed``), each into
``<train.logdir>/s<seed>/`` (a grid whose ``summary.csv`` exists is not trained again; ``--reuse SEED=CSV`` takes
the summary of an existing grid of the same config instead), then writes ``reports/study_pixelcnn/``:
``pixelcnn.png`` (test bits/dim in eval mode, and in train mode one frame at a time, vs batch size) and
``report.md`` (IQM over seeds with rliable's stratified-bootstrap 95 % CIs, and the per-seed values).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.report.stats import Interval, iqm_interval
from agents.report.tables import md_table, ordered
from agents.studies.cli import command_error, finish
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS
from rlnorm.registry import NORMS
from rlnorm.validation import ConfigError

EXPERIMENT = "study_pixelcnn"
#: former spelling -> PixelCNN norm (``ln`` -> ``pixel_ln``), from :attr:`rlnorm.registry.NormSpec.old_names`
FORMER_NORM_NAMES: dict[str, str] = {old: name for name in PIXELCNN_NORMS for old in NORMS[name].old_names}
COLUMNS = {
    "test_bpd": "test bits/dim (eval mode)",
    "test_bpd_train_mode_b1": "test bits/dim (train mode, one frame at a time)",
    "train_bpd": "train bits/dim (last updates)",
}


def parse_reuse(items: Sequence[str]) -> dict[int, Path]:
    """``["0=runs/x/summary.csv"]`` -> ``{0: Path(...)}``.

    :param items: ``SEED=PATH`` strings
    :raises ConfigError: naming ``--reuse`` and the bad item
    """
    out = {}
    for item in items:
        seed, sep, path = item.partition("=")
        if not sep or not seed.isdigit() or not path:
            raise ConfigError("<command line>", "--reuse", f"expected SEED=PATH/summary.csv, got {item!r}")
        if not Path(path).is_file():
            raise ConfigError("<command line>", "--reuse", f"{path}: no such file")
        out[int(seed)] = Path(path)
    return out


def summary_path(logdir: str | Path, seed: int, env_id: str) -> Path:
    """Where the grid of one seed writes its ``summary.csv``.

    :param logdir: the config's ``train.logdir``
    :param seed: the seed
    :param env_id: the dataset's env id
    """
    return Path(logdir) / f"s{seed}" / env_id.replace("/", "_") / "summary.csv"


def load_summaries(paths: Mapping[int, Path]) -> pd.DataFrame:
    """The ``summary.csv`` of every seed, with a ``seed`` column.

    Summaries written before the per-pixel norms had names of their own say ``ln`` / ``gn``; they are read as
    ``pixel_ln`` / ``pixel_gn``, so old and new seeds of a study land in the same rows.

    :param paths: seed -> summary file
    """
    frames = [pd.read_csv(path).assign(seed=seed) for seed, path in sorted(paths.items())]
    if not frames:
        raise FileNotFoundError("no PixelCNN summaries to read")
    results = pd.concat(frames, ignore_index=True)
    results["norm"] = results["norm"].map(lambda norm: FORMER_NORM_NAMES.get(norm, norm))
    return results


def summarize(results: pd.DataFrame) -> dict[tuple[str, str, int], Interval]:
    """IQM over seeds with 95 % CIs, keyed ``(column, norm, batch_size)``.

    :param results: output of :func:`load_summaries`
    """
    table = {}
    for (norm, size), group in results.groupby(["norm", "batch_size"]):
        for column in COLUMNS:
            table[(column, norm, int(size))] = iqm_interval(group.sort_values("seed")[column].to_numpy()[:, None])
    return table


def plot(results: pd.DataFrame, table: dict, path: Path) -> Path:
    """Test bits/dim vs batch size per norm: eval mode (left) and train mode at batch 1 (right).

    :param results: output of :func:`load_summaries`
    :param table: output of :func:`summarize`
    :param path: PNG destination
    """
    from agents.report.plots import norm_color, save_figure, subplots

    norms = ordered(results.norm.unique())
    sizes = sorted(int(s) for s in results.batch_size.unique())
    fig, axes = subplots(1, 2, figsize=(12.0, 4.6), sharey=True)
    offsets = np.linspace(-0.08, 0.08, len(norms))  # keep overlapping whiskers apart
    for ax, column in zip(axes, ("test_bpd", "test_bpd_train_mode_b1")):
        for off, norm in zip(offsets, norms):
            points = [table[(column, norm, s)] for s in sizes]
            x = np.array(sizes, dtype=float) * 2**off
            v = np.array([p.value for p in points])
            err = np.array([[p.value - p.low, p.high - p.value] for p in points]).T
            ax.errorbar(x, v, yerr=err, marker="o", capsize=3, color=norm_color(norm), label=norm)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("training batch size")
        ax.set_title(COLUMNS[column])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("bits/dim (lower is better)")
    axes[0].legend(fontsize=8, title="norm", title_fontsize=8)
    n_seeds = results.seed.nunique()
    fig.suptitle(f"PixelCNN on MinAtar frames\nIQM over {n_seeds} seeds, 95% bootstrap CI", fontsize=11)
    return save_figure(fig, path)


def write_report(results: pd.DataFrame, table: dict, sources: Mapping[int, Path], out_dir: Path) -> Path:
    """``report.md``: one table per metric (norm x batch size) and the per-seed values.

    :param results: output of :func:`load_summaries`
    :param table: output of :func:`summarize`
    :param sources: seed -> summary file read
    :param out_dir: destination directory
    """
    norms = ordered(results.norm.unique())
    sizes = sorted(int(s) for s in results.batch_size.unique())
    md = [
        "# PixelCNN bits/dim vs batch size per norm",
        "",
        "Seeds and sources: " + ", ".join(f"{s}: `{p}`" for s, p in sorted(sources.items())) + ". "
        "IQM over seeds with stratified-bootstrap 95 % CIs (rliable). Lower is better.",
    ]
    for column, title in COLUMNS.items():
        rows = [[n, *(_cell(table[(column, n, s)]) for s in sizes)] for n in norms]
        md += ["", f"## {title}", "", md_table(["norm", *(f"b={s}" for s in sizes)], rows)]
    md += ["", "## Per seed", ""]
    md.append(
        md_table(
            ["norm", "batch", "seed", *COLUMNS, "seconds"],
            [
                [r.norm, r.batch_size, r.seed, *(f"{getattr(r, c):.4f}" for c in COLUMNS), f"{r.seconds:.0f}"]
                for r in results.sort_values(["norm", "batch_size", "seed"]).itertuples()
            ],
        )
    )
    md += ["", "![pixelcnn.png](pixelcnn.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path


def _cell(interval: Interval) -> str:
    return f"{interval.value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = "Study experiment 6: PixelCNN test bits/dim vs training batch size per norm, over seeds."
PROG = "python -m agents study pixelcnn"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train the missing seeds' grids, then write the report.

    :param argv: command-line arguments
    :return: exit status
    """
    import warnings

    from agents.pixelcnn.config import load_pixelcnn_config
    from agents.pixelcnn.train import run_pixelcnn_grid

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("config", help="PixelCNN config, e.g. configs/study_pixelcnn.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reuse", nargs="*", default=[], help="SEED=PATH/summary.csv of an existing grid")
    parser.add_argument("--out", default="reports", help="reports root (default: reports)")
    args = parser.parse_args(argv)
    try:
        reuse = parse_reuse(args.reuse)
        with warnings.catch_warnings():
            # a command-line user should see that a config spells a norm the old way
            warnings.simplefilter("always", DeprecationWarning)
            base = load_pixelcnn_config(args.config, args.overrides)
        if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
            raise ConfigError("<command line>", "--seeds", f"must be distinct integers >= 0, got {args.seeds}")
    except ValueError as err:
        return command_error(err)
    sources: dict[int, Path] = {}
    for seed in args.seeds:
        path = summary_path(base.train.logdir, seed, base.data.env_id)
        if seed in reuse:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(reuse[seed], path)
        elif not path.exists():
            overrides = [*args.overrides, f"train.seed={seed}", f"train.logdir={Path(base.train.logdir) / f's{seed}'}"]
            run_pixelcnn_grid(load_pixelcnn_config(args.config, overrides))
        sources[seed] = reuse.get(seed, path)
    results = load_summaries({s: summary_path(base.train.logdir, s, base.data.env_id) for s in args.seeds})
    out_dir = Path(args.out) / EXPERIMENT
    out_dir.mkdir(parents=True, exist_ok=True)
    table = summarize(results)
    plot(results, table, out_dir / "pixelcnn.png")
    return finish(write_report(results, table, sources, out_dir))


if __name__ == "__main__":
    sys.exit(main())
