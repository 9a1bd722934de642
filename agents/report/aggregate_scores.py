"""The data of the cross-game report: every run's final values read from its event files, their normalization
per game, and the ``(runs, games)`` score matrices rliable aggregates.

The normalized score of a return ``x`` on a game is ``(x - random) / (reference - random)``: 0 is a uniformly
random policy (:mod:`agents.report.aggregate_reference`), 1 the reference score. The reference is either the
best final clean evaluation return of any run in the report (``study-max``: every score is then at most 1 and
the optimality gap is the distance to the best run seen; it moves when runs are added) or a published score
(``published``; games without one fall back to ``study-max``, said per game).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agents.pipeline.runs import run_wall_time
from agents.pipeline.tb_layout import RETURN_CLEAN, RETURN_EVAL_MODE, RETURN_TRAIN_MODE, parse_noise_tag
from agents.report.aggregate_reference import (
    REFERENCE_DIR,
    load_published_scores,
    load_random_scores,
    minatar_game,
)
from agents.report.scalars import final_values, load_scalars, run_states
from agents.report.tables import ordered

REFERENCES = ("study-max", "published")
#: per-run column of the normalized clean score
SCORE = "score"
BN_GAP = "bn_gap"


@dataclass(frozen=True)
class GameNormalization:
    """How one game's returns become normalized scores."""

    game: str
    random: float
    reference: float
    reference_kind: str  # "study-max" or "published"
    source: str

    def __call__(self, value: float | np.ndarray) -> float | np.ndarray:
        """``(value - random) / (reference - random)``."""
        return (value - self.random) / (self.reference - self.random)


def noise_column(kind: str, level: float) -> str:
    """Per-run column of the raw return under one noise condition (``noise_gaussian_0.3``)."""
    return f"noise_{kind}_{level:g}"


