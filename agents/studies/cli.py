"""What every study's command line shares: the parser, running each arm's grid, the error and closing lines."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.config import ConfigError, ExperimentConfig, load_config
from agents.pipeline.interrupt import stop_exit_status, stop_requested
from agents.pipeline.sweep import preflight, run_grid


def study_parser(prog: str, description: str, arm: str) -> argparse.ArgumentParser:
    """The command line every multi-arm study shares: config, overrides, ``--workers``, ``--report-only``.

    :param prog: the command, e.g. ``python -m agents study minibatch`` (its last word names the config)
    :param description: one line for the help
    :param arm: what one grid of the study is called in the help, e.g. ``size`` or ``variant``
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    config_name = prog.rsplit(" ", 1)[-1].replace("-", "_")  # study head-norm -> configs/study_head_norm.yaml
    parser.add_argument("config", help=f"study config, e.g. configs/study_{config_name}.yaml")
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides for every {arm}")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: sweep.workers)")
    parser.add_argument("--report-only", action="store_true", help="only read existing runs back")
    return parser


def run_variant_grids(
    configs: Sequence[tuple[Any, ExperimentConfig]], workers: int | None = None, skip: bool = False
) -> tuple[int, str]:
    """Run each variant's grid in turn (a study's arms) and say how long it took.

    :param configs: ``(arm, config)`` pairs (an arm is a variant name or a minibatch size), run in order
    :param workers: parallel runs per grid; ``None`` takes ``sweep.workers``
    :param skip: run nothing (report-only): the timing part of the note is left out
    :return: the number of failed runs, and a note such as ``"20000 steps per run; this invocation took 5 s"``
    """
    started = time.time()
    failed = 0
    if not skip:
        for _, config in configs:
            failed += sum(r.status == "failed" for r in run_grid(config, workers=workers))
    steps = configs[0][1].train.total_timesteps if configs else 0
    timing = "" if skip else f"; this invocation took {time.time() - started:.0f} s of wall time"
    return failed, f"{steps} steps per run{timing}."


def command_error(err: Exception) -> int:
    """Say what was wrong with the command line or its config, as every command does.

    :param err: the error (its message names the bad value)
    :return: exit status 2
    """
    print(f"error: {err}", file=sys.stderr)
    return 2


def finish(report: Path, failed: int = 0) -> int:
    """The closing lines of a study: where its report is and how many runs failed.

    :param report: the report written
    :param failed: runs that failed (each one's message was printed when it ended)
    :return: exit status: 0 when every run finished, 1 when some failed
    """
    print(f"report: {report}")
    if failed:
        print(f"{failed} run(s) failed: their '[i/n] failed' lines above say why", file=sys.stderr)
    return 1 if failed else 0


#: writes a study's report: ``(study_dir, out_dir, arms, note) -> report path``
ReportWriter = Callable[[Path, Path, list[Any], str], Path]


def run_arms(
    args: argparse.Namespace, arm_configs: Callable[[], Sequence[tuple[Any, ExperimentConfig]]], report: ReportWriter
) -> int:
    """What a multi-arm study's ``main`` does once its arguments are parsed: check every arm's config, run the
    grids (finished runs are skipped), write the report, say how it went.

    :param args: the parsed :func:`study_parser` arguments (``config``, ``overrides``, ``workers``, ``report_only``)
    :param arm_configs: builds the ``(arm, config)`` pairs; a :class:`~agents.config.ConfigError` it raises is a
        bad command line
    :param report: writes the report of ``<runs_dir>/<experiment>`` into ``<reports_dir>/<experiment>``
    :return: exit status: 0 ok, 1 some run failed, 2 bad config, 130/143 stopped by SIGINT/SIGTERM
    """
    try:
        configs = arm_configs()
        for _, config in configs:
            preflight(config, args.config)
    except ConfigError as err:
        return command_error(err)
    failed, note = run_variant_grids(configs, args.workers, skip=args.report_only)
    if stop_requested():  # the runs said where they stopped; a report now would mix finished and partial arms
        print(f"{stop_requested()}: the study stopped; run the same command again to resume it", file=sys.stderr)
        return stop_exit_status()
    base = load_config(args.config, args.overrides)
    path = report(
        Path(base.runs_dir) / base.experiment, Path(base.reports_dir) / base.experiment, [a for a, _ in configs], note
    )
    return finish(path, failed)
