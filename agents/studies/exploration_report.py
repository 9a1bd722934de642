"""The report of study experiment 6c (:mod:`agents.studies.exploration_sizes`): Deep Sea solved by size, per
algorithm and bonus.

Reads ``<runs_dir>/<experiment>/n<size>/<variant>/<env>/<algo>-<arm>-s<seed>/`` (``final.json``,
``config.yaml``, ``episodes.json``, ``counts.csv``) and writes ``<reports_dir>/<experiment>/``:

- ``per_run.csv``: one row per finished run;
- ``summary.csv`` and ``report.md``: per algorithm, variant and size, the greedy-solved fraction (the final
  greedy policy reaches the treasure: evaluation return >= :data:`SOLVED_RETURN`), the reached fraction (some
  training episode reached it), the median number of training episodes to the first success (a run that never
  succeeded counts as infinite, so the median is ``> budget`` when fewer than half succeeded), and the largest
  size solved reliably: the largest size at which every seed's final greedy policy solves it (at least 3 seeds),
  and the largest size up to which every size run is solved reliably;
- ``sizes.png``: greedy-solved fraction and median episodes to first success against size;
- ``run_log.md``: one line per study invocation (command, wall time, runs finished / skipped / failed).

For the pseudo-count runs, ``count_rank_corr`` is Spearman's rank correlation between the exact visit count and
the pseudo-count of the sampled frames (1: the density model orders frames as counting would; near 0: its
pseudo-count says nothing about how often a frame was seen), and ``pseudo_over_exact`` the median ratio of the
two late in training (1: the pseudo-count is the count; far above 1: the model generalizes a visit of one frame
to the others, and the bonus vanishes).
"""

from __future__ import annotations

import datetime
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from agents.pipeline.runs import FINAL_FILE, RunResult
from agents.report.stats import wilson_interval
from agents.report.tables import md_table
from agents.studies.exploration_mmc import MMC_SUFFIX, mmc_section

#: Deep Sea pays 1 - move_cost at the treasure and at most 0 elsewhere
SOLVED_RETURN = 0.5
#: fewer seeds than this cannot make a size "solved reliably"
MIN_SEEDS_RELIABLE = 3
RUN_LOG = "run_log.md"


