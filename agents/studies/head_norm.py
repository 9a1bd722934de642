"""Normalized output heads: do the per-action head weight norms track the action frequencies, and what do WN and
cosine heads change, on a task whose optimal actions are strongly imbalanced.

``python -m agents study head-norm configs/study_head_norm.yaml [key=value ...] [--heads none wn cosine]``

The config is an ordinary experiment config (norms x envs x seeds). This script runs its grid once per head
variant (``policy_kwargs.head_norm``: ``none``, ``wn`` or ``cosine``, see :mod:`agents.policies.heads`), each
into ``<runs_dir>/<experiment>/head-<variant>/``, then reads the event files back (the ``heads/*`` tags of
:class:`agents.policies.head_stats.HeadStatsCallback`, logged every ``diagnostics.freq`` steps) and writes
``<reports_dir>/<experiment>/``: ``report.md``, ``per_run.csv``, ``norms.csv`` and ``head_norm.png``.

Per run it measures

* the Pearson correlation, over actions, of the final per-action head weight norms with the action frequencies
  of the last quarter of training (and the mean of the logged per-window ``heads/norm_freq_corr`` over that
  quarter); undefined (``nan``) for cosine heads, whose per-action norms are equal by construction;
* the action distribution of that quarter, its entropy (nats) and the share of the most frequent action;
* the final evaluation return and the training return; for PPO the policy entropy (``-train/entropy_loss``).

Across seeds: the mean with a 95 % percentile-bootstrap interval (correlations), IQM with rliable's
stratified-bootstrap 95 % interval (returns, entropies). With 3 to 5 seeds these intervals are coarse: they span
at most the seeds' range. Finished runs are skipped, so re-running only redoes the report.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.config import ConfigError, ExperimentConfig, load_config
from agents.pipeline.tb_layout import RETURN_CLEAN, ROLLOUT_RETURN
from agents.policies.head_stats import norm_frequency_correlation
from agents.policies.heads import HEAD_NORMS
from agents.report.scalars import load_scalars
from agents.report.stats import BOOTSTRAP_REPS, Interval, iqm_interval
from agents.report.tables import md_table

HEADS: tuple[str, ...] = HEAD_NORMS
#: share of training, counted from the end, whose action frequencies a run's correlation uses
FINAL_SHARE = 0.25
NORM_TAG = re.compile(r"^heads/weight_norm/a(\d+)$")
FREQ_TAG = re.compile(r"^heads/action_freq/a(\d+)$")
CORR_TAG = "heads/norm_freq_corr"
ENTROPY_LOSS = "train/entropy_loss"


def variant_name(head: str) -> str:
    """The folder of one head variant: ``head-<head_norm>``."""
    return f"head-{head}"


def head_norm_configs(
    path: str | Path, heads: Sequence[str] = HEADS, overrides: Sequence[str] = ()
) -> list[tuple[str, ExperimentConfig]]:
    """One validated config per head variant, writing to ``<runs_dir>/<experiment>/head-<variant>/``.

    :param path: the study config
    :param heads: head variants, each one of :data:`agents.policies.heads.HEAD_NORMS`
    :param overrides: ``key=value`` overrides applied to every variant
    :raises ConfigError: on an unknown or duplicate head variant, or a ``diagnostics.freq`` of 0 (no head stats)
    """
    base = load_config(path, overrides)
    heads = list(heads)
    unknown = [h for h in heads if h not in HEAD_NORMS]
    if not heads or unknown:
        raise ConfigError("<command line>", "--heads", f"must be among {', '.join(HEAD_NORMS)}, got {heads}")
    if len(set(heads)) != len(heads):
        raise ConfigError("<command line>", "--heads", f"duplicate variants in {heads}")
    if not base.diagnostics.freq:
        raise ConfigError(str(path), "diagnostics.freq", "is 0: the head weight norms are logged with the diagnostics")
    root = Path(base.runs_dir) / base.experiment
    return [
        (
            head,
            load_config(
                path,
                [*overrides, f"policy_kwargs.head_norm={head}", f"experiment={variant_name(head)}", f"runs_dir={root}"],
            ),
        )
        for head in heads
    ]


def load_head_scalars(study_dir: str | Path, heads: Sequence[str]) -> pd.DataFrame:
    """Every scalar of every run, with a ``head`` column.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param heads: the variants read (missing folders are skipped)
    """
    frames = []
    for head in heads:
        folder = Path(study_dir) / variant_name(head)
        if folder.is_dir():
            frames.append(load_scalars(folder).assign(head=head))
    if not frames:
        raise FileNotFoundError(f"{study_dir}: no head-<variant> folders with runs ({', '.join(heads)})")
    return pd.concat(frames, ignore_index=True)


def _per_action(run: pd.DataFrame, pattern: re.Pattern) -> pd.DataFrame:
    """``step x action`` table of the tags matching ``pattern`` (one column per action index)."""
    rows = run[run.tag.str.match(pattern)]
    actions = rows.tag.str.extract(pattern)[0].astype(int)
    return rows.assign(action=actions).pivot_table(index="step", columns="action", values="value").sort_index()


def _last(run: pd.DataFrame, tag: str) -> float:
    rows = run[run.tag == tag].sort_values("step")
    return float(rows.value.iloc[-1]) if len(rows) else float("nan")


def entropy(p: np.ndarray) -> float:
    """Entropy in nats of a distribution (zeros contribute nothing)."""
    p = np.asarray(p, dtype=float)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def run_measures(scalars: pd.DataFrame, final_share: float = FINAL_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per run: the correlation, action distribution, entropies and returns (see the module docstring).

    :param scalars: output of :func:`load_head_scalars`
    :param final_share: the last share of the logged steps whose action frequencies count
    :return: ``(per_run, norms)``: one row per run; one row per run and action (final norm, final-quarter
        frequency)
    """
    runs, norms_rows = [], []
    for (head, env, algo, norm, seed, status), run in scalars.groupby(
        ["head", "env", "algo", "norm", "seed", "status"]
    ):
        norms, freqs = _per_action(run, NORM_TAG), _per_action(run, FREQ_TAG)
        if norms.empty or freqs.empty:
            continue
        last_step = freqs.index.max()
        window = freqs[freqs.index > last_step * (1 - final_share)]
        freq = window.mean().to_numpy()
        final_norms = norms.iloc[-1].to_numpy()
        corr_rows = run[(run.tag == CORR_TAG) & (run.step > last_step * (1 - final_share))]
        policy_entropy = -_last(run, ENTROPY_LOSS)
        runs.append(
            {
                "head": head,
                "env": env,
                "algo": algo,
                "norm": norm,
                "seed": int(seed),
                "status": status,
                "corr_final": norm_frequency_correlation(final_norms, freq),
                "corr_windows": float(np.nanmean(corr_rows.value)) if corr_rows.value.notna().any() else float("nan"),
                "top_action": int(np.argmax(freq)),
                "top_share": float(freq.max()),
                "action_entropy": entropy(freq),
                "policy_entropy": policy_entropy,
                "return_eval": _last(run, RETURN_CLEAN),
                "return_train": _last(run, ROLLOUT_RETURN),
                "steps": int(last_step),
            }
        )
        for action, (n, f) in enumerate(zip(final_norms, freq)):
            norms_rows.append(
                {"head": head, "env": env, "algo": algo, "seed": int(seed), "status": status, "action": action}
                | {"norm": n, "freq": f}
            )
    if not runs:
        raise FileNotFoundError("no run logged heads/weight_norm/* and heads/action_freq/* (diagnostics.freq 0?)")
    return pd.DataFrame(runs), pd.DataFrame(norms_rows)


