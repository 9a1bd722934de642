"""``python -m agents study aggregate RUN_DIRS... --out reports/<name>``: the cross-game report of a study's runs
(:mod:`agents.report.aggregate`); ``--measure-random`` measures the random-policy scores it normalizes with."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.report.aggregate import aggregate
from agents.report.aggregate_reference import RANDOM_EPISODES, REFERENCE_DIR, measure_and_write
from agents.report.aggregate_scores import REFERENCES
from agents.report.stats import BOOTSTRAP_REPS
from agents.studies.cli import command_error, finish

PROG = "python -m agents study aggregate"
#: the command line's description (not taken from __doc__, which ``python -OO`` strips)
DESCRIPTION = (
    "Cross-game report of finished runs (rliable: IQM, mean, median, optimality gap with stratified-bootstrap "
    "intervals, performance profiles, P(X > Y), noise robustness, BN train- vs eval-mode gap); "
    "--measure-random writes the random-policy scores it normalizes with."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the cross-game report, or measure the random scores.

    :param argv: command-line arguments
    :return: exit status: 0 ok, 2 bad command line or nothing to aggregate
    """
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("runs", nargs="*", help="experiment directories, e.g. runs/study_minatar_ppo")
    parser.add_argument("--out", help="report directory, e.g. reports/study_minatar_aggregate")
    parser.add_argument(
        "--include-unfinished",
        action="store_true",
        help="also aggregate runs that did not reach their configured steps (interrupted, failed), marked",
    )
    parser.add_argument(
        "--reference",
        choices=REFERENCES,
        default="study-max",
        help="normalization reference: the best run of the report per game (default) or the published score",
    )
    parser.add_argument(
        "--reference-dir", default=str(REFERENCE_DIR), help=f"reference tables (default {REFERENCE_DIR})"
    )
    parser.add_argument(
        "--reps", type=int, default=BOOTSTRAP_REPS, help=f"bootstrap resamples (default {BOOTSTRAP_REPS})"
    )
    parser.add_argument(
        "--measure-random",
        action="store_true",
        help=f"measure uniformly random play on every MinAtar game ({RANDOM_EPISODES} episodes each) into "
        "REFERENCE_DIR/random_scores.csv, then stop",
    )
    args = parser.parse_args(argv)
    if args.measure_random:
        print(f"random scores: {measure_and_write(args.reference_dir)}")
        return 0
    if not args.runs or not args.out:
        return command_error(ValueError("give RUN_DIRS and --out (or --measure-random)"))
    missing = [d for d in args.runs if not Path(d).is_dir()]
    if missing:
        return command_error(FileNotFoundError(f"no such directory: {', '.join(missing)}"))
    command = " ".join([PROG, *map(shlex.quote, sys.argv[3:] if argv is None else argv)])
    try:
        path = aggregate(
            args.runs,
            args.out,
            include_unfinished=args.include_unfinished,
            reference=args.reference,
            reference_dir=args.reference_dir,
            reps=args.reps,
            command=command,
        )
    except (FileNotFoundError, ValueError) as err:
        return command_error(err)
    return finish(path)