def count_agreement(path: Path) -> tuple[float, float]:
    """How a run's pseudo-counts (its ``counts.csv``) compare with the exact counts: Spearman's rank correlation
    over all sampled frames, and the median ratio pseudo-count / exact count over the second half of them
    (an infinite pseudo-count, no prediction gain, counts as an infinite ratio). NaNs without the file."""
    if not path.exists():
        return float("nan"), float("nan")
    rows = pd.read_csv(path)
    if len(rows) < 3:
        return float("nan"), float("nan")
    # an infinite pseudo-count (no prediction gain) ranks above every finite one, as it should
    corr = float(rows.visit_count.rank().corr(rows.pseudo_count.rank()))
    late = rows.iloc[len(rows) // 2 :]
    return corr, float(np.median(late.pseudo_count / late.visit_count))


def load_runs(study_dir: str | Path) -> pd.DataFrame:
    """One row per finished run of the study folder.

    :param study_dir: ``<runs_dir>/<experiment>``
    :return: columns ``algo, size, variant, seed, steps, episodes, greedy_return, greedy_solved, reached,
        first_success_episode, solved_episodes, wall_time_s, count_rank_corr, pseudo_over_exact``
    """
    rows = []
    for final in sorted(Path(study_dir).glob(f"n*/*/*/*/{FINAL_FILE}")):
        run_dir = final.parent
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        done = json.loads(final.read_text())
        if done["num_timesteps"] < config["train"]["total_timesteps"]:
            continue
        episodes_path = run_dir / "episodes.json"
        episodes = json.loads(episodes_path.read_text()) if episodes_path.exists() else {}
        greedy = float(done["metrics"]["eval/return_clean"])
        first = episodes.get("first_solved_episode")
        corr, ratio = count_agreement(run_dir / "counts.csv")
        rows.append(
            {
                "algo": config["algo"],
                "size": int(config["env_options"]["env_kwargs"]["size"]),
                "variant": run_dir.parent.parent.name,
                "seed": int(config["run"]["seed"]),
                "steps": int(done["num_timesteps"]),
                "episodes": episodes.get("episodes", np.nan),
                "greedy_return": greedy,
                "greedy_solved": greedy >= SOLVED_RETURN,
                "reached": first is not None,
                "first_success_episode": np.nan if first is None else int(first),
                "solved_episodes": episodes.get("solved_episodes", np.nan),
                "wall_time_s": round(float(done["wall_time_s"]), 1),
                "count_rank_corr": corr,
                "pseudo_over_exact": ratio,
            }
        )
    columns = [
        "algo", "size", "variant", "seed", "steps", "episodes", "greedy_return", "greedy_solved", "reached",
        "first_success_episode", "solved_episodes", "wall_time_s", "count_rank_corr", "pseudo_over_exact",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values(["algo", "variant", "size", "seed"], ignore_index=True)


def median_first_success(first: pd.Series) -> float:
    """Median of episodes to first success, a run that never succeeded counting as infinite."""
    return float(np.median(first.fillna(np.inf).to_numpy())) if len(first) else float("nan")


def nan_median(values: pd.Series) -> float:
    """The median of the non-NaN values (NaN when there are none)."""
    return float(values.median()) if values.notna().any() else float("nan")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per ``(algo, variant, size)``: seeds, greedy-solved and reached counts, median episodes to first success,
    the episodes budget, the median wall time and training speed, and the medians of the count rank correlation
    and of the pseudo-count / exact count ratio."""
    rows = []
    for (algo, variant, size), group in runs.groupby(["algo", "variant", "size"]):
        rows.append(
            {
                "algo": algo,
                "variant": variant,
                "size": int(size),
                "seeds": len(group),
                "greedy_solved": int(group.greedy_solved.sum()),
                "reached": int(group.reached.sum()),
                "median_first_success_episode": median_first_success(group.first_success_episode),
                "episodes_budget": float(group.episodes.max()),
                "median_wall_time_s": float(group.wall_time_s.median()),
                "median_steps_per_s": float((group.steps / group.wall_time_s).median()),
                "median_count_rank_corr": nan_median(group.count_rank_corr),
                "median_pseudo_over_exact": nan_median(group.pseudo_over_exact),
            }
        )
    return pd.DataFrame(rows)


def largest_reliable(summary: pd.DataFrame) -> pd.DataFrame:
    """Per ``(algo, variant)``: the largest size whose every seed (at least :data:`MIN_SEEDS_RELIABLE`) has a
    greedy policy that solves it (``none`` if no size is), and the largest size up to which every size run is
    solved so (``every_size_up_to``)."""
    rows = []
    for (algo, variant), group in summary.groupby(["algo", "variant"]):
        group = group.sort_values("size")
        is_reliable = (group.seeds >= MIN_SEEDS_RELIABLE) & (group.greedy_solved == group.seeds)
        reliable = group[is_reliable]
        # the sizes before the first one that is not solved reliably
        prefix = group["size"][is_reliable.cummin()]
        rows.append(
            {
                "algo": algo,
                "variant": variant,
                "sizes_run": ", ".join(str(s) for s in group["size"]),
                "largest_size_solved_reliably": int(reliable["size"].max()) if len(reliable) else "none",
                "every_size_up_to": int(prefix.max()) if len(prefix) else "none",
            }
        )
    return pd.DataFrame(rows)


def pooled(summary: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm and bonus variant: greedy-solved runs pooled over the variant's sizes, beside ``plain`` over
    the same sizes, with Wilson 95 % intervals (sizes differ in difficulty, so this is a count over the grid,
    not one success probability)."""
    rows = []
    for (algo, variant), group in summary.groupby(["algo", "variant"]):
        if variant == "plain":
            continue
        sizes = sorted(group["size"])
        plain = summary[(summary.algo == algo) & (summary.variant == "plain") & summary["size"].isin(sizes)]
        row = {"algo": algo, "variant": variant, "sizes": ", ".join(map(str, sizes))}
        for name, part in (("variant_solved", group), ("plain_solved", plain)):
            k, n = int(part.greedy_solved.sum()), int(part.seeds.sum())
            low, high = wilson_interval(k, n)
            row[name] = f"{k}/{n} [{low:.2f}, {high:.2f}]" if n else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def first_success_label(row: pd.Series) -> str:
    """``123`` or ``> 480`` (when fewer than half the seeds succeeded within the budget)."""
    value = row.median_first_success_episode
    return f"> {int(row.episodes_budget)}" if np.isinf(value) else f"{value:g}"


def plot(summary: pd.DataFrame, path: Path) -> Path:
    """Greedy-solved fraction and median episodes to first success against size, one line per algo/variant."""
    from agents.report.plots import save_figure, subplots

    fig, (left, right) = subplots(1, 2, figsize=(12, 4.6))
    for i, ((algo, variant), group) in enumerate(summary.groupby(["algo", "variant"])):
        group = group.sort_values("size")
        style = "-" if algo == "DQN" else "--"
        label = f"{algo} {variant}"
        left.plot(group["size"], group.greedy_solved / group.seeds, style, marker="o", color=f"C{i}", label=label)
        first = group.median_first_success_episode.replace(np.inf, np.nan)
        right.plot(group["size"], first, style, marker="o", color=f"C{i}", label=label)
        right.plot(group["size"], group.episodes_budget, ":", color=f"C{i}", alpha=0.4)
    left.set_ylabel("fraction of seeds whose final greedy policy solves it")
    right.set_ylabel("median training episodes to first success")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xlabel("Deep Sea size N")
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_title("dotted: the run's episode budget; a gap: fewer than half the seeds succeeded", fontsize=9)
    fig.suptitle("Deep Sea: exploration bonus vs size", fontsize=11)
    return save_figure(fig, path)


def append_run_log(out_dir: Path, command: Sequence[str], results: Sequence[RunResult], wall_s: float) -> Path:
    """Add one line about a study invocation to ``run_log.md``: when, the command, wall time, outcomes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_LOG
    outcomes = pd.Series([r.status for r in results]).value_counts().to_dict() if results else {}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    line = (
        f"- {now}: `{shlex.join(command)}`: {wall_s:.0f} s wall; "
        + ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
        + "\n"
    )
    head = "" if path.exists() else "# Study invocations (appended by each call)\n\n"
    with path.open("a") as f:
        f.write(head + line)
    return path


def report(study_dir: str | Path, out_dir: str | Path, episodes_per_size_unit: int) -> Path:
    """Write ``per_run.csv``, ``summary.csv``, ``sizes.png`` and ``report.md`` into ``out_dir``.

    :param study_dir: ``<runs_dir>/<experiment>``
    :param out_dir: ``<reports_dir>/<experiment>``
    :param episodes_per_size_unit: the budget rule the runs were made with (for the text)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(study_dir)
    if runs.empty:
        raise FileNotFoundError(f"{study_dir}: no finished runs")
    runs.to_csv(out_dir / "per_run.csv", index=False)
    summary = summarize(runs)
    summary.to_csv(out_dir / "summary.csv", index=False)
    reliable = largest_reliable(summary)
    plot(summary, out_dir / "sizes.png")
    md = [
        "# Exploration on Deep Sea by size: no bonus, exact counts, PixelCNN pseudo-counts",
        "",
        f"Budget: {episodes_per_size_unit} x N training episodes of N steps at size N. *greedy solved*: the final "
        f"greedy evaluation return is >= {SOLVED_RETURN} (the policy reaches the treasure); *reached*: some "
        "training episode reached it; *median episodes to first success*: over seeds, a seed that never "
        "succeeded counting as infinite (`> budget` when fewer than half succeeded); *count rank corr*: "
        "Spearman's correlation of exact count and pseudo-count over the sampled frames (pseudo-count runs; "
        "1: the density model orders frames as counting does); *pseudo / exact count*: median ratio over the second "
        "half of the sampled frames (1: the pseudo-count is the count). Both are medians over seeds. "
        f"Solved reliably: every seed's final greedy policy solves it, with at least {MIN_SEEDS_RELIABLE} seeds. "
        f"Wall times are of runs sharing 2 CPU cores with other jobs. Invocations: [{RUN_LOG}]({RUN_LOG}).",
        "",
        "## Largest size solved reliably",
        "",
        md_table(
            ["algo", "variant", "sizes run", "largest size solved reliably", "every size solved reliably up to"],
            [
                [r.algo, r.variant, r.sizes_run, r.largest_size_solved_reliably, r.every_size_up_to]
                for r in reliable.itertuples()
            ],
        ),
    ]
    pool = pooled(summary)
    md += [
        "",
        "## Greedy-solved runs pooled over sizes",
        "",
        "Each bonus variant against `plain` over the same sizes and seeds; Wilson 95 % intervals.",
        "",
        md_table(
            ["algo", "variant", "sizes", "variant: greedy solved", "plain: greedy solved"],
            [[r.algo, r.variant, r.sizes, r.variant_solved, r.plain_solved] for r in pool.itertuples()],
        ),
    ]
    md += mmc_section(runs)
    cost = runs.groupby(["algo", "variant"]).agg(
        runs=("seed", "size"),
        sizes=("size", lambda v: ", ".join(map(str, sorted(set(v))))),
        wall=("wall_time_s", "sum"),
    )
    md += [
        "",
        "## Cost: summed wall time of the runs",
        "",
        md_table(
            ["algo", "variant", "runs", "sizes", "summed run wall time (s)"],
            [[algo, variant, r.runs, r.sizes, f"{r.wall:.0f}"] for (algo, variant), r in cost.iterrows()],
        ),
        "",
        f"All {len(runs)} runs: {runs.wall_time_s.sum():.0f} s summed over runs (2 ran at a time).",
    ]
    mmc = runs.variant.str.endswith(MMC_SUFFIX)
    if mmc.any():
        md[-1] += (
            f" Without the `{MMC_SUFFIX}` variants: {int((~mmc).sum())} runs, {runs.wall_time_s[~mmc].sum():.0f} s; "
            f"the `{MMC_SUFFIX}` variants: {int(mmc.sum())} runs, {runs.wall_time_s[mmc].sum():.0f} s (one at a time "
            "beside other jobs)."
        )
    for algo in sorted(summary.algo.unique()):
        rows = []
        for r in summary[summary.algo == algo].sort_values(["size", "variant"]).itertuples():
            corr = "-" if np.isnan(r.median_count_rank_corr) else f"{r.median_count_rank_corr:.2f}"
            ratio = "-" if np.isnan(r.median_pseudo_over_exact) else f"{r.median_pseudo_over_exact:.3g}"
            rows.append(
                [
                    r.size,
                    r.variant,
                    f"{r.greedy_solved}/{r.seeds}",
                    f"{r.reached}/{r.seeds}",
                    first_success_label(pd.Series(r._asdict())),
                    int(r.episodes_budget),
                    f"{r.median_wall_time_s:.0f}",
                    f"{r.median_steps_per_s:.0f}",
                    corr,
                    ratio,
                ]
            )
        md += [
            "",
            f"## {algo}",
            "",
            md_table(
                [
                    "size",
                    "variant",
                    "greedy solved",
                    "reached",
                    "median episodes to first success",
                    "episodes budget",
                    "median wall s",
                    "steps/s",
                    "count rank corr",
                    "pseudo / exact count",
                ],
                rows,
            ),
        ]
    md += ["", "![sizes.png](sizes.png)", "", "Per run: [per_run.csv](per_run.csv).", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path