def mean_interval(values: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> Interval:
    """The mean with a 95 % percentile-bootstrap interval over the values (``nan`` values dropped).

    :param values: one value per seed
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(reps, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(values.mean()), float(low), float(high))


#: per-run columns summarized across seeds: column -> (statistic, label)
SUMMARY = {
    "corr_final": ("mean", "corr(norm, freq)"),
    "corr_windows": ("mean", "mean logged `heads/norm_freq_corr`"),
    "return_eval": ("iqm", "final eval return"),
    "return_train": ("iqm", "final training return"),
    "action_entropy": ("iqm", "action-frequency entropy (nats)"),
    "top_share": ("iqm", "share of the most frequent action"),
    "policy_entropy": ("iqm", "policy entropy (nats, PPO)"),
}


def summarize(per_run: pd.DataFrame) -> dict[tuple[str, str, str, str], Interval]:
    """Per (algo, env, head, column): the mean (correlations) or IQM (the rest) over the seeds of the finished
    runs with its interval."""
    table = {}
    finished = per_run[per_run.status == "finished"]
    for (algo, env, head), group in finished.groupby(["algo", "env", "head"]):
        group = group.sort_values("seed")
        for column, (stat, _) in SUMMARY.items():
            values = group[column].to_numpy(dtype=float)
            if not np.isfinite(values).any():
                continue
            if stat == "mean":
                table[(algo, env, head, column)] = mean_interval(values)
            else:
                table[(algo, env, head, column)] = iqm_interval(values[np.isfinite(values)][:, None])
    return table


def plot(per_run: pd.DataFrame, norms: pd.DataFrame, heads: Sequence[str], path: Path) -> Path:
    """Left: per-action final head weight norm vs action frequency (one marker per run and action; plain and WN
    heads). Right: final evaluation return vs action-frequency entropy per run, one colour per head variant."""
    from agents.report.plots import save_figure, subplots

    colors = {"none": "tab:gray", "wn": "tab:orange", "cosine": "tab:blue"}
    fig, axes = subplots(1, 2, figsize=(12, 4.6), squeeze=False)
    left, right = axes[0]
    markers = ("o", "^", "s", "D", "v", "P")
    for head in heads:
        rows = norms[norms["head"] == head]
        if head == "cosine" or rows.empty:
            continue
        for action, group in rows.groupby("action"):
            left.scatter(
                group.freq,
                group.norm,
                marker=markers[action % len(markers)],
                color=colors.get(head),
                alpha=0.8,
                label=f"{head} a{action}",
            )
    left.set_xlabel("action frequency (last quarter of training)")
    left.set_ylabel("final head weight norm (|g_a| for WN)")
    left.set_yscale("log")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, ncol=2)
    for head in heads:
        rows = per_run[per_run["head"] == head]
        right.scatter(rows.action_entropy, rows.return_eval, color=colors.get(head), label=head)
    right.set_xlabel("action-frequency entropy (nats)")
    right.set_ylabel(f"final {RETURN_CLEAN}")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    algos = "/".join(sorted(per_run.algo.unique()))
    envs = ", ".join(sorted(per_run.env.unique()))
    fig.suptitle(f"{algos} on {envs}: head weight norms vs action frequency, return vs action entropy", fontsize=11)
    return save_figure(fig, path)


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_report(
    per_run: pd.DataFrame, norms: pd.DataFrame, table: dict, heads: Sequence[str], out_dir: Path, note: str = ""
) -> Path:
    """``report.md``: the summary table per algorithm and env, the action distributions, per-run values, figure.

    :param per_run: output of :func:`run_measures`
    :param norms: per-run, per-action norms and frequencies
    :param table: output of :func:`summarize`
    :param heads: the variants, in order
    :param out_dir: destination directory
    :param note: a line about how the runs were made (steps, wall time)
    """
    seeds = sorted(int(s) for s in per_run.seed.unique())
    n = len(seeds)
    unfinished = per_run[per_run.status != "finished"]
    if len(unfinished):
        note += f" {len(unfinished)} run(s) not finished (status in the per-run table) are left out of the tables."
    md = [
        "# Normalized heads: per-action head weight norms vs action frequency",
        "",
        f"Head variants {', '.join(h for h in heads if h in set(per_run['head']))}; seeds {', '.join(map(str, seeds))} "
        f"({n} per variant). {note}",
        "",
        f"`corr(norm, freq)`: Pearson correlation over actions of the final per-action head weight norms (`|g_a|` for "
        f"WN heads) with the action frequencies of the last {FINAL_SHARE:.0%} of training, per run; across seeds "
        f"the mean with a 95 % percentile-bootstrap interval. Undefined for cosine heads (equal norms by "
        f"construction). Other rows: IQM over seeds with rliable's stratified-bootstrap 95 % interval. With {n} "
        "seeds every interval spans at most the seeds' range (IQM trims nothing below 4 runs): read them as the "
        "spread of these runs, not as a population estimate.",
    ]
    for (algo, env), _ in per_run.groupby(["algo", "env"]):
        present = [h for h in heads if (algo, env, h) in set(zip(per_run.algo, per_run.env, per_run["head"]))]
        rows = []
        for column, (_, label) in SUMMARY.items():
            cells = [str(table.get((algo, env, h, column), "-")) for h in present]
            if any(c != "-" for c in cells):
                rows.append([label, *cells])
        md += ["", f"## {algo} on {env}", "", md_table(["measure", *(f"head_norm={h}" for h in present)], rows)]
        dist = norms[(norms.algo == algo) & (norms.env == env)]
        means = dist.groupby(["head", "action"])[["freq", "norm"]].mean().reset_index()
        actions = sorted(int(a) for a in means.action.unique())
        drows = []
        for h in present:
            sub = means[means["head"] == h].set_index("action")
            drows.append(
                [
                    h,
                    *(f"{sub.freq.get(a, float('nan')):.3f}" for a in actions),
                    *(f"{sub.norm.get(a, float('nan')):.3g}" for a in actions),
                ]
            )
        md += [
            "",
            "Action frequencies (last quarter of training) and final head weight norms, mean over seeds:",
            "",
            md_table(["head", *(f"freq a{a}" for a in actions), *(f"norm a{a}" for a in actions)], drows),
        ]
    md += ["", "## Per run", ""]
    cols = ["corr_final", "corr_windows", "top_action", "top_share", "action_entropy", "policy_entropy"]
    cols += ["return_eval", "return_train"]
    md.append(
        md_table(
            ["algo", "env", "head", "seed", "status", *cols],
            [
                [r.algo, r.env, r["head"], r.seed, r.status, *(_cell(r[c]) for c in cols)]
                for _, r in per_run.sort_values(["algo", "env", "head", "seed"]).iterrows()
            ],
        )
    )
    md += ["", "![head_norm.png](head_norm.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path


def report(study_dir: str | Path, out_dir: str | Path, heads: Sequence[str], note: str = "") -> Path:
    """Read the runs back and write ``report.md``, ``per_run.csv``, ``norms.csv`` and ``head_norm.png``.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param out_dir: ``<reports_dir>/<experiment>``
    :param heads: the variants read
    :param note: a line about how the runs were made
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_run, norms = run_measures(load_head_scalars(study_dir, heads))
    per_run.to_csv(out_dir / "per_run.csv", index=False)
    norms.to_csv(out_dir / "norms.csv", index=False)
    table = summarize(per_run)
    norms = norms[norms.status == "finished"]
    plot(per_run[per_run.status == "finished"], norms, heads, out_dir / "head_norm.png")
    return write_report(per_run, norms, table, heads, out_dir, note)


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = (
    "Normalized heads: per-action head weight norms vs action frequency, and return and action entropy per "
    "head_norm (none, wn, cosine)."
)
PROG = "python -m agents study head-norm"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the grid once per head variant (skipping finished runs), then the report.

    :param argv: command-line arguments
    :return: exit status (0 ok, 1 some run failed, 2 bad config)
    """
    from agents.studies.cli import run_arms, study_parser

    parser = study_parser(PROG, DESCRIPTION, "head variant")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), help="one grid per head_norm variant")
    args = parser.parse_args(argv)
    return run_arms(args, lambda: head_norm_configs(args.config, args.heads, args.overrides), report)


if __name__ == "__main__":
    sys.exit(main())
