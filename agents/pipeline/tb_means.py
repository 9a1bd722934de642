"""Per-norm mean runs for TensorBoard: ``<experiment>/_mean/<env>/<algo>-<norm>``, the mean over seeds.

TensorBoard's custom-scalars charts colour each run on its own (by its position in the run list), so a chart of
3 norms x 5 seeds has 15 colours. The mean runs carry the ``by_env/...`` tags of the comparison charts
(:mod:`agents.pipeline.tb_layout`) averaged over the seeds of each norm, at the steps every seed logged: with
the run filter set to ``_mean`` (:func:`agents.pipeline.tb_layout.tensorboard_url` with ``means=True``) each chart
shows one line, so one colour, per norm.

``python -m agents tb-means [RUNS_DIR ...]`` (re)writes them for every experiment under each folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import yaml

from agents.pipeline.tb_layout import BY_ENV_PREFIX, MEAN_DIR, event_dir, has_events

GroupKey = tuple[Path, str, str, str]  # experiment dir, env folder, algo, norm


def _runs_by_norm(root: Path) -> dict[GroupKey, list[Path]]:
    groups: dict[GroupKey, list[Path]] = defaultdict(list)
    for config_file in sorted(root.rglob("config.yaml")):
        run_dir = config_file.parent
        if MEAN_DIR in run_dir.parts or not has_events(run_dir):
            continue
        info = yaml.safe_load(config_file.read_text()) or {}
        run = info.get("run") or {}
        if "norm" not in run or "algo" not in info:
            continue  # not a run of the pipeline
        # one mean per arm (``wn`` and ``wn-noinit`` are both norm ``wn``); runs before arms existed: the norm
        arm = str(run.get("arm", run["norm"]))
        groups[(run_dir.parents[1], run_dir.parent.name, str(info["algo"]), arm)].append(run_dir)
    return groups


def _by_env_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_dir(run_dir)), size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: {e.step: e.value for e in acc.Scalars(tag)}
        for tag in acc.Tags()["scalars"]
        if tag.startswith(BY_ENV_PREFIX)
    }


def write_norm_means(root: str | Path) -> list[Path]:
    """Write (or rewrite) the mean run of every (experiment, env, algo, norm) under ``root``.

    :param root: a runs folder, or one experiment in it
    :return: the mean runs written
    """
    from torch.utils.tensorboard import SummaryWriter

    written = []
    for (experiment, env, algo, norm), run_dirs in _runs_by_norm(Path(root)).items():
        per_run = [_by_env_scalars(run_dir) for run_dir in run_dirs]
        target = experiment / MEAN_DIR / env / f"{algo}-{norm}"
        # written next to the target, then swapped in: TensorBoard never reads a half-written mean run
        tmp = target.with_name(f".tmp-{target.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        writer = SummaryWriter(log_dir=str(tmp))
        try:
            for tag in sorted(set().union(*per_run)):
                series = [scalars.get(tag, {}) for scalars in per_run]
                for step in sorted(set.intersection(*(set(s) for s in series))):  # steps every seed logged
                    writer.add_scalar(tag, sum(s[step] for s in series) / len(series), step)
        finally:
            writer.close()
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents tb-means [RUNS_DIR ...]``: write the mean runs, one line per folder.

    :param argv: command-line arguments (default ``sys.argv[1:]``)
    :return: exit status
    """
    parser = argparse.ArgumentParser(
        prog="python -m agents tb-means",
        description="Write per-norm mean runs (<experiment>/_mean/<env>/<algo>-<norm>) for TensorBoard's charts.",
    )
    parser.add_argument("folders", nargs="*", default=["runs"], help="runs folders or experiments (default: runs)")
    for folder in parser.parse_args(argv).folders:
        written = write_norm_means(folder) if Path(folder).is_dir() else []
        print(f"{folder}: {len(written)} per-norm mean run(s) in */{MEAN_DIR}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