def load_finals(run_dirs: Sequence[str | Path], include_unfinished: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last value of every tag of every run under ``run_dirs``, and how every run stands.

    :param run_dirs: experiment directories (``runs/<experiment>``; a folder of experiments works too)
    :param include_unfinished: keep runs that did not reach their configured steps
    :return: ``(finals, states)``; ``finals`` has ``run`` (``<run_dir>/<run>``), ``env``, ``game``, ``algo``,
        ``arm`` (the ``norm`` column; prefixed ``<algo>:`` when several algorithms are read), ``seed``, ``status``,
        ``tag``, ``step``, ``value``; ``states`` has ``run, status, steps, target, message``
    """
    frames, states = [], []
    for run_dir in run_dirs:
        scalars = load_scalars(run_dir)
        scalars["run"] = str(Path(run_dir)) + "/" + scalars["run"]
        frames.append(scalars)
        state = run_states(run_dir)
        state["run"] = str(Path(run_dir)) + "/" + state["run"]
        states.append(state)
    scalars = pd.concat(frames, ignore_index=True)
    if not include_unfinished:
        scalars = scalars[scalars.status == "finished"]
    finals = final_values(scalars) if len(scalars) else scalars
    if len(finals):
        finals["game"] = finals.env.map(lambda e: minatar_game(e) or e)
        several = finals.algo.nunique() > 1
        finals["arm"] = (finals.algo + ":" + finals.norm) if several else finals.norm
    return finals, pd.concat(states, ignore_index=True)


def per_run_table(finals: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its identity, steps, the raw final returns (clean, each noise condition, BN modes) and its
    wall time.

    :param finals: output of :func:`load_finals`
    """
    rows = []
    for run, group in finals.groupby("run", sort=True):
        values = dict(zip(group.tag, group.value))
        first = group.iloc[0]
        row = {
            "run": run,
            "env": first.env,
            "game": first.game,
            "algo": first.algo,
            "arm": first.arm,
            "seed": int(first.seed),
            "status": first.status,
            "steps": int(group[group.tag == RETURN_CLEAN].step.max()) if RETURN_CLEAN in values else None,
            "return_clean": values.get(RETURN_CLEAN, np.nan),
            "return_train_mode": values.get(RETURN_TRAIN_MODE, np.nan),
            "return_eval_mode": values.get(RETURN_EVAL_MODE, np.nan),
            "wall_time_s": run_wall_time(Path(run)),
        }
        for tag, value in values.items():
            parsed = parse_noise_tag(tag)
            if parsed is not None:
                row[noise_column(*parsed)] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[table.return_clean.notna()].reset_index(drop=True)


def noise_conditions(table: pd.DataFrame) -> dict[str, list[float]]:
    """``{kind: levels}`` of the noise columns of a per-run table (levels ascending)."""
    found: dict[str, set[float]] = {}
    for column in table.columns:
        parsed = parse_noise_tag("eval/return_" + column) if column.startswith("noise_") else None
        if parsed is not None:
            found.setdefault(parsed[0], set()).add(parsed[1])
    return {kind: sorted(levels) for kind, levels in sorted(found.items())}


def normalizations(
    table: pd.DataFrame, reference: str = "study-max", reference_dir: str | Path = REFERENCE_DIR
) -> dict[str, GameNormalization]:
    """The normalization of every game of a per-run table.

    :param table: output of :func:`per_run_table`
    :param reference: ``study-max`` or ``published`` (see the module docstring)
    :param reference_dir: folder of the committed reference tables
    :raises ValueError: an unknown reference, a game without a random score, or a reference not above random
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCES)}; got {reference!r}")
    randoms = load_random_scores(reference_dir)
    published = load_published_scores(reference_dir) if reference == "published" else {}
    out = {}
    for game in sorted(table.game.unique()):
        if game not in randoms:
            raise ValueError(f"no random score for game {game!r}; known: {', '.join(sorted(randoms))}")
        if game in published:
            ref, kind = published[game].score, "published"
            source = f"{published[game].agent}, {published[game].budget}: {published[game].source}"
        else:
            best = table[table.game == game].sort_values("return_clean").iloc[-1]
            ref, kind = float(best.return_clean), "study-max"
            source = f"best final clean evaluation return among the runs of this report ({best.run})"
        if ref <= randoms[game].mean:
            raise ValueError(
                f"the reference score of {game} ({ref:g}, {kind}) is not above its random score "
                f"({randoms[game].mean:g}): normalized scores are undefined"
            )
        out[game] = GameNormalization(game, randoms[game].mean, ref, kind, source)
    return out


def add_scores(table: pd.DataFrame, norms: dict[str, GameNormalization]) -> pd.DataFrame:
    """The per-run table with normalized columns: ``score`` (clean), ``score_<noise column>``, and ``bn_gap``
    (train-mode minus eval-mode return over ``reference - random``; ``NaN`` for runs without batch statistics).

    :param table: output of :func:`per_run_table`
    :param norms: output of :func:`normalizations`
    """
    out = table.copy()
    span = out.game.map(lambda g: norms[g].reference - norms[g].random)
    random = out.game.map(lambda g: norms[g].random)
    out[SCORE] = (out.return_clean - random) / span
    for kind, levels in noise_conditions(table).items():
        for level in levels:
            out["score_" + noise_column(kind, level)] = (out[noise_column(kind, level)] - random) / span
    out[BN_GAP] = (out.return_train_mode - out.return_eval_mode) / span
    return out


@dataclass(frozen=True)
class Section:
    """A set of arms compared over a set of games (every arm has runs on every game)."""

    title: str
    arms: list[str]
    games: list[str]


def sections(table: pd.DataFrame) -> list[Section]:
    """The comparisons a report can make: the arms run on every game, over every game; and, when some arms were
    run on fewer games, every arm over the games all of them share.

    :param table: a per-run table
    """
    games = sorted(table.game.unique())
    arms = ordered(table.arm.unique())
    arm_games = {a: set(table[table.arm == a].game) for a in arms}
    full = [a for a in arms if arm_games[a] == set(games)]
    out = []
    if full:
        out.append(Section(f"arms run on all {len(games)} games", full, games))
    if len(full) < len(arms):
        common = sorted(set.intersection(*arm_games.values()))
        if common:
            out.append(Section(f"every arm, on the games all arms share ({', '.join(common)})", arms, common))
    return out


def score_matrices(
    table: pd.DataFrame, column: str, arms: Sequence[str], games: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """``{arm: (runs, games)}`` matrices of one column, as rliable takes them, and the runs each arm dropped.

    rliable's stratified bootstrap needs the same number of runs on every game of one arm; an arm with more
    seeds on some games keeps its lowest ``n`` seeds on each (``n`` its smallest count), and the report says so.

    :param table: per-run table with the column
    :param column: e.g. ``score``
    :param arms: arm order
    :param games: game (column) order
    :return: ``(matrices, dropped)``; an arm missing the column on a game is left out
    """
    matrices, dropped = {}, {}
    for arm in arms:
        rows = table[(table.arm == arm) & table[column].notna()] if column in table else table.iloc[:0]
        per_game = [rows[rows.game == g].sort_values("seed")[column].to_numpy(dtype=float) for g in games]
        if not per_game or min(len(v) for v in per_game) == 0:
            continue
        n = min(len(v) for v in per_game)
        matrices[arm] = np.stack([v[:n] for v in per_game], axis=1)
        dropped[arm] = sum(len(v) - n for v in per_game)
    return matrices, dropped


def noise_matrices(
    table: pd.DataFrame, kind: str, levels: Sequence[float], arms: Sequence[str], games: Sequence[str]
) -> dict[float, dict[str, np.ndarray]]:
    """``{level: {arm: (runs, games)}}`` of normalized scores under one noise kind; level 0 is the clean score.

    :param table: per-run table with scores (:func:`add_scores`)
    :param kind: noise kind
    :param levels: its levels
    :param arms: arm order
    :param games: games
    """
    out = {0.0: score_matrices(table, SCORE, arms, games)[0]}
    for level in levels:
        out[float(level)] = score_matrices(table, "score_" + noise_column(kind, level), arms, games)[0]
    return out
