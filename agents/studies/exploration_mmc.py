"""The mixed Monte Carlo return arm of the Deep Sea size study (experiment 6c): variant names and the report's
paired table, each ``<variant>-mmc`` run against the run of ``<variant>`` with the same size and seed.

A variant with the suffix :data:`MMC_SUFFIX` trains DQN with ``mixed_return`` :data:`MMC_MIXED_RETURN`
(:class:`agents.mixed_return.MixedReturnDQN`), otherwise as ``<variant>``.
"""

from __future__ import annotations

import pandas as pd

from agents.report.stats import wilson_interval
from agents.report.tables import md_table

#: a variant with this suffix mixes the Monte Carlo return into DQN's target, with Ostrovski et al.'s weight
MMC_SUFFIX = "-mmc"
MMC_MIXED_RETURN = 0.1


def paired_with_twin(runs: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm and ``<variant>-mmc`` variant: its runs paired with those of ``<variant>`` (no mixed Monte
    Carlo return) of the same size and seed. Greedy-solved counts of both sides over the pairs, with Wilson 95 %
    intervals, the discordant pairs (solved with the mixed return only / without it only), and how many runs of
    each side reached the treasure in training."""
    rows = []
    for (algo, variant), group in runs.groupby(["algo", "variant"]):
        if not variant.endswith(MMC_SUFFIX):
            continue
        twin = runs[(runs.algo == algo) & (runs.variant == variant.removesuffix(MMC_SUFFIX))]
        pairs = group.merge(twin, on=["size", "seed"], suffixes=("", "_twin"))
        row = {"algo": algo, "variant": variant, "sizes": ", ".join(map(str, sorted(set(pairs["size"])))) or "-"}
        row["pairs"] = len(pairs)
        for name, column in (("with", "greedy_solved"), ("without", "greedy_solved_twin")):
            k, n = int(pairs[column].sum()), len(pairs)
            low, high = wilson_interval(k, n)
            row[name] = f"{k}/{n} [{low:.2f}, {high:.2f}]" if n else "-"
        row["only_with"] = int((pairs.greedy_solved & ~pairs.greedy_solved_twin).sum())
        row["only_without"] = int((~pairs.greedy_solved & pairs.greedy_solved_twin).sum())
        row["reached"] = f"{int(pairs.reached.sum())} / {int(pairs.reached_twin.sum())}"
        rows.append(row)
    return pd.DataFrame(rows)


def mmc_section(runs: pd.DataFrame) -> list[str]:
    """The report's Markdown lines on the ``-mmc`` variants (none when the study has no such run).

    :param runs: one row per run (``agents.studies.exploration_report.load_runs``)
    """
    twins = paired_with_twin(runs)
    if twins.empty:
        return []
    return [
        "",
        "## Mixed Monte Carlo return: each `-mmc` variant against the same variant without it",
        "",
        f"`<variant>{MMC_SUFFIX}`: DQN's target is `(1 - beta) y_TD + beta R_MC` with beta = {MMC_MIXED_RETURN} "
        "(Ostrovski et al. 2017; `agents.mixed_return`), otherwise the variant `<variant>`. Runs paired by size and "
        "seed; Wilson 95 % intervals over the pairs; *only with* / *only without*: pairs that only the run with "
        "(without) the mixed return solves greedily; *reached*: runs whose training reached the treasure, with / "
        "without.",
        "",
        md_table(
            ["algo", "variant", "sizes", "pairs", "greedy solved with", "greedy solved without", "only with",
             "only without", "reached (with / without)"],
            [
                [r.algo, r.variant, r.sizes, r.pairs, r.with_, r.without, r.only_with, r.only_without, r.reached]
                for r in twins.rename(columns={"with": "with_"}).itertuples()
            ],
        ),
    ]  # fmt: skip
