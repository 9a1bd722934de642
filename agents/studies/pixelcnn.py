"""Study experiment 6: PixelCNN test bits/dim vs training batch size per norm, over seeds.

``python -m agents.studies.pixelcnn configs/study_pixelcnn.yaml --seeds 0 1 2 [--reuse 0=PATH/summary.csv]``

Runs the norm x batch-size grid of :mod:`agents.pixelcnn.train` once per seed (``train.seed``), each into
``<train.logdir>/s<seed>/`` (a grid whose ``summary.csv`` exists is not trained again; ``--reuse SEED=CSV`` takes
the summary of an existing grid of the same config instead), then writes ``reports/study_pixelcnn/``:
``pixelcnn.png`` (test bits/dim, causal, and in train mode one frame at a time, vs batch size) and
``report.md`` (IQM over seeds with rliable's stratified-bootstrap CIs, and the per-seed values).

The headline is the causal evaluation (eval mode: batch norm with its running statistics), the only one that
is the bits/dim of a normalized density for every norm. Batch norm's train-mode numbers are marked as not
causal, and for every saved model of a batch-dependent norm the causality stage
(:mod:`agents.pixelcnn.causality`, ``--causal-frames``; results cached as ``<run>/causality.json``) writes
``leak.csv`` (the leak vs the scoring batch size) and ``causal_bpd.csv`` (train-mode bits/dim beside the
causal ones on the same frames), both summarized in ``report.md``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.report.plots import INTERVAL_CAPTION
from agents.report.stats import Interval, interval_label, iqm_interval
from agents.report.tables import md_table, ordered
from agents.studies.cli import command_error, finish
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS
from rlnorm.registry import NORMS
from rlnorm.validation import ConfigError

EXPERIMENT = "study_pixelcnn"
#: former spelling -> PixelCNN norm (``ln`` -> ``pixel_ln``), from :attr:`rlnorm.registry.NormSpec.old_names`
FORMER_NORM_NAMES: dict[str, str] = {old: name for name in PIXELCNN_NORMS for old in NORMS[name].old_names}
COLUMNS = {
    "test_bpd": "test bits/dim, causal (eval mode; bn with its running statistics)",
    "test_bpd_train_mode_b1": "test bits/dim in train mode, one frame at a time (not causal for bn)",
    "train_bpd": "train bits/dim, last updates, train mode (not causal for bn)",
}
#: columns that are not the bits/dim of a normalized density for a batch-dependent norm
NON_CAUSAL_COLUMNS = ("test_bpd_train_mode_b1", "train_bpd")
NON_CAUSAL_MARK = " (not causal)"
#: columns of the causal-evaluation table (keys of :func:`agents.pixelcnn.causality.causal_bits_per_dim`)
CAUSAL_COLUMNS = {
    "bpd_eval": "eval mode (causal)",
    "bpd_future_blind_b1": "train mode b1, future-blind (causal)",
    "bpd_train_mode_b1": "train mode b1 (not causal)",
    "leak_bpd": "leak: future-blind minus train mode",
}
#: columns of the leak tables (keys of :func:`agents.pixelcnn.causality.leak_vs_batch_size`)
LEAK_COLUMNS = {
    "future": "‖J‖ own later pixels",
    "other_images": "‖J‖ other images",
    "past": "‖J‖ own earlier pixels",
    "future_over_past": "later / earlier",
    "bpd_train_mode": "bits/dim, train mode in batches of B (not causal)",
    "bpd_eval": "bits/dim, eval mode (causal)",
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
    """IQM over seeds with intervals, keyed ``(column, norm, batch_size)``.

    :param results: output of :func:`load_summaries`
    """
    table = {}
    for (norm, size), group in results.groupby(["norm", "batch_size"]):
        for column in COLUMNS:
            table[(column, norm, int(size))] = iqm_interval(group.sort_values("seed")[column].to_numpy()[:, None])
    return table


def run_path(logdir: str | Path, seed: int, env_id: str, norm: str, batch_size: int) -> Path:
    """The run folder of one (norm, batch size) run of one seed's grid (beside :func:`summary_path`)."""
    return summary_path(logdir, seed, env_id).parent / f"{norm}-b{batch_size}-s{seed}"


