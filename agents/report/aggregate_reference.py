"""Reference scores of the MinAtar games for the cross-game report: a uniformly random policy's score (measured
here, :func:`measure_random_scores`) and published scores (transcribed, with their source).

Both live as committed CSV files under :data:`REFERENCE_DIR`, so every normalized number of a report traces back
to a file: ``random_scores.csv`` is written by ``python -m agents study aggregate --measure-random``;
``published_scores.csv`` is typed in from the source named on each row.

Young & Tian (2019) publish their DQN and AC(lambda) results at 5M frames only as learning curves (the paper's
figures and ``img/results.gif`` in github.com/kenjyoung/MinAtar), not as numbers, so they are not in the table.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: where the reference tables are committed
REFERENCE_DIR = Path("reports/study_minatar_reference")
RANDOM_SCORES_FILE = "random_scores.csv"
PUBLISHED_SCORES_FILE = "published_scores.csv"
RANDOM_EPISODES = 1000
RANDOM_SEED = 0
RANDOM_ENVS = 4
MINATAR_VERSION = "v1"


@dataclass(frozen=True)
class RandomScore:
    """A uniformly random policy's mean return on one game, with how it was measured."""

    game: str
    mean: float
    sem: float
    episodes: int
    seed: int
    sticky_actions: float


@dataclass(frozen=True)
class PublishedScore:
    """A published score of one game: the agent, the budget it was reached at, and where it is written."""

    game: str
    score: float
    agent: str
    budget: str
    source: str


def minatar_game(env_id: str) -> str | None:
    """The MinAtar game of an env id (``MinAtar/Breakout-v1`` -> ``Breakout``), else ``None``.

    :param env_id: a gymnasium id
    """
    from envs.minatar import MINATAR_GAMES, MINATAR_PREFIX

    if not env_id.startswith(MINATAR_PREFIX):
        return None
    game = env_id[len(MINATAR_PREFIX) :].split("-", 1)[0]
    return game if game in MINATAR_GAMES else None


def measure_random_scores(
    games: tuple[str, ...] | None = None,
    episodes: int = RANDOM_EPISODES,
    seed: int = RANDOM_SEED,
    n_envs: int = RANDOM_ENVS,
) -> list[RandomScore]:
    """Mean return of uniformly random actions on each MinAtar game, with the project's envs (sticky actions 0.1,
    difficulty ramping, as the runs train and evaluate).

    Each of the ``n_envs`` copies contributes its first ``episodes / n_envs`` episodes, so long episodes are not
    under-counted (stopping at the first ``episodes`` completions would favour short ones).

    :param games: MinAtar games (default all five)
    :param episodes: episodes per game (a multiple of ``n_envs``)
    :param seed: seeds the envs (``seed + i``) and the action generator
    :param n_envs: parallel env copies
    :return: one :class:`RandomScore` per game
    """
    from envs import make_env
    from envs.minatar import MINATAR_GAMES, MinAtarConfig

    if episodes % n_envs:
        raise ValueError(f"episodes must be a multiple of n_envs={n_envs}, got {episodes}")
    per_env = episodes // n_envs
    out = []
    for game in games or MINATAR_GAMES:
        venv = make_env(f"MinAtar/{game}-{MINATAR_VERSION}", n_envs=n_envs, seed=seed)
        rng = np.random.default_rng(seed)
        returns: list[list[float]] = [[] for _ in range(n_envs)]
        venv.reset()
        try:
            while min(len(r) for r in returns) < per_env:
                actions = rng.integers(venv.action_space.n, size=n_envs)
                _, _, _, infos = venv.step(actions)
                for i, info in enumerate(infos):
                    if "episode" in info and len(returns[i]) < per_env:
                        returns[i].append(float(info["episode"]["r"]))
        finally:
            venv.close()
        flat = np.array([r for env_returns in returns for r in env_returns])
        sem = float(flat.std(ddof=1) / np.sqrt(len(flat))) if len(flat) > 1 else 0.0
        out.append(RandomScore(game, float(flat.mean()), sem, len(flat), seed, MinAtarConfig().sticky_actions))
    return out


def write_random_scores(scores: list[RandomScore], path: str | Path, seconds: float | None = None) -> Path:
    """Write measured random scores as CSV (one row per game).

    :param scores: output of :func:`measure_random_scores`
    :param path: destination CSV
    :param seconds: wall time of the measurement, recorded in a comment line
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        note = f", {seconds:.0f} s" if seconds is not None else ""
        f.write(
            f"# uniformly random actions, MinAtar {MINATAR_VERSION} via envs.make_env (sticky actions, difficulty "
            f"ramping); python -m agents study aggregate --measure-random{note}\n"
        )
        writer = csv.writer(f)
        writer.writerow(["game", "mean", "sem", "episodes", "seed", "sticky_actions"])
        for s in scores:
            writer.writerow([s.game, f"{s.mean:.4f}", f"{s.sem:.4f}", s.episodes, s.seed, s.sticky_actions])
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def load_random_scores(directory: str | Path = REFERENCE_DIR) -> dict[str, RandomScore]:
    """The committed random scores, ``{game: RandomScore}``.

    :param directory: folder holding ``random_scores.csv``
    """
    path = Path(directory) / RANDOM_SCORES_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no random scores; measure them with `python -m agents study aggregate --measure-random`"
        )
    return {
        r["game"]: RandomScore(
            r["game"], float(r["mean"]), float(r["sem"]), int(r["episodes"]), int(r["seed"]), float(r["sticky_actions"])
        )
        for r in _rows(path)
    }


def load_published_scores(directory: str | Path = REFERENCE_DIR) -> dict[str, PublishedScore]:
    """The committed published scores, ``{game: PublishedScore}`` (games without one are absent).

    :param directory: folder holding ``published_scores.csv``
    """
    path = Path(directory) / PUBLISHED_SCORES_FILE
    if not path.exists():
        return {}
    return {
        r["game"]: PublishedScore(r["game"], float(r["score"]), r["agent"], r["budget"], r["source"])
        for r in _rows(path)
    }


def measure_and_write(directory: str | Path = REFERENCE_DIR, episodes: int = RANDOM_EPISODES) -> Path:
    """Measure every game's random score and write ``random_scores.csv`` (what ``--measure-random`` runs).

    :param directory: destination folder
    :param episodes: episodes per game
    """
    started = time.time()
    scores = measure_random_scores(episodes=episodes)
    return write_random_scores(scores, Path(directory) / RANDOM_SCORES_FILE, time.time() - started)
