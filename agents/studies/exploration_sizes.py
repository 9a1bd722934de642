"""Study experiment 6c (issue 19): no bonus, the exact count bonus and the pseudo-count bonus on Deep Sea of
increasing size, for each algorithm config given (DQN, PPO).

``python -m agents study exploration configs/study_exploration_sizes.yaml configs/study_exploration_sizes_ppo.yaml
--sizes 6 8 10 12 16 20 --variants plain count pc-wn [--episodes-per-size-unit 50] [key=value ...]``

Every (config, size, variant) is an ordinary experiment grid (one run per seed) in
``<runs_dir>/<experiment>/n<size>/<variant>/``; the run folders are named by the algorithm, so the DQN and PPO
configs share the variant folders. Variants: ``plain`` (the ``exploration:`` block removed), ``count`` (the exact
visit count, :class:`agents.exploration.CountReward`, with the config's ``beta``) and ``pc-<norm>`` (the
config's pseudo-count block with the density model normalized by ``<norm>``); each with the suffix ``-mmc``
(``plain-mmc``, ``count-mmc``, ``pc-wn-mmc``) is the same with DQN's target mixed with the Monte Carlo return,
``hyperparams.default.mixed_return`` = ``MMC_MIXED_RETURN`` (:mod:`agents.mixed_return`; DQN configs only).
Each run trains for ``K x size`` episodes (``K x size^2`` steps, ``K`` = ``--episodes-per-size-unit``), is
evaluated greedily 8 times, and records its training episodes in ``episodes.json`` (:class:`EpisodeLog`).
Finished runs are skipped, so the same command resumes a study and a larger ``--sizes`` or another ``--variants``
adds only what is missing. Runs are ordered by size, then seed, then variant, so a study stopped early has whole
seeds of the small sizes. The report is :mod:`agents.studies.exploration_report`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.config import ConfigError, ExperimentConfig, load_config
from agents.exploration import COUNT_INFO_KEY, INFO_KEY
from agents.pipeline.runs import RunSpec, grid
from agents.pipeline.sweep import preflight, run_specs
from agents.studies.exploration_mmc import MMC_MIXED_RETURN, MMC_SUFFIX

PLAIN = "plain"
COUNT = "count"
PSEUDOCOUNT_PREFIX = "pc-"
DEFAULT_VARIANTS = (PLAIN, COUNT, "pc-wn")
#: what a run records about its training episodes (:class:`EpisodeLog`)
EPISODES_FILE = "episodes.json"
#: a sample of (step, exact count, pseudo-count, bonus) of the frames a pseudo-count run saw
COUNTS_FILE = "counts.csv"
#: greedy evaluations per run
EVALUATIONS = 8
SIZE_DIR = "n{size}"


def check_variant(variant: str) -> str:
    """``plain``, ``count`` or ``pc-<density norm>``, each optionally with the suffix ``-mmc``; anything else is a
    :class:`ConfigError` listing them."""
    bonus = variant.removesuffix(MMC_SUFFIX)
    if bonus in (PLAIN, COUNT) or re.fullmatch(rf"{PSEUDOCOUNT_PREFIX}[a-z_]+", bonus):
        return variant
    raise ConfigError(
        "<command line>",
        "--variants",
        f"unknown variant {variant!r}; allowed: plain, count, pc-<norm>, each optionally with the suffix {MMC_SUFFIX}",
    )


def variant_overrides(variant: str, base: ExperimentConfig) -> list[str]:
    """The config overrides that make ``variant`` out of a config with a pseudo-count ``exploration:`` block.

    :param variant: see :func:`check_variant`
    :param base: the study config (its block gives ``beta`` to the count variant)
    """
    bonus = variant.removesuffix(MMC_SUFFIX)
    mixed = [f"hyperparams.default.mixed_return={MMC_MIXED_RETURN}"] if bonus != variant else []
    if bonus == PLAIN:
        return ["exploration=null", *mixed]
    if bonus == COUNT:
        return [f"exploration={{kind: count, beta: {base.exploration['beta']}}}", *mixed]
    return [f"exploration.norm={bonus[len(PSEUDOCOUNT_PREFIX) :]}", *mixed]


def size_overrides(size: int, episodes_per_size_unit: int) -> list[str]:
    """Overrides for Deep Sea of side ``size``: ``episodes_per_size_unit x size`` episodes of ``size`` steps."""
    steps = episodes_per_size_unit * size * size
    return [
        f"env_options.env_kwargs.size={size}",
        f"train.total_timesteps={steps}",
        f"eval.freq={max(size, steps // EVALUATIONS)}",
    ]


def sizes_configs(
    paths: Sequence[str | Path],
    sizes: Sequence[int],
    variants: Sequence[str],
    episodes_per_size_unit: int,
    overrides: Sequence[str] = (),
) -> list[tuple[tuple[str, int, str], ExperimentConfig]]:
    """One validated config per (algorithm config, size, variant), keyed ``(algo, size, variant)``.

    :param paths: study configs, each with a pseudo-count ``exploration:`` block; they must share
        ``experiment``, ``runs_dir`` and ``reports_dir`` (one study folder) and differ in ``algo``
    :param sizes: Deep Sea sides
    :param variants: see :func:`check_variant`
    :param episodes_per_size_unit: episodes per run divided by the size
    :param overrides: ``key=value`` overrides applied to every config
    :raises ConfigError: a bad variant, size or config, or configs that do not form one study
    """
    variants = [check_variant(v) for v in variants]
    if len(set(variants)) != len(variants):
        raise ConfigError("<command line>", "--variants", f"duplicate variants in {variants}")
    if any(size < 2 for size in sizes) or len(set(sizes)) != len(sizes):
        raise ConfigError("<command line>", "--sizes", f"distinct sizes >= 2 expected, got {list(sizes)}")
    if episodes_per_size_unit < 1:
        raise ConfigError("<command line>", "--episodes-per-size-unit", f"must be >= 1, got {episodes_per_size_unit}")
    out = []
    algos: set[str] = set()
    for path in paths:
        base = load_config(path, overrides)
        if base.exploration is None or base.exploration.get("kind") != "pseudocount":
            raise ConfigError(str(path), "exploration", "the study needs a pseudocount block (its variants edit it)")
        first = out[0][1] if out else None
        if base.algo in algos:
            raise ConfigError(str(path), "algo", f"{base.algo} is already run by another config of the study")
        algos.add(base.algo)
        root = Path(base.runs_dir) / base.experiment
        for size in sizes:
            for variant in variants:
                extra = [*size_overrides(size, episodes_per_size_unit), *variant_overrides(variant, base)]
                extra += [f"experiment={variant}", f"runs_dir={root / SIZE_DIR.format(size=size)}"]
                config = load_config(path, [*overrides, *extra])
                out.append(((base.algo, size, variant), config))
        if first is not None and Path(first.runs_dir).parent != root:
            raise ConfigError(str(path), "experiment", f"all configs of the study must write to one folder: {root}")
    return out


class EpisodeLog(BaseCallback):
    """Counts the training episodes and those that reached the goal (``info["solved"]``, as Deep Sea reports
    it), and writes them with the first successful episode to ``<run_dir>/episodes.json`` when training ends.

    With a pseudo-count bonus it also keeps every ``sample_every``-th frame's exact count, pseudo-count and bonus
    (env 0) in ``counts.csv``: how well the density model counts. A resumed run continues the file's counts
    (steps it trains again after its checkpoint are counted twice; the study's runs keep no checkpoint).

    :param run_dir: the run's folder
    :param sample_every: steps between two sampled frames
    """

    def __init__(self, run_dir: str | Path, sample_every: int = 10):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.sample_every = sample_every
        self.record: dict[str, Any] = {}
        self.samples: list[tuple[int, float, float, float]] = []

    def _on_training_start(self) -> None:
        path = self.run_dir / EPISODES_FILE
        resumed = self.model.num_timesteps > 0 and path.exists()
        fresh = {"episodes": 0, "solved_episodes": 0, "first_solved_episode": None, "first_solved_step": None}
        self.record = json.loads(path.read_text()) if resumed else fresh

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        if self.n_calls % self.sample_every == 0:
            stats = infos[0].get(INFO_KEY)
            if stats is not None:
                self.samples.append((self.num_timesteps, stats["visit_count"], stats["pseudo_count"], stats["bonus"]))
        for i in range(len(dones)):
            if not dones[i]:
                continue
            self.record["episodes"] += 1
            if infos[i].get("solved"):
                self.record["solved_episodes"] += 1
                if self.record["first_solved_episode"] is None:
                    self.record["first_solved_episode"] = self.record["episodes"]
                    self.record["first_solved_step"] = self.num_timesteps
        return True

    def _on_training_end(self) -> None:
        bonus = self.locals.get("infos", [{}])[0]
        self.record["bonus"] = "pseudocount" if INFO_KEY in bonus else "count" if COUNT_INFO_KEY in bonus else "none"
        (self.run_dir / EPISODES_FILE).write_text(json.dumps(self.record, indent=1))
        if self.samples:
            lines = ["step,visit_count,pseudo_count,bonus"] + [",".join(map(str, row)) for row in self.samples]
            (self.run_dir / COUNTS_FILE).write_text("\n".join(lines) + "\n")


def episode_log(spec: RunSpec) -> list[BaseCallback]:
    """The study's extra callback of a run (:class:`EpisodeLog`), made in the run's worker.

    :param spec: the run
    """
    return [EpisodeLog(spec.run_dir)]


def ordered_specs(configs: Sequence[tuple[tuple[str, int, str], ExperimentConfig]]) -> list[RunSpec]:
    """Every run of every config, by size, then seed, then variant and config order."""
    keyed = []
    for rank, ((_, size, _), config) in enumerate(configs):
        keyed += [((size, spec.seed, rank), spec) for spec in grid(config)]
    return [spec for _, spec in sorted(keyed, key=lambda item: item[0])]


#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = (
    "Study experiment 6c: DQN/PPO with no bonus, the exact count bonus and the PixelCNN pseudo-count bonus on "
    "Deep Sea of increasing size."
)
PROG = "python -m agents study exploration ... --sizes"


def parser() -> argparse.ArgumentParser:
    """The command line: configs and ``key=value`` overrides (told apart by the ``=``), sizes, variants."""
    p = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    p.add_argument("args", nargs="+", help="study configs (one per algorithm), then key=value overrides")
    p.add_argument("--sizes", type=int, nargs="+", required=True, help="Deep Sea sides")
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        help=f"plain, count, pc-<norm>; with the suffix {MMC_SUFFIX}: DQN with the mixed Monte Carlo return",
    )
    p.add_argument("--episodes-per-size-unit", type=int, default=50, help="episodes per run = this x size")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: sweep.workers)")
    p.add_argument("--report-only", action="store_true", help="only read existing runs back")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run every (config, size, variant) grid, skipping finished runs, then write the report.

    :param argv: command-line arguments
    :return: exit status (0 ok, 1 some run failed, 2 bad command line or config)
    """
    from agents.studies.cli import command_error, finish
    from agents.studies.exploration_report import append_run_log, report

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_intermixed_args(argv)
    paths = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    try:
        if not paths:
            raise ConfigError("<command line>", "config", "give at least one study config")
        configs = sizes_configs(paths, args.sizes, args.variants, args.episodes_per_size_unit, overrides)
        for (algo, size, variant), config in configs:
            preflight(config, f"{algo} size {size} {variant}")
    except ConfigError as err:
        return command_error(err)
    base = load_config(paths[0], overrides)
    out_dir = Path(base.reports_dir) / base.experiment
    started = time.time()
    failed = 0
    if not args.report_only:
        workers = args.workers if args.workers is not None else (base.sweep.workers or 1)
        results = run_specs(ordered_specs(configs), workers, title=base.experiment, callbacks=episode_log)
        failed = sum(r.status == "failed" for r in results)
        command = ["python", "-m", "agents", "study", "exploration", *argv]
        append_run_log(out_dir, command, results, time.time() - started)
    path = report(Path(base.runs_dir) / base.experiment, out_dir, args.episodes_per_size_unit)
    return finish(path, failed)