def measure_causality(
    logdir: str | Path, env_id: str, seeds: Sequence[int], runs: Sequence[tuple[str, int]], frames, causal_frames: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The causality stage: :func:`agents.pixelcnn.causality.measure_run` of every saved model of ``runs``.

    :param logdir: the config's ``train.logdir``
    :param env_id: the dataset's env id
    :param seeds: the seeds of the grids
    :param runs: ``(norm, batch_size)`` pairs to measure (a run without ``model.pt`` is skipped, with a note)
    :param frames: integer test frames ``(N, 1, H, W)``
    :param causal_frames: frames of the causal-evaluation table
    :return: ``(leak rows, causal bits/dim rows)``, each with ``norm``, ``batch_size`` and ``seed`` columns
    """
    from agents.pixelcnn.causality import measure_run
    from agents.pixelcnn.train import MODEL_FILE

    leak, causal = [], []
    for seed in seeds:
        for norm, size in runs:
            run_dir = run_path(logdir, seed, env_id, norm, size)
            if not (run_dir / MODEL_FILE).is_file():
                print(f"causality: no {MODEL_FILE} in {run_dir} (trained before models were saved); skipped")
                continue
            key = {"norm": norm, "batch_size": size, "seed": seed}
            measured = measure_run(run_dir, frames, causal_frames)
            leak += [{**key, **row} for row in measured["leak"]]
            causal.append({**key, "frames": measured["causal_frames"], **measured["causal_bpd"]})
    return pd.DataFrame(leak), pd.DataFrame(causal)


def causality_section(leak: pd.DataFrame, causal: pd.DataFrame) -> list[str]:
    """The report's lines on batch norm's leak: the causal evaluations, then the leak vs scoring batch size.

    Cells are the mean over seeds with the seeds' [min, max].

    :param leak: first output of :func:`measure_causality`
    :param causal: second output of :func:`measure_causality`
    """
    if causal.empty:
        return []

    def cell(values: pd.Series, digits: int) -> str:
        return f"{values.mean():.{digits}f} [{values.min():.{digits}f}, {values.max():.{digits}f}]"

    n_seeds, n_frames = causal.seed.nunique(), int(causal.frames.iloc[0])
    md = [
        "",
        "## Batch norm in train mode is not causal",
        "",
        "In train mode batch norm's statistics over (N, H, W) let each pixel's prediction depend on its own later",
        "pixels and on the other images of its batch, so its train-mode bits/dim are not those of a normalized",
        "density. Causal evaluations of the same models on the first "
        f"{n_frames} test frames: eval mode (running statistics), and *future-blind* train mode one frame at a",
        "time (each pixel's conditional computed with that pixel and the later ones replaced by those of another",
        "test frame, so batch norm still normalizes by one image's statistics but cannot see the future).",
        f"Mean over {n_seeds} seeds [min, max]; bits/dim, lower is better.",
        "",
    ]
    rows = [
        [norm, size, *(cell(group[c], 4) for c in CAUSAL_COLUMNS)]
        for (norm, size), group in causal.groupby(["norm", "batch_size"], sort=True)
    ]
    md.append(md_table(["norm", "trained at batch", *CAUSAL_COLUMNS.values()], rows))
    for (norm, size), group in leak.groupby(["norm", "batch_size"], sort=True):
        md += [
            "",
            f"### {norm} trained at batch {size}: the leak vs the scoring batch size B (train mode)",
            "",
            "‖J‖: Frobenius norm of the Jacobian of one test frame's logits (5 pixels, 2 batches each) with respect",
            "to its own later pixels (0 for a causal model), the other B - 1 frames, and its own earlier pixels.",
            "",
        ]
        rows = [
            [b, *(cell(g[c], 4 if c.startswith("bpd") else 3 if c == "future_over_past" else 5) for c in LEAK_COLUMNS)]
            for b, g in group.groupby("score_batch", sort=True)
        ]
        md.append(md_table(["B", *LEAK_COLUMNS.values()], rows))
    return md


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
    fig.suptitle(f"PixelCNN on MinAtar frames ({n_seeds} seeds)\n{INTERVAL_CAPTION}", fontsize=11)
    return save_figure(fig, path)


def write_report(
    results: pd.DataFrame,
    table: dict,
    sources: Mapping[int, Path],
    out_dir: Path,
    causality: Sequence[str] = (),
) -> Path:
    """``report.md``: one table per metric (norm x batch size), the causality section and the per-seed values.

    :param results: output of :func:`load_summaries`
    :param table: output of :func:`summarize`
    :param sources: seed -> summary file read
    :param out_dir: destination directory
    :param causality: lines of :func:`causality_section`
    """
    norms = ordered(results.norm.unique())
    sizes = sorted(int(s) for s in results.batch_size.unique())
    md = [
        "# PixelCNN bits/dim vs batch size per norm",
        "",
        "Seeds and sources: " + ", ".join(f"{s}: `{p}`" for s, p in sorted(sources.items())) + ". "
        f"IQM over seeds; intervals: {interval_label([results.seed.nunique()], task='cell')} (rliable). Lower is "
        "better. Only the first table is a "
        "causal evaluation for every norm; rows marked (not causal) are not the bits/dim of a normalized density.",
    ]
    for column, title in COLUMNS.items():
        rows = [[_label(n, column), *(_cell(table[(column, n, s)]) for s in sizes)] for n in norms]
        md += ["", f"## {title}", "", md_table(["norm", *(f"b={s}" for s in sizes)], rows)]
    md += list(causality)
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


def _label(norm: str, column: str) -> str:
    batch_dependent = norm in NORMS and NORMS[norm].batch_dependent
    return norm + NON_CAUSAL_MARK if batch_dependent and column in NON_CAUSAL_COLUMNS else norm


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
    parser.add_argument(
        "--causal-frames",
        type=int,
        default=64,
        help="test frames of the causal evaluation of batch-dependent norms (0: skip the causality stage)",
    )
    args = parser.parse_args(argv)
    try:
        reuse = parse_reuse(args.reuse)
        with warnings.catch_warnings():
            # a command-line user should see that a config spells a norm the old way
            warnings.simplefilter("always", DeprecationWarning)
            base = load_pixelcnn_config(args.config, args.overrides)
        if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
            raise ConfigError("<command line>", "--seeds", f"must be distinct integers >= 0, got {args.seeds}")
        if args.causal_frames == 1 or args.causal_frames < 0:
            problem = f"must be 0 (skip) or >= 2, got {args.causal_frames}"
            raise ConfigError("<command line>", "--causal-frames", problem)
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
    causality: list[str] = []
    if args.causal_frames:
        import torch

        from agents.pixelcnn.data import load_dataset

        frames = torch.as_tensor(load_dataset(base.data.path)["test"][: base.train.eval_frames]).long()
        runs = [(n, b) for n in base.train.norms if NORMS[n].batch_dependent for b in base.train.batch_sizes]
        leak, causal = measure_causality(
            base.train.logdir, base.data.env_id, args.seeds, runs, frames, min(args.causal_frames, len(frames))
        )
        if not causal.empty:
            leak.to_csv(out_dir / "leak.csv", index=False)
            causal.to_csv(out_dir / "causal_bpd.csv", index=False)
        causality = causality_section(leak, causal)
    return finish(write_report(results, table, sources, out_dir, causality))


if __name__ == "__main__":
    sys.exit(main())
