"""Reading an experiment's runs back from their TensorBoard event files (tbparse), with how each run stands."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from agents.pipeline.runs import run_state
from agents.pipeline.tb_layout import event_dir, has_events, parse_noise_tag

#: :func:`run_states` statuses, in report order
RUN_STATUSES = ("finished", "unfinished", "failed")


def find_runs(experiment_dir: str | Path) -> list[Path]:
    """Run directories under an experiment (directories with ``config.yaml`` and event files, in the run
    directory or, for runs of rlnorm 0.1/0.2, in its ``tb/``), sorted.

    :param experiment_dir: ``runs/<experiment>``
    """
    return sorted(p.parent for p in Path(experiment_dir).rglob("config.yaml") if has_events(p.parent))


def run_states(experiment_dir: str | Path) -> pd.DataFrame:
    """How every run of an experiment stands (:func:`agents.pipeline.runs.run_state`).

    :param experiment_dir: ``runs/<experiment>``
    :return: columns ``run, status, steps, target, message``; status is ``finished`` (reached its configured
        steps), ``unfinished`` (interrupted or running) or ``failed``
    """
    rows = []
    for run_dir in find_runs(experiment_dir):
        state = run_state(run_dir)
        rows.append(
            {
                "run": str(run_dir.relative_to(experiment_dir)),
                "status": state.status,
                "steps": state.steps,
                "target": state.target,
                "message": state.message,
            }
        )
    return pd.DataFrame(rows, columns=["run", "status", "steps", "target", "message"])


def load_scalars(experiment_dir: str | Path) -> pd.DataFrame:
    """Every scalar of every run, with the run's identity and status (:func:`run_states`).

    :param experiment_dir: ``runs/<experiment>``
    :return: columns ``run, env, norm, seed, algo, status, tag, step, value``; ``norm`` is the run's arm label
        (``run.arm`` of its ``config.yaml``: the norm's name for an arm of the config's ``norms``, the label for
        one of its ``arms``, e.g. ``wn-noinit``; runs written before arms existed: ``run.norm``), so reports
        group and list arms, not the norms they are built with
    """
    from tbparse import SummaryReader

    frames = []
    for run_dir in find_runs(experiment_dir):
        info = yaml.safe_load((run_dir / "config.yaml").read_text())
        run = info.get("run", {})
        scalars = SummaryReader(str(event_dir(run_dir))).scalars
        if scalars.empty:
            continue
        scalars = scalars.assign(
            run=str(run_dir.relative_to(experiment_dir)),
            env=run["env"],
            norm=run.get("arm", run["norm"]),
            seed=int(run["seed"]),
            algo=info["algo"],
            status=run_state(run_dir).status,
        )
        frames.append(scalars)
    if not frames:
        raise FileNotFoundError(f"no runs with TensorBoard events under {experiment_dir}")
    return pd.concat(frames, ignore_index=True)


def final_values(scalars: pd.DataFrame) -> pd.DataFrame:
    """The last logged value (largest step) of every tag of every run.

    :param scalars: output of :func:`load_scalars`
    :return: one row per (run, tag)
    """
    ordered = scalars.sort_values(["run", "tag", "step"])
    return ordered.groupby(["run", "tag"], as_index=False).last()


def noise_levels(finals: pd.DataFrame) -> dict[str, list[float]]:
    """Noise kinds and levels found among the ``eval/return_noise_<kind>_<level>`` tags.

    :param finals: output of :func:`final_values`
    """
    found: dict[str, set[float]] = {}
    for tag in finals.tag.unique():
        parsed = parse_noise_tag(tag)
        if parsed is not None:
            found.setdefault(parsed[0], set()).add(parsed[1])
    return {kind: sorted(levels) for kind, levels in sorted(found.items())}
