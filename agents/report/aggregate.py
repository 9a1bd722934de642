"""The cross-game report of a study (``python -m agents study aggregate RUN_DIRS... --out reports/<name>``).

Reads the final values of every run under ``RUN_DIRS`` from their event files, normalizes each game's returns
between a random policy and a reference score (:mod:`agents.report.aggregate_scores`), and aggregates across
games with rliable (:mod:`agents.report.aggregate_metrics`): IQM, mean, median and optimality gap with
stratified-bootstrap intervals, performance profiles, ``P(X > Y)`` for each pair of arms, the normalized
return vs noise level per arm (and ``P(X > Y)`` under the heaviest noise of each kind), and the train-mode
minus eval-mode gap of batch-statistics policies. Writes ``report.md``, ``per_run.csv`` and PNG figures.

Only finished runs are read unless ``include_unfinished`` (then the report says so and marks the runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.report.aggregate_metrics import (
    METRICS,
    aggregate_intervals,
    improvement_probabilities,
    metric_interval,
    performance_profiles,
)
from agents.report.aggregate_plots import (
    plot_aggregates,
    plot_bn_gap,
    plot_improvements,
    plot_noise_robustness,
    plot_profiles,
)
from agents.report.aggregate_reference import REFERENCE_DIR, load_published_scores, load_random_scores
from agents.report.aggregate_scores import (
    BN_GAP,
    SCORE,
    Section,
    add_scores,
    load_finals,
    noise_conditions,
    noise_matrices,
    normalizations,
    per_run_table,
    score_matrices,
    sections,
)
from agents.report.stats import BOOTSTRAP_REPS, interval_label
from agents.report.tables import md_table, ordered

UNFINISHED_MARK = "†"
PROFILE_POINTS = 101
#: the figures this report writes (and removes before writing, so none is left from an earlier report)
FIGURE_PATTERNS = (
    "aggregates*.png",
    "performance_profile*.png",
    "improvement*.png",
    "noise_robustness_*.png",
    "bn_mode_gap.png",
)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def _runs_section(table: pd.DataFrame, states: pd.DataFrame, run_dirs: Sequence[str], include: bool) -> list[str]:
    used = set(table.run)
    left_out = states[~states.run.isin(used)]
    md = [
        "## Runs",
        "",
        f"Read from {', '.join(f'`{d}`' for d in run_dirs)}: {len(states)} runs, {len(used)} used "
        f"({int((table.status == 'finished').sum())} finished"
        + (f", {int((table.status != 'finished').sum())} unfinished, marked {UNFINISHED_MARK}" if include else "")
        + "). Every run used is a row of `per_run.csv` (its directory, seed, steps and final values).",
    ]
    walls = table.wall_time_s.dropna() if "wall_time_s" in table else pd.Series(dtype=float)
    if len(walls):
        md += [
            "",
            f"Wall time of the runs (`wall_time_s` of each run's `final.json`: training and evaluations, one process "
            f"per run): {walls.sum():.0f} s in all over {len(walls)} runs, median {walls.median():.0f} s a run "
            f"({walls.min():.0f}–{walls.max():.0f} s).",
        ]
    if len(left_out):
        reason = "" if include else " (only finished runs are aggregated; `--include-unfinished` adds the others)"
        md += ["", f"Left out{reason}:", ""]
        md.append(
            md_table(
                ["run", "status", "steps", "of", "why"],
                [
                    [r.run, r.status, r.steps, r.target if r.target is not None else "?", r.message]
                    for r in left_out.itertuples()
                ],
            )
        )
    md += ["", "Seeds used per game and arm (steps at the final evaluation):", ""]
    rows = []
    arm_order = {a: i for i, a in enumerate(ordered(table.arm.unique()))}
    keyed = table.assign(_arm=table.arm.map(arm_order)).sort_values(["game", "_arm", "seed"])
    for (game, _), group in keyed.groupby(["game", "_arm"], sort=True):
        arm = group.arm.iloc[0]
        seeds = ", ".join(
            str(s) + (UNFINISHED_MARK if st != "finished" else "") for s, st in zip(group.seed, group.status)
        )
        steps = sorted(set(group.steps.dropna().astype(int)))
        rows.append(
            [game, arm, len(group), seeds, "–".join(map(str, [steps[0], steps[-1]])) if len(steps) > 1 else steps[0]]
        )
    md.append(md_table(["game", "arm", "runs", "seeds", "steps"], rows))
    return md


def _normalization_section(norms: dict, reference: str, reference_dir: Path) -> list[str]:
    randoms = load_random_scores(reference_dir)
    published = load_published_scores(reference_dir)
    md = [
        "## Normalization",
        "",
        "normalized score = (return − random) / (reference − random): 0 is a uniformly random policy, 1 the "
        f"reference. Reference: `{reference}`"
        + (
            " — the best final clean evaluation return of any run in this report, per game (every score is then at "
            "most 1; the optimality gap is the distance to the best run seen; it moves when runs are added)."
            if reference == "study-max"
            else " — a published score where the table has one, the best run of this report elsewhere (column `kind`)."
        ),
        f"Random scores: `{reference_dir}/random_scores.csv` (measured by `python -m agents study aggregate "
        "--measure-random`: uniformly random actions on the project's MinAtar envs, sticky actions 0.1). Published "
        f"scores: `{reference_dir}/published_scores.csv` (source per row; Young & Tian 2019 publish their DQN and "
        "AC(λ) results at 5M frames only as curves, so they are not in it).",
        "",
    ]
    rows = []
    for game, n in norms.items():
        r = randoms[game]
        pub = published.get(game)
        pub_text = f"{pub.score:g} ({pub.agent}, {pub.budget})" if pub else "–"
        rows.append(
            [game, f"{r.mean:.3f} ± {r.sem:.3f} ({r.episodes} ep.)", f"{n.reference:g}", n.reference_kind, pub_text]
        )
    md.append(md_table(["game", "random (mean ± s.e.)", "reference", "kind", "published (for calibration)"], rows))
    md += ["", "Sources of the references:", ""] + [f"- {g}: {n.source}" for g, n in norms.items()]
    return md


def _aggregate_section(
    table: pd.DataFrame, section: Section, out: Path, reps: int, index: int
) -> tuple[list[str], dict]:
    matrices, dropped = score_matrices(table, SCORE, section.arms, section.games)
    counts = [m.shape[0] for m in matrices.values()]
    suffix = "" if index == 0 else f"_{index + 1}"
    md = [
        f"## Aggregate normalized score across games: {section.title}",
        "",
        f"Games: {', '.join(section.games)}. Final clean evaluation return (`eval/return_clean`), normalized. "
        f"Intervals: {interval_label(counts)}; {reps} bootstrap resamples (rliable).",
    ]
    if any(dropped.values()):
        md.append(
            "Runs beyond an arm's smallest per-game count are left out of its bootstrap (rliable needs equal runs "
            "per game): " + ", ".join(f"{a}: {d}" for a, d in dropped.items() if d) + "."
        )
    intervals = aggregate_intervals(matrices, reps=reps)
    md += [
        "",
        md_table(
            ["arm", "runs/game", *METRICS],
            [[a, matrices[a].shape[0], *(intervals[a][m] for m in METRICS)] for a in matrices],
        ),
    ]
    md += ["", "Per game (mean normalized score over runs, with the runs' min–max):", ""]
    rows = []
    for game in section.games:
        row = [game]
        for arm in matrices:
            v = table[(table.arm == arm) & (table.game == game)][SCORE]
            row.append(f"{v.mean():.2f} [{v.min():.2f}, {v.max():.2f}]" if len(v) else "-")
        rows.append(row)
    md.append(md_table(["game", *matrices], rows))
    improvements = improvement_probabilities(matrices, reps=reps)
    figures = {
        f"aggregates{suffix}.png": plot_aggregates(intervals, list(matrices), out / f"aggregates{suffix}.png"),
    }
    taus = np.linspace(
        min(0.0, float(min(m.min() for m in matrices.values()))),
        max(1.0, float(max(m.max() for m in matrices.values()))),
        PROFILE_POINTS,
    )
    profiles, cis = performance_profiles(matrices, taus, reps=reps)
    figures[f"performance_profile{suffix}.png"] = plot_profiles(
        profiles, cis, taus, out / f"performance_profile{suffix}.png"
    )
    if improvements:
        md += ["", "### Probability of improvement P(X > Y)", ""]
        md.append(
            "The probability that a run of X scores above a run of Y on the same game, averaged over games "
            "(rliable; each pair once, P(Y > X) = 1 − P(X > Y)). A pair differs only where the interval excludes 0.5."
        )
        md += ["", _improvement_table(improvements)]
        figures[f"improvement{suffix}.png"] = plot_improvements(improvements, out / f"improvement{suffix}.png")
    return md, figures


def _improvement_table(improvements: Sequence) -> str:
    return md_table(
        ["X", "Y", "P(X > Y) [95 % interval]", "reading"], [[i.x, i.y, i.probability, i.verdict] for i in improvements]
    )


def _noise_section(table: pd.DataFrame, section: Section, out: Path, reps: int) -> tuple[list[str], dict]:
    md, figures = [], {}
    for kind, levels in noise_conditions(table).items():
        by_level = noise_matrices(table, kind, levels, section.arms, section.games)
        curves: dict[str, dict[float, object]] = {}
        for level, matrices in by_level.items():
            for arm, interval in metric_interval(matrices, "IQM", reps=reps).items():
                curves.setdefault(arm, {})[level] = interval
        if not curves:
            continue
        name = f"noise_robustness_{_slug(kind)}.png"
        figures[name] = plot_noise_robustness(curves, kind, out / name)
        md += [
            "",
            f"## Noise robustness across games: {kind}",
            "",
            f"IQM across {', '.join(section.games)} of the normalized final evaluation return under {kind} noise "
            f"(`eval/return_noise_{kind}_<level>`; level 0 is the clean return), with intervals as above.",
            "",
        ]
        all_levels = sorted(by_level)
        md.append(
            md_table(
                ["arm", *(f"{x:g}" for x in all_levels)],
                [[arm, *(str(curves[arm].get(x, "-")) for x in all_levels)] for arm in curves],
            )
        )
        heaviest = max(levels)
        improvements = improvement_probabilities(by_level[float(heaviest)], arms=section.arms, reps=reps)
        if improvements:
            md += [
                "",
                f"P(X > Y) under the heaviest {kind} noise ({heaviest:g}):",
                "",
                _improvement_table(improvements),
            ]
            fig = f"improvement_noise_{_slug(kind)}.png"
            figures[fig] = plot_improvements(improvements, out / fig, title=f"{kind} {heaviest:g}")
    return md, figures


def _bn_section(table: pd.DataFrame, section: Section, out: Path, reps: int) -> tuple[list[str], dict]:
    matrices, _ = score_matrices(table, BN_GAP, section.arms, section.games)
    if not matrices:
        return [], {}
    mean = metric_interval(matrices, "mean", reps=reps)
    iqm = metric_interval(matrices, "IQM", reps=reps)
    gaps = {arm: {"mean": mean[arm], "IQM": iqm[arm]} for arm in matrices}
    rows = []
    for arm in matrices:
        m = mean[arm]
        reading = "train mode higher" if m.low > 0 else "eval mode higher" if m.high < 0 else "no difference shown"
        rows.append([arm, matrices[arm].shape[0], mean[arm], iqm[arm], reading])
    md = [
        "",
        "## Batch-statistics policies: train-mode minus eval-mode acting",
        "",
        "Per run: (`eval/return_train_mode` − `eval/return_eval_mode`) / (reference − random), i.e. the gap in "
        f"normalized score between acting with batch statistics and with running statistics; across "
        f"{', '.join(section.games)}. Intervals: {interval_label([m.shape[0] for m in matrices.values()])}.",
        "",
        md_table(["arm", "runs/game", "mean gap", "IQM gap", "reading (mean interval vs 0)"], rows),
    ]
    return md, {"bn_mode_gap.png": plot_bn_gap(gaps, out / "bn_mode_gap.png")}


def aggregate(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    include_unfinished: bool = False,
    reference: str = "study-max",
    reference_dir: str | Path = REFERENCE_DIR,
    reps: int = BOOTSTRAP_REPS,
    command: str | None = None,
) -> Path:
    """Write the cross-game report of the runs under ``run_dirs`` into ``out``.

    :param run_dirs: experiment directories (``runs/<experiment>``)
    :param out: report directory (``reports/<name>``)
    :param include_unfinished: also aggregate runs that did not reach their configured steps (marked)
    :param reference: ``study-max`` or ``published`` (:mod:`agents.report.aggregate_scores`)
    :param reference_dir: folder of the committed random and published score tables
    :param reps: bootstrap repetitions
    :param command: the command line, recorded in the report
    :return: path of ``report.md``
    :raises FileNotFoundError: no runs with events under a directory
    :raises ValueError: nothing to aggregate, or a game without a usable normalization
    """
    out, reference_dir = Path(out), Path(reference_dir)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in FIGURE_PATTERNS:  # an earlier report's figures (other arms, noise kinds) would contradict this one
        for stale in out.glob(pattern):
            stale.unlink()
    finals, states = load_finals(run_dirs, include_unfinished)
    if finals.empty:
        raise ValueError("no finished run with an evaluation return under " + ", ".join(map(str, run_dirs)))
    table = per_run_table(finals)
    norms = normalizations(table, reference, reference_dir)
    table = add_scores(table, norms)
    table.to_csv(out / "per_run.csv", index=False, float_format="%.6g")
    md = [
        "# Cross-game aggregate report",
        "",
        f"Command: `{command or 'agents.report.aggregate.aggregate(...)'}`",
        "",
        f"Algorithm(s) {', '.join(sorted(table.algo.unique()))}; games {', '.join(sorted(table.game.unique()))}; "
        f"arms {', '.join(dict.fromkeys(a for s in sections(table) for a in s.arms))}. Every value is read from the "
        "runs' TensorBoard event files (last logged value of each tag).",
        "",
        *_runs_section(table, states, [str(d) for d in run_dirs], include_unfinished),
        "",
        *_normalization_section(norms, reference, reference_dir),
    ]
    figures: dict[str, Path] = {}
    for index, section in enumerate(sections(table)):
        section_md, section_figures = _aggregate_section(table, section, out, reps, index)
        md += ["", *section_md]
        figures.update(section_figures)
    main = sections(table)[0] if sections(table) else None
    if main is not None:
        for part in (_noise_section, _bn_section):
            part_md, part_figures = part(table, main, out, reps)
            md += part_md
            figures.update(part_figures)
    md += ["", "## Figures", "", *(f"![{name}]({name})" for name in figures)]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
