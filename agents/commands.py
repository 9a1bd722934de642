"""The training commands: ``python -m agents train|sweep CONFIG [key=value ...]``.

``train`` and ``sweep`` take the same arguments: validate the config, run its grid (resuming and skipping
finished runs, :mod:`agents.pipeline.sweep`), then write the comparison report
(:mod:`agents.report.compare`). They sit above both packages so the pipeline never imports the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.config import SWEEP_BACKENDS, ConfigError, load_config
from agents.pipeline.interrupt import stop_exit_status, stop_requested
from agents.pipeline.runs import experiment_dir
from agents.pipeline.sweep import preflight, run_grid
from agents.report.compare import compare

DESCRIPTION = "Train every run of an experiment config (envs x norms x seeds), then write its report."


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line shared by ``python -m agents train`` and ``python -m agents sweep``.

    :param prog: program name
    :param description: help text
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("config", help="YAML experiment config, e.g. configs/default.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.total_timesteps=20000 seeds=[0]")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: sweep.workers; 0 = cores)")
    parser.add_argument("--backend", choices=SWEEP_BACKENDS, default=None, help="default: sweep.backend")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison report at the end")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m agents train") -> int:
    """Validate the config, run its grid (resuming/skipping as needed), then write the report.

    :param argv: command-line arguments (default ``sys.argv[1:]``)
    :param prog: program name for the help text
    :return: exit status (0 ok, 1 some run failed, 2 bad config or a run that would resume with another config,
        130 stopped by SIGINT, 143 by SIGTERM)
    """
    args = build_parser(prog, DESCRIPTION).parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        preflight(config, args.config)
        results = run_grid(config, backend=args.backend, workers=args.workers)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [r for r in results if r.status == "failed"]
    stopped = [r for r in results if r.status in ("interrupted", "not started")]
    if failed:  # each failure's line was printed when it happened; this is the summary
        print(f"{len(failed)} of {len(results)} runs failed (details in each run's failed.json)", file=sys.stderr)
    if stopped:
        reason = stop_requested() or "stop"
        print(
            f"{reason}: {len(stopped)} of {len(results)} runs stopped before the end; run the same command again "
            "to resume them",
            file=sys.stderr,
        )
        return stop_exit_status()
    if not args.no_compare:
        report = compare(experiment_dir(config), Path(config.reports_dir) / config.experiment)
        print(f"report: {report}")
    return 1 if failed else 0


def sweep_main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents sweep``: the same command line as ``train``.

    :param argv: command-line arguments
    :return: exit status
    """
    return main(argv, prog="python -m agents sweep")


if __name__ == "__main__":
    sys.exit(main())
