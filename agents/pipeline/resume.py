"""What keeps a resumed run honest: its configuration check, its history, and its TensorBoard events.

* :func:`check_resumable` - a run resumes (or is skipped as finished) only with the configuration it ran with;
  only the keys in :data:`RESUMABLE_KEYS` (how long and where it runs, not what it learns) may change.
* :func:`append_history` - ``history.jsonl`` in the run directory, one JSON line per start, resume (with the
  changed keys and the checkpoint used), interruption, failure and finish.
* :func:`truncate_events` - drop TensorBoard events logged after the checkpoint a run resumes from (a killed
  run logged past it), so the curves have each step once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from agents.config import ConfigError, parse_config
from agents.pipeline.runs import CONFIG_FILE, RunSpec

HISTORY_FILE = "history.jsonl"
#: config keys whose value may differ when a run resumes: its length (extend a run), its checkpoint interval,
#: how it is displayed and scheduled, and where files go. Everything else changes what the run learns, so
#: resuming with another value is refused.
RESUMABLE_KEYS = (
    "train.total_timesteps",
    "train.checkpoint_freq",
    "train.progress_bar",
    "train.torch_threads",
    "device",
    "sweep.workers",
    "sweep.backend",
    "runs_dir",
    "reports_dir",
)
#: the grid around a run, not settings of it (the run's own env, arm and seed are its directory; what its arm
#: sets, the norm and the arm's policy kwargs, is compared by :func:`run_settings`)
GRID_KEYS = ("envs", "norms", "seeds", "arms")


class _Unset:
    def __repr__(self) -> str:
        return "(unset)"


#: the value of a key one of two configs does not set (e.g. a hyperparameter left at the algorithm's default)
UNSET = _Unset()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (lists stay values).

    :param data: e.g. ``{"train": {"n_envs": 8}}``
    :param prefix: prepended to every key
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_settings(doc: Mapping[str, Any], env_id: str, arm: str | None = None) -> dict[str, Any]:
    """What one run of a config document trains with, as dotted keys: the config without its ``run`` entry and
    :data:`GRID_KEYS`, with ``hyperparams`` merged for ``env_id`` (so another env's block does not count) and
    the effective ``train.n_envs``; for ``arm``, also its ``norm`` and its policy kwargs merged into
    ``policy_kwargs`` (another arm's definition does not count).

    :param doc: a config as plain data (``ExperimentConfig.to_dict()`` or a run's ``config.yaml``)
    :param env_id: the run's env
    :param arm: the run's arm label (:attr:`RunSpec.label`); ``None`` leaves the arm out
    """
    arm_doc = ((doc.get("arms") or {}).get(arm) or {}) if arm is not None else {}
    doc = {k: v for k, v in doc.items() if k != "run" and k not in GRID_KEYS}
    if arm is not None:
        # an arm of `norms` is labelled by its norm; one of `arms` names its own
        doc["norm"] = arm_doc.get("norm", arm)
        doc["policy_kwargs"] = {**(doc.get("policy_kwargs") or {}), **(arm_doc.get("policy_kwargs") or {})}
    blocks = doc.pop("hyperparams", None) or {}
    merged = {**(blocks.get("default") or {}), **(blocks.get(env_id) or {})}
    train = dict(doc.get("train") or {})
    if "n_envs" in merged:
        train["n_envs"] = merged.pop("n_envs")
    doc["train"] = train
    flat = flatten(doc)
    flat.update(flatten(merged, "hyperparams."))
    return flat


def recorded_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The config a run recorded (its ``config.yaml``), completed with today's defaults where it parses.

    :param run_dir: the run directory
    :return: plain data, or ``None`` if the run has no config yet
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text()) or {}
    try:  # fills in keys a run written by an older version lacks, with the defaults it ran with
        full = parse_config({k: v for k, v in doc.items() if k != "run"}, str(path)).to_dict()
    except ConfigError:
        return doc
    return {**full, "run": doc.get("run", {})}


def config_changes(spec: RunSpec) -> dict[str, tuple[Any, Any]]:
    """Every setting whose value differs between a run's recorded config and ``spec.config``.

    :param spec: the run
    :return: ``{dotted key: (recorded, new)}`` (:data:`UNSET` where one side lacks the key); empty when the run
        has no recorded config
    """
    recorded = recorded_config(spec.run_dir)
    if recorded is None:
        return {}
    old = run_settings(recorded, spec.env_id, spec.label)
    new = run_settings(spec.config.to_dict(), spec.env_id, spec.label)
    changes = {}
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, UNSET), new.get(key, UNSET)
        if before != after:
            changes[key] = (before, after)
    return changes


def check_resumable(spec: RunSpec) -> dict[str, tuple[Any, Any]]:
    """Refuse to resume (or skip) a run whose recorded config differs from ``spec.config`` outside
    :data:`RESUMABLE_KEYS`; nothing is written either way.

    :param spec: the run
    :return: the allowed changes ``{key: (recorded, new)}``, for the run's history
    :raises ConfigError: one line naming the run's ``config.yaml``, the differing keys and their values
    """
    changes = config_changes(spec)
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
    if refused:
        values = ", ".join(f"{old!r} -> {new!r}" for old, new in refused.values())
        raise ConfigError(
            str(spec.run_dir / CONFIG_FILE),
            ", ".join(refused),
            f"differ from the config this run ran with ({values}); a run resumes only with its own config "
            f"(it may change: {', '.join(RESUMABLE_KEYS)}); to train with the new values, use another "
            f"experiment name or delete {spec.run_dir}",
        )
    return {k: v for k, v in changes.items() if k in RESUMABLE_KEYS}


def append_history(run_dir: str | Path, event: str, **fields: Any) -> None:
    """Append one event to the run's ``history.jsonl`` (``start``, ``resume``, ``interrupted``, ``failed``,
    ``finished``).

    :param run_dir: the run directory
    :param event: what happened
    :param fields: details, e.g. ``step=40960``
    """
    entry = {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    line = json.dumps(entry, sort_keys=False, default=str) + "\n"
    # one write of one short line in append mode: concurrent readers never see half an entry
    fd = os.open(Path(run_dir) / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The events of :func:`append_history`, oldest first (empty for runs written before it existed).

    :param run_dir: the run directory
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line cut short by a kill
            continue
    return events


def truncate_events(tb_dir: str | Path, step: int) -> int:
    """Remove the events after ``step`` from every event file in ``tb_dir`` (rewritten atomically).

    :param tb_dir: a run's TensorBoard directory
    :param step: the step the run resumes from
    :return: the number of events removed
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    removed = 0
    for stale in Path(tb_dir).glob(".truncating-*"):  # left by a process killed while rewriting
        stale.unlink(missing_ok=True)
    for i, path in enumerate(sorted(Path(tb_dir).glob("events.out.tfevents.*"))):
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [raw for raw in records if Event.FromString(raw).step <= step]
        if len(kept) == len(records):
            continue
        removed += len(records) - len(kept)
        # TensorBoard readers take any file with "tfevents" in its name, so the temp name has none
        tmp = path.with_name(f".truncating-{os.getpid()}-{i}")
        with open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for raw in kept:
                writer.write(raw)
        os.replace(tmp, path)
    return removed
