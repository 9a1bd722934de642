"""The tables of a report: score tables with intervals and their Markdown form."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from agents.report.stats import atari_game, human_normalized, iqm_interval
from rlnorm.registry import NORMS


def score_table(finals: pd.DataFrame, tag: str, envs: Sequence[str], norms: Sequence[str]) -> dict:
    """``{(env, norm): Interval}`` of the final value of ``tag`` over seeds, plus ``(None, norm)`` aggregates
    over envs when every env has the same seeds (human-normalized on Atari, raw otherwise).

    :param finals: output of :func:`final_values`
    :param tag: e.g. ``eval/return_clean``
    :param envs: env order
    :param norms: norm order
    """
    rows = finals[finals.tag == tag]
    table: dict = {}
    for norm in norms:
        matrix = []
        for env in envs:
            values = rows[(rows.env == env) & (rows.norm == norm)].sort_values("seed")
            if len(values):
                table[(env, norm)] = iqm_interval(values.value.to_numpy()[:, None])
                matrix.append(values.set_index("seed").value)
        if len(envs) > 1 and len(matrix) == len(envs):
            joined = pd.concat(matrix, axis=1, join="inner")
            if len(joined):
                normalized = [
                    joined.iloc[:, j].map(lambda v, e=env: human_normalized(e, v) if atari_game(e) else v)
                    for j, env in enumerate(envs)
                ]
                table[(None, norm)] = iqm_interval(pd.concat(normalized, axis=1).to_numpy())
    return table


def ordered(values: Sequence[str]) -> list[str]:
    """Norm names in the order of :data:`rlnorm.registry.NORMS` (none, wn, wn+mobn, bn, ...), unknown ones
    last and sorted."""
    order = list(NORMS)
    return sorted(set(values), key=lambda v: (order.index(v) if v in order else len(order), v))


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    """Two decimals, ``-`` for a missing value."""
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2f}"
